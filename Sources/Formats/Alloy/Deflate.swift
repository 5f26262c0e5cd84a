import CZlib

/// Raw DEFLATE (no zlib header) and CRC-32 through the system zlib.
enum Deflate {
    enum Strategy { case huffmanOnly, standard }

    /// Compresses `src`; returns nil when the result would not be smaller than `src`.
    static func compress(_ src: UnsafeRawBufferPointer, strategy: Strategy) -> [UInt8]? {
        guard src.count > 0, src.count <= Int(uInt.max), let srcBase = src.baseAddress else { return nil }
        var stream = z_stream()
        let strat = strategy == .huffmanOnly ? Z_HUFFMAN_ONLY : Z_DEFAULT_STRATEGY
        let level: Int32 = strategy == .huffmanOnly ? 1 : 6
        guard alloy_deflateInit2(&stream, level, Z_DEFLATED, -15, 9, strat) == Z_OK else { return nil }
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, uLong(src.count)))
        var out = [UInt8](repeating: 0, count: bound)
        let produced: Int = out.withUnsafeMutableBytes { dst in
            guard let dstBase = dst.baseAddress else { return -1 }
            stream.next_in = UnsafeMutablePointer(mutating: srcBase.assumingMemoryBound(to: Bytef.self))
            stream.avail_in = uInt(src.count)
            stream.next_out = dstBase.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = uInt(bound)
            guard deflate(&stream, Z_FINISH) == Z_STREAM_END else { return -1 }
            return bound - Int(stream.avail_out)
        }
        guard produced > 0, produced < src.count else { return nil }
        out.removeSubrange(produced...)
        return out
    }

    /// Inflates `src` into exactly `dst.count` bytes; false on any error or length mismatch.
    static func decompress(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer) -> Bool {
        var stream = z_stream()
        guard alloy_inflateInit2(&stream, -15) == Z_OK else { return false }
        defer { inflateEnd(&stream) }
        guard src.count > 0, let s = src.baseAddress else { return dst.count == 0 }
        guard dst.count <= Int(uInt.max), src.count <= Int(uInt.max) else { return false }
        stream.next_in = UnsafeMutablePointer(mutating: s.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(src.count)
        var sink: UInt8 = 0
        return withUnsafeMutablePointer(to: &sink) { sinkPointer in
            if dst.count > 0, let d = dst.baseAddress {
                stream.next_out = d.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(dst.count)
            } else {
                stream.next_out = sinkPointer
                stream.avail_out = 0
            }
            let rc = inflate(&stream, Z_FINISH)
            return rc == Z_STREAM_END && stream.avail_out == 0 && stream.avail_in == 0
        }
    }

    static func crc32(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        var crc: uLong = CZlib.crc32(0, nil, 0)
        var p = base.assumingMemoryBound(to: Bytef.self)
        var left = bytes.count
        while left > 0 {
            let n = min(left, 1 << 30)
            crc = CZlib.crc32(crc, p, uInt(n))
            p += n
            left -= n
        }
        return UInt32(truncatingIfNeeded: crc)
    }
}
