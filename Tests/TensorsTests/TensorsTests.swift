import XCTest
import Foundation
@testable import Tensors

final class ShapeTests: XCTestCase {
    func testElementCountAndBytes() throws {
        let s = try Shape([2, 3, 4])
        XCTAssertEqual(s.elementCount, 24)
        XCTAssertEqual(try s.byteCount(of: .bf16), 48)
        XCTAssertEqual(try Shape([]).elementCount, 1)
        XCTAssertEqual(try Shape([5, 0]).elementCount, 0)
    }

    func testOverflowAndNegativeAreRejected() {
        XCTAssertThrowsError(try Shape([1 << 32, 1 << 32])) { XCTAssertEqual($0 as? TensorError, .elementCountOverflow(dims: [1 << 32, 1 << 32])) }
        XCTAssertThrowsError(try Shape([-1, 2])) { XCTAssertEqual($0 as? TensorError, .negativeDimension(dims: [-1, 2])) }
        XCTAssertThrowsError(try Shape([1 << 62]).byteCount(of: .f32))
    }
}

final class KernelTests: XCTestCase {
    /// Deterministic values from a seeded linear congruential generator.
    func values(_ n: Int, seed: UInt64) -> [Float] {
        var s = seed
        return (0..<n).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: s >> 11) % 2000 - 1000) / 250
        }
    }

    func testElementwiseMatchScalarLoops() {
        for n in [0, 1, 7, 8, 9, 100_003, 300_001] {
            let x = values(n, seed: 1), y0 = values(n, seed: 2)
            var y = y0
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                if n > 0 { Kernels.axpy(0.5, xp.baseAddress!, yp.baseAddress!, count: n) }
            } }
            for i in 0..<n { XCTAssertEqual(y[i], y0[i] + 0.5 * x[i], accuracy: 1e-5) }
            var d = [Float](repeating: 0, count: n)
            if n > 0 {
                Kernels.subtract(x, y0, into: &d, count: n)
                for i in 0..<n { XCTAssertEqual(d[i], x[i] - y0[i]) }
                Kernels.scale(&d, by: -2, count: n)
                for i in 0..<n { XCTAssertEqual(d[i], -2 * (x[i] - y0[i])) }
                let dot = Kernels.dot(x, y0, count: n)
                let ref = zip(x, y0).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                XCTAssertEqual(Double(dot), ref, accuracy: 1e-3 * max(1, abs(ref)))
            }
        }
    }

    func testGEMMMatchesNaiveProductInAllTransposes() {
        let (m, n, k) = (13, 17, 29)
        let a = values(m * k, seed: 3), b = values(k * n, seed: 4)
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            // Lay out A (m×k) and B (k×n) transposed when asked.
            let aa = ta ? (0..<(k * m)).map { a[($0 % m) * k + $0 / m] } : a
            let bb = tb ? (0..<(n * k)).map { b[($0 % k) * n + $0 / k] } : b
            var c = [Float](repeating: 1, count: m * n)
            GEMM.sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 2, a: aa, lda: ta ? m : k, b: bb, ldb: tb ? k : n, beta: 0.5, c: &c, ldc: n)
            for i in 0..<m { for j in 0..<n {
                var s: Double = 0
                for p in 0..<k { s += Double(a[i * k + p]) * Double(b[p * n + j]) }
                XCTAssertEqual(Double(c[i * n + j]), 2 * s + 0.5, accuracy: 1e-3, "(\(ta),\(tb)) at \(i),\(j)")
            } }
        }
    }

    func testParallelChunksCoverEachIndexOnce() {
        let n = 1_000_003
        var hits = [UInt8](repeating: 0, count: n)
        hits.withUnsafeMutableBufferPointer { h in
            let p = UnsafeSendableBox(h.baseAddress!)
            Parallel.forChunks(count: n, minChunk: 1000) { r in for i in r { p.value[i] += 1 } }
        }
        XCTAssertTrue(hits.allSatisfy { $0 == 1 })
    }
}

final class TensorTests: XCTestCase {
    func testOwnedTensorAndConversionRoundTrip() throws {
        let t = try Tensor([1, -2.5, 3e-3, 65504], shape: Shape([2, 2]))
        XCTAssertFalse(t.isMapped)
        XCTAssertEqual(try t.converted(to: .f16).floats(), [1, -2.5, Float(Float16(3e-3)), 65504])
        XCTAssertEqual(try t.converted(to: .bf16).converted(to: .f32).floats()[1], -2.5)
        XCTAssertThrowsError(try t.reshaped(Shape([3])))
        XCTAssertThrowsError(try Tensor([1, 2], shape: Shape([3])))
    }

    func testMappedFileIsNotCopied() throws {
        // 64 MiB file; mapping it and taking a tensor view must not grow resident memory by that much.
        let path = NSTemporaryDirectory() + "/alloy-map-\(getpid()).bin"
        let size = 64 << 20
        FileManager.default.createFile(atPath: path, contents: Data(count: size))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let before = residentBytes()
        let file = try MappedFile(path: path)
        let t = try Tensor(dtype: .f32, shape: Shape([size / 4]), buffer: TensorBuffer(mapping: file, range: 0..<size))
        XCTAssertTrue(t.isMapped)
        XCTAssertEqual(t.byteCount, size)
        XCTAssertLessThan(residentBytes() - before, 8 << 20, "mapping a file must not read it into memory")
    }

    func residentBytes() -> Int {
        let s = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? "0 0"
        return (Int(s.split(separator: " ")[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

final class ActivationTests: XCTestCase {
    /// GELU, both paths, against x·½(1 + erf(x/√2)) with libm's erf in double over [−6, 6]
    /// (step 1/1024, a count that leaves a tail past the last 8-lane vector): |error| ≤ 5·10⁻⁷
    /// times max(1, |x|).
    func testGeluMatchesLibm() {
        let xs = (0..<(12 * 1024 + 5)).map { -6 + Float($0) / 1024 }
        for portable in [false, true] {
            var y = xs
            y.withUnsafeMutableBufferPointer { Kernels.gelu($0.baseAddress!, count: $0.count, portable: portable) }
            var worst: Double = 0
            for (x, g) in zip(xs, y) {
                let want = Double(x) * 0.5 * (1 + Foundation.erf(Double(x) / 2.0.squareRoot()))
                worst = max(worst, abs(Double(g) - want) / max(1, abs(Double(x))))
            }
            XCTAssertLessThan(worst, 5e-7, "portable \(portable)")
        }
    }

    /// The attention kernel, both paths, against a double-precision softmax(QKᵀ·scale)·V:
    /// lengths 1…75 (odd, below/above one 8-lane block and the 32-key block), head widths 8, 12
    /// (not a multiple of 8: the scalar path), 32 and 64, rows strided inside wider rows.
    /// Tolerance 2·10⁻⁶ absolute on outputs of magnitude ≤ 1.
    func testAttentionHeadMatchesReference() {
        var rng = SplitMix(seed: 7)
        func uniform() -> Float { Float(rng.next() >> 40) / Float(1 << 24) }
        var worst: Double = 0
        for d in [8, 12, 32, 64] {
            for L in [1, 2, 3, 7, 8, 9, 16, 31, 33, 40, 64, 75] {
                let stride = 3 * d + 5, off = d + 3
                let q = (0..<(L * stride)).map { _ in (uniform() - 0.5) * 6 }
                let k = (0..<(L * stride)).map { _ in (uniform() - 0.5) * 6 }
                let v = (0..<(L * stride)).map { _ in uniform() }
                let scale = 1 / Float(d).squareRoot()
                for portable in [false, true] {
                    var ctx = [Float](repeating: .nan, count: L * stride)
                    q.withUnsafeBufferPointer { qp in k.withUnsafeBufferPointer { kp in v.withUnsafeBufferPointer { vp in
                        ctx.withUnsafeMutableBufferPointer { cp in
                            Kernels.attentionHead(q: qp.baseAddress! + off, k: kp.baseAddress! + off, v: vp.baseAddress! + off,
                                                  context: cp.baseAddress! + off, length: L, headDim: d, stride: stride,
                                                  scale: scale, portable: portable)
                        }
                    } } }
                    for i in 0..<L {
                        let s = (0..<L).map { j in (0..<d).reduce(0.0) { $0 + Double(q[i * stride + off + $1]) * Double(k[j * stride + off + $1]) } * Double(scale) }
                        let m = s.max()!
                        let e = s.map { Foundation.exp($0 - m) }
                        let sum = e.reduce(0, +)
                        for c in 0..<d {
                            let want = (0..<L).reduce(0.0) { $0 + e[$1] * Double(v[$1 * stride + off + c]) } / sum
                            worst = max(worst, abs(want - Double(ctx[i * stride + off + c])))
                        }
                        // Columns outside the head are untouched.
                        XCTAssertTrue(ctx[i * stride + off - 1].isNaN && ctx[i * stride + off + d].isNaN)
                    }
                }
            }
        }
        XCTAssertLessThan(worst, 2e-6)
        print("attention kernel: max |error| \(worst), AVX2 path \(Kernels.attentionUsesAVX2)")
    }

    /// The packed linear kernel, both paths, against OpenBLAS's sgemm (x Wᵀ + b): row counts
    /// around the 6-row and 96-row blocks, widths around the 16-column strip, depths across the
    /// 384-deep k-block, strided rows, with and without bias, writing or accumulating. Tolerance 1e-6·k on sums of k
    /// products of magnitude ≤ ¼.
    func testPackedLinearMatchesBLAS() {
        var rng = SplitMix(seed: 11)
        func uniform() -> Float { Float(rng.next() >> 40) / Float(1 << 24) - 0.5 }
        for (m, n, k) in [(1, 1, 1), (5, 17, 3), (6, 16, 384), (7, 33, 385), (97, 48, 800), (13, 20, 1536)] {
            let ldx = k + 3, ldy = n + 5
            let x = (0..<(m * ldx)).map { _ in uniform() }
            let w = (0..<(n * k)).map { _ in uniform() }
            let bias = (0..<n).map { _ in uniform() }
            var want = [Float](repeating: 0, count: m * ldy)
            for r in 0..<m { for c in 0..<n { want[r * ldy + c] = bias[c] } }
            GEMM.sgemm(transB: true, m: m, n: n, k: k, a: x, lda: ldx, b: w, ldb: k, beta: 1, c: &want, ldc: ldy)
            let packed = PackedWeights(w, n: n, k: k)
            for portable in [false, true] {
                for (withBias, accumulate) in [(true, false), (false, false), (true, true)] {
                    var y = [Float](repeating: .nan, count: m * ldy)
                    if accumulate { for r in 0..<m { for c in 0..<n { y[r * ldy + c] = Float(r - c) } } }
                    bias.withUnsafeBufferPointer { b in
                        packed.linear(x: x, ldx: ldx, bias: withBias ? b.baseAddress! : nil, y: &y, ldy: ldy, m: m,
                                      accumulate: accumulate, portable: portable)
                    }
                    for r in 0..<m {
                        for c in 0..<n {
                            let expected = want[r * ldy + c] - (withBias ? 0 : bias[c]) + (accumulate ? Float(r - c) : 0)
                            XCTAssertEqual(y[r * ldy + c], expected, accuracy: 1e-6 * Float(k), "m\(m) n\(n) k\(k) r\(r) c\(c) portable \(portable)")
                        }
                        for c in n..<ldy { XCTAssertTrue(y[r * ldy + c].isNaN, "wrote past the row's \(n) columns") }
                    }
                }
            }
        }
    }
}
