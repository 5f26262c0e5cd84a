import XCTest
@testable import Tensors

/// The int8 linear kernel (`Int8PackedWeights`) against the arithmetic it promises, computed
/// here in plain Swift: per-channel symmetric weights, per-row asymmetric activations (the row's
/// range widened to hold 0, 255 steps, zero point as ONNX's DynamicQuantizeLinear) after the
/// row's largest-magnitude entry is split out and multiplied exactly, integer sums, one float
/// rescale — on every path (portable and, where the CPU has it, VNNI).
final class Int8GEMMTests: XCTestCase {
    /// Per-channel symmetric int8: values and scale.
    func quantizeSymmetric(_ v: ArraySlice<Float>) -> ([Int32], Float) {
        let amax = v.reduce(0) { max($0, abs($1)) }
        let inv: Float = amax > 0 ? 127 / amax : 0
        return (v.map { Int32(max(-127, min(127, ($0 * inv).rounded(.toNearestOrEven)))) }, amax / 127)
    }

    /// Per-row asymmetric u8: values minus the zero point (so x ≈ scale · value), and scale.
    func quantizeAsymmetric(_ v: ArraySlice<Float>) -> ([Int32], Float) {
        let lo = min(0, v.min() ?? 0), hi = max(0, v.max() ?? 0)
        let scale = (hi - lo) / 255
        guard scale > 0 else { return (v.map { _ in 0 }, 0) }
        let zero = max(0, min(255, (-lo / scale).rounded(.toNearestOrEven)))
        let inv = 1 / scale
        return (v.map { Int32(max(0, min(255, ($0 * inv).rounded(.toNearestOrEven) + zero)) - zero) }, scale)
    }

    /// n×k weights uniform in [−1, 1], packed, and their per-channel quantisation.
    func layer(_ rng: inout SplitMix, n: Int, k: Int) -> (w: [Float], packed: Int8PackedWeights, wq: [([Int32], Float)]) {
        let w = (0..<(n * k)).map { _ in Float.random(in: -1...1, using: &rng) }
        let packed = w.withUnsafeBufferPointer { Int8PackedWeights($0.nonEmptyBase, n: n, k: k) }
        return (w, packed, (0..<n).map { quantizeSymmetric(w[($0 * k)..<(($0 + 1) * k)]) })
    }

    /// y = x·Wᵀ (+ bias; y += … when `accumulate`) through the packed kernel.
    func product(_ packed: Int8PackedWeights, _ x: [Float], m: Int, bias: [Float]? = nil, into y: inout [Float],
                 accumulate: Bool = false, isa: Kernels.ISA? = nil) {
        let (n, k) = (packed.n, packed.k)
        x.withUnsafeBufferPointer { xb in y.withUnsafeMutableBufferPointer { yb in
            let b = bias.map { UnsafeMutablePointer<Float>.allocate(capacity: $0.count) }
            defer { b?.deallocate() }
            if let bias, let b { b.update(from: bias, count: bias.count) }
            packed.linear(x: xb.nonEmptyBase, ldx: k, bias: b, y: yb.nonEmptyBase, ldy: n, m: m, accumulate: accumulate, isa: isa)
        } }
    }

    /// The row's `count` entries of largest magnitude, lowest index first among equals.
    func largest(_ v: ArraySlice<Float>, _ count: Int) -> [Int] {
        Array(v.indices.sorted { abs(v[$0]) != abs(v[$1]) ? abs(v[$0]) > abs(v[$1]) : $0 < $1 }.prefix(count)).map { $0 - v.startIndex }
    }

    /// Per row: the entry of largest magnitude split out (multiplied exactly by the quantised
    /// weights), the rest quantised asymmetrically over their own range.
    func reference(x: [Float], w: [Float], bias: [Float]?, m: Int, n: Int, k: Int) -> [Float] {
        let wq = (0..<n).map { quantizeSymmetric(w[($0 * k)..<(($0 + 1) * k)]) }
        var y = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            let row = x[(i * k)..<((i + 1) * k)]
            let out = largest(row, 1)
            var rest = Array(row)
            for p in out { rest[p] = 0 }
            let (xq, xs) = quantizeAsymmetric(rest[...])
            for j in 0..<n {
                var acc: Int32 = 0
                for p in 0..<k { acc += xq[p] * wq[j].0[p] }
                y[i * n + j] = xs * wq[j].1 * Float(acc) + (bias?[j] ?? 0)
                for p in out { y[i * n + j] += row[row.startIndex + p] * wq[j].1 * Float(wq[j].0[p]) }
            }
        }
        return y
    }

    /// A row with a few entries far larger than the rest (a LayerNorm output's outlier
    /// channels): splitting them out keeps the others' levels, so the activations' error stays
    /// near that of rows without outliers (without the split it grows with the outlier's size).
    func testOutliersDoNotCoarsenTheRestOfTheRow() {
        var rng = SplitMix(seed: 5)
        let (m, n, k) = (16, 32, 384)
        let (_, packed, wq) = layer(&rng, n: n, k: k)
        var x = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
        for i in 0..<m { x[i * k + 7 + i] = i % 2 == 0 ? 40 : -40 }  // an outlier channel, either sign
        var weightsOnly = [Float](repeating: 0, count: m * n), whole = weightsOnly
        for i in 0..<m {
            let (xq, xs) = quantizeAsymmetric(x[(i * k)..<((i + 1) * k)])
            for j in 0..<n {
                var acc: Int32 = 0
                for p in 0..<k {
                    weightsOnly[i * n + j] += x[i * k + p] * wq[j].1 * Float(wq[j].0[p])
                    acc += xq[p] * wq[j].0[p]
                }
                whole[i * n + j] = xs * wq[j].1 * Float(acc)
            }
        }
        func rms(_ a: [Float], _ b: [Float]) -> Float { (zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Float(a.count)).squareRoot() }
        for isa in [Kernels.ISA.portable, .avx512] {
            var y = [Float](repeating: 0, count: m * n)
            product(packed, x, m: m, into: &y, isa: isa)
            let split = rms(y, weightsOnly), unsplit = rms(whole, weightsOnly)
            XCTAssertLessThan(split, unsplit / 10, "\(isa): activations' RMS error with the outliers split out \(split), quantised with the row \(unsplit)")
        }
    }

    func testIntegerKernelComputesTheQuantisedProductOnEveryPath() {
        var rng = SplitMix(seed: 7)
        func random(_ count: Int) -> [Float] { (0..<count).map { _ in Float.random(in: -1...1, using: &rng) } }
        for (m, n, k) in [(1, 1, 1), (29, 37, 50), (30, 64, 384), (13, 33, 1537)] {
            // Rows of every kind of range: symmetric, one-sided either way, offset, all zeros.
            let offsets: [Float] = [0, 1, -1, 0.6, -3]
            var x = random(m * k)
            for i in 0..<m { for p in 0..<k { x[i * k + p] = i == 3 ? 0 : x[i * k + p] + offsets[i % offsets.count] } }
            // Equal magnitudes at the top (the lowest index is split out), a row of one value, and
            // rows whose largest magnitude is negative or appears twice.
            if m > 5 { for p in stride(from: 0, to: k, by: 3) { x[5 * k + p] = p % 2 == 0 ? 2 : -2 } }
            if m > 6 { for p in 0..<k { x[6 * k + p] = 0.75 } }
            if m > 8 { x[7 * k + k / 2] = -9; x[8 * k + 1] = 7; x[8 * k + k - 1] = 7 }
            let w = random(n * k), bias = random(n)
            let want = reference(x: x, w: w, bias: bias, m: m, n: n, k: k)
            let packed = w.withUnsafeBufferPointer { Int8PackedWeights($0.nonEmptyBase, n: n, k: k) }
            for isa in [Kernels.ISA.portable, .avx512] {
                var y = [Float](repeating: 0, count: m * n)
                product(packed, x, m: m, bias: bias, into: &y, isa: isa)
                var worst: Float = 0
                for i in y.indices { worst = max(worst, abs(y[i] - want[i]) / max(1, abs(want[i]))) }
                XCTAssertLessThanOrEqual(worst, 1e-5, "m \(m) n \(n) k \(k) isa \(isa)")
                // y += …: twice the product (bias twice too).
                product(packed, x, m: m, bias: bias, into: &y, accumulate: true, isa: isa)
                for i in y.indices { XCTAssertEqual(y[i], 2 * want[i], accuracy: 1e-4 * max(1, abs(want[i])), "accumulate \(isa)") }
            }
        }
    }

    /// Rows holding NaN or ±infinity (a diverged upstream layer) go through without a trap on
    /// every path, and leave the finite rows of the same call exact.
    func testNonFiniteRowsDoNotTrapOrSpillIntoOtherRows() {
        var rng = SplitMix(seed: 9)
        let (m, n, k) = (6, 32, 96)
        let (w, packed, _) = layer(&rng, n: n, k: k)
        var x = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
        x[0 * k + 3] = .nan
        x[1 * k + 5] = .infinity
        x[2 * k + 7] = -.infinity; x[2 * k + 8] = .infinity
        for p in 0..<k { x[3 * k + p] = .nan }
        let want = reference(x: x, w: w, bias: nil, m: m, n: n, k: k)
        for isa in [Kernels.ISA.portable, .avx512] {
            var y = [Float](repeating: 0, count: m * n)
            product(packed, x, m: m, into: &y, isa: isa)
            for i in 4..<m { for j in 0..<n {
                XCTAssertEqual(y[i * n + j], want[i * n + j], accuracy: 1e-5 * max(1, abs(want[i * n + j])), "\(isa) finite row \(i)")
            } }
        }
    }

    /// Against the float product: the quantisation error of 8 bits, small relative to the
    /// output's scale (random inputs, k = 384: < 1.5% of the output RMS), for symmetric rows and
    /// for one-sided ones like GELU's outputs (≥ −0.17). Against the product with the quantised
    /// weights (the activations' error alone), asymmetric rows' 255 steps over the row's own
    /// range roughly halve the error of symmetric ±127 steps on one-sided rows.
    func testQuantisationErrorIsSmall() {
        var rng = SplitMix(seed: 11)
        let (m, n, k) = (24, 48, 384)
        let (w, packed, wq) = layer(&rng, n: n, k: k)
        // (rows, bound on the error to the float product, bound on the activations' error relative to symmetric rows')
        for (name, range, bound, gain) in [("symmetric", Float(-1)...1, Float(0.015), Float(1.01)), ("one-sided", -0.17...2, 0.015, 0.65)] {
            let x = (0..<(m * k)).map { _ in Float.random(in: range, using: &rng) }
            var exact = [Float](repeating: 0, count: m * n), weightsOnly = exact, symmetric = exact
            for i in 0..<m {
                let (xq, xs) = quantizeSymmetric(x[(i * k)..<((i + 1) * k)])
                for j in 0..<n {
                    for p in 0..<k {
                        exact[i * n + j] += x[i * k + p] * w[j * k + p]
                        weightsOnly[i * n + j] += x[i * k + p] * wq[j].1 * Float(wq[j].0[p])
                        symmetric[i * n + j] += xs * wq[j].1 * Float(xq[p] * wq[j].0[p])
                    }
                }
            }
            var y = [Float](repeating: 0, count: m * n)
            product(packed, x, m: m, into: &y)
            func rmsError(_ a: [Float], _ b: [Float]) -> Float { (zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Float(a.count)).squareRoot() }
            let rms = (exact.reduce(0) { $0 + $1 * $1 } / Float(exact.count)).squareRoot()
            let err = rmsError(y, exact) / rms
            let activationErr = rmsError(y, weightsOnly) / rms, symmetricErr = rmsError(symmetric, weightsOnly) / rms
            XCTAssertLessThan(err, bound, "\(name): relative RMS error \(err)")
            XCTAssertLessThan(activationErr, gain * symmetricErr, "\(name): activations' error, asymmetric vs symmetric rows: \(activationErr) vs \(symmetricErr)")
            print("int8 linear, \(name) rows: relative RMS error \(err); activations' alone \(activationErr) (symmetric rows \(symmetricErr)); VNNI: \(Int8PackedWeights.accelerated)")
        }
    }
}

/// The bf16 linear kernel (`BF16PackedWeights`) against products of the bf16-rounded operands
/// summed in double, on every path.
final class BF16GEMMTests: XCTestCase {
    func bf16(_ f: Float) -> Float {
        var u = f.bitPattern
        u = u &+ 0x7fff &+ ((u >> 16) & 1)
        return Float(bitPattern: u & 0xffff_0000)
    }

    func testBF16KernelComputesTheRoundedProductOnEveryPath() {
        var rng = SplitMix(seed: 5)
        for (m, n, k) in [(1, 1, 1), (29, 37, 51), (30, 64, 384), (13, 33, 1537)] {
            let x = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
            let w = (0..<(n * k)).map { _ in Float.random(in: -1...1, using: &rng) }
            let bias = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
            var want = [Double](repeating: 0, count: m * n), exact = want
            for i in 0..<m { for j in 0..<n {
                for p in 0..<k {
                    want[i * n + j] += Double(bf16(x[i * k + p])) * Double(bf16(w[j * k + p]))
                    exact[i * n + j] += Double(x[i * k + p]) * Double(w[j * k + p])
                }
                want[i * n + j] += Double(bias[j]); exact[i * n + j] += Double(bias[j])
            } }
            let packed = w.withUnsafeBufferPointer { BF16PackedWeights($0.nonEmptyBase, n: n, k: k) }
            for isa in [Kernels.ISA.portable, .avx512] {
                var y = [Float](repeating: 0, count: m * n)
                x.withUnsafeBufferPointer { xb in bias.withUnsafeBufferPointer { bb in y.withUnsafeMutableBufferPointer { yb in
                    packed.linear(x: xb.nonEmptyBase, ldx: k, bias: bb.nonEmptyBase, y: yb.nonEmptyBase, ldy: n, m: m, isa: isa)
                } } }
                let scale = Double(k).squareRoot()   // the outputs' typical size
                var worst = 0.0, rounding = 0.0
                for i in y.indices { worst = max(worst, abs(Double(y[i]) - want[i]) / scale); rounding = max(rounding, abs(Double(y[i]) - exact[i]) / scale) }
                XCTAssertLessThanOrEqual(worst, 1e-5, "m \(m) n \(n) k \(k) isa \(isa)")
                XCTAssertLessThanOrEqual(rounding, 1e-2, "bf16 rounding error, m \(m) n \(n) k \(k)")
            }
        }
    }
}
