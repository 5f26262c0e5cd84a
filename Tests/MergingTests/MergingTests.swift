import XCTest
import Foundation
@testable import Merging
import CKernels
import Formats
import Tensors

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

final class MergekitParityTests: XCTestCase {
    /// Each recipe gives mergekit 0.1.5's tensors (Scripts/make-fixtures-merging.py) within
    /// 1e-5 absolute, the tolerance of float32 re-association.
    func check(_ name: String, tolerance: Float = 1e-5) throws {
        let recipe = try Recipe(path: "\(fixtures)/\(name).yaml")
        let (tensors, _) = try Merger.merge(recipe)
        let ref = try SafetensorsFile(path: "\(fixtures)/out/\(name)/model.safetensors")
        XCTAssertEqual(Set(ref.names), Set(tensors.map(\.0)).subtracting(["embeddings.position_ids"]), name)
        var worst: Float = 0, worstName = ""
        for (n, t) in tensors where ref.info(n) != nil {
            let a = try t.floats(), b = try ref.tensor(n).floats()
            XCTAssertEqual(a.count, b.count)
            for i in a.indices where abs(a[i] - b[i]) > worst { worst = abs(a[i] - b[i]); worstName = n }
        }
        XCTAssertLessThanOrEqual(worst, tolerance, "\(name): max |diff| \(worst) in \(worstName)")
    }

    func testLinear() throws { try check("linear"); try check("linear_raw") }
    func testTaskArithmeticWithNegation() throws { try check("task_arithmetic") }
    func testTIES() throws { try check("ties") }
    func testTIESWithPerLayerGradientsAndFilters() throws { try check("ties_gradient") }
    func testBreadcrumbs() throws { try check("breadcrumbs"); try check("breadcrumbs_ties") }
    func testSLERPWithGradient() throws { try check("slerp") }
    func testModelStock() throws { try check("model_stock") }
    func testDAREAtFullDensityIsTaskArithmetic() throws { try check("dare_ties_dense") }

    /// `Merger.run` writes tensors into the output file (F32 results of linear and task
    /// arithmetic chunk by chunk, the chunks of many tensors in one parallel loop); the file
    /// equals, byte for byte, the deterministic writer's serialisation of the in-memory merge —
    /// for F32 output and for a converted dtype (bf16, through a buffer), with the batches of
    /// passes run at the end or after every tensor.
    func testFileOutputEqualsTheInMemoryMergeByteForByte() throws {
        for name in ["interop/ties", "linear", "task_arithmetic", "breadcrumbs_ties"] {
            for dtype in ["float32", "bfloat16"] {
                var text = try String(contentsOfFile: "\(fixtures)/\(name).yaml", encoding: .utf8)
                text = text.replacingOccurrences(of: "dtype: float32", with: "dtype: \(dtype)")
                let recipe = try Recipe(yaml: text, path: "\(fixtures)/\(name)-\(dtype).yaml")
                let (tensors, _) = try Merger.merge(recipe)
                let expected = SafetensorsWriter.serialize(tensors, metadata: ["format": "pt", "merged_by": "alloy \(recipe.method.name)"])
                for limit in [Merger.pendingLimit, 0] {
                    let dir = NSTemporaryDirectory() + "alloy-mapped-\(UUID().uuidString)"
                    defer { try? FileManager.default.removeItem(atPath: dir) }
                    var seen: [Int] = []
                    try Merger.run(recipe, outputDirectory: dir, progress: { done, _ in seen.append(done) }, batchLimit: limit)
                    let written = try XCTUnwrap(FileManager.default.contents(atPath: dir + "/model.safetensors"))
                    XCTAssertEqual(Array(written), expected, "\(name) \(dtype) batch limit \(limit)")
                    XCTAssertEqual(seen, Array(1...tensors.count), "\(name): progress counts every tensor once, in order")
                    XCTAssertEqual(try SafetensorsFile(path: dir + "/model.safetensors").tensor("encoder.layer.0.attention.self.query.weight").dtype,
                                   dtype == "float32" ? .f32 : .bf16)
                }
            }
        }
    }

    /// A base with the `position_ids` buffer older transformers wrote, an expert saved as a task
    /// model (`bert.` names) and experts saved by transformers 5 (no buffer) merge as mergekit
    /// merges them (Scripts/make-fixtures-merge-interop.py): the same tensor names, the base's
    /// buffer, floats within 1e-5.
    func testMergeAcrossBuffersAndTaskModelPrefixesEqualsMergekit() throws {
        let recipe = try Recipe(path: "\(fixtures)/interop/ties.yaml")
        let (tensors, _) = try Merger.merge(recipe)
        let ref = try SafetensorsFile(path: "\(fixtures)/interop/out/model.safetensors")
        XCTAssertEqual(Set(ref.names), Set(tensors.map(\.0)))
        XCTAssertTrue(ref.names.contains("embeddings.position_ids"))
        var worst: Float = 0
        for (n, t) in tensors {
            let r = try ref.tensor(n)
            XCTAssertEqual(t.shape, r.shape, n)
            if t.dtype.isFloatingPoint {
                let a = try t.floats(), b = try r.floats()
                for i in a.indices { worst = max(worst, abs(a[i] - b[i])) }
            } else {
                XCTAssertEqual(t.dtype, r.dtype, n)
                XCTAssertEqual(Array(t.rawBytes), Array(r.rawBytes), n)
            }
        }
        XCTAssertLessThanOrEqual(worst, 1e-5)
    }
}

final class DARETests: XCTestCase {
    func recipe(seed: Int, density: Double, method: String = "dare_linear") throws -> Recipe {
        try Recipe(yaml: """
        merge_method: \(method)
        base_model: base
        models:
          - model: expert0
            parameters: {weight: 1.0, density: \(density)}
          - model: expert1
            parameters: {weight: 1.0, density: \(density)}
        parameters: {seed: \(seed)}
        """, path: "\(fixtures)/dare.yaml")
    }

    /// Same seed → same bytes; another seed → different; kept fraction ≈ density; the L1
    /// rescale restores each delta's L1 norm (mergekit's default `rescale` for DARE).
    func testReproducibleBySeedWithExpectedStatistics() throws {
        let (a, ra) = try Merger.merge(try recipe(seed: 7, density: 0.3))
        let (b, _) = try Merger.merge(try recipe(seed: 7, density: 0.3))
        let (c, _) = try Merger.merge(try recipe(seed: 8, density: 0.3))
        XCTAssertTrue(zip(a, b).allSatisfy { $0.1.bitwiseEquals($1.1) })
        XCTAssertFalse(zip(a, c).allSatisfy { $0.1.bitwiseEquals($1.1) })
        let fraction = Double(ra.kept.kept) / Double(ra.kept.total)
        XCTAssertEqual(fraction, 0.3, accuracy: 0.01, "kept fraction")
    }

    func testRescaleRestoresL1NormOfEachDelta() throws {
        var rng = SplitMix(seed: 3)
        let n = 200_000
        let base = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
        let model = base.map { $0 + Float.random(in: -0.01...0.01, using: &rng) }
        var out = [Float](repeating: 0, count: n)
        let st = base.withUnsafeBufferPointer { b in model.withUnsafeBufferPointer { m in
            out.withUnsafeMutableBufferPointer { o in
                MergeKernels.taskArithmetic(TensorInputs(models: [m.baseAddress!], count: n), base: b.baseAddress!,
                                            TensorParameters(weights: [1], densities: [0.25], rescale: true, seed: 1),
                                            sparsification: .random, consensus: false, tensor: "w", out: MergeOutput(target: .memory(o.baseAddress!)))
            }
        } }
        let l1Before = zip(model, base).reduce(0.0) { $0 + Double(abs($1.0 - $1.1)) }
        let l1After = zip(out, base).reduce(0.0) { $0 + Double(abs($1.0 - $1.1)) }
        XCTAssertEqual(l1After / l1Before, 1, accuracy: 1e-3)
        XCTAssertEqual(st.rescale[0], 4, accuracy: 0.1, "≈ 1/density for i.i.d. deltas")
        XCTAssertEqual(Double(st.kept) / Double(n), 0.25, accuracy: 0.005)
    }
}

final class BadRecipeTests: XCTestCase {
    func expectError(_ yaml: String, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try { let r = try Recipe(yaml: yaml, path: "\(fixtures)/bad.yaml"); _ = try Merger.merge(r) }(), file: file, line: line) {
            XCTAssertTrue("\($0)".contains(fragment), "\($0)", file: file, line: line)
        }
    }

    func testBadRecipesFailBeforeWorkNamingLineModelOrTensor() throws {
        expectError("merge_method: frobnicate\nmodels:\n  - model: expert0\n", "bad.yaml:1: unknown merge_method")
        expectError("merge_method: ties\nbase_model: base\nmodels:\n  - model: nowhere\n    parameters: {weight: 1, density: 0.5}\n", "bad.yaml:4: model")
        expectError("merge_method: ties\nbase_model: base\nmodels:\n  - model: expert0\n    parameters: {weight: 1, density: 1.5}\n", "density 1.5 is outside (0, 1]")
        expectError("merge_method: ties\nbase_model: base\nmodels:\n  - model: expert0\n    parameters: {weight: 1, density: 0}\n", "density 0.0 is outside (0, 1]")
        expectError("merge_method: ties\nmodels:\n  - model: expert0\n", "ties needs a base_model")
        expectError("merge_method: linear\nmodels:\n  - model: expert0\n", "needs a weight")
        expectError("merge_method: ties\nbase_model: base\nmodels:\n  - model: expert0\n    parameters: {weight: 1, densty: 0.5}\n", "no parameter \"densty\"")
        // Another architecture: the tiny encoder of the runtime fixtures (hidden 32) against these (hidden 16).
        let other = URL(fileURLWithPath: fixtures).appendingPathComponent("../../EncoderTests/Fixtures/tiny").standardized.path
        expectError("merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - model: \(other)\n    parameters: {weight: 1}\n", "hidden 32")
    }

    /// Issue 14, causes 1, 2 and 4: recipes that used to trap now fail with an error naming
    /// the file, line, parameter and tensor.
    func testHostileRecipesFailWithErrorsNotTraps() throws {
        let head = "merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - model: expert0\n"
        expectError(head + "    parameters: {weight: []}\n", "bad.yaml:5: parameter weight is an empty list")
        expectError(head + "    parameters:\n      weight: [{filter: nomatch, value: 1}]\n",
                    "bad.yaml:4: parameter weight of model expert0 has no value for tensor")
        expectError(head + "    parameters:\n      weight: [{filter: attention, value: 1}]\n", "none of its conditions matches the tensor")
        expectError("merge_method: slerp\nbase_model: base\nparameters:\n  t: [{filter: nomatch, value: 0.5}]\nmodels:\n  - model: expert0\n",
                    "parameter t has no value for tensor")
        expectError(head + "    parameters: {weight: 1}\nparameters: {seed: -1}\n", "seed -1.0 must be a whole number")
        expectError(head + "    parameters: {weight: 1}\nparameters: {seed: 1e20}\n", "seed 1e+20 must be a whole number")
        expectError(head + "    parameters: {weight: .nan}\n", "must be finite")
        expectError(head + "    parameters: {weight: [1, .inf]}\n", "must be finite")
        for depth in [2_000, 20_000] {
            let deep = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
            expectError(head + "    parameters: {weight: \(deep)}\n", "levels deep")
            expectError(String(repeating: "- ", count: depth) + "x\n", "levels deep")
            var block = ""
            for i in 0..<200 { block += String(repeating: " ", count: i) + "k\(i):\n" }
            expectError(block, "levels deep")
        }
        // Aliases that would expand exponentially are cut off, not expanded.
        var conditions = ["{filter: c0, value: &a0 [{filter: x, value: 1}, {filter: y, value: 1}]}"]
        for i in 1..<40 { conditions.append("{filter: c\(i), value: &a\(i) [{filter: x, value: *a\(i - 1)}, {filter: y, value: *a\(i - 1)}]}") }
        XCTAssertThrowsError(try Recipe(yaml: head + "    parameters:\n      weight: [\(conditions.joined(separator: ", "))]\n", path: "\(fixtures)/bad.yaml")) {
            XCTAssertTrue("\($0)".contains("more than"), "\($0)")
        }
        // A gradient or a condition without a filter still works: a partial list plus a catch-all.
        let ok = head + "    parameters:\n      weight: [{filter: attention, value: 0.5}, {value: 1}]\n"
        XCTAssertNoThrow(try Merger.merge(try Recipe(yaml: ok, path: "\(fixtures)/ok.yaml")))
    }
}

/// The trimming selection (TIES top-k, breadcrumbs band) against a stable sort, on tensors
/// large enough for the sampled path, with many ties at the boundaries; seeded.
final class MagnitudeSelectTests: XCTestCase {
    /// The kept flags of a reference: stable sort of |τ| (ascending; index order among equals).
    func reference(_ a: [Float], first: Int, last: Int) -> [Bool] {
        let order = a.indices.sorted { (a[$0], $0) < (a[$1], $1) }
        var keep = [Bool](repeating: false, count: a.count)
        for r in first...last { keep[order[r]] = true }
        return keep
    }

    func check(n: Int, levels: Int, seed: UInt64, sigmas: Double, file: StaticString = #filePath, line: UInt = #line) {
        var rng = SplitMix(seed: seed)
        let base = (0..<n).map { _ in Float(Int(rng.next() % 7)) }
        // Quantised deltas: many exact ties, also at the thresholds.
        let model = base.map { $0 + Float(Int(rng.next() % UInt64(levels)) - levels / 2) * 0.25 }
        let a = zip(model, base).map { abs($0 - $1) }
        base.withUnsafeBufferPointer { b in model.withUnsafeBufferPointer { m in
            for density in [0.2, 0.5, 0.9] {
                // TIES: the k largest, ties lowest index first (descending stable order).
                let k = Int(density * Double(n))
                let desc = a.indices.sorted { (a[$0], $1) > (a[$1], $0) }.prefix(k)
                var want = [Bool](repeating: false, count: n); for i in desc { want[i] = true }
                let o = MagnitudeSelect.orders(ranks: [[n - k]], base: b.baseAddress!, models: [m.baseAddress!], count: n, sigmas: sigmas)
                guard let t = o[0][0] else { return XCTFail("no order", file: file, line: line) }
                XCTAssertEqual(got(MagnitudeBand(top: k, order: t, count: n), a), want, "top \(k) of \(n)", file: file, line: line)
                // Breadcrumbs: ascending ranks [bottom, bottom + target).
                let target = k, top = Int(0.05 * Double(n)), bottom = max(0, n - target - top)
                let last = min(n - 1, bottom + target - 1)
                let ob = MagnitudeSelect.orders(ranks: [[bottom, last]], base: b.baseAddress!, models: [m.baseAddress!], count: n, sigmas: sigmas)
                guard let l = ob[0][0], let h = ob[0][1] else { return XCTFail("no order", file: file, line: line) }
                XCTAssertEqual(got(MagnitudeBand(ranks: bottom, last, low: l, high: h), a), reference(a, first: bottom, last: last),
                               "band \(bottom)...\(last) of \(n)", file: file, line: line)
            }
        } }
    }

    func got(_ band: MagnitudeBand, _ a: [Float]) -> [Bool] {
        var out = [Bool](repeating: false, count: a.count)
        for c in 0..<((a.count + MagnitudeSelect.chunk - 1) / MagnitudeSelect.chunk) {
            var trim = band.trim(chunk: c)
            for j in (c * MagnitudeSelect.chunk)..<min(a.count, (c + 1) * MagnitudeSelect.chunk) { out[j] = trim.keep(j, a[j]) }
        }
        XCTAssertEqual(out.filter { $0 }.count, out.filter { $0 }.count)
        return out
    }

    func testSampledSelectionKeepsExactlyMergekitsEntries() {
        check(n: 140_003, levels: 9, seed: 1, sigmas: 4)        // sampled path, heavy ties
        check(n: 70_000, levels: 100_001, seed: 2, sigmas: 4)  // sampled path, few ties
        check(n: 20_000, levels: 9, seed: 3, sigmas: 4)         // small tensor: sorted copy
    }

    func testFallbackWhenTheSampleMissesGivesTheSameEntries() {
        check(n: 70_001, levels: 9, seed: 4, sigmas: 0)
        check(n: 66_000, levels: 1_000_001, seed: 5, sigmas: 0)
    }
}

/// The vectorised DARE mask (CKernels) against the scalar counter-based uniform it replaces:
/// the same bits on every path, so merges keep their masks; seeded keys and densities.
final class DAREMaskTests: XCTestCase {
    func testMaskEqualsScalarUniformOnEveryPath() {
        let chosen = Kernels.isa
        defer { Kernels.useISA(chosen) }
        for isa in Kernels.ISA.allCases where isa <= Kernels.supportedISA {
            Kernels.useISA(isa)
            checkMasks()
        }
        print("DARE masks checked on \(Kernels.ISA.allCases.filter { $0 <= Kernels.supportedISA }); this CPU lacks \(Kernels.ISA.allCases.filter { $0 > Kernels.supportedISA })")
    }

    func checkMasks() {
        var rng = SplitMix(seed: 11)
        for _ in 0..<20 {
            let key = rng.next(), start = Int(rng.next() % 1_000_000), count = 1 + Int(rng.next() % 5000)
            let density = Float(rng.next() % 1000) / 1000
            let trim = Trim(random: density, key: key)
            var fast = [UInt8](repeating: 9, count: count), portable = fast
            let ones = alloy_dare_mask(key, Int64(start), count, trim.threshold, &fast)
            let onesPortable = alloy_dare_mask_portable(key, Int64(start), count, trim.threshold, &portable)
            let want = (0..<count).map { MergeKernels.uniform(key, start + $0) < density ? UInt8(1) : 0 }
            XCTAssertEqual(fast, want, "key \(key) density \(density)")
            XCTAssertEqual(portable, want)
            XCTAssertEqual(ones, want.reduce(0) { $0 + Int($1) })
            XCTAssertEqual(onesPortable, ones)
        }
    }
}

final class DegenerateMergeTests: XCTestCase {
    /// A recipe whose only model is the base merges to the base (no scratch buffers, no trap),
    /// as `alloy sweep` uses for a cheap baseline.
    func testBaseOnlyRecipeGivesTheBase() throws {
        let r = try Recipe(yaml: "merge_method: ties\nbase_model: base\nmodels:\n  - model: base\n    parameters: {weight: 1, density: 0.5}\n",
                           path: "\(fixtures)/self.yaml")
        let (merged, _) = try Merger.merge(r)
        let base = try WeightSource(path: "\(fixtures)/base")
        for (name, t) in merged { XCTAssertTrue(t.bitwiseEquals(try base.tensor(name)), name) }
    }
}

/// The merge pass's C kernels (band trim, masked trim, sign election and mix) and the bracket
/// scan of the threshold selection: every instruction-set path gives the bits of a scalar
/// reference; seeded inputs with exact ties at the band's bounds, NaN, ±0 and zero weights.
final class MergePassKernelTests: XCTestCase {
    func inputs(_ n: Int, seed: UInt64) -> (m: [Float], b: [Float]) {
        var rng = SplitMix(seed: seed)
        let b = (0..<n).map { _ in Float(Int(rng.next() % 9)) * 0.5 }
        var m = b.map { $0 + Float(Int(rng.next() % 9) - 4) * 0.25 }
        m[3] = .nan; m[5] = b[5]; m[7] = -b[7]
        return (m, b)
    }

    func testEveryPathGivesTheScalarBits() {
        let n = 1_000, models = 3
        let (m0, b) = inputs(n, seed: 21)
        let others = [inputs(n, seed: 22).m, inputs(n, seed: 23).m]
        let weights: [Float] = [0.7, 0, 1.3]
        let mask = (0..<n).map { UInt8($0 % 3 == 0 ? 0 : 1) }
        for isa in Kernels.ISA.allCases where isa <= Kernels.supportedISA {
            let i = Int32(isa.rawValue)
            // Band trim: kept count, boundary flag and values against the definition.
            var dst = [Float](repeating: 9, count: n), boundary: Int32 = -1
            let kept = alloy_trim_band_isa(m0, b, n, 0.5, 1.0, 1.5, 0.7, &dst, &boundary, i)
            var want = 0, wantBoundary: Int32 = 0
            for j in 0..<n {
                let d = m0[j] - b[j], a = abs(d), k = a > 0.5 && a < 1.0
                XCTAssertEqual(dst[j].bitPattern, k ? (d * 1.5 * 0.7).bitPattern : 0, "\(isa) band \(j)")
                want += k ? 1 : 0
                if a == 0.5 || a == 1.0 { wantBoundary = 1 }
            }
            XCTAssertEqual(kept, want, "\(isa)"); XCTAssertEqual(boundary, wantBoundary, "\(isa)")
            // Masked and unmasked trims.
            mask.withUnsafeBufferPointer { mp in
                alloy_trim_mask_isa(m0, b, n, 2, 0.5, mp.baseAddress, &dst, i)
                for j in 0..<n { XCTAssertEqual(dst[j].bitPattern, mask[j] == 1 ? ((m0[j] - b[j]) * 2 * 0.5).bitPattern : 0, "\(isa) mask \(j)") }
                alloy_trim_mask_isa(m0, b, n, 2, 0.5, nil, &dst, i)
                for j in 0..<n { XCTAssertEqual(dst[j].bitPattern, ((m0[j] - b[j]) * 2 * 0.5).bitPattern, "\(isa) all \(j)") }
            }
            // Rescaling sums: the lane-interleaved definition, masked and not.
            let (lm, lb, lk) = (Array(m0[8...]), Array(b[8...]), Array(mask[8...]))  // past the NaN: sums, not payloads
            lk.withUnsafeBufferPointer { mp in
                for masked in [true, false] {
                    var before = 0.0, after = 0.0
                    alloy_l1_sums_isa(lm, lb, lm.count, masked ? mp.baseAddress : nil, &before, &after, i)
                    var sb = [Double](repeating: 0, count: 8), sa = sb
                    let body = lm.count / 8 * 8
                    for j in 0..<body {
                        let d = abs(lm[j] - lb[j])
                        sb[j % 8] += Double(d); sa[j % 8] += !masked || lk[j] == 1 ? Double(d) : 0
                    }
                    var tb: Double = 0, ta: Double = 0
                    for l in 0..<8 { tb += sb[l]; ta += sa[l] }
                    for j in body..<lm.count {
                        let d = abs(lm[j] - lb[j])
                        tb += Double(d); ta += !masked || lk[j] == 1 ? Double(d) : 0
                    }
                    XCTAssertEqual(before.bitPattern, tb.bitPattern, "\(isa) L1"); XCTAssertEqual(after.bitPattern, ta.bitPattern, "\(isa) L1 kept")
                }
            }
            // Mix, with and without sign election, normalising or not, λ = 1 and not.
            let dw = [m0, others[0], others[1]].enumerated().flatMap { k, x in zip(x, b).map { ($0 - $1) * weights[k] } }
            for consensus in [true, false] { for normalize in [true, false] { for lambda: Float in [1, 0.6] {
                var out = [Float](repeating: 9, count: n), scratch = [Float](repeating: 0, count: 3 * n)
                alloy_gta_mix_isa(dw, n, models, weights, b, n, consensus ? 1 : 0, 2, normalize ? 1 : 0, lambda, &out, &scratch, i)
                for j in 0..<n {
                    var t: Float = 0
                    for k in 0..<models { t += dw[k * n + j] }
                    var mx: Float = 0, dv: Float = 0
                    if consensus {
                        for k in 0..<models {
                            let v = dw[k * n + j], agrees = t >= 0 ? v > 0 : v < 0
                            mx += agrees ? v : 0; dv += agrees ? weights[k] : 0
                        }
                        if dv == 0 { dv = 1 }
                    } else { mx = t; dv = 2 }
                    let r = normalize ? b[j] + (mx / dv) * lambda : b[j] + mx * lambda
                    XCTAssertEqual(out[j].bitPattern, r.bitPattern, "\(isa) mix consensus \(consensus) normalize \(normalize) λ \(lambda) at \(j)")
                }
            } } }
        }
    }

    func testBracketScanCountsAndCollectsOnEveryCapacity() {
        let n = 5_003
        let (m, b) = inputs(n, seed: 24)
        let lo = Float(0.5).bitPattern, span = Float(1.0).bitPattern - lo
        let mags = zip(m, b).map { abs($0 - $1).bitPattern }
        let wantFound = mags.filter { $0 &- lo <= span }, wantBelow = mags.filter { $0 < lo }.count
        for capacity in [0, 7, wantFound.count - 1, wantFound.count, n] {
            var fast = [Float](repeating: 0, count: max(capacity, 1)), portable = fast
            var below = 0, belowPortable = 0
            let inside = alloy_bracket_scan(m, b, n, lo, span, &below, &fast, capacity)
            let insidePortable = alloy_bracket_scan_portable(m, b, n, lo, span, &belowPortable, &portable, capacity)
            XCTAssertEqual(inside, wantFound.count); XCTAssertEqual(insidePortable, wantFound.count)
            XCTAssertEqual(below, wantBelow); XCTAssertEqual(belowPortable, wantBelow)
            let kept = min(capacity, wantFound.count)
            XCTAssertEqual(fast[0..<kept].map(\.bitPattern), Array(wantFound[0..<kept]), "capacity \(capacity)")
            XCTAssertEqual(portable[0..<kept].map(\.bitPattern), Array(wantFound[0..<kept]), "capacity \(capacity)")
        }
    }
}
