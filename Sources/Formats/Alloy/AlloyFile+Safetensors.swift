import Foundation
import Tensors

extension AlloyFile {
    /// Packs a safetensors source into `.alloy` bytes. `codec` picks the codec per tensor
    /// (default: `AlloyCodec.automatic`, lossless). The source's `__metadata__` is kept.
    public static func pack(_ source: WeightSource, kind: String = "base", extraMetadata: [(String, JSONValue)] = [],
                            codec: (String, Tensor) -> AlloyCodec = { AlloyCodec.automatic(for: $1) }) throws -> AlloyWriter.Encoded {
        var inputs: [AlloyWriter.Input] = []
        for name in source.names {
            let t = try source.tensor(name)
            let c = codec(name, t)
            inputs.append(.init(name: name, tensor: t, codec: c.applies(to: t.dtype, shape: t.shape) ? c : AlloyCodec.automatic(for: t)))
        }
        var meta: [(String, JSONValue)] = [("kind", .string(kind))] + extraMetadata
        if let m = source.metadata {
            meta.append(("safetensors_metadata", .object(m.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
        }
        return try AlloyWriter.encode(inputs, metadata: meta)
    }

    /// The canonical content hash (FORMAT.md) of a safetensors source, as `pack` would record it.
    public static func contentHash(of source: WeightSource) throws -> String {
        var hasher = AlloyContainer.ContentHasher()
        for name in source.names.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            let t = try source.tensor(name)
            hasher.add(name: name, dtype: t.dtype, shape: t.shape, bytes: t.rawBytes)
        }
        return hasher.finalize()
    }

    /// Packs a diff-pruned delta given as `<tensor>.indices` (flat, I32/I64) and
    /// `<tensor>.values` pairs: each becomes a dense tensor of the base's shape (values' dtype)
    /// stored with the `sparse` codec, so the file holds exactly the delta, and records the
    /// base's content hash and the density.
    public static func packSparseDelta(_ delta: SafetensorsFile, base: WeightSource, extraMetadata: [(String, JSONValue)] = []) throws -> AlloyWriter.Encoded {
        var inputs: [AlloyWriter.Input] = []
        var kept = 0, total = 0
        // SparseDelta checks the pairing, both dtypes and every index against the base.
        let sparse = try SparseDelta(delta, elementCount: { base.info($0)?.shape.elementCount })
        for entry in sparse.entries {
            guard let info = base.info(entry.name) else {
                throw AlloyFormatError.malformedEntry(path: delta.path, tensor: entry.name, reason: "the base has no tensor of this name — was the delta made for another base?")
            }
            let values = entry.values
            let dense = try Tensor(zeros: values.dtype, shape: info.shape)
            let w = values.dtype.byteSize
            guard values.rawBytes.count == entry.indices.count * w else {
                throw AlloyFormatError.malformedEntry(path: delta.path, tensor: entry.name, reason: "values hold \(values.rawBytes.count) bytes for \(entry.indices.count) entries")
            }
            if let vbase = values.rawBytes.baseAddress {
                for (k, i) in entry.indices.enumerated() { (dense.buffer.mutableBase + i * w).copyMemory(from: vbase + k * w, byteCount: w) }
            }
            kept += entry.indices.count
            inputs.append(.init(name: entry.name, tensor: dense, codec: .sparse))
        }
        for e in base.entries where e.info.dtype.isFloatingPoint { total += e.info.shape.elementCount }
        let meta: [(String, JSONValue)] = [("kind", .string("sparse")), ("base_sha256", .string(try contentHash(of: base))),
                                           ("density", .number(Double(kept) / Double(max(1, total))))] + extraMetadata
        return try AlloyWriter.encode(inputs, metadata: meta)
    }

    /// The `__metadata__` map recorded from the source safetensors, if any.
    public var safetensorsMetadata: [String: String]? {
        guard case .object(let kv)? = metadata["safetensors_metadata"] else { return nil }
        var m = [String: String]()
        for (k, v) in kv { if case .string(let s) = v { m[k] = s } }
        return m
    }

    /// Writes every tensor, decoded, as a safetensors file (bit-exact for lossless codecs).
    public func unpack(to path: String) throws {
        let all = try tensors.map { ($0.name, try decode($0)) }
        try SafetensorsWriter.write(all, metadata: safetensorsMetadata, to: path)
    }
}
