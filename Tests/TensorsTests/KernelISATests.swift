import XCTest
import Foundation
import CKernels
@testable import Tensors

/// The C kernels (packed linear, attention, GELU, LayerNorm) on every instruction-set path this
/// CPU runs, each against an independent reference: OpenBLAS for the linear layer, libm in
/// double for GELU, double-precision loops for attention and LayerNorm. Paths the CPU lacks
/// are skipped and said so (printed), never silently.
final class KernelISATests: XCTestCase {
    /// The paths to test on this machine; prints them and the ones it cannot run.
    func paths(_ test: String = #function) -> [Kernels.ISA] {
        let run = Kernels.ISA.allCases.filter(\.isSupported), skipped = Kernels.ISA.allCases.filter { !$0.isSupported }
        let names = { (isas: [Kernels.ISA]) in isas.isEmpty ? "none" : isas.map(\.description).joined(separator: ", ") }
        print("\(test): paths run: \(names(run)); skipped (not supported by this CPU): \(names(skipped))")
        return run
    }

    /// ALLOY_ISA's choice: a supported path is taken, one above the CPU's best gives the best,
    /// unknown names and no value give the best; names round-trip; `Kernels.isa` is the choice for
    /// this process's environment until `useISA` replaces it; `_isa` entry points lower an
    /// unsupported request instead of running it (checked by asking for a path above all).
    func testISASelection() {
        let best = Kernels.supportedISA
        XCTAssertEqual(alloy_kernels_isa_choose(nil), best.rawValue)
        XCTAssertEqual(alloy_kernels_isa_choose("avx1024"), best.rawValue)
        XCTAssertEqual(alloy_kernels_isa_choose(""), best.rawValue)
        for isa in Kernels.ISA.allCases {
            XCTAssertEqual(Kernels.ISA(name: isa.description), isa)
            XCTAssertEqual(alloy_kernels_isa_choose(isa.description), min(isa, best).rawValue, "\(isa)")
        }
        XCTAssertNil(Kernels.ISA(name: "AVX2"))
        XCTAssertEqual(Kernels.isa.rawValue, alloy_kernels_isa_choose(ProcessInfo.processInfo.environment["ALLOY_ISA"]))
        XCTAssertEqual(Kernels.ISA.portable.isSupported, true)
        let before = Kernels.isa  // `useISA` replaces the choice, lowered to what the CPU runs
        Kernels.useISA(.portable)
        XCTAssertEqual(Kernels.isa, .portable)
        Kernels.useISA(.avx512)
        XCTAssertEqual(Kernels.isa, min(.avx512, best))
        Kernels.useISA(before)
        XCTAssertEqual(Kernels.isa, before)
        var x: [Float] = [-1, 0, 1]
        alloy_gelu_isa(&x, 3, 99)  // above every path: runs the best supported
        XCTAssertEqual(x[1], 0)
        XCTAssertEqual(Double(x[2]), 0.8413447460685429, accuracy: 1e-6)
        print("kernel ISA: chosen \(Kernels.isa), best supported \(best), ALLOY_ISA=\(ProcessInfo.processInfo.environment["ALLOY_ISA"] ?? "(unset)")")
    }

    /// GELU on each path against x·½(1 + erf(x/√2)) with libm's erf in double over [−6, 6]
    /// (step 1/1024, a count that leaves a tail past the last 8- and 16-lane vector): |error| ≤
    /// 5·10⁻⁷ times max(1, |x|).
    func testGeluMatchesLibm() {
        let xs = (0..<(12 * 1024 + 5)).map { -6 + Float($0) / 1024 }
        for isa in paths() {
            for count in [xs.count, 13, 1] {  // 13, 1: only a tail
                var y = Array(xs.prefix(count))
                y.withUnsafeMutableBufferPointer { Kernels.gelu($0.baseAddress!, count: $0.count, isa: isa) }
                var worst: Double = 0
                for (x, g) in zip(xs, y) {
                    let want = Double(x) * 0.5 * (1 + Foundation.erf(Double(x) / 2.0.squareRoot()))
                    worst = max(worst, abs(Double(g) - want) / max(1, abs(Double(x))))
                }
                XCTAssertLessThan(worst, 5e-7, "\(isa) count \(count)")
                if count == xs.count { print("gelu \(isa): max scaled |error| \(worst)") }
            }
        }
    }

    /// The attention kernel on each path against a double-precision softmax(QKᵀ·scale)·V:
    /// lengths 1…75 (odd, below/above one 8- and 16-lane block and the 32- and 64-key blocks),
    /// head widths 8, 12 (not a multiple of 8: the scalar path), 16, 32, 48 (not a multiple of
    /// 32) and 64, rows strided inside wider rows; seed 7.
    /// Tolerance 2·10⁻⁶ absolute on outputs of magnitude ≤ 1; columns outside the head untouched.
    func testAttentionHeadMatchesReference() {
        var rng = SplitMix(seed: 7)
        func uniform() -> Float { Float(rng.next() >> 40) / Float(1 << 24) }
        let isas = paths()
        var worst = [Kernels.ISA: Double]()
        for d in [8, 12, 16, 32, 48, 64] {
            for L in [1, 2, 3, 7, 8, 9, 16, 17, 31, 33, 40, 64, 65, 75] {
                let stride = 3 * d + 5, off = d + 3
                let q = (0..<(L * stride)).map { _ in (uniform() - 0.5) * 6 }
                let k = (0..<(L * stride)).map { _ in (uniform() - 0.5) * 6 }
                let v = (0..<(L * stride)).map { _ in uniform() }
                let head = AttentionCase(q: q, k: k, v: v, L: L, d: d, stride: stride, off: off, scale: 1 / Float(d).squareRoot())
                let want = head.reference()
                for isa in isas {
                    let w = head.maxError(want, "\(isa) d\(d) L\(L)") { q, k, v, ctx in
                        Kernels.attentionHead(q: q, k: k, v: v, context: ctx, length: L, headDim: d, stride: stride, scale: head.scale, isa: isa)
                    }
                    XCTAssertLessThan(w, 2e-6, "\(isa) d\(d) L\(L)")
                    worst[isa] = max(worst[isa] ?? 0, w)
                }
            }
        }
        for isa in isas { print("attention \(isa): max |error| \(worst[isa] ?? .nan)") }
    }

    /// The packed linear kernel on each path against OpenBLAS's sgemm (x Wᵀ + b), seed 11: row
    /// counts around the 6-, 12- and 96-row blocks (and the AVX-512 path's 6-row tails), widths
    /// around the 16-column strip and the 32-column strip pair (an odd last strip, a ragged one),
    /// depths across the 384-deep k-block, strided rows (some a multiple of 4 KiB apart, which
    /// the AVX-512 path copies first), with and without bias, writing or accumulating. Tolerance 1e-6·k on sums of k products of magnitude ≤ ¼; nothing written
    /// past a row's n columns.
    func testPackedLinearMatchesBLAS() {
        var rng = SplitMix(seed: 11)
        func uniform() -> Float { Float(rng.next() >> 40) / Float(1 << 24) - 0.5 }
        let isas = paths()
        var worst = [Kernels.ISA: Float]()
        var shapes = [(1, 1, 1), (5, 17, 3), (6, 16, 384), (7, 33, 385), (97, 48, 800), (13, 20, 1536),
                      (12, 32, 64), (25, 47, 384), (24, 64, 17), (29, 95, 40), (193, 112, 96), (3, 15, 769)].map { ($0.0, $0.1, $0.2, $0.2 + 3) }
        // Row strides that are multiples of 4 KiB (the AVX-512 path copies X's blocks first) and
        // of 2 KiB (it does not).
        shapes += [(40, 33, 509, 512), (100, 50, 1024, 1024), (30, 20, 2048, 2048), (26, 40, 1000, 3072)]
        for (m, n, k, ldx) in shapes {
            let ldy = n + 5
            let x = (0..<(m * ldx)).map { _ in uniform() }
            let w = (0..<(n * k)).map { _ in uniform() }
            let bias = (0..<n).map { _ in uniform() }
            var want = [Float](repeating: 0, count: m * ldy)
            for r in 0..<m { for c in 0..<n { want[r * ldy + c] = bias[c] } }
            GEMM.sgemm(transB: true, m: m, n: n, k: k, a: x, lda: ldx, b: w, ldb: k, beta: 1, c: &want, ldc: ldy)
            let packed = PackedWeights(w, n: n, k: k)
            for isa in isas {
                for (withBias, accumulate) in [(true, false), (false, false), (true, true), (false, true)] {
                    var y = [Float](repeating: .nan, count: m * ldy)
                    if accumulate { for r in 0..<m { for c in 0..<n { y[r * ldy + c] = Float(r - c) } } }
                    bias.withUnsafeBufferPointer { b in
                        packed.linear(x: x, ldx: ldx, bias: withBias ? b.baseAddress! : nil, y: &y, ldy: ldy, m: m,
                                      accumulate: accumulate, isa: isa)
                    }
                    var e: Float = 0
                    for r in 0..<m {
                        for c in 0..<n {
                            let expected = want[r * ldy + c] - (withBias ? 0 : bias[c]) + (accumulate ? Float(r - c) : 0)
                            let got = y[r * ldy + c]
                            e = got.isNaN ? .infinity : max(e, abs(got - expected))
                        }
                        for c in n..<ldy { XCTAssertTrue(y[r * ldy + c].isNaN, "\(isa) m\(m) n\(n) k\(k): wrote past the row's \(n) columns") }
                    }
                    XCTAssertLessThanOrEqual(e, 1e-6 * Float(k), "\(isa) m\(m) n\(n) k\(k) bias \(withBias) accumulate \(accumulate)")
                    worst[isa] = max(worst[isa] ?? 0, e / Float(k))
                }
            }
        }
        for isa in isas { print("packed linear \(isa): max |error|/k \(worst[isa] ?? .nan) vs OpenBLAS") }
    }

    /// LayerNorm on each path against a double-precision two-pass reference, with and without
    /// the residual added first, widths around the 8- and 16-lane vectors (1: the variance is 0
    /// and the output is β) up to 768, rows offset by 3 so the mean matters; seed 5, ε = 10⁻¹².
    /// Tolerance 1e-5 absolute on outputs of magnitude ≲ 4.
    func testLayerNormMatchesReference() {
        var rng = SplitMix(seed: 5)
        func uniform() -> Float { Float(rng.next() >> 40) / Float(1 << 24) - 0.5 }
        let isas = paths()
        var worst = [Kernels.ISA: Double]()
        let rows = 3, eps: Float = 1e-12
        for w in [1, 7, 8, 9, 15, 16, 17, 33, 384, 385, 768] {
            let x0 = (0..<(rows * w)).map { _ in 3 + 2 * uniform() }
            let residual = (0..<(rows * w)).map { _ in uniform() }
            let gamma = (0..<w).map { _ in 1 + uniform() }, beta = (0..<w).map { _ in uniform() }
            for withResidual in [false, true] {
                var want = [Double](repeating: 0, count: rows * w)
                for r in 0..<rows {
                    let row = (0..<w).map { Double(x0[r * w + $0]) + (withResidual ? Double(residual[r * w + $0]) : 0) }
                    let mean = row.reduce(0, +) / Double(w)
                    let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(w)
                    for c in 0..<w { want[r * w + c] = (row[c] - mean) / (variance + Double(eps)).squareRoot() * Double(gamma[c]) + Double(beta[c]) }
                }
                for isa in isas {
                    var x = x0
                    x.withUnsafeMutableBufferPointer { xp in residual.withUnsafeBufferPointer { rp in
                        Kernels.layerNorm(xp.baseAddress!, rows: rows, width: w, residual: withResidual ? rp.baseAddress! : nil,
                                          gamma: gamma, beta: beta, eps: eps, isa: isa)
                    } }
                    let e = zip(x, want).map { abs(Double($0) - $1) }.max() ?? 0
                    XCTAssertLessThan(e, 1e-5, "\(isa) w\(w) residual \(withResidual)")
                    worst[isa] = max(worst[isa] ?? 0, e)
                }
            }
        }
        for isa in isas { print("layerNorm \(isa): max |error| \(worst[isa] ?? .nan)") }
    }
}
