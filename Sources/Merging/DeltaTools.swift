import Foundation
import Formats
import Tensors

/// Turning a fine-tuned model into compact deltas: LoRA extraction by truncated SVD
/// (Hu et al. 2022's low-rank form, fitted post hoc), and diff-pruned sparse deltas
/// (Guo et al. 2021, https://arxiv.org/abs/2012.07463; Model Breadcrumbs, Davari &
/// Belilovsky 2024, https://arxiv.org/abs/2312.06795, for outlier removal).
public enum DeltaTools {
    public struct TensorReport: Sendable {
        public let name: String
        public let energyKept: Double   // Σ kept² / Σ all² of the delta
        public let kept: Int
        public let total: Int
    }

    static func deltas(_ ft: WeightSource, _ base: WeightSource) throws -> [(String, [Float], Shape)] {
        var out: [(String, [Float], Shape)] = []
        for e in base.entries where e.info.dtype.isFloatingPoint {
            guard let info = ft.info(e.name) else { continue }
            guard info.shape == e.info.shape else {
                throw LoRAMerge.MergeError(description: "tensor \(e.name): \(ft.path) has shape \(info.shape), the base \(e.info.shape)")
            }
            let a = try ft.tensor(e.name).floats(), b = try base.tensor(e.name).floats()
            var d = a
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in d.withUnsafeMutableBufferPointer { dp in
                guard let x = ap.baseAddress, let y = bp.baseAddress, let z = dp.baseAddress else { return }  // empty tensor
                Kernels.subtract(x, y, into: z, count: a.count)
            } } }
            out.append((e.name, d, e.info.shape))
        }
        return out
    }

    /// Rank-`rank` LoRA factors of every 2-D non-embedding delta (A = Vh[:r], B = U[:, :r]·S, scale 1).
    public static func extractLoRA(fineTuned: WeightSource, base: WeightSource, rank: Int) throws -> ([String: LoRAMerge.Factors], [TensorReport]) {
        var factors: [String: LoRAMerge.Factors] = [:], reports: [TensorReport] = []
        for (name, d, shape) in try deltas(fineTuned, base) where shape.rank == 2 && !name.contains("embeddings") && name.hasSuffix(".weight") {
            let (m, n) = (shape.dims[0], shape.dims[1])
            let (f, energy) = try LoRAMerge.Factors.truncatedSVD(d, rows: m, cols: n, rank: rank, name: "tensor \(name)")
            factors[String(name.dropLast(".weight".count))] = f
            reports.append(TensorReport(name: name, energyKept: energy, kept: f.rank * (m + n), total: m * n))
        }
        return (factors, reports)
    }

    public enum SparsifyMethod: String, CaseIterable, Sendable { case magnitude, random, breadcrumbs }

    /// A diff-pruned delta: per tensor (or per row), keep the top `density` of |δ| (magnitude),
    /// a random `density` (seeded), or drop the top `gamma` as outliers and keep the next
    /// `density` (breadcrumbs). Returns the sparse deltas (zeros elsewhere) and what was kept.
    public static func sparsify(fineTuned: WeightSource, base: WeightSource, method: SparsifyMethod, density: Double,
                                gamma: Double = 0.01, perRow: Bool = false, seed: UInt64 = 0) throws -> ([(String, Tensor)], [TensorReport]) {
        try sparsify(deltas: deltas(fineTuned, base), method: method, density: density, gamma: gamma, perRow: perRow, seed: seed)
    }

    /// `sparsify` over deltas already computed, as (name, values, shape).
    public static func sparsify(deltas: [(String, [Float], Shape)], method: SparsifyMethod, density: Double,
                                gamma: Double = 0.01, perRow: Bool = false, seed: UInt64 = 0) throws -> ([(String, Tensor)], [TensorReport]) {
        var out: [(String, Tensor)] = [], reports: [TensorReport] = []
        for (name, d, shape) in deltas {
            var kept = [Float](repeating: 0, count: d.count)
            var count = 0
            if !perRow, method != .random, d.count > 0 {
                // Whole tensor: exact thresholds by radix select (O(n)) instead of a sort.
                let n = d.count, k = max(1, Int(density * Double(n))), top = method == .breadcrumbs ? Int(gamma * Double(n)) : 0
                let hiRank = n - 1 - top, loRank = max(0, hiRank - k + 1)
                let zeros = [Float](repeating: 0, count: n)
                let (lo, hi): (Float, Float) = d.withUnsafeBufferPointer { dp in zeros.withUnsafeBufferPointer { zp in
                    let v = RadixSelect.select([.init(model: 0, rank: loRank), .init(model: 0, rank: max(loRank, hiRank))],
                                               base: zp.nonEmptyBase, models: [dp.nonEmptyBase], count: n)
                    return (v[0], v[1])
                } }
                for j in 0..<n where d[j] != 0 && abs(d[j]) >= lo && abs(d[j]) <= hi && count < k {
                    kept[j] = d[j]; count += 1
                }
            } else {
                let rowLen = perRow && shape.rank >= 1 ? max(1, shape.dims.last ?? 1) : d.count
                for start in stride(from: 0, to: d.count, by: max(1, rowLen)) {
                    let row = Array(d[start..<min(d.count, start + rowLen)])
                    let n = row.count
                    var keep = [Bool](repeating: false, count: n)
                    switch method {
                    case .random:
                        let key = seed ^ StableHash.fnv1a(name)
                        for j in 0..<n { keep[j] = MergeKernels.uniform(key, start + j) < Float(density) }
                    case .magnitude, .breadcrumbs:
                        let order = row.indices.sorted { abs(row[$0]) > abs(row[$1]) }
                        let top = method == .breadcrumbs ? Int(gamma * Double(n)) : 0
                        let k = max(1, Int(density * Double(n)))
                        for j in order.dropFirst(top).prefix(k) { keep[j] = true }
                    }
                    for j in 0..<n where keep[j] && row[j] != 0 { kept[start + j] = row[j]; count += 1 }
                }
            }
            let energy = d.reduce(0.0) { $0 + Double($1) * Double($1) }
            let keptEnergy = kept.reduce(0.0) { $0 + Double($1) * Double($1) }
            out.append((name, try Tensor(kept, shape: shape)))
            reports.append(TensorReport(name: name, energyKept: energy > 0 ? keptEnergy / energy : 1, kept: count, total: d.count))
        }
        return (out, reports)
    }
}
