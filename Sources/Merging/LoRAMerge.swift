import Foundation
import Formats
import Tensors

/// Merges LoRA adapters in LoRA space, as PEFT's `add_weighted_adapter` does
/// (https://github.com/huggingface/peft, `tuners/lora/model.py`, `utils/merge_utils.py`):
/// - `linear`, `ties`, `dareLinear`, `dareTies`: A and B are combined separately (equal ranks);
///   A gets √|w·s|·sign(w·s) and B gets √|w·s| (s the adapter's α/r scale). TIES elects signs on
///   the trimmed, unweighted factors and averages agreeing entries by count (PEFT's
///   `disjoint_merge`); DARE drops with probability 1 − density and rescales by 1/density.
/// - `cat`: stacks ranks: A = [wᵢ·sᵢ·Aᵢ], B = [Bᵢ].
/// - `svd`: truncated SVD of Σ wᵢ·sᵢ·Bᵢ·Aᵢ to `rank`: A = Vh[:r], B = U[:, :r]·S[:r].
/// The merged adapter's scale is 1 (PEFT sets its α to its r).
public enum LoRAMerge {
    public enum Method { case linear, ties(density: Double), dareLinear(density: Double, seed: UInt64), dareTies(density: Double, seed: UInt64), cat, svd(rank: Int) }

    public struct Factors {
        public let a: [Float], b: [Float]
        public let rank: Int, inFeatures: Int, outFeatures: Int
        public let scale: Float

        /// Rank-`rank` factors of the m×n matrix `delta` by truncated SVD (Eckart–Young):
        /// A = Vh[:r], B = U[:, :r]·S[:r], scale 1; with the fraction of ‖delta‖²_F they keep.
        static func truncatedSVD(_ delta: [Float], rows m: Int, cols n: Int, rank: Int, name: String) throws -> (Factors, energyKept: Double) {
            guard let svd = SVD.thin(delta, rows: m, cols: n) else { throw MergeError(description: "\(name): SVD did not converge") }
            let r = min(rank, svd.k)
            var a = [Float](repeating: 0, count: r * n), b = [Float](repeating: 0, count: m * r)
            for k in 0..<r { for j in 0..<n { a[k * n + j] = svd.vh[k * n + j] } }
            for o in 0..<m { for k in 0..<r { b[o * r + k] = svd.u[o * svd.k + k] * svd.s[k] } }
            let total = svd.s.reduce(0.0) { $0 + Double($1) * Double($1) }
            let kept = svd.s.prefix(r).reduce(0.0) { $0 + Double($1) * Double($1) }
            return (Factors(a: a, b: b, rank: r, inFeatures: n, outFeatures: m, scale: 1), total > 0 ? kept / total : 1)
        }
    }

    public struct MergeError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Merges `adapters` module by module; a module present in only some adapters merges those.
    public static func merge(_ adapters: [PEFTAdapter], weights: [Double], method: Method) throws -> [String: Factors] {
        guard adapters.count == weights.count, !adapters.isEmpty else { throw MergeError(description: "one weight per adapter is needed") }
        var modules = [String: [(PEFTAdapter.Module, Double)]]()
        for (ad, w) in zip(adapters, weights) { for m in ad.modules { modules[m.path, default: []].append((m, w)) } }
        var out: [String: Factors] = [:]
        for (path, parts) in modules {
            let inF = parts[0].0.a.shape.dims[1], outF = parts[0].0.b.shape.dims[0]
            for (m, _) in parts where m.a.shape.dims[1] != inF || m.b.shape.dims[0] != outF {
                throw MergeError(description: "module \(path): adapters disagree on its shape (\(m.b.shape.dims[0])×\(m.a.shape.dims[1]) vs \(outF)×\(inF))")
            }
            let As = try parts.map { try $0.0.a.floats() }, Bs = try parts.map { try $0.0.b.floats() }
            let ranks = parts.map { $0.0.a.shape.dims[0] }
            let ws = parts.map { Float($0.1) * $0.0.scale }
            switch method {
            case .cat:
                var a: [Float] = [], b = [Float](repeating: 0, count: outF * ranks.reduce(0, +))
                let total = ranks.reduce(0, +)
                var col = 0
                for (i, r) in ranks.enumerated() {
                    a += As[i].map { $0 * ws[i] }
                    for o in 0..<outF { for c in 0..<r { b[o * total + col + c] = Bs[i][o * r + c] } }
                    col += r
                }
                out[path] = Factors(a: a, b: b, rank: total, inFeatures: inF, outFeatures: outF, scale: 1)
            case .svd(let rank):
                var delta = [Float](repeating: 0, count: outF * inF)
                for i in parts.indices {
                    delta.withUnsafeMutableBufferPointer { d in
                        guard let p = d.baseAddress else { return }
                        LowRank.add(into: p, b: Bs[i], a: As[i], rows: outF, cols: inF, rank: ranks[i], scale: ws[i])
                    }
                }
                out[path] = try Factors.truncatedSVD(delta, rows: outF, cols: inF, rank: rank, name: "module \(path)").0
            default:
                guard Set(ranks).count == 1 else { throw MergeError(description: "module \(path): \(method) needs equal ranks, got \(ranks)") }
                let wA = ws.map { ($0 >= 0 ? 1 : -1) * abs($0).squareRoot() }, wB = ws.map { abs($0).squareRoot() }
                let a = combine(As, wA, method, stream: StableHash.fnv1a(path) << 1)
                let b = combine(Bs, wB, method, stream: StableHash.fnv1a(path) << 1 | 1)
                out[path] = Factors(a: a, b: b, rank: ranks[0], inFeatures: inF, outFeatures: outF, scale: 1)
            }
        }
        return out
    }

    /// PEFT's `task_arithmetic` / `ties` / `dare_*` on one factor across adapters.
    static func combine(_ xs: [[Float]], _ w: [Float], _ method: Method, stream: UInt64) -> [Float] {
        let n = xs[0].count
        var pruned = xs
        switch method {
        case .ties(let d):
            for i in pruned.indices where d < 1 {
                let k = Int(d * Double(n))
                let order = pruned[i].indices.sorted { abs(pruned[i][$0]) > abs(pruned[i][$1]) }
                var keep = [Bool](repeating: false, count: n)
                for j in order.prefix(k) { keep[j] = true }
                for j in 0..<n where !keep[j] { pruned[i][j] = 0 }
            }
        case .dareLinear(let d, let seed), .dareTies(let d, let seed):
            for i in pruned.indices where d < 1 {
                let key = seed ^ stream ^ (UInt64(i + 1) << 56)
                for j in 0..<n { pruned[i][j] = MergeKernels.uniform(key, j) < Float(d) ? pruned[i][j] / Float(d) : 0 }
            }
        default: break
        }
        var out = [Float](repeating: 0, count: n)
        switch method {
        case .ties, .dareTies:
            for j in 0..<n {
                var total: Float = 0
                for i in pruned.indices { total += pruned[i][j] }
                let majority: Float = total >= 0 ? 1 : -1
                var s: Float = 0, count: Float = 0
                for i in pruned.indices {
                    let v = pruned[i][j], sign: Float = v > 0 ? 1 : (v < 0 ? -1 : 0)
                    if sign == majority { s += v * w[i]; count += 1 }
                }
                out[j] = s / max(count, 1)
            }
        default:
            for j in 0..<n { for i in pruned.indices { out[j] += pruned[i][j] * w[i] } }
        }
        return out
    }

    /// Writes merged factors as a PEFT folder (r = α = rank, so the scale is 1).
    public static func writePEFT(_ factors: [String: Factors], to dir: String, targetModules: [String]) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var tensors: [(String, Tensor)] = []
        for (path, f) in factors {
            tensors.append(("base_model.model.\(path).lora_A.weight", try Tensor(f.a, shape: Shape([f.rank, f.inFeatures]))))
            tensors.append(("base_model.model.\(path).lora_B.weight", try Tensor(f.b, shape: Shape([f.outFeatures, f.rank]))))
        }
        try SafetensorsWriter.write(tensors, to: (dir as NSString).appendingPathComponent("adapter_model.safetensors"))
        let rank = factors.values.map(\.rank).max() ?? 0
        var pattern: [String: Int] = [:]
        for (p, f) in factors where f.rank != rank { pattern[p] = f.rank }
        let cfg: [String: Any] = ["peft_type": "LORA", "r": rank, "lora_alpha": rank, "target_modules": targetModules.sorted(),
                                  "rank_pattern": pattern, "alpha_pattern": pattern, "lora_dropout": 0.0, "bias": "none",
                                  "fan_in_fan_out": false, "use_rslora": false, "modules_to_save": NSNull(), "task_type": NSNull()]
        let data = try JSONSerialization.data(withJSONObject: cfg, options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write([UInt8](data), to: (dir as NSString).appendingPathComponent("adapter_config.json"))
    }
}
