import CKernels

/// SIMD kernels over contiguous `Float` buffers. The elementwise loops here are written over
/// `SIMD8<Float>` with a scalar tail, large inputs split over the cores; the encoder's linear,
/// attention, GELU and LayerNorm kernels are C (CKernels) with one path per instruction set.
public enum Kernels {
    /// An instruction-set path of the C kernels, in increasing order.
    public enum ISA: Int32, CaseIterable, Comparable, Sendable, CustomStringConvertible {
        /// Plain C over 8-float vectors: SSE2 on baseline x86-64, NEON or scalar elsewhere.
        case portable = 0
        /// AVX2 and FMA.
        case avx2 = 1
        /// AVX-512 F, BW, DQ and VL.
        case avx512 = 2

        /// The path named "portable", "avx2" or "avx512" (as ALLOY_ISA spells them).
        public init?(name: String) {
            let code = alloy_kernels_isa_from_name(name)
            guard code >= 0, let isa = ISA(rawValue: code) else { return nil }
            self = isa
        }

        /// "portable", "avx2" or "avx512".
        public var description: String { String(cString: alloy_kernels_isa_name(rawValue)) }

        /// Whether this CPU (and OS) runs this path.
        public var isSupported: Bool { self <= Kernels.supportedISA }

        public static func < (a: ISA, b: ISA) -> Bool { a.rawValue < b.rawValue }
    }

    /// The path the C kernels run when not told otherwise, decided once per process: the best
    /// this CPU supports (cpuid), or the lower one the environment variable ALLOY_ISA names
    /// (`portable`, `avx2`, `avx512`; a name above what the CPU supports gives the best it
    /// supports, an unknown one is ignored). Benchmarks and the CLI record it.
    public static var isa: ISA { ISA(rawValue: alloy_kernels_isa()) ?? .portable }

    /// For benchmarks that compare paths in one process: makes `isa` (lowered to what the CPU
    /// supports) the path of every kernel call that does not name one, from now on.
    public static func useISA(_ isa: ISA) { alloy_kernels_set_isa(isa.rawValue) }

    /// The best path this CPU (and OS) supports, from cpuid.
    public static var supportedISA: ISA { ISA(rawValue: alloy_kernels_isa_supported()) ?? .portable }

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
