/// A dense, row-major tensor: a dtype, a shape, and bytes that are either owned or mapped
/// from a file. Value semantics for the metadata; the bytes are shared and treated as
/// immutable once handed out (writers create a new owned tensor).
public struct Tensor: Sendable {
    public let dtype: DType
    public let shape: Shape
    public let buffer: TensorBuffer

    /// Wraps `buffer`, whose size must equal shape × dtype size.
    public init(dtype: DType, shape: Shape, buffer: TensorBuffer) throws {
        let need = try shape.byteCount(of: dtype)
        guard need == buffer.byteCount else {
            throw TensorError.countMismatch(expected: need, actual: buffer.byteCount)
        }
        self.dtype = dtype
        self.shape = shape
        self.buffer = buffer
    }

    /// A new zero-filled owned tensor.
    public init(zeros dtype: DType, shape: Shape) throws {
        let buffer = TensorBuffer(zeroedByteCount: try shape.byteCount(of: dtype))
        try self.init(dtype: dtype, shape: shape, buffer: buffer)
    }

    /// A new owned F32 tensor holding `values`.
    public init(_ values: [Float], shape: Shape) throws {
        guard values.count == shape.elementCount else {
            throw TensorError.countMismatch(expected: shape.elementCount, actual: values.count)
        }
        try self.init(zeros: .f32, shape: shape)
        values.withUnsafeBytes { src in
            if let s = src.baseAddress { buffer.mutableBase.copyMemory(from: s, byteCount: src.count) }
        }
    }

    /// A new owned tensor holding a copy of `bytes`.
    public init(dtype: DType, shape: Shape, bytes: UnsafeRawBufferPointer) throws {
        try self.init(zeros: dtype, shape: shape)
        guard bytes.count == buffer.byteCount else {
            throw TensorError.countMismatch(expected: buffer.byteCount, actual: bytes.count)
        }
        if let s = bytes.baseAddress, bytes.count > 0 { buffer.mutableBase.copyMemory(from: s, byteCount: bytes.count) }
    }

    public var elementCount: Int { shape.elementCount }
    public var byteCount: Int { buffer.byteCount }
    /// True when the bytes live in a memory-mapped file (nothing was copied).
    public var isMapped: Bool { buffer.mapping != nil }

    public var rawBytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: buffer.base, count: buffer.byteCount)
    }

    /// Calls `body` with the elements as `Float`: zero-copy for F32, converted otherwise.
    public func withFloats<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        guard dtype.isFloatingPoint else { throw TensorError.notFloatingPoint(dtype) }
        if dtype == .f32 {
            return try body(rawBytes.bindMemory(to: Float.self))
        }
        var tmp = [Float](repeating: 0, count: elementCount)
        tmp.withUnsafeMutableBufferPointer { DTypeConversion.toFloat32(rawBytes, dtype: dtype, into: $0) }
        return try tmp.withUnsafeBufferPointer(body)
    }

    /// The elements converted to `Float`.
    public func floats() throws -> [Float] {
        try withFloats { Array($0) }
    }

    /// A new owned tensor of `dtype` holding this tensor's values, rounded to nearest even.
    public func converted(to target: DType) throws -> Tensor {
        if target == dtype { return self }
        guard dtype.isFloatingPoint else { throw TensorError.notFloatingPoint(dtype) }
        guard target.isFloatingPoint else { throw TensorError.notFloatingPoint(target) }
        let out = try Tensor(zeros: target, shape: shape)
        let dst = UnsafeMutableRawBufferPointer(start: out.buffer.mutableBase, count: out.byteCount)
        try withFloats { DTypeConversion.fromFloat32($0, into: dst, dtype: target) }
        return out
    }

    /// A tensor with the same bytes and a new shape of equal element count.
    public func reshaped(_ newShape: Shape) throws -> Tensor {
        guard newShape.elementCount == shape.elementCount else {
            throw TensorError.shapeMismatch(expected: shape.dims, actual: newShape.dims)
        }
        return try Tensor(dtype: dtype, shape: newShape, buffer: buffer)
    }

    /// Bitwise equality of dtype, shape and bytes.
    public func bitwiseEquals(_ other: Tensor) -> Bool {
        guard dtype == other.dtype, shape == other.shape else { return false }
        if byteCount == 0 { return true }
        return memcmp(rawBytes.nonEmptyBase, other.rawBytes.nonEmptyBase, byteCount) == 0
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
