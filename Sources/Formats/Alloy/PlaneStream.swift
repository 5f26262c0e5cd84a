/// One byte plane, stored raw, DEFLATE'd, or as a constant (FORMAT.md, "Plane streams").
enum PlaneStream {
    static let raw: UInt8 = 0, deflate: UInt8 = 1, constant: UInt8 = 2

    /// Byte histogram of `p` (four interleaved tables, so consecutive equal bytes do not stall
    /// on one counter).
    static func histogram(_ p: UnsafeRawBufferPointer) -> [Int] {
        var h = [Int](repeating: 0, count: 1024)
        h.withUnsafeMutableBufferPointer { hp in
            guard let b = p.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
            let n = p.count
            var i = 0
            while i + 4 <= n {
                hp[Int(b[i])] += 1; hp[256 + Int(b[i + 1])] += 1; hp[512 + Int(b[i + 2])] += 1; hp[768 + Int(b[i + 3])] += 1
                i += 4
            }
            while i < n { hp[Int(b[i])] += 1; i += 1 }
            for k in 0..<256 { hp[k] += hp[256 + k] + hp[512 + k] + hp[768 + k] }
        }
        return Array(h[0..<256])
    }

    /// Order-0 entropy in bits per byte of a histogram over `n` bytes.
    static func entropy(_ h: [Int], count n: Int) -> Double {
        guard n > 0 else { return 0 }
        let total = Double(n)
        var e = 0.0
        for c in h where c > 0 { let q = Double(c) / total; e -= q * log2(q) }
        return e
    }

    /// Appends the plane's stream to `out`. `code` says whether to try DEFLATE: `.always`
    /// tries it, `.ifPredicted` only when the entropy estimate predicts ≥ 0.5% saving.
    enum Coding { case always, ifPredicted, never }

    static func encode(_ plane: UnsafeRawBufferPointer, coding: Coding, strategy: Deflate.Strategy = .huffmanOnly, into out: inout ByteWriter) {
        let n = plane.count
        var coded: [UInt8]? = nil
        if coding != .never, n > 0 {
            let h = histogram(plane)
            if h[Int(plane[0])] == n {
                out.u8(constant); out.u32(1); out.u8(plane[0])
                return
            }
            if coding == .always || entropy(h, count: n) < 8 * 0.995 { coded = Deflate.compress(plane, strategy: strategy) }
        }
        if let coded {
            out.u8(deflate); out.u32(UInt32(coded.count)); out.append(coded)
        } else {
            out.u8(raw); out.u32(UInt32(n)); out.append(UnsafeRawBufferPointer(plane))
        }
    }

    /// Decodes one plane stream of `n` bytes without copying a raw plane: returns a pointer to
    /// the plane, either into the stored payload or into `scratch` (n bytes) when decoded.
    static func decodeInPlace(_ r: inout ByteReader, count n: Int, scratch: UnsafeMutableRawPointer) throws -> UnsafePointer<UInt8> {
        let mode = try r.u8("plane mode")
        let size = Int(try r.u32("plane size"))
        let payload = try r.take(size, "plane payload")
        switch mode {
        case raw:
            guard size == n else { throw PlaneError.sizeMismatch(expected: n, stored: size) }
            return (payload.baseAddress ?? UnsafeRawPointer(scratch)).assumingMemoryBound(to: UInt8.self)
        case deflate:
            guard Deflate.decompress(payload, into: UnsafeMutableRawBufferPointer(start: scratch, count: n)) else { throw PlaneError.inflateFailed(expected: n) }
        case constant:
            guard size == 1 else { throw PlaneError.sizeMismatch(expected: 1, stored: size) }
            if n > 0 { scratch.initializeMemory(as: UInt8.self, repeating: payload[0], count: n) }
        default:
            throw PlaneError.unknownMode(mode)
        }
        return UnsafePointer(scratch.assumingMemoryBound(to: UInt8.self))
    }

    /// Decodes one plane stream of exactly `dst.count` bytes.
    static func decode(_ r: inout ByteReader, into dst: UnsafeMutableRawBufferPointer) throws {
        let mode = try r.u8("plane mode")
        let size = Int(try r.u32("plane size"))
        let payload = try r.take(size, "plane payload")
        switch mode {
        case raw:
            guard size == dst.count else { throw PlaneError.sizeMismatch(expected: dst.count, stored: size) }
            if size > 0, let d = dst.baseAddress, let s = payload.baseAddress { d.copyMemory(from: s, byteCount: size) }
        case deflate:
            guard Deflate.decompress(payload, into: dst) else { throw PlaneError.inflateFailed(expected: dst.count) }
        case constant:
            guard size == 1 else { throw PlaneError.sizeMismatch(expected: 1, stored: size) }
            if dst.count > 0, let d = dst.baseAddress { d.initializeMemory(as: UInt8.self, repeating: payload[0], count: dst.count) }
        default:
            throw PlaneError.unknownMode(mode)
        }
    }
}

enum PlaneError: Error, CustomStringConvertible {
    case sizeMismatch(expected: Int, stored: Int)
    case inflateFailed(expected: Int)
    case unknownMode(UInt8)
    var description: String {
        switch self {
        case let .sizeMismatch(e, s): return "plane holds \(s) bytes, expected \(e)"
        case let .inflateFailed(e): return "DEFLATE payload does not inflate to the expected \(e) bytes"
        case let .unknownMode(m): return "unknown plane mode \(m)"
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
