import Formats
import Tensors

extension DeltaTools {
    /// A diff-pruned delta ready to write: the `.alloy` encoding and what was kept.
    public struct Sparsified {
        public let encoded: AlloyWriter.Encoded
        public let reports: [TensorReport]
        /// Entries kept and entries in the touched tensors, over all tensors.
        public let kept: Int
        public let total: Int
        /// kept / total (0 for an empty delta).
        public var density: Double { Double(kept) / Double(max(1, total)) }
    }

    /// Sparsifies `fineTuned − base` (see `sparsify(fineTuned:base:…)`) and encodes it as a `.alloy`
    /// sparse delta: kind `sparse`, the base's content hash, the density actually kept, and
    /// `provenance` (e.g. the source and the tool's command line) in the metadata.
    public static func sparsified(fineTuned: WeightSource, base: WeightSource, method: SparsifyMethod, density: Double,
                                  gamma: Double, perRow: Bool, seed: UInt64, provenance: [(String, JSONValue)]) throws -> Sparsified {
        let (tensors, reports) = try sparsify(fineTuned: fineTuned, base: base, method: method, density: density,
                                              gamma: gamma, perRow: perRow, seed: seed)
        let kept = reports.reduce(0) { $0 + $1.kept }, total = reports.reduce(0) { $0 + $1.total }
        let encoded = try AlloyWriter.encode(tensors.map { .init(name: $0.0, tensor: $0.1, codec: .sparse) }, metadata: [
            ("kind", .string("sparse")), ("base_sha256", .string(try AlloyFile.contentHash(of: base))),
            ("density", .number(Double(kept) / Double(max(1, total)))),
            ("provenance", .object(provenance)),
        ])
        return Sparsified(encoded: encoded, reports: reports, kept: kept, total: total)
    }
}
