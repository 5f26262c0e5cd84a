import Foundation
import Tensors

/// A validated, memory-mapped `.alloy` file (docs/FORMAT.md).
///
/// Opening checks the preamble, the header CRC, every count against its cap, the tensor
/// entries, and that the chunk records tile the data section with zero padding only — so any
/// changed byte outside chunk payloads is caught at open, and inside a payload by the chunk's
/// CRC when that tensor is read. Reading a tensor touches only its own chunks, which decode in
/// parallel.
public final class AlloyFile: @unchecked Sendable {
    public let path: String
    public let mapping: MappedFile
    public let metadata: JSONValue
    public let tensors: [AlloyTensorEntry]
    private let index: [String: Int]

    public init(path: String) throws {
        self.path = path
        do { mapping = try MappedFile(path: path) } catch let e as TensorError {
            throw AlloyFormatError.io(path: path, reason: e.description)
        }
        let bytes = mapping.bytes
        (metadata, tensors) = try Self.parse(bytes, path: path)
        var idx = [String: Int]()
        for (i, t) in tensors.enumerated() { idx[t.name] = i }
        index = idx
    }

    public var names: [String] { tensors.map(\.name) }
    public func entry(_ name: String) -> AlloyTensorEntry? { index[name].map { tensors[$0] } }

    /// Metadata `kind` (base, task-vector, lora, sparse, head, merged), if recorded.
    public var kind: String? { if case .string(let s)? = metadata["kind"] { return s }; return nil }
    public var contentHash: String? { if case .string(let s)? = metadata["content_sha256"] { return s }; return nil }

    /// Decodes the tensor `name`. Raw tensors are zero-copy views of the mapping.
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entry(name) else { throw AlloyFormatError.tensorNotFound(path: path, tensor: name) }
        return try decode(e)
    }

    func decode(_ e: AlloyTensorEntry) throws -> Tensor {
        let bytes = mapping.bytes
        var failures = [AlloyFormatError?](repeating: nil, count: e.chunks.count)
        if e.codec == .raw, e.chunks.count > 0 {
            let start = e.chunks[0].offset
            let contiguous = e.chunks.indices.allSatisfy { e.chunks[$0].offset == start + $0 * e.chunkElements * e.dtype.byteSize }
            if contiguous {
                try verifyChecksums(e)
                return try Tensor(dtype: e.dtype, shape: e.shape, buffer: TensorBuffer(mapping: mapping, range: start..<(start + e.rawBytes)))
            }
        }
        // Each chunk is checked and decoded by one task, so decoding reads bytes the CRC just
        // brought into cache.
        let out = try Tensor(dtype: e.dtype, shape: e.shape, buffer: TensorBuffer(uninitializedByteCount: e.rawBytes))
        let base = UnsafeSendableBox(out.buffer.mutableBase)
        failures.withUnsafeMutableBufferPointer { f in
            let fb = UnsafeSendableBox(f)
            Parallel.forEach(count: e.chunks.count) { c in
                let ch = e.chunks[c]
                let stored = UnsafeRawBufferPointer(rebasing: bytes[ch.offset..<(ch.offset + ch.size)])
                let crc = Deflate.crc32(stored)
                guard crc == ch.crc else {
                    fb.value[c] = .chunkChecksum(path: path, tensor: e.name, chunk: c, stored: ch.crc, computed: crc)
                    return
                }
                let range = e.chunkRange(c)
                do {
                    try ChunkCodec.decode(e.codec, dtype: e.dtype, shape: e.shape, stored: stored,
                                          count: range.count, into: base.value + range.lowerBound * e.dtype.byteSize)
                } catch {
                    fb.value[c] = .chunkPayload(path: path, tensor: e.name, chunk: c, reason: "\(error)")
                }
            }
        }
        if let f = failures.compactMap({ $0 }).first { throw f }
        return out
    }

    /// Checks the CRC of every chunk of `e`, in parallel.
    func verifyChecksums(_ e: AlloyTensorEntry) throws {
        let bytes = mapping.bytes
        var failures = [AlloyFormatError?](repeating: nil, count: e.chunks.count)
        failures.withUnsafeMutableBufferPointer { f in
            let fb = UnsafeSendableBox(f)
            Parallel.forEach(count: e.chunks.count) { c in
                let ch = e.chunks[c]
                let crc = Deflate.crc32(UnsafeRawBufferPointer(rebasing: bytes[ch.offset..<(ch.offset + ch.size)]))
                if crc != ch.crc { fb.value[c] = .chunkChecksum(path: path, tensor: e.name, chunk: c, stored: ch.crc, computed: crc) }
            }
        }
        if let f = failures.compactMap({ $0 }).first { throw f }
    }

    /// Decodes every tensor and checks the content hash.
    public func verify() throws {
        var hasher = AlloyContainer.ContentHasher()
        for e in tensors.sorted(by: { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }) {
            let t = try decode(e)
            hasher.add(name: e.name, dtype: e.dtype, shape: e.shape, bytes: t.rawBytes)
        }
        let computed = hasher.finalize()
        guard let stored = contentHash, stored == computed else {
            throw AlloyFormatError.contentHash(path: path, stored: contentHash ?? "(none)", computed: computed)
        }
    }

    // MARK: parsing

    static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws -> (JSONValue, [AlloyTensorEntry]) {
        guard bytes.count >= AlloyContainer.preambleSize else {
            throw AlloyFormatError.headerSize(path: path, reason: "file is \(bytes.count) bytes, shorter than the 32-byte preamble")
        }
        guard Array(bytes[0..<8]) == AlloyContainer.magic else { throw AlloyFormatError.badMagic(path: path) }
        var pre = ByteReader(bytes, at: 8)
        let version = try pre.u32("version")
        guard version == AlloyContainer.version else { throw AlloyFormatError.unsupportedVersion(path: path, version: version) }
        let flags = try pre.u32("flags")
        guard flags == 0 else { throw AlloyFormatError.unknownFlags(path: path, flags: flags) }
        let h64 = try pre.u64("header size")
        let storedCRC = try pre.u32("header crc")
        let reserved = try pre.u32("reserved")
        guard reserved == 0 else { throw AlloyFormatError.malformedHeader(path: path, reason: "reserved preamble field is not zero") }
        guard h64 >= 8, h64 <= UInt64(AlloyContainer.maxHeaderSize) else {
            throw AlloyFormatError.headerSize(path: path, reason: "header size \(h64) is outside 8…\(AlloyContainer.maxHeaderSize)")
        }
        let h = Int(h64)
        guard AlloyContainer.preambleSize + h <= bytes.count else {
            throw AlloyFormatError.headerSize(path: path, reason: "header size \(h) runs past the end of the \(bytes.count)-byte file")
        }
        let header = UnsafeRawBufferPointer(rebasing: bytes[AlloyContainer.preambleSize..<(AlloyContainer.preambleSize + h)])
        let crc = Deflate.crc32(header)
        guard crc == storedCRC else { throw AlloyFormatError.headerChecksum(path: path, stored: storedCRC, computed: crc) }

        do {
            return try parseHeader(header, fileBytes: bytes, path: path)
        } catch let e as ByteCursorError {
            if case let .truncated(what, need, have) = e {
                throw AlloyFormatError.malformedHeader(path: path, reason: "\(what): needs \(need) bytes, \(have) left")
            }
            throw e
        }
    }

    static func parseHeader(_ header: UnsafeRawBufferPointer, fileBytes bytes: UnsafeRawBufferPointer, path: String) throws -> (JSONValue, [AlloyTensorEntry]) {
        var r = ByteReader(header)
        let m = Int(try r.u32("metadata size"))
        let metaBytes = try r.take(m, "metadata")
        let metadata: JSONValue
        do { metadata = try JSONValue.parse(metaBytes, maxDepth: 16) } catch {
            throw AlloyFormatError.malformedHeader(path: path, reason: "metadata is not valid JSON (\(error))")
        }
        guard case .object = metadata else { throw AlloyFormatError.malformedHeader(path: path, reason: "metadata must be a JSON object") }
        let count = Int(try r.u32("tensor count"))
        guard count <= AlloyContainer.maxTensors, count <= r.remaining / 24 else {
            throw AlloyFormatError.malformedHeader(path: path, reason: "tensor count \(count) exceeds what the header can hold")
        }
        let dataStart = AlloyContainer.align(AlloyContainer.preambleSize + header.count)
        guard dataStart <= bytes.count else {
            throw AlloyFormatError.headerSize(path: path, reason: "data section starts past the end of the file")
        }
        // Padding between header and data must be zero.
        for b in bytes[(AlloyContainer.preambleSize + header.count)..<dataStart] where b != 0 {
            throw AlloyFormatError.malformedHeader(path: path, reason: "non-zero bytes in the padding after the header")
        }
        var entries: [AlloyTensorEntry] = []
        entries.reserveCapacity(count)
        var names = Set<String>()
        var cursor = dataStart
        for _ in 0..<count {
            let nameLen = Int(try r.u16("tensor name size"))
            guard nameLen >= 1, nameLen <= AlloyContainer.maxNameBytes else {
                throw AlloyFormatError.malformedHeader(path: path, reason: "tensor name size \(nameLen) outside 1…\(AlloyContainer.maxNameBytes)")
            }
            guard let name = String(validating: try r.take(nameLen, "tensor name"), as: UTF8.self) else {
                throw AlloyFormatError.malformedHeader(path: path, reason: "tensor name is not valid UTF-8")
            }
            func bad(_ reason: String) -> AlloyFormatError { .malformedEntry(path: path, tensor: name, reason: reason) }
            guard names.insert(name).inserted else { throw bad("duplicate tensor name") }
            let dcode = Int(try r.u8("dtype"))
            guard dcode < AlloyContainer.dtypeCodes.count else { throw bad("unknown dtype code \(dcode)") }
            let dtype = AlloyContainer.dtypeCodes[dcode]
            let rank = Int(try r.u8("rank"))
            guard rank <= AlloyContainer.maxRank else { throw bad("rank \(rank) exceeds \(AlloyContainer.maxRank)") }
            var dims: [Int] = []
            for _ in 0..<rank {
                let d = try r.u64("dimension")
                guard d <= UInt64(AlloyContainer.maxTensorBytes) else { throw bad("dimension \(d) is too large") }
                dims.append(Int(d))
            }
            let shape: Shape
            let rawBytes: Int
            do { shape = try Shape(dims); rawBytes = try shape.byteCount(of: dtype) } catch { throw bad("shape \(dims) overflows") }
            guard rawBytes <= AlloyContainer.maxTensorBytes else { throw bad("tensor of \(rawBytes) bytes exceeds the cap") }
            let ccode = try r.u8("codec")
            guard let codec = AlloyCodec(rawValue: ccode) else { throw bad("unknown codec id \(ccode); upgrade Alloy to read it") }
            guard codec.applies(to: dtype, shape: shape) else { throw bad("codec \(codec) does not apply to \(dtype.rawValue) \(shape)") }
            let param = try r.u8("codec parameter")
            let expectParam: UInt8 = codec == .f16 ? 1 : codec == .bf16 ? 2 : 0
            guard param == expectParam else { throw bad("codec parameter \(param), expected \(expectParam)") }
            guard try r.u16("reserved") == 0 else { throw bad("reserved field is not zero") }
            let e64 = try r.u64("chunk elements")
            guard e64 >= 1, e64 <= UInt64(AlloyContainer.maxChunkElements) else {
                throw bad("chunk elements \(e64) outside 1…\(AlloyContainer.maxChunkElements)")
            }
            let e = Int(e64)
            if codec == .int8Row, e % shape.dims[1] != 0 { throw bad("int8-row chunks must hold whole rows") }
            let n = shape.elementCount
            let expectChunks = n == 0 ? 0 : (n - 1) / e + 1
            let c = Int(try r.u32("chunk count"))
            guard c == expectChunks else { throw bad("\(c) chunks, but \(n) elements in chunks of \(e) need \(expectChunks)") }
            guard c <= r.remaining / 16 else { throw bad("chunk table runs past the header") }
            var chunks: [AlloyTensorEntry.Chunk] = []
            chunks.reserveCapacity(c)
            for k in 0..<c {
                let off64 = try r.u64("chunk offset")
                let size = Int(try r.u32("chunk size"))
                let ccrc = try r.u32("chunk crc")
                guard off64 <= UInt64(bytes.count), Int(off64) >= cursor else {
                    throw AlloyFormatError.layout(path: path, tensor: name, chunk: k, reason: "offset \(off64) overlaps earlier data or lies outside the file")
                }
                let off = Int(off64)
                guard off - cursor < AlloyContainer.alignment else {
                    throw AlloyFormatError.layout(path: path, tensor: name, chunk: k, reason: "gap of \(off - cursor) bytes before the chunk")
                }
                for b in bytes[cursor..<off] where b != 0 {
                    throw AlloyFormatError.layout(path: path, tensor: name, chunk: k, reason: "non-zero padding before the chunk")
                }
                guard size <= bytes.count - off else {
                    throw AlloyFormatError.layout(path: path, tensor: name, chunk: k, reason: "chunk of \(size) bytes runs past the end of the file")
                }
                if codec == .raw {
                    let want = min(e, n - k * e) * dtype.byteSize
                    guard size == want else { throw AlloyFormatError.layout(path: path, tensor: name, chunk: k, reason: "raw chunk holds \(size) bytes, expected \(want)") }
                }
                chunks.append(.init(offset: off, size: size, crc: ccrc))
                cursor = off + size
            }
            // A tensor's decoded size is allocated when it is read: refuse a claim its stored
            // chunks cannot plausibly back, before anything is allocated.
            let stored = chunks.reduce(0) { $0 + $1.size }
            let cap = AlloyContainer.decodedCap(stored: stored)
            guard rawBytes <= cap else {
                throw bad("claims \(rawBytes) decoded bytes from \(stored) stored bytes (a reader accepts at most \(cap)); the file is corrupt or hostile")
            }
            entries.append(AlloyTensorEntry(name: name, dtype: dtype, shape: shape, codec: codec, chunkElements: e, chunks: chunks))
        }
        guard r.remaining == 0 else { throw AlloyFormatError.malformedHeader(path: path, reason: "\(r.remaining) unexpected bytes after the tensor index") }
        guard cursor == bytes.count else {
            throw AlloyFormatError.headerSize(path: path, reason: "file has \(bytes.count - cursor) bytes after the last chunk, or ends before it")
        }
        return (metadata, entries)
    }
}
