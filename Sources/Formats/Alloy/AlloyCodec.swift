import Tensors

/// The per-tensor codecs of the `.alloy` container (docs/FORMAT.md, "Codecs").
public enum AlloyCodec: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    case raw = 0
    case float = 1
    case sparse = 2
    case f16 = 3
    case bf16 = 4
    case int8Row = 5

    public var description: String {
        switch self {
        case .raw: return "raw"
        case .float: return "float"
        case .sparse: return "sparse"
        case .f16: return "f16"
        case .bf16: return "bf16"
        case .int8Row: return "int8-row"
        }
    }

    public init?(name: String) {
        guard let c = AlloyCodec.allCases.first(where: { $0.description == name }) else { return nil }
        self = c
    }

    public var isLossless: Bool { self == .raw || self == .float || self == .sparse }

    /// Whether the codec can store a tensor of `dtype` and `shape`.
    public func applies(to dtype: DType, shape: Shape) -> Bool {
        switch self {
        case .raw: return true
        case .float: return dtype.isFloatingPoint
        case .sparse: return dtype == .f32 || dtype == .f16 || dtype == .bf16
        case .f16, .bf16: return dtype == .f32
        case .int8Row: return dtype == .f32 && shape.rank == 2 && shape.dims[1] > 0 && shape.dims[1] <= AlloyContainer.maxChunkElements
        }
    }

    /// The default elements per chunk for a tensor.
    func chunkElements(shape: Shape) -> Int {
        switch self {
        case .raw: return max(1, (1 << 20) / 4)
        case .float, .f16, .bf16: return 1 << 16
        case .sparse: return 1 << 20
        case .int8Row:
            let k = shape.dims[1]
            return max(1, (1 << 16) / k) * k
        }
    }

    /// The lossless codec Alloy picks when none is asked for: `sparse` for tensors that are at
    /// least 70% zeros, `float` for other floating tensors over 1 KiB, `raw` otherwise.
    public static func automatic(for t: Tensor) -> AlloyCodec {
        guard t.dtype.isFloatingPoint, t.byteCount >= 1024 else { return .raw }
        if t.dtype != .f64, ChunkCodec.zeroFraction(t) >= 0.7 { return .sparse }
        return .float
    }
}

/// Encoding and decoding of one chunk's bytes for each codec.
enum ChunkCodec {
    static func zeroFraction(_ t: Tensor) -> Double {
        let w = t.dtype.byteSize, n = t.elementCount
        guard n > 0 else { return 0 }
        let b = t.rawBytes
        var zeros = 0
        switch w {
        case 4: for v in b.bindMemory(to: UInt32.self) where v == 0 { zeros += 1 }
        case 2: for v in b.bindMemory(to: UInt16.self) where v == 0 { zeros += 1 }
        default: return 0
        }
        return Double(zeros) / Double(n)
    }

    // MARK: byte grouping

    /// Rotates each w-byte value left by one bit and scatters its bytes into w planes, most
    /// significant first: `planes[j·n + i]` is byte (w−1−j) of rotated element i.
    static func group<T: FixedWidthInteger & UnsignedInteger>(_ src: UnsafeRawPointer, count n: Int, as: T.Type, into planes: UnsafeMutablePointer<UInt8>) {
        let w = MemoryLayout<T>.size, bits = T.bitWidth
        let s = src.assumingMemoryBound(to: T.self)
        for i in 0..<n {
            let v = T(littleEndian: s[i])
            let r = (v << 1) | (v >> (bits - 1))
            for j in 0..<w { planes[j * n + i] = UInt8(truncatingIfNeeded: r >> ((w - 1 - j) * 8)) }
        }
    }

    static func ungroup<T: FixedWidthInteger & UnsignedInteger>(_ planes: [UnsafePointer<UInt8>], count n: Int, as: T.Type, into dst: UnsafeMutableRawPointer) {
        let w = MemoryLayout<T>.size, bits = T.bitWidth
        let d = dst.assumingMemoryBound(to: T.self)
        for i in 0..<n {
            var r: T = 0
            for j in 0..<w { r |= T(planes[j][i]) << ((w - 1 - j) * 8) }
            d[i] = ((r >> 1) | (r << (bits - 1))).littleEndian
        }
    }

    /// F32 fast paths of `group`/`ungroup` (the hot case): one pass, four planes.
    static func group32(_ src: UnsafeRawPointer, count n: Int, into p: UnsafeMutablePointer<UInt8>) {
        let s = src.assumingMemoryBound(to: UInt32.self)
        let p0 = p, p1 = p + n, p2 = p + 2 * n, p3 = p + 3 * n
        for i in 0..<n {
            let v = UInt32(littleEndian: s[i])
            let r = (v << 1) | (v >> 31)
            p0[i] = UInt8(truncatingIfNeeded: r >> 24)
            p1[i] = UInt8(truncatingIfNeeded: r >> 16)
            p2[i] = UInt8(truncatingIfNeeded: r >> 8)
            p3[i] = UInt8(truncatingIfNeeded: r)
        }
    }

    static func ungroup32(_ p: [UnsafePointer<UInt8>], count n: Int, into dst: UnsafeMutableRawPointer) {
        let d = dst.assumingMemoryBound(to: UInt32.self)
        let p0 = p[0], p1 = p[1], p2 = p[2], p3 = p[3]
        for i in 0..<n {
            let r = UInt32(p0[i]) << 24 | UInt32(p1[i]) << 16 | UInt32(p2[i]) << 8 | UInt32(p3[i])
            d[i] = ((r >> 1) | (r << 31)).littleEndian
        }
    }

    static func groupAny(_ src: UnsafeRawPointer, count n: Int, width w: Int, into planes: UnsafeMutablePointer<UInt8>) {
        switch w {
        case 4: group32(src, count: n, into: planes)
        case 2: group(src, count: n, as: UInt16.self, into: planes)
        case 8: group(src, count: n, as: UInt64.self, into: planes)
        default:
            // Invariant: only AlloyWriter.encode reaches here, after checking codec.applies,
            // which admits the float and sparse codecs for 2-, 4- and 8-byte floats only.
            preconditionFailure("byte grouping of width \(w)")
        }
    }

    static func ungroupAny(_ planes: [UnsafePointer<UInt8>], count n: Int, width w: Int, into dst: UnsafeMutableRawPointer) throws {
        guard planes.count == w else { throw ChunkError.invalid("\(planes.count) byte planes for \(w)-byte values") }
        switch w {
        case 4: ungroup32(planes, count: n, into: dst)
        case 2: ungroup(planes, count: n, as: UInt16.self, into: dst)
        case 8: ungroup(planes, count: n, as: UInt64.self, into: dst)
        default: throw ChunkError.invalid("byte grouping of \(w)-byte values is not defined")
        }
    }

    /// Writes the w planes of n grouped values: the exponent plane always coded, the others
    /// when predicted to gain.
    static func encodeFloats(_ src: UnsafeRawPointer, count n: Int, width w: Int, into out: inout ByteWriter) {
        let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, n * w))
        defer { scratch.deallocate() }
        groupAny(src, count: n, width: w, into: scratch)
        for j in 0..<w {
            PlaneStream.encode(UnsafeRawBufferPointer(start: scratch + j * n, count: n), coding: j == 0 ? .always : .ifPredicted, into: &out)
        }
    }

    static func decodeFloats(_ r: inout ByteReader, count n: Int, width w: Int, into dst: UnsafeMutableRawPointer) throws {
        guard w == 2 || w == 4 || w == 8 else { throw ChunkError.invalid("byte grouping of \(w)-byte values is not defined") }
        guard n >= 0, n <= AlloyContainer.maxChunkElements else { throw ChunkError.invalid("chunk of \(n) elements exceeds the cap") }
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(1, n * w), alignment: 64)
        defer { scratch.deallocate() }
        var planes: [UnsafePointer<UInt8>] = []
        for j in 0..<w { planes.append(try PlaneStream.decodeInPlace(&r, count: n, scratch: scratch + j * n)) }
        try ungroupAny(planes, count: n, width: w, into: dst)
    }

    // MARK: sparse

    static func encodeSparse(_ src: UnsafeRawPointer, count n: Int, width w: Int, into out: inout ByteWriter) {
        var varints: [UInt8] = []
        var values: [UInt8] = []
        var nnz = 0
        var last = -1
        for i in 0..<n {
            let isZero: Bool
            switch w {
            case 4: isZero = src.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self) == 0
            default: isZero = src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self) == 0
            }
            if isZero { continue }
            var gap = UInt64(i - last - 1)
            while gap >= 0x80 { varints.append(UInt8(gap & 0x7F) | 0x80); gap >>= 7 }
            varints.append(UInt8(gap))
            values.append(contentsOf: UnsafeRawBufferPointer(start: src + i * w, count: w))
            last = i
            nnz += 1
        }
        out.u32(UInt32(nnz))
        out.u32(UInt32(varints.count))
        varints.withUnsafeBytes { v in
            let huff = Deflate.compress(v, strategy: .huffmanOnly)
            let std = Deflate.compress(v, strategy: .standard)
            let best = [huff, std].compactMap { $0 }.min { $0.count < $1.count }
            if let best {
                out.u8(PlaneStream.deflate); out.u32(UInt32(best.count)); out.append(best)
            } else {
                PlaneStream.encode(v, coding: .never, into: &out)
            }
        }
        if values.isEmpty { values = [0] }  // a valid pointer; encodeFloats reads nnz = 0 values
        values.withUnsafeBytes { v in
            guard let base = v.baseAddress else { return }  // unreachable: values is not empty
            encodeFloats(base, count: nnz, width: w, into: &out)
        }
    }

    /// Decodes a sparse chunk into (indices relative to the range, value bytes).
    static func decodeSparseEntries(_ r: inout ByteReader, count n: Int, width w: Int) throws -> (indices: [Int], values: [UInt8]) {
        let nnz = Int(try r.u32("non-zero count"))
        guard nnz <= n else { throw ChunkError.invalid("\(nnz) non-zero entries in a range of \(n)") }
        let varintBytes = Int(try r.u32("index stream size"))
        guard varintBytes >= nnz, varintBytes <= nnz * 10 else { throw ChunkError.invalid("index stream of \(varintBytes) bytes for \(nnz) entries") }
        var gaps = [UInt8](repeating: 0, count: varintBytes)
        try gaps.withUnsafeMutableBytes { try PlaneStream.decode(&r, into: $0) }
        var indices = [Int]()
        indices.reserveCapacity(nnz)
        var pos = 0, last = -1
        for _ in 0..<nnz {
            var gap: UInt64 = 0, shift: UInt64 = 0
            while true {
                guard pos < gaps.count, shift < 63 else { throw ChunkError.invalid("index varint overruns its stream") }
                let b = gaps[pos]; pos += 1
                gap |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 { break }
                shift += 7
            }
            guard gap < UInt64(n) else { throw ChunkError.invalid("index gap \(gap) leaves the range of \(n)") }
            let idx = last + 1 + Int(gap)
            guard idx < n else { throw ChunkError.invalid("index \(idx) leaves the range of \(n)") }
            indices.append(idx)
            last = idx
        }
        guard pos == gaps.count else { throw ChunkError.invalid("index stream has \(gaps.count - pos) trailing bytes") }
        // One spare byte so the buffer has an address even with no entries.
        var values = [UInt8](repeating: 0, count: nnz * w + 1)
        try values.withUnsafeMutableBytes { v in
            guard let base = v.baseAddress else { throw ChunkError.invalid("no buffer for the values") }
            try decodeFloats(&r, count: nnz, width: w, into: base)
        }
        values.removeLast()
        return (indices, values)
    }

    // MARK: whole chunks

    /// Encodes `n` elements at `src` (the tensor's dtype) with `codec`.
    static func encode(_ codec: AlloyCodec, dtype: DType, shape: Shape, src: UnsafeRawPointer, count n: Int) -> [UInt8] {
        var out = ByteWriter()
        switch codec {
        case .raw:
            out.append(UnsafeRawBufferPointer(start: src, count: n * dtype.byteSize))
        case .float:
            encodeFloats(src, count: n, width: dtype.byteSize, into: &out)
        case .sparse:
            encodeSparse(src, count: n, width: dtype.byteSize, into: &out)
        case .f16, .bf16:
            let target: DType = codec == .f16 ? .f16 : .bf16
            var narrow = [UInt8](repeating: 0, count: max(1, n * 2))
            narrow.withUnsafeMutableBytes { nb in
                DTypeConversion.fromFloat32(UnsafeBufferPointer(start: src.assumingMemoryBound(to: Float.self), count: n),
                                            into: UnsafeMutableRawBufferPointer(rebasing: nb[0..<(n * 2)]), dtype: target)
            }
            narrow.withUnsafeBytes { nb in
                guard let base = nb.baseAddress else { return }  // unreachable: narrow holds ≥ 1 byte
                encodeFloats(base, count: n, width: 2, into: &out)
            }
        case .int8Row:
            let k = shape.dims[1], rows = n / k
            let x = src.assumingMemoryBound(to: Float.self)
            var scales = [Float](repeating: 1, count: rows)
            var q = [Int8](repeating: 0, count: n)
            for r in 0..<rows {
                var m: Float = 0
                for j in 0..<k { m = max(m, abs(x[r * k + j])) }
                let s: Float = m > 0 && m.isFinite ? m / 127 : 1
                scales[r] = s
                for j in 0..<k { q[r * k + j] = Int8(max(-127, min(127, (x[r * k + j] / s).rounded(.toNearestOrEven)))) }
            }
            scales.withUnsafeBytes { PlaneStream.encode($0, coding: .never, into: &out) }
            q.withUnsafeBytes { PlaneStream.encode($0, coding: .ifPredicted, into: &out) }
        }
        return out.bytes
    }

    /// Decodes a chunk of `n` elements into `dst` (n × dtype size bytes, the tensor's dtype).
    static func decode(_ codec: AlloyCodec, dtype: DType, shape: Shape, stored: UnsafeRawBufferPointer, count n: Int, into dst: UnsafeMutableRawPointer) throws {
        var r = ByteReader(stored)
        let w = dtype.byteSize
        switch codec {
        case .raw:
            guard stored.count == n * w else { throw ChunkError.invalid("raw chunk of \(stored.count) bytes, expected \(n * w)") }
            if n > 0, let s = stored.baseAddress { dst.copyMemory(from: s, byteCount: n * w) }
            return
        case .float:
            try decodeFloats(&r, count: n, width: w, into: dst)
        case .sparse:
            let (indices, values) = try decodeSparseEntries(&r, count: n, width: w)
            dst.initializeMemory(as: UInt8.self, repeating: 0, count: n * w)
            guard values.count == indices.count * w else { throw ChunkError.invalid("\(values.count) value bytes for \(indices.count) entries") }
            values.withUnsafeBytes { v in
                guard let vb = v.baseAddress else { return }  // no entries
                for (k, i) in indices.enumerated() { (dst + i * w).copyMemory(from: vb + k * w, byteCount: w) }
            }
        case .f16, .bf16:
            var narrow = [UInt8](repeating: 0, count: max(1, n * 2))
            try narrow.withUnsafeMutableBytes { nb in
                guard let base = nb.baseAddress else { throw ChunkError.invalid("no buffer for the chunk") }
                try decodeFloats(&r, count: n, width: 2, into: base)
            }
            narrow.withUnsafeBytes { nb in
                DTypeConversion.toFloat32(UnsafeRawBufferPointer(rebasing: nb[0..<(n * 2)]), dtype: codec == .f16 ? .f16 : .bf16,
                                          into: UnsafeMutableBufferPointer(start: dst.assumingMemoryBound(to: Float.self), count: n))
            }
        case .int8Row:
            guard shape.rank == 2, shape.dims[1] > 0 else { throw ChunkError.invalid("int8-row needs a matrix with rows of at least one element") }
            let k = shape.dims[1]
            guard n % k == 0 else { throw ChunkError.invalid("int8-row chunk of \(n) elements is not whole rows of \(k)") }
            let rows = n / k
            var scales = [Float](repeating: 0, count: rows)
            var q = [Int8](repeating: 0, count: n)
            try scales.withUnsafeMutableBytes { try PlaneStream.decode(&r, into: $0) }
            try q.withUnsafeMutableBytes { try PlaneStream.decode(&r, into: $0) }
            let d = dst.assumingMemoryBound(to: Float.self)
            for row in 0..<rows { for j in 0..<k { d[row * k + j] = Float(q[row * k + j]) * scales[row] } }
        }
        guard r.remaining == 0 else { throw ChunkError.invalid("\(r.remaining) trailing bytes after the chunk's streams") }
    }
}

enum ChunkError: Error, CustomStringConvertible {
    case invalid(String)
    var description: String { if case .invalid(let s) = self { return s }; return "" }
}
