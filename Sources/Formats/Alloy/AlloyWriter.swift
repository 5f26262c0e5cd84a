import Foundation
import Tensors

/// Writes `.alloy` files (docs/FORMAT.md). Deterministic: tensors sorted by name, fixed chunk
/// sizes, codec decisions that depend only on the data. Chunks encode in parallel.
public enum AlloyWriter {
    /// Tensors with the codec to use for each.
    public struct Input {
        public let name: String
        public let tensor: Tensor
        public let codec: AlloyCodec
        public init(name: String, tensor: Tensor, codec: AlloyCodec) {
            self.name = name; self.tensor = tensor; self.codec = codec
        }
    }

    /// Encodes `inputs` with `metadata` (a JSON object; `content_sha256` and `lossy` are
    /// filled in) and returns the file's bytes.
    public static func encode(_ inputs: [Input], metadata: [(String, JSONValue)]) throws -> Encoded {
        var names = Set<String>()
        for i in inputs {
            guard names.insert(i.name).inserted else {
                throw AlloyFormatError.malformedEntry(path: "<input>", tensor: i.name, reason: "duplicate tensor name")
            }
            guard i.codec.applies(to: i.tensor.dtype, shape: i.tensor.shape) else {
                throw AlloyFormatError.codecNotApplicable(tensor: i.name, codec: i.codec.description, dtype: i.tensor.dtype.rawValue)
            }
            guard !i.name.isEmpty, i.name.utf8.count <= AlloyContainer.maxNameBytes, i.tensor.shape.rank <= AlloyContainer.maxRank else {
                throw AlloyFormatError.malformedEntry(path: "<input>", tensor: i.name, reason: "name length or rank out of bounds")
            }
        }
        let sorted = inputs.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }

        // Chunk jobs over all tensors, encoded on all cores.
        struct Job { let tensor: Int; let range: Range<Int>; let elements: Int }
        var jobs: [Job] = []
        var perTensorChunkElements: [Int] = []
        for (ti, input) in sorted.enumerated() {
            let n = input.tensor.elementCount
            let e = input.codec.chunkElements(shape: input.tensor.shape)
            perTensorChunkElements.append(e)
            var lo = 0
            while lo < n { jobs.append(Job(tensor: ti, range: lo..<min(n, lo + e), elements: e)); lo += e }
        }
        var chunkCounts = [Int](repeating: 0, count: sorted.count)
        for job in jobs { chunkCounts[job.tensor] += 1 }
        let hasLossy = sorted.contains { !$0.codec.isLossless }

        // Task 0 hashes the canonical content while the others encode chunks (and their CRCs).
        var encoded = [[UInt8]](repeating: [], count: jobs.count)
        var crcs = [UInt32](repeating: 0, count: jobs.count)
        var contentHash = ""
        encoded.withUnsafeMutableBufferPointer { out in
            crcs.withUnsafeMutableBufferPointer { crcOut in
                withUnsafeMutablePointer(to: &contentHash) { hashPointer in
                    let o = UnsafeSendableBox(out), c = UnsafeSendableBox(crcOut)
                    let hashOut = UnsafeSendableBox(hashPointer)
                    Parallel.forEach(count: jobs.count + 1) { j in
                        if j == 0 {
                            if !hasLossy { hashOut.value.pointee = losslessHash(sorted) }
                            return
                        }
                        let job = jobs[j - 1]
                        let t = sorted[job.tensor].tensor
                        let w = t.dtype.byteSize
                        // A job exists only for a non-empty range, so the tensor has bytes.
                        guard let src = t.rawBytes.baseAddress else { return }
                        let bytes = ChunkCodec.encode(sorted[job.tensor].codec, dtype: t.dtype, shape: t.shape,
                                                      src: src + job.range.lowerBound * w, count: job.range.count)
                        c.value[j - 1] = bytes.withUnsafeBytes { Deflate.crc32($0) }
                        o.value[j - 1] = bytes
                    }
                }
            }
        }

        // With lossy tensors the hash covers the decoded values a reader will get.
        var lossy: [(String, JSONValue)] = []
        if hasLossy {
            var hasher = AlloyContainer.ContentHasher()
            var jobIndex = 0
            for (ti, input) in sorted.enumerated() {
                let t = input.tensor
                let first = jobIndex
                jobIndex += chunkCounts[ti]
                if input.codec.isLossless {
                    hasher.add(name: input.name, dtype: t.dtype, shape: t.shape, bytes: t.rawBytes)
                    continue
                }
                lossy.append((input.name, .string(input.codec.description)))
                let decoded = try Tensor(zeros: t.dtype, shape: t.shape)
                for k in first..<jobIndex {
                    try encoded[k].withUnsafeBytes { stored in
                        try ChunkCodec.decode(input.codec, dtype: t.dtype, shape: t.shape, stored: stored, count: jobs[k].range.count,
                                              into: decoded.buffer.mutableBase + jobs[k].range.lowerBound * t.dtype.byteSize)
                    }
                }
                hasher.add(name: input.name, dtype: t.dtype, shape: t.shape, bytes: decoded.rawBytes)
            }
            contentHash = hasher.finalize()
        }
        var meta = metadata.filter { $0.0 != "content_sha256" && $0.0 != "lossy" }
        meta.append(("content_sha256", .string(contentHash)))
        if !lossy.isEmpty { meta.append(("lossy", .object(lossy))) }
        meta.sort { $0.0 < $1.0 }
        let metaBytes = Array(JSONValue.object(meta).serialized().utf8)

        // Layout: header size depends only on names/ranks/chunk counts, so compute it first.
        var headerSize = 4 + metaBytes.count + 4
        for (ti, input) in sorted.enumerated() {
            headerSize += 2 + input.name.utf8.count + 1 + 1 + 8 * input.tensor.shape.rank + 1 + 1 + 2 + 8 + 4 + 16 * chunkCounts[ti]
        }
        // Refuse what a reader would refuse (and what the u32/u16 fields below cannot hold).
        guard headerSize <= AlloyContainer.maxHeaderSize, sorted.count <= AlloyContainer.maxTensors else {
            throw AlloyFormatError.malformedHeader(path: "<input>", reason: "\(sorted.count) tensors and \(metaBytes.count) bytes of metadata need a \(headerSize)-byte header; the cap is \(AlloyContainer.maxHeaderSize)")
        }
        let dataStart = AlloyContainer.align(AlloyContainer.preambleSize + headerSize)
        var offset = dataStart
        var header = ByteWriter()
        header.u32(UInt32(metaBytes.count))
        header.append(metaBytes)
        header.u32(UInt32(sorted.count))
        var layout: [(offset: Int, pad: Int)] = []
        var j = 0
        for (ti, input) in sorted.enumerated() {
            let t = input.tensor
            header.u16(UInt16(input.name.utf8.count))
            header.append(input.name.utf8)
            header.u8(AlloyContainer.code(of: t.dtype))
            header.u8(UInt8(t.shape.rank))
            for d in t.shape.dims { header.u64(UInt64(d)) }
            header.u8(input.codec.rawValue)
            header.u8(input.codec == .f16 ? 1 : input.codec == .bf16 ? 2 : 0)
            header.u16(0)
            header.u64(UInt64(perTensorChunkElements[ti]))
            let first = j
            while j < jobs.count, jobs[j].tensor == ti { j += 1 }
            header.u32(UInt32(j - first))
            let aligned = AlloyContainer.align(offset)
            if first < j { layout.append((aligned, aligned - offset)); offset = aligned }
            for k in first..<j {
                header.u64(UInt64(offset))
                header.u32(UInt32(encoded[k].count))
                header.u32(crcs[k])
                if k > first { layout.append((offset, 0)) }
                offset += encoded[k].count
            }
        }
        // Invariant: headerSize above counts exactly the fields written here, from the same
        // in-memory inputs; no file content reaches this.
        precondition(header.bytes.count == headerSize)
        var head = ByteWriter()
        head.append(AlloyContainer.magic)
        head.u32(AlloyContainer.version)
        head.u32(0)
        head.u64(UInt64(headerSize))
        head.u32(header.bytes.withUnsafeBytes { Deflate.crc32($0) })
        head.u32(0)
        head.append(header.bytes)
        head.append(repeatElement(0, count: dataStart - head.bytes.count))
        return Encoded(head: head.bytes, chunks: encoded, padding: layout.map(\.pad), size: offset, contentHash: contentHash)
    }

    /// An encoded file as parts: the preamble, header and padding, then each chunk preceded by
    /// its zero padding. `bytes` concatenates them; `write` streams them.
    public struct Encoded {
        public let head: [UInt8]
        public let chunks: [[UInt8]]
        let padding: [Int]
        public let size: Int
        /// The canonical content hash recorded in the metadata (docs/FORMAT.md).
        public let contentHash: String

        public var bytes: [UInt8] {
            var out = head
            out.reserveCapacity(size)
            for (k, c) in chunks.enumerated() { out.append(contentsOf: repeatElement(0, count: padding[k])); out.append(contentsOf: c) }
            return out
        }

        public func write(to path: String) throws {
            let f = try AtomicFile(path: path)
            try f.write(head)
            let zeros = [UInt8](repeating: 0, count: AlloyContainer.alignment)
            for (k, c) in chunks.enumerated() {
                if padding[k] > 0 { try zeros[0..<padding[k]].withUnsafeBytes { try f.write($0) } }
                try f.write(c)
            }
            try f.commit()
        }
    }

    static func losslessHash(_ sorted: [Input]) -> String {
        var hasher = AlloyContainer.ContentHasher()
        for i in sorted { hasher.add(name: i.name, dtype: i.tensor.dtype, shape: i.tensor.shape, bytes: i.tensor.rawBytes) }
        return hasher.finalize()
    }

    /// Encodes and writes atomically to `path`.
    public static func write(_ inputs: [Input], metadata: [(String, JSONValue)], to path: String) throws {
        try encode(inputs, metadata: metadata).write(to: path)
    }
}
