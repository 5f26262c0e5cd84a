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
        for idxName in delta.names where idxName.hasSuffix(".indices") {
            let name = String(idxName.dropLast(".indices".count))
            guard let info = base.info(name) else {
                throw AlloyFormatError.malformedEntry(path: delta.path, tensor: name, reason: "the base has no tensor of this name — was the delta made for another base?")
            }
            guard delta.info(name + ".values") != nil else {
                throw AlloyFormatError.malformedEntry(path: delta.path, tensor: name, reason: "has \(idxName) but no \(name).values")
            }
            let idx = try delta.tensor(idxName), values = try delta.tensor(name + ".values")
            guard idx.dtype == .i64 || idx.dtype == .i32 else {
                throw AlloyFormatError.malformedEntry(path: delta.path, tensor: idxName, reason: "indices must be I32 or I64, not \(idx.dtype.rawValue)")
            }
            guard values.dtype == .f16 || values.dtype == .f32 || values.dtype == .bf16 else {
                throw AlloyFormatError.malformedEntry(path: delta.path, tensor: name + ".values", reason: "values must be F16, BF16 or F32, not \(values.dtype.rawValue)")
            }
            guard values.elementCount == idx.elementCount else {
                throw AlloyFormatError.malformedEntry(path: delta.path, tensor: name, reason: "\(idx.elementCount) indices but \(values.elementCount) values")
            }
            // The reads below stay inside both tensors: the dtype fixes each element's width.
            let iw = idx.dtype.byteSize
            guard idx.rawBytes.count == idx.elementCount * iw, values.rawBytes.count == values.elementCount * values.dtype.byteSize else {
                throw AlloyFormatError.malformedEntry(path: delta.path, tensor: name, reason: "tensor bytes do not match the shape")
            }
            let dense = try Tensor(zeros: values.dtype, shape: info.shape)
            let w = values.dtype.byteSize, n = info.shape.elementCount
            let ib = idx.rawBytes
            if let vbase = values.rawBytes.baseAddress {
                for k in 0..<idx.elementCount {
                    let i = iw == 8 ? Int(Int64(littleEndian: ib.loadUnaligned(fromByteOffset: k * 8, as: Int64.self)))
                                    : Int(Int32(littleEndian: ib.loadUnaligned(fromByteOffset: k * 4, as: Int32.self)))
                    guard i >= 0, i < n else { throw AlloyFormatError.malformedEntry(path: delta.path, tensor: name, reason: "index \(i) outside \(n) elements") }
                    (dense.buffer.mutableBase + i * w).copyMemory(from: vbase + k * w, byteCount: w)
                }
            }
            kept += idx.elementCount
            inputs.append(.init(name: name, tensor: dense, codec: .sparse))
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
