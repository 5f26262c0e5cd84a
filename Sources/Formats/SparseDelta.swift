import Tensors

/// A diff-pruned delta (Guo et al. 2021, "Parameter-Efficient Transfer Learning with Diff
/// Pruning", https://arxiv.org/abs/2012.07463) as safetensors files hold it: for each tensor
/// `T`, `T.indices` (flat positions, I32 or I64) and `T.values` (F32, F16 or BF16, one per
/// index). The one reader of that layout; it checks the pairing, the dtypes and, given the
/// tensor's element count, every index.
public struct SparseDelta: Sendable {
    public struct Entry: Sendable {
        /// The tensor the delta applies to, as the file names it (without `.indices`).
        public let name: String
        public let indices: [Int]
        public let values: Tensor
    }

    public let path: String
    public let entries: [Entry]

    /// True when `file` holds at least one `.indices` tensor (it is a sparse delta).
    public static func isSparse(_ file: SafetensorsFile) -> Bool { file.names.contains { $0.hasSuffix(".indices") } }

    /// Reads every `.indices`/`.values` pair of `file`. `elementCount` gives the size of the
    /// tensor an entry applies to (nil: unknown, refused); every index must fall inside it.
    public init(_ file: SafetensorsFile, elementCount: (String) throws -> Int?) throws {
        path = file.path
        var out: [Entry] = []
        for idxName in file.names.sorted() where idxName.hasSuffix(".indices") {
            let name = String(idxName.dropLast(".indices".count)), valName = name + ".values"
            func bad(_ reason: String) -> AlloyFormatError { .malformedEntry(path: file.path, tensor: name, reason: reason) }
            guard file.info(valName) != nil else { throw bad("\(idxName) has no \(valName)") }
            let idx = try file.tensor(idxName), values = try file.tensor(valName)
            guard values.dtype == .f32 || values.dtype == .f16 || values.dtype == .bf16 else {
                throw bad("\(valName) must be F32, F16 or BF16, is \(values.dtype.rawValue)")
            }
            guard idx.elementCount == values.elementCount else {
                throw bad("\(idxName) has \(idx.elementCount) entries, \(valName) \(values.elementCount)")
            }
            guard idx.rawBytes.count == idx.elementCount * idx.dtype.byteSize else {
                throw bad("\(idxName) holds \(idx.rawBytes.count) bytes for \(idx.elementCount) entries")
            }
            let indices: [Int]
            switch idx.dtype {
            // Unaligned loads: a safetensors file may place a tensor at any byte offset.
            case .i32: indices = (0..<idx.elementCount).map { Int(Int32(littleEndian: idx.rawBytes.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self))) }
            case .i64: indices = (0..<idx.elementCount).map { Int(Int64(littleEndian: idx.rawBytes.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self))) }
            default: throw bad("\(idxName) must be I32 or I64, is \(idx.dtype.rawValue)")
            }
            guard let n = try elementCount(name) else {
                throw bad("the base has no tensor of this name — was the delta made for another base?")
            }
            for (k, i) in indices.enumerated() where i < 0 || i >= n {
                throw bad("\(idxName)[\(k)] = \(i) is outside the tensor (\(n) elements)")
            }
            out.append(Entry(name: name, indices: indices, values: values))
        }
        entries = out
    }
}
