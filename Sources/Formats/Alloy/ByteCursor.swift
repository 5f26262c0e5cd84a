/// A bounds-checked little-endian reader over untrusted bytes. `read…` advances; every read
/// checks the remaining length first and throws `.truncated` instead of trapping.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    private(set) var position: Int

    init(_ bytes: UnsafeRawBufferPointer, at position: Int = 0) {
        self.bytes = bytes
        self.position = position
    }

    var remaining: Int { bytes.count - position }

    mutating func take(_ n: Int, _ what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= remaining else { throw ByteCursorError.truncated(what: what(), need: n, have: remaining) }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + n)])
    }

    mutating func u8(_ what: @autoclosure () -> String) throws -> UInt8 { try take(1, what())[0] }
    mutating func u16(_ what: @autoclosure () -> String) throws -> UInt16 { UInt16(littleEndian: try take(2, what()).loadUnaligned(as: UInt16.self)) }
    mutating func u32(_ what: @autoclosure () -> String) throws -> UInt32 { UInt32(littleEndian: try take(4, what()).loadUnaligned(as: UInt32.self)) }
    mutating func u64(_ what: @autoclosure () -> String) throws -> UInt64 { UInt64(littleEndian: try take(8, what()).loadUnaligned(as: UInt64.self)) }
}

enum ByteCursorError: Error {
    case truncated(what: String, need: Int, have: Int)
}

/// Appends little-endian integers to a byte array (the deterministic writer side).
struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func append(_ b: some Sequence<UInt8>) { bytes.append(contentsOf: b) }
}
