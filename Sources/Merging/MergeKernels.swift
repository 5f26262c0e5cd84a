import CKernels
import Formats
import Foundation
import Tensors

/// One tensor's inputs as F32 element pointers (mapped or converted), all of `count` elements.
/// `@unchecked Sendable`: immutable pointers to inputs that nothing writes during a merge.
struct TensorInputs: @unchecked Sendable {
    let models: [UnsafePointer<Float>]
    let count: Int
}

/// Where a kernel puts one tensor's merged F32 entries: memory (a buffer the caller owns), or
/// a region of an output file, written piece by piece from a staging block the size of the
/// piece (positional writes): the file's pages are never faulted in and zero-filled first, as
/// they are when a kernel writes into a mapping of a new file.
/// `@unchecked Sendable`: pieces are disjoint, and the file takes writes from any thread.
struct MergeOutput: @unchecked Sendable {
    enum Target { case memory(UnsafeMutablePointer<Float>), file(SafetensorsWriter.Placed, offset: Int) }
    let target: Target

    /// Runs `body` with room for entries `range` (indices into the tensor), then delivers them.
    func fill(_ range: Range<Int>, _ body: (UnsafeMutablePointer<Float>) -> Void) {
        switch target {
        case let .memory(p): body(p + range.lowerBound)
        case let .file(file, offset):
            guard !range.isEmpty else { return }
            let stage = UnsafeMutablePointer<Float>.allocate(capacity: range.count)
            defer { stage.deallocate() }
            body(stage)
            file.write(UnsafeRawBufferPointer(start: stage, count: range.count * 4), at: offset + range.lowerBound * 4)
        }
    }
}

/// One tensor's merge parameters as plain values: the recipe's settings evaluated for the
/// tensor (mergekit `evaluate_setting`), else the method's defaults, else a neutral value for
/// parameters the method does not declare. `Merger.parameters` builds it and throws when a
/// required parameter has no value for the tensor, so kernels never look anything up.
public struct TensorParameters: Sendable {
    /// Per model (besides the base).
    public var weights: [Float]
    public var densities: [Double]
    public var gammas: [Double]
    public var normalize = false
    public var rescale = false
    public var lambda: Float = 1
    public var seed: UInt64 = 0
    /// SLERP's interpolation factor.
    public var t = 0.0

    public init(weights: [Float], densities: [Double]? = nil, gammas: [Double]? = nil, normalize: Bool = false, rescale: Bool = false,
                lambda: Float = 1, seed: UInt64 = 0, t: Double = 0) {
        self.weights = weights
        self.densities = densities ?? weights.map { _ in 1 }
        self.gammas = gammas ?? weights.map { _ in 0 }
        self.normalize = normalize; self.rescale = rescale; self.lambda = lambda; self.seed = seed; self.t = t
    }
}

/// Summary of what sparsification kept, for reports and tests.
public struct KeepStatistics: Sendable {
    public var kept: Int = 0
    public var total: Int = 0
    public var rescale: [Double] = []
}

/// One tensor's merge as independent chunks: `run(c)` merges chunk c (delivering it to the
/// kernel's output) and returns the entries it kept. Any thread may run any chunk, in any order,
/// so the merger can run the chunks of many tensors in one parallel loop.
/// `@unchecked Sendable`: chunks touch disjoint outputs and only read their inputs.
struct ChunkedPass: @unchecked Sendable {
    let chunks: Int
    let run: (Int) -> Int

    /// Runs every chunk on both cores; the entries kept, summed.
    func runAll() -> Int {
        var kept = [Int](repeating: 0, count: chunks)
        kept.withUnsafeMutableBufferPointer { k in
            guard let base = k.baseAddress else { return }
            let box = UnsafeSendableBox(base)
            Parallel.forEach(count: chunks) { box.value[$0] = run($0) }
        }
        return kept.reduce(0, +)
    }
}

enum MergeKernels {
    /// Counter-based uniform in [0, 1): the same value for (seed, model, tensor, index) on any
    /// thread count.
    @inline(__always)
    static func uniform(_ key: UInt64, _ j: Int) -> Float {
        var z = key &+ UInt64(j) &* 0x9E3779B97F4A7C15
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        z ^= z >> 31
        return Float(z >> 40) * (1.0 / 16_777_216.0)
    }

    static func linear(_ x: TensorInputs, _ p: TensorParameters, out: MergeOutput) {
        linearPass(x, p, out: out).runAll()
    }

    /// Linear's pass: chunks of the tensor (each written whole to the output), models one
    /// streaming loop each — the same sum in the same order as entry by entry, in loops that
    /// vectorise.
    static func linearPass(_ x: TensorInputs, _ p: TensorParameters, out: MergeOutput) -> ChunkedPass {
        let w = p.weights
        let normalize = p.normalize
        let denom = w.reduce(0, +)
        let n = x.count, chunk = MagnitudeSelect.chunk
        return ChunkedPass(chunks: (n + chunk - 1) / chunk) { c in
            let lo = c * chunk, len = min(n, lo + chunk) - lo
            out.fill(lo..<(lo + len)) { o in
                for j in 0..<len { o[j] = 0 }
                for (i, m) in x.models.enumerated() {
                    let src = m + lo, wi = w[i]
                    for j in 0..<len { o[j] += src[j] * wi }
                }
                if normalize { for j in 0..<len { o[j] /= denom } }
            }
            return len
        }
    }

    /// `x` where `keep` is 1, +0 where it is 0, without a branch (bit mask).
    @inline(__always)
    static func masked(_ x: Float, _ keep: Int) -> Float {
        Float(bitPattern: x.bitPattern & UInt32(truncatingIfNeeded: -keep))
    }

    /// Which entries of τᵢ a model keeps.
    enum Keep { case all, none, band(MagnitudeBand), random(density: Float, key: UInt64) }

    /// Generalized task arithmetic (mergekit `generalized_task_arithmetic.py`): sparsify each
    /// τᵢ, weight it, elect signs by mass (TIES) when asked, average with the agreeing weights
    /// when normalising, scale by λ, add to the base.
    static func taskArithmetic(_ x: TensorInputs, base: UnsafePointer<Float>, _ p: TensorParameters, sparsification: MergeMethod.Sparsification?,
                               consensus: Bool, tensor: String, out: MergeOutput) -> KeepStatistics {
        let (pass, statistics) = taskArithmeticPass(x, base: base, p, sparsification: sparsification, consensus: consensus, tensor: tensor, out: out)
        var stats = statistics
        stats.kept = pass.runAll()
        return stats
    }

    /// Task arithmetic's thresholds and rescaling (computed here, both cores) and its merge pass
    /// (returned, to run): the pass's chunks give the entries kept.
    static func taskArithmeticPass(_ x: TensorInputs, base: UnsafePointer<Float>, _ p: TensorParameters, sparsification: MergeMethod.Sparsification?,
                                   consensus: Bool, tensor: String, out: MergeOutput) -> (ChunkedPass, KeepStatistics) {
        let n = x.count, m = x.models.count
        // Nothing to add (every model is the base, or an empty tensor): θ = θ_base. Below this,
        // n > 0 and m > 0, so every scratch buffer is non-empty and its base address non-nil.
        guard n > 0, m > 0 else {
            return (ChunkedPass(chunks: 1) { _ in out.fill(0..<n) { $0.update(from: base, count: n) }; return 0 }, KeepStatistics(total: 0))
        }
        let w = p.weights
        let normalize = p.normalize, rescale = p.rescale
        let lambda = p.lambda
        let seed = p.seed
        // Thresholds for every model, found together in two passes.
        enum Plan { case all, none, top(k: Int), band(bottom: Int, top: Int), random(Float) }
        var plans: [Plan] = []
        var requests: [RadixSelect.Request] = []
        for i in 0..<m {
            let d = p.densities[i]
            guard let s = sparsification, d < 1 else { plans.append(.all); continue }
            switch s {
            case .magnitude:
                if d <= 0 || n == 0 { plans.append(.none); continue }
                let k = max(1, Int(d * Double(n)))
                plans.append(.top(k: k)); requests.append(.init(model: i, rank: n - k))
            case .magnitudeOutliers:
                let target = Int(d * Double(n)), top = Int(p.gammas[i] * Double(n))
                let bottom = max(0, n - target - top)
                if target == 0 { plans.append(.none); continue }
                plans.append(.band(bottom: bottom, top: min(n - 1, bottom + target - 1)))
                requests.append(.init(model: i, rank: bottom)); requests.append(.init(model: i, rank: min(n - 1, bottom + target - 1)))
            case .random:
                plans.append(.random(Float(d)))
            }
        }
        let orders = MagnitudeSelect.orders(ranks: (0..<m).map { i in requests.filter { $0.model == i }.map(\.rank) },
                                            base: base, models: x.models, count: n)
        let keeps: [Keep] = plans.enumerated().map { i, plan in
            switch plan {
            case .all: return .all
            case .none: return .none
            case let .top(k):
                guard let t = orders[i][0] else { return .all }  // every requested rank gets an order
                return .band(MagnitudeBand(top: k, order: t, count: n))
            case let .band(bottom, top):
                guard let l = orders[i][0], let h = orders[i][1] else { return .all }
                return .band(MagnitudeBand(ranks: bottom, top, low: l, high: h))
            case .random(let d): return .random(density: d, key: seed ^ StableHash.fnv1a(tensor) ^ (UInt64(i + 1) << 56))
            }
        }
        /// Every model's trimmer for chunk c.
        func trims(_ c: Int) -> [Trim] {
            keeps.map { k in
                switch k {
                case .all: return Trim(kind: .all)
                case .none: return Trim(kind: .none)
                case let .band(b): return b.trim(chunk: c)
                case let .random(density, key): return Trim(random: density, key: key)
                }
            }
        }
        let chunk = MagnitudeSelect.chunk, chunks = (n + chunk - 1) / chunk
        // L1 rescaling of each sparsified τᵢ (mergekit `rescaled_masked_tensor`): one pass, only when asked.
        var scale = [Float](repeating: 1, count: m)
        var stats = KeepStatistics(total: n * m)
        if rescale, sparsification != nil {
            var partial = [Double](repeating: 0, count: chunks * m * 2)
            partial.withUnsafeMutableBufferPointer { pb in
                let box = UnsafeSendableBox(pb.nonEmptyBase)
                Parallel.forEach(count: chunks) { c in
                    var trim = trims(c)
                    let lo = c * chunk, len = min(n, (c + 1) * chunk) - lo
                    var mask = [UInt8](repeating: 0, count: len)
                    for i in 0..<m {
                        let model = x.models[i]
                        var b = 0.0, a = 0.0
                        switch trim[i].kind {
                        case .random:
                            mask.withUnsafeMutableBufferPointer { mp in
                                _ = alloy_dare_mask(trim[i].key, Int64(lo), len, trim[i].threshold, mp.nonEmptyBase)
                                alloy_l1_sums(model + lo, base + lo, len, mp.nonEmptyBase, &b, &a)
                            }
                        case .all:
                            alloy_l1_sums(model + lo, base + lo, len, nil, &b, &a)
                        case .none, .band:
                            for j in lo..<(lo + len) {
                                let d = model[j] - base[j]
                                b += Double(Swift.abs(d))
                                if trim[i].keep(j, d) { a += Double(Swift.abs(d)) }
                            }
                        }
                        box.value[(c * m + i) * 2] = b
                        box.value[(c * m + i) * 2 + 1] = a
                    }
                }
            }
            for i in 0..<m {
                var before = 0.0, after = 0.0
                for c in 0..<chunks { before += partial[(c * m + i) * 2]; after += partial[(c * m + i) * 2 + 1] }
                if before >= 1e-7, after >= 1e-7 { scale[i] = Float(before / after) }
            }
        }
        stats.rescale = scale.map(Double.init)
        let weightSum = w.reduce(0, +)
        // Without sign election: the sum over the weights' sum (normalising) or over 1.
        let divisor: Float = Swift.abs(weightSum) < 1e-8 ? 1 : weightSum
        // Blocks of each chunk: each model's weighted, trimmed τ into `dw` (one streaming loop per
        // model), then sign election and the mix across models (CKernels), loop by loop — the
        // same arithmetic in the same order as entry by entry, in vectorised loops.
        let pass = ChunkedPass(chunks: chunks) { q in
            let blockSize = 2048
            var trim = trims(q)
            var dw = [Float](repeating: 0, count: m * blockSize)
            var mask = [UInt8](repeating: 0, count: blockSize)
            var scratch = [Float](repeating: 0, count: 3 * blockSize)
            var keptHere = 0
            let first = q * chunk, end = min(n, (q + 1) * chunk)
            var start = first
            out.fill(first..<end) { chunkOut in
            while start < end {
                let len = min(blockSize, end - start)
                let b = base + start
                dw.withUnsafeMutableBufferPointer { dwp in
                    for i in 0..<m {
                        let mp = x.models[i] + start, dst = dwp.nonEmptyBase + i * blockSize
                        let si = scale[i], wi = w[i]
                        switch trim[i].kind {
                        case .all:
                            alloy_trim_mask(mp, b, len, si, wi, nil, dst)
                            keptHere += len
                        case .none:
                            for j in 0..<len { dst[j] = 0 }
                        case .band:
                            // Branch-free (entries are kept at random), in CKernels' vector loop.
                            var ties: Int32 = 0
                            let inside = alloy_trim_band(mp, b, len, trim[i].lo, trim[i].hi, si, wi, dst, &ties)
                            if ties == 0 { keptHere += inside; continue }
                            // An entry at a boundary value: decide its ties in index order.
                            for j in 0..<len {
                                let d = mp[j] - b[j]
                                if trim[i].keep(start + j, d) { dst[j] = d * si * wi; keptHere += 1 } else { dst[j] = 0 }
                            }
                        case .random:
                            keptHere += mask.withUnsafeMutableBufferPointer { kp in
                                let ones = alloy_dare_mask(trim[i].key, Int64(start), len, trim[i].threshold, kp.nonEmptyBase)
                                alloy_trim_mask(mp, b, len, si, wi, kp.nonEmptyBase, dst)
                                return ones
                            }
                        }
                    }
                    scratch.withUnsafeMutableBufferPointer { sp in
                        alloy_gta_mix(dwp.nonEmptyBase, blockSize, m, w, b, len, consensus ? 1 : 0, divisor, normalize ? 1 : 0, lambda,
                                      chunkOut + (start - first), sp.nonEmptyBase)
                    }
                }
                start += len
            }
            }
            return keptHere
        }
        return (pass, stats)
    }

    /// Spherical interpolation from the base (t = 0) to the other model (t = 1), over the whole
    /// tensor; linear when the two are (anti)parallel (|cos| > 0.9995), as mergekit.
    static func slerp(_ x: TensorInputs, base a: UnsafePointer<Float>, t: Double, out: UnsafeMutablePointer<Float>) {
        let b = x.models[0], n = x.count
        var na = 0.0, nb = 0.0
        for j in 0..<n { na += Double(a[j]) * Double(a[j]); nb += Double(b[j]) * Double(b[j]) }
        na = na.squareRoot(); nb = nb.squareRoot()
        if na <= 1e-8 { na = 1 }
        if nb <= 1e-8 { nb = 1 }
        var dot = 0.0
        for j in 0..<n { dot += (Double(a[j]) / na) * (Double(b[j]) / nb) }
        dot = min(1, max(-1, dot))
        let ca: Float, cb: Float
        if n == 0 || Swift.abs(dot) > 0.9995 {
            ca = Float(1 - t); cb = Float(t)
        } else {
            let theta = acos(dot), s = sin(theta)
            ca = Float(sin((1 - t) * theta) / s); cb = Float(sin(t * theta) / s)
        }
        for j in 0..<n { out[j] = ca * a[j] + cb * b[j] }
    }

    /// Model Stock (Jang et al. 2024): interpolate between the base and the models' average by
    /// t = k·cos/(1 + (k−1)·cos), cos the mean pairwise cosine of the models' offsets.
    static func modelStock(_ x: TensorInputs, base: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
        let m = x.models.count, n = x.count
        var cosines: [Double] = []
        for i in 0..<m {
            for k in (i + 1)..<m {
                var dot = 0.0, ni = 0.0, nk = 0.0
                for j in 0..<n {
                    let a = Double(x.models[i][j] - base[j]), b = Double(x.models[k][j] - base[j])
                    dot += a * b; ni += a * a; nk += b * b
                }
                cosines.append(min(1, max(-1, dot / max(ni.squareRoot() * nk.squareRoot(), 1e-6))))
            }
        }
        let cos = cosines.reduce(0, +) / Double(cosines.count)
        let den = 1 + Double(m - 1) * cos
        let t = Float(Swift.abs(den) < 1e-6 ? 0 : Double(m) * cos / den)
        for j in 0..<n {
            var avg: Float = 0
            for i in 0..<m { avg += x.models[i][j] }
            avg /= Float(m)
            out[j] = t * avg + (1 - t) * base[j]
        }
    }
}
