import XCTest
import Foundation
@testable import Tensors

/// The attention kernel's additive score bias on every instruction-set path this CPU runs,
/// against a double-precision softmax(QKᵀ·scale + B)·V: a random row-major L×L bias, a bias of
/// j − i given as 2L − 1 values read from their middle (step −1, MPNet's relative-position bias),
/// and a sliding window of ±3 as −∞ outside it (ModernBERT's local attention). Paths the CPU
/// lacks are skipped and printed.
final class AttentionBiasTests: XCTestCase {
    /// Tolerance 2·10⁻⁶ absolute on outputs of magnitude ≤ 1; head widths 8, 12 (the scalar
    /// path), 16, 32 and 64; lengths 1…75; rows strided inside wider rows; seed 17.
    func testAttentionBiasMatchesReference() {
        var rng = SplitMix(seed: 17)
        func uniform() -> Float { Float(rng.next() >> 40) / Float(1 << 24) }
        let isas = Kernels.ISA.allCases.filter(\.isSupported)
        print("attention bias: paths run: \(isas.map(\.description)); skipped: \(Kernels.ISA.allCases.filter { !$0.isSupported }.map(\.description))")
        var worst = [Kernels.ISA: Double]()
        for d in [8, 12, 16, 32, 64] {
            for L in [1, 2, 7, 9, 16, 17, 33, 40, 64, 75] {
                let stride = 2 * d + 3, off = d + 1
                let q = (0..<(L * stride)).map { _ in (uniform() - 0.5) * 6 }
                let k = (0..<(L * stride)).map { _ in (uniform() - 0.5) * 6 }
                let v = (0..<(L * stride)).map { _ in uniform() }
                let full = (0..<(L * L)).map { _ in (uniform() - 0.5) * 4 }
                let rel = (0..<(2 * L - 1)).map { _ in (uniform() - 0.5) * 4 }
                let window = (0..<(2 * L - 1)).map { abs($0 - (L - 1)) <= 3 ? Float(0) : -Float.infinity }
                let scale = 1 / Float(d).squareRoot()
                let cases: [(String, [Float], Int, Int, (Int, Int) -> Double)] = [
                    ("full", full, 0, L, { i, j in Double(full[i * L + j]) }),
                    ("relative", rel, L - 1, -1, { i, j in Double(rel[j - i + L - 1]) }),
                    ("window", window, L - 1, -1, { i, j in abs(i - j) <= 3 ? 0 : -.infinity }),
                ]
                let head = AttentionCase(q: q, k: k, v: v, L: L, d: d, stride: stride, off: off, scale: scale)
                for (name, bias, start, step, ref) in cases {
                    let want = head.reference(bias: ref)
                    for isa in isas {
                        let label = "\(isa) \(name) d\(d) L\(L)"
                        let w = bias.withUnsafeBufferPointer { bp in
                            head.maxError(want, label) { q, k, v, ctx in
                                Kernels.attentionHead(q: q, k: k, v: v, context: ctx, length: L, headDim: d, stride: stride,
                                                      scale: scale, bias: bp.baseAddress! + start, biasRowStep: step, isa: isa)
                            }
                        }
                        XCTAssertLessThan(w, 2e-6, label)
                        worst[isa] = max(worst[isa] ?? 0, w)
                    }
                }
            }
        }
        for isa in isas { print("attention bias \(isa): max |error| \(worst[isa] ?? .nan)") }
    }

    /// A zero bias gives exactly the unbiased kernel's output (same operations plus 0).
    func testZeroBiasEqualsNoBias() {
        var rng = SplitMix(seed: 19)
        func uniform() -> Float { Float(rng.next() >> 40) / Float(1 << 24) - 0.5 }
        let (L, d) = (37, 32)
        let q = (0..<(L * d)).map { _ in uniform() }, k = (0..<(L * d)).map { _ in uniform() }, v = (0..<(L * d)).map { _ in uniform() }
        let zero = [Float](repeating: 0, count: L * L)
        for isa in Kernels.ISA.allCases.filter(\.isSupported) {
            var a = [Float](repeating: 0, count: L * d), b = a
            Kernels.attentionHead(q: q, k: k, v: v, context: &a, length: L, headDim: d, stride: d, scale: 0.2, isa: isa)
            zero.withUnsafeBufferPointer { z in
                Kernels.attentionHead(q: q, k: k, v: v, context: &b, length: L, headDim: d, stride: d, scale: 0.2,
                                      bias: z.baseAddress!, biasRowStep: L, isa: isa)
            }
            XCTAssertEqual(a, b, "\(isa)")
        }
    }
}
