/// Why a `.alloy` file was rejected. Messages name the file and, where there is one, the tensor
/// and chunk, and say what to do.
public enum AlloyFormatError: Error, Equatable, CustomStringConvertible {
    case io(path: String, reason: String)
    case badMagic(path: String)
    case unsupportedVersion(path: String, version: UInt32)
    case unknownFlags(path: String, flags: UInt32)
    case headerSize(path: String, reason: String)
    case headerChecksum(path: String, stored: UInt32, computed: UInt32)
    case malformedHeader(path: String, reason: String)
    case malformedEntry(path: String, tensor: String, reason: String)
    case layout(path: String, tensor: String, chunk: Int, reason: String)
    case chunkChecksum(path: String, tensor: String, chunk: Int, stored: UInt32, computed: UInt32)
    case chunkPayload(path: String, tensor: String, chunk: Int, reason: String)
    case contentHash(path: String, stored: String, computed: String)
    case tensorNotFound(path: String, tensor: String)
    case codecNotApplicable(tensor: String, codec: String, dtype: String)

    public var description: String {
        switch self {
        case let .io(p, r): return "\(p): \(r)"
        case let .badMagic(p): return "\(p): not an .alloy file (bad magic bytes)"
        case let .unsupportedVersion(p, v): return "\(p): .alloy format version \(v) is not supported (this Alloy reads version 1); upgrade Alloy to read it"
        case let .unknownFlags(p, f): return "\(p): unknown flags 0x\(String(f, radix: 16)) in the preamble; the file is corrupt or from a newer Alloy"
        case let .headerSize(p, r): return "\(p): \(r); the file is truncated or corrupt"
        case let .headerChecksum(p, s, c): return "\(p): header checksum mismatch (stored \(hex(s)), computed \(hex(c))); the file is corrupt — restore it from its source"
        case let .malformedHeader(p, r): return "\(p): malformed header: \(r)"
        case let .malformedEntry(p, t, r): return "\(p): tensor \"\(t)\": \(r)"
        case let .layout(p, t, c, r): return "\(p): tensor \"\(t)\" chunk \(c): \(r)"
        case let .chunkChecksum(p, t, c, s, k): return "\(p): tensor \"\(t)\" chunk \(c): checksum mismatch (stored \(hex(s)), computed \(hex(k))); the file is corrupt — restore it from its source"
        case let .chunkPayload(p, t, c, r): return "\(p): tensor \"\(t)\" chunk \(c): \(r)"
        case let .contentHash(p, s, c): return "\(p): content hash mismatch (stored \(s), computed \(c))"
        case let .tensorNotFound(p, t): return "\(p): no tensor named \"\(t)\""
        case let .codecNotApplicable(t, c, d): return "tensor \"\(t)\": codec \(c) does not apply to dtype \(d)"
        }
    }
}

private func hex(_ v: UInt32) -> String { "0x" + String(v, radix: 16) }
