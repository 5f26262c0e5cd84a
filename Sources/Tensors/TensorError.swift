/// Errors of the tensor layer. Each case says what is wrong and with which values.
public enum TensorError: Error, Equatable, CustomStringConvertible {
    case negativeDimension(dims: [Int])
    case elementCountOverflow(dims: [Int])
    case byteSizeOverflow(dims: [Int], dtype: DType)
    case dtypeMismatch(expected: DType, actual: DType)
    case shapeMismatch(expected: [Int], actual: [Int])
    case notFloatingPoint(DType)
    case countMismatch(expected: Int, actual: Int)
    case cannotOpen(path: String, errno: Int32)
    case cannotMap(path: String, errno: Int32)

    public var description: String {
        switch self {
        case .negativeDimension(let d): return "shape \(d) has a negative dimension"
        case .elementCountOverflow(let d): return "shape \(d): element count overflows Int"
        case .byteSizeOverflow(let d, let t): return "shape \(d) of \(t.rawValue): byte size overflows Int"
        case .dtypeMismatch(let e, let a): return "expected dtype \(e.rawValue), found \(a.rawValue)"
        case .shapeMismatch(let e, let a): return "expected shape \(e), found \(a)"
        case .notFloatingPoint(let t): return "dtype \(t.rawValue) is not a floating-point type"
        case .countMismatch(let e, let a): return "expected \(e) elements, got \(a)"
        case .cannotOpen(let p, let e): return "cannot open \(p): \(String(cString: strerror(e)))"
        case .cannotMap(let p, let e): return "cannot mmap \(p): \(String(cString: strerror(e)))"
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
