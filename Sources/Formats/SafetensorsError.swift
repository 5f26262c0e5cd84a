import Tensors

/// Why a safetensors file was rejected. One case per defect; each names the file and, where
/// there is one, the tensor.
public enum SafetensorsError: Error, Equatable, CustomStringConvertible {
    case io(path: String, reason: String)
    case fileTooSmall(path: String, size: Int)
    case headerTooLarge(path: String, declared: UInt64, cap: Int)
    case headerExceedsFile(path: String, declared: UInt64, available: Int)
    case headerNotJSON(path: String, reason: String)
    case headerNotObject(path: String)
    case invalidEntry(path: String, tensor: String, reason: String)
    case invalidMetadata(path: String, reason: String)
    case unknownDType(path: String, tensor: String, dtype: String)
    case shapeOverflow(path: String, tensor: String, shape: [Int])
    case sizeMismatch(path: String, tensor: String, expected: Int, actual: Int)
    case offsetsOutOfOrder(path: String, tensor: String, begin: Int, end: Int)
    case overlappingOffsets(path: String, tensor: String, other: String, at: Int)
    case gapInOffsets(path: String, tensor: String, expectedBegin: Int, begin: Int)
    case bufferSizeMismatch(path: String, covered: Int, actual: Int)
    case tensorNotFound(path: String, tensor: String)
    case invalidIndex(path: String, reason: String)
    case duplicateTensor(path: String, tensor: String)

    public var description: String {
        switch self {
        case let .io(p, r): return "\(p): \(r)"
        case let .fileTooSmall(p, s): return "\(p): file is \(s) bytes, too small for a safetensors header (needs ≥ 8); the file is truncated or not safetensors"
        case let .headerTooLarge(p, d, c): return "\(p): header length \(d) exceeds the \(c)-byte cap; the file is corrupt or not safetensors"
        case let .headerExceedsFile(p, d, a): return "\(p): header length \(d) is longer than the \(a) bytes after the length field; the file is truncated"
        case let .headerNotJSON(p, r): return "\(p): header is not valid JSON (\(r))"
        case let .headerNotObject(p): return "\(p): header must be a JSON object starting with '{'"
        case let .invalidEntry(p, t, r): return "\(p): tensor \"\(t)\": \(r)"
        case let .invalidMetadata(p, r): return "\(p): __metadata__ \(r)"
        case let .unknownDType(p, t, d): return "\(p): tensor \"\(t)\" has unsupported dtype \"\(d)\" (supported: \(DType.allCases.map(\.rawValue).joined(separator: ", ")))"
        case let .shapeOverflow(p, t, s): return "\(p): tensor \"\(t)\" has shape \(s) whose size overflows"
        case let .sizeMismatch(p, t, e, a): return "\(p): tensor \"\(t)\" spans \(a) bytes but its dtype and shape need \(e)"
        case let .offsetsOutOfOrder(p, t, b, e): return "\(p): tensor \"\(t)\" has data_offsets [\(b), \(e)] with end before begin"
        case let .overlappingOffsets(p, t, o, a): return "\(p): tensor \"\(t)\" overlaps tensor \"\(o)\" at byte \(a) of the data buffer"
        case let .gapInOffsets(p, t, e, b): return "\(p): gap in the data buffer before tensor \"\(t)\": it begins at \(b), the previous tensor ends at \(e)"
        case let .bufferSizeMismatch(p, c, a): return "\(p): tensors cover \(c) bytes but the data buffer holds \(a); the file is truncated or has trailing bytes"
        case let .tensorNotFound(p, t): return "\(p): no tensor named \"\(t)\""
        case let .invalidIndex(p, r): return "\(p): \(r)"
        case let .duplicateTensor(p, t): return "\(p): two tensors are named \"\(t)\"; a safetensors file holds each name once (does a head tensor share a weight's name?)"
        }
    }
}
