import Foundation

/// Multinomial logistic regression with an L2 penalty, as scikit-learn's
/// `LogisticRegression(C=…)` defines it: minimise C·Σᵢ −log softmax(W xᵢ + b)[yᵢ] + ½‖W‖²
/// (the intercept is not penalised). Solved by L-BFGS (Nocedal, 1980) in double precision.
public struct LogisticRegression: Sendable {
    public let classes: [String]
    public let dimension: Int
    /// classes × dimension, row-major.
    public let weights: [Double]
    public let bias: [Double]
    public let iterations: Int

    public init(features: [[Float]], labels: [String], c: Double = 1, maxIterations: Int = 500, tolerance: Double = 1e-8) {
        // An invariant of the callers: the probe fits on ≥ 1 shot per label of a non-empty task
        // (Workbench refuses shots or seeds below 1; TaskData refuses empty splits).
        precondition(!features.isEmpty && features.count == labels.count)
        classes = Array(Set(labels)).sorted()
        let d = features[0].count, k = classes.count, n = features.count
        dimension = d
        let index = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, $0) })
        let y = labels.map { index[$0]! }
        let x = features.flatMap { $0.map(Double.init) }
        // Parameters θ = [W (k×d), b (k)].
        func objective(_ theta: [Double], _ grad: inout [Double]) -> Double {
            grad = [Double](repeating: 0, count: theta.count)
            var loss = 0.0
            var z = [Double](repeating: 0, count: k)
            for i in 0..<n {
                let xi = i * d
                for c in 0..<k {
                    var s = theta[k * d + c]
                    let w = c * d
                    for j in 0..<d { s += theta[w + j] * x[xi + j] }
                    z[c] = s
                }
                let m = z.max()!
                var sum = 0.0
                for c in 0..<k { z[c] = exp(z[c] - m); sum += z[c] }
                loss += -log(z[y[i]] / sum)
                for c in 0..<k {
                    let g = c == y[i] ? z[c] / sum - 1 : z[c] / sum
                    let w = c * d
                    for j in 0..<d { grad[w + j] += g * x[xi + j] }
                    grad[k * d + c] += g
                }
            }
            var reg = 0.0
            for t in 0..<(k * d) { reg += theta[t] * theta[t]; grad[t] = c * grad[t] + theta[t] }
            for t in (k * d)..<(k * d + k) { grad[t] *= c }
            return c * loss + 0.5 * reg
        }
        let (theta, iters) = LBFGS.minimize(count: k * d + k, maxIterations: maxIterations, tolerance: tolerance, objective)
        weights = Array(theta[0..<(k * d)])
        bias = Array(theta[(k * d)...])
        iterations = iters
    }

    public func probabilities(_ x: [Float]) -> [Double] {
        var z = (0..<classes.count).map { c -> Double in
            var s = bias[c]
            for j in 0..<dimension { s += weights[c * dimension + j] * Double(x[j]) }
            return s
        }
        let m = z.max()!
        var sum = 0.0
        for c in z.indices { z[c] = exp(z[c] - m); sum += z[c] }
        return z.map { $0 / sum }
    }

    public func predict(_ x: [Float]) -> String {
        let p = probabilities(x)
        return classes[p.indices.max { p[$0] < p[$1] }!]
    }
}

/// Limited-memory BFGS with a backtracking (Armijo) line search.
enum LBFGS {
    static func minimize(count: Int, memory: Int = 10, maxIterations: Int, tolerance: Double,
                         _ f: ([Double], inout [Double]) -> Double) -> ([Double], Int) {
        var x = [Double](repeating: 0, count: count)
        var g = [Double](repeating: 0, count: count)
        var fx = f(x, &g)
        var s: [[Double]] = [], y: [[Double]] = [], rho: [Double] = []
        func dot(_ a: [Double], _ b: [Double]) -> Double { var r = 0.0; for i in a.indices { r += a[i] * b[i] }; return r }
        var iter = 0
        while iter < maxIterations {
            iter += 1
            let gnorm = dot(g, g).squareRoot()
            if gnorm < tolerance * max(1, dot(x, x).squareRoot()) { break }
            // Two-loop recursion: d = −H·g.
            var q = g
            var alpha = [Double](repeating: 0, count: s.count)
            for i in stride(from: s.count - 1, through: 0, by: -1) {
                alpha[i] = rho[i] * dot(s[i], q)
                for j in q.indices { q[j] -= alpha[i] * y[i][j] }
            }
            if let ls = s.last, let ly = y.last {
                let gamma = dot(ls, ly) / dot(ly, ly)
                for j in q.indices { q[j] *= gamma }
            } else {
                let scale = 1 / max(gnorm, 1e-12)
                for j in q.indices { q[j] *= scale }
            }
            for i in 0..<s.count {
                let beta = rho[i] * dot(y[i], q)
                for j in q.indices { q[j] += s[i][j] * (alpha[i] - beta) }
            }
            var d = q.map { -$0 }
            var slope = dot(g, d)
            if slope >= 0 { d = g.map { -$0 }; slope = dot(g, d); s.removeAll(); y.removeAll(); rho.removeAll() }
            var step = 1.0
            var xn = x, gn = g, fn = fx
            var accepted = false
            for _ in 0..<40 {
                for j in x.indices { xn[j] = x[j] + step * d[j] }
                fn = f(xn, &gn)
                if fn <= fx + 1e-4 * step * slope { accepted = true; break }
                step *= 0.5
            }
            if !accepted { break }
            let sk = zip(xn, x).map { $0 - $1 }, yk = zip(gn, g).map { $0 - $1 }
            let sy = dot(sk, yk)
            if sy > 1e-12 {
                s.append(sk); y.append(yk); rho.append(1 / sy)
                if s.count > memory { s.removeFirst(); y.removeFirst(); rho.removeFirst() }
            }
            let decrease = fx - fn
            x = xn; g = gn; fx = fn
            if decrease < 1e-14 * max(1, abs(fx)) { break }
        }
        return (x, iter)
    }
}
