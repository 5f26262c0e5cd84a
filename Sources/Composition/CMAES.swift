import Foundation
import Tensors

/// The covariance matrix adaptation evolution strategy, (μ/μ_w, λ)-CMA-ES with rank-one and
/// rank-μ updates and cumulative step-size adaptation, following Hansen, "The CMA Evolution
/// Strategy: A Tutorial" (2016), with its default parameters. Gradient-free: LoraHub (Huang et
/// al., 2023) searches its per-module weights the same way.
public struct CMAES {
    public let dimension: Int
    public let populationSize: Int
    public private(set) var mean: [Double]
    public private(set) var sigma: Double
    let mu: Int
    let weights: [Double]
    let mueff, cc, cs, c1, cmu, damps, chiN: Double
    var C: [[Double]], B: [[Double]], D: [Double]
    var pc: [Double], ps: [Double]
    var generation = 0
    var rng: SplitMix
    var lastZ: [[Double]] = []

    public init(mean: [Double], sigma: Double, seed: UInt64, populationSize requested: Int? = nil) {
        let n = mean.count
        dimension = n
        self.mean = mean
        self.sigma = sigma
        let lambda = requested ?? 4 + Int(3 * log(Double(n)))
        populationSize = lambda
        mu = lambda / 2
        let raw = (0..<mu).map { log(Double(lambda + 1) / 2) - log(Double($0 + 1)) }
        let sum = raw.reduce(0, +)
        weights = raw.map { $0 / sum }
        mueff = 1 / weights.reduce(0) { $0 + $1 * $1 }
        let nd = Double(n)
        cc = (4 + mueff / nd) / (nd + 4 + 2 * mueff / nd)
        cs = (mueff + 2) / (nd + mueff + 5)
        c1 = 2 / ((nd + 1.3) * (nd + 1.3) + mueff)
        cmu = min(1 - c1, 2 * (mueff - 2 + 1 / mueff) / ((nd + 2) * (nd + 2) + mueff))
        damps = 1 + 2 * max(0, ((mueff - 1) / (nd + 1)).squareRoot() - 1) + cs
        chiN = nd.squareRoot() * (1 - 1 / (4 * nd) + 1 / (21 * nd * nd))
        C = (0..<n).map { i in (0..<n).map { $0 == i ? 1 : 0 } }
        B = C
        D = [Double](repeating: 1, count: n)
        pc = [Double](repeating: 0, count: n)
        ps = [Double](repeating: 0, count: n)
        rng = SplitMix(seed: seed)
    }

    mutating func gaussian() -> Double {
        // Box–Muller from two uniforms in (0, 1].
        let u1 = (Double(rng.next() >> 11) + 1) / 9007199254740992.0, u2 = Double(rng.next() >> 11) / 9007199254740992.0
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }

    /// λ candidate points x = m + σ·B·D·z, z ~ N(0, I).
    public mutating func ask() -> [[Double]] {
        let n = dimension
        lastZ = (0..<populationSize).map { _ in (0..<n).map { _ in gaussian() } }
        return lastZ.map { z in
            (0..<n).map { i in mean[i] + sigma * (0..<n).reduce(0) { $0 + B[i][$1] * D[$1] * z[$1] } }
        }
    }

    /// Updates the distribution from the candidates' objective values (lower is better).
    public mutating func tell(_ xs: [[Double]], _ fs: [Double]) {
        let n = dimension
        let order = fs.indices.sorted { fs[$0] < fs[$1] }
        let old = mean
        mean = (0..<n).map { i in (0..<mu).reduce(0) { $0 + weights[$1] * xs[order[$1]][i] } }
        let y = (0..<n).map { (mean[$0] - old[$0]) / sigma }
        // C^{-1/2}·y = B·D⁻¹·Bᵀ·y
        let bty = (0..<n).map { j in (0..<n).reduce(0) { $0 + B[$1][j] * y[$1] } }
        let invsq = (0..<n).map { i in (0..<n).reduce(0) { $0 + B[i][$1] * bty[$1] / D[$1] } }
        for i in 0..<n { ps[i] = (1 - cs) * ps[i] + (cs * (2 - cs) * mueff).squareRoot() * invsq[i] }
        generation += 1
        let psNorm = ps.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let hsig = psNorm / (1 - pow(1 - cs, 2 * Double(generation))).squareRoot() / chiN < 1.4 + 2 / (Double(n) + 1)
        for i in 0..<n { pc[i] = (1 - cc) * pc[i] + (hsig ? (cc * (2 - cc) * mueff).squareRoot() * y[i] : 0) }
        let artmp = (0..<mu).map { k in (0..<n).map { (xs[order[k]][$0] - old[$0]) / sigma } }
        for i in 0..<n {
            for j in 0...i {
                var rankMu = 0.0
                for k in 0..<mu { rankMu += weights[k] * artmp[k][i] * artmp[k][j] }
                let v = (1 - c1 - cmu) * C[i][j] + c1 * (pc[i] * pc[j] + (hsig ? 0 : cc * (2 - cc) * C[i][j])) + cmu * rankMu
                C[i][j] = v; C[j][i] = v
            }
        }
        sigma *= exp((cs / damps) * (psNorm / chiN - 1))
        (D, B) = Self.eigen(C)
        D = D.map { max($0, 1e-20).squareRoot() }
    }

    /// Eigenvalues and eigenvectors (columns) of a symmetric matrix, by cyclic Jacobi rotations.
    static func eigen(_ m: [[Double]]) -> ([Double], [[Double]]) {
        let n = m.count
        var a = m
        var v = (0..<n).map { i in (0..<n).map { $0 == i ? 1.0 : 0.0 } }
        for _ in 0..<100 {
            var off = 0.0
            for i in 0..<n { for j in 0..<n where i != j { off += a[i][j] * a[i][j] } }
            if off < 1e-22 { break }
            for p in 0..<n {
                for q in (p + 1)..<n where abs(a[p][q]) > 1e-300 {
                    let theta = (a[q][q] - a[p][p]) / (2 * a[p][q])
                    let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {
                        let akp = a[k][p], akq = a[k][q]
                        a[k][p] = c * akp - s * akq; a[k][q] = s * akp + c * akq
                    }
                    for k in 0..<n {
                        let apk = a[p][k], aqk = a[q][k]
                        a[p][k] = c * apk - s * aqk; a[q][k] = s * apk + c * aqk
                    }
                    for k in 0..<n {
                        let vkp = v[k][p], vkq = v[k][q]
                        v[k][p] = c * vkp - s * vkq; v[k][q] = s * vkp + c * vkq
                    }
                }
            }
        }
        return ((0..<n).map { a[$0][$0] }, v)
    }

    /// Minimises `f` from `start` with at most `budget` evaluations; returns the best point and value.
    public static func minimize(start: [Double], sigma: Double, budget: Int, seed: UInt64, populationSize: Int? = nil,
                                bounds: ClosedRange<Double>? = nil, _ f: ([Double]) throws -> Double) rethrows -> (x: [Double], value: Double, evaluations: Int) {
        var es = CMAES(mean: start, sigma: sigma, seed: seed, populationSize: populationSize)
        var best = (x: start, value: try f(start)), used = 1
        while used + es.populationSize <= budget {
            var xs = es.ask()
            if let bounds { xs = xs.map { $0.map { min(max($0, bounds.lowerBound), bounds.upperBound) } } }
            let fs = try xs.map { try f($0) }
            used += xs.count
            for (x, v) in zip(xs, fs) where v < best.value { best = (x, v) }
            es.tell(xs, fs)
        }
        return (best.x, best.value, used)
    }
}
