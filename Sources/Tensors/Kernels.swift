/// SIMD elementwise kernels over contiguous `Float` buffers. Loops are written over
/// `SIMD8<Float>` with a scalar tail; large inputs are split over both cores.
public enum Kernels {
    /// y[i] += a * x[i]
    public static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int) {
        Parallel.forChunks(count: n, minChunk: 1 << 16) { r in
            var i = r.lowerBound
            let av = SIMD8<Float>(repeating: a)
            while i + 8 <= r.upperBound {
                let xv = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
                let yv = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(y + i).storeBytes(of: yv + av * xv, as: SIMD8<Float>.self)
                i += 8
            }
            while i < r.upperBound { y[i] += a * x[i]; i += 1 }
        }
    }

    /// out[i] = a[i] - b[i]
    public static func subtract(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count n: Int) {
        Parallel.forChunks(count: n, minChunk: 1 << 16) { r in
            var i = r.lowerBound
            while i + 8 <= r.upperBound {
                let av = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self)
                let bv = UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(out + i).storeBytes(of: av - bv, as: SIMD8<Float>.self)
                i += 8
            }
            while i < r.upperBound { out[i] = a[i] - b[i]; i += 1 }
        }
    }

    /// x[i] *= a
    public static func scale(_ x: UnsafeMutablePointer<Float>, by a: Float, count n: Int) {
        Parallel.forChunks(count: n, minChunk: 1 << 16) { r in
            var i = r.lowerBound
            let av = SIMD8<Float>(repeating: a)
            while i + 8 <= r.upperBound {
                let xv = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(x + i).storeBytes(of: xv * av, as: SIMD8<Float>.self)
                i += 8
            }
            while i < r.upperBound { x[i] *= a; i += 1 }
        }
    }

    /// Σ a[i]·b[i], accumulated in eight lanes (single thread; callers parallelise above).
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        var i = 0
        while i + 8 <= n {
            acc += UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self)
                * UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
            i += 8
        }
        var s = acc.sum()
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }
}
