/// Bulk conversions between the floating-point dtypes and `Float`.
///
/// F16 uses IEEE binary16 via Swift's `Float16` (round to nearest even, as numpy). BF16 is the
/// upper half of an F32; F32→BF16 rounds to nearest even and keeps NaNs quiet, as PyTorch does.
public enum DTypeConversion {
    public static func bf16ToFloat(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    public static func floatToBF16(_ x: Float) -> UInt16 {
        let u = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: (u >> 16) | 0x0040) }
        let rounding = 0x7FFF &+ ((u >> 16) & 1)
        return UInt16(truncatingIfNeeded: (u &+ rounding) >> 16)
    }

    public static func f16ToFloat(_ bits: UInt16) -> Float {
        Float(Float16(bitPattern: bits))
    }

    public static func floatToF16(_ x: Float) -> UInt16 {
        Float16(x).bitPattern
    }

    /// Converts `src` (of floating `dtype`) into `dst`; counts must match.
    public static func toFloat32(_ src: UnsafeRawBufferPointer, dtype: DType, into dst: UnsafeMutableBufferPointer<Float>) {
        let n = dst.count
        // Invariant: callers size both buffers from one validated Shape (input cannot reach this).
        precondition(src.count == n * dtype.byteSize)
        guard n > 0, let s = src.baseAddress, let d = dst.baseAddress else { return }
        switch dtype {
        case .f32:
            d.update(from: s.assumingMemoryBound(to: Float.self), count: n)
        case .f64:
            let p = s.assumingMemoryBound(to: Double.self)
            for i in 0..<n { d[i] = Float(p[i]) }
        case .f16:
            let p = s.assumingMemoryBound(to: UInt16.self)
            Parallel.forChunks(count: n, minChunk: 1 << 16) { r in
                for i in r { d[i] = Float(Float16(bitPattern: p[i])) }
            }
        case .bf16:
            let p = s.assumingMemoryBound(to: UInt16.self)
            Parallel.forChunks(count: n, minChunk: 1 << 16) { r in
                for i in r { d[i] = Float(bitPattern: UInt32(p[i]) << 16) }
            }
        default:
            // Invariant: `Tensor.withFloats`/`converted` throw for non-floating dtypes before calling.
            preconditionFailure("toFloat32 of non-floating dtype \(dtype)")
        }
    }

    /// Converts `src` into `dst` laid out as floating `dtype`.
    public static func fromFloat32(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer, dtype: DType) {
        let n = src.count
        // Invariant: callers size both buffers from one validated Shape (input cannot reach this).
        precondition(dst.count == n * dtype.byteSize)
        guard n > 0, let s = src.baseAddress, let d = dst.baseAddress else { return }
        switch dtype {
        case .f32:
            d.assumingMemoryBound(to: Float.self).update(from: s, count: n)
        case .f64:
            let p = d.assumingMemoryBound(to: Double.self)
            for i in 0..<n { p[i] = Double(s[i]) }
        case .f16:
            let p = d.assumingMemoryBound(to: UInt16.self)
            Parallel.forChunks(count: n, minChunk: 1 << 16) { r in
                for i in r { p[i] = Float16(s[i]).bitPattern }
            }
        case .bf16:
            let p = d.assumingMemoryBound(to: UInt16.self)
            Parallel.forChunks(count: n, minChunk: 1 << 16) { r in
                for i in r { p[i] = floatToBF16(s[i]) }
            }
        default:
            // Invariant: `Tensor.converted` throws for non-floating targets before calling.
            preconditionFailure("fromFloat32 into non-floating dtype \(dtype)")
        }
    }
}
