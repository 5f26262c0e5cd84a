import Encoder
import Evaluation
import Foundation
import Tensors

/// Learned composition and expert retrieval over a workbench's experts.
public enum Composer {
    public struct Learned: Sendable {
        public let weights: [Double]
        public let loss: Double
        public let evaluations: Int
        public let examples: Int
    }

    /// LoraHub-style learned composition (Huang et al., 2023): per-expert weights found by
    /// CMA-ES, gradient-free, on `shots` labelled training examples per label, minimising the
    /// few-shot loss plus `l1`·mean|wᵢ|, with weights in [−1.5, 1.5] starting from 0 (the base).
    /// Unlike LoraHub, which mixes the factors (Â = Σ wᵢAᵢ, B̂ = Σ wᵢBᵢ, so B̂Â has cross terms
    /// BᵢAⱼ), the deltas are weighted (ΔW = Σ wᵢ BᵢAᵢ): the result is a task-arithmetic recipe
    /// that `alloy merge` reproduces exactly and that works for any kind of expert.
    /// The loss is the task's head cross-entropy when an expert head exists (a seen task), else
    /// the leave-one-out cross-entropy of a nearest-prototype classifier on normalised embeddings
    /// (Snell et al., 2017) — a held-out task has no head to train through.
    public static func learn(_ bench: Workbench, task: String, shots: Int = 5, budget: Int = 40, l1: Double = 0.05,
                             seed: UInt64 = 0) throws -> Learned {
        guard !bench.experts.isEmpty else { throw TaskError(path: task, line: nil, reason: "learned composition needs at least one expert") }
        guard shots >= 1, budget >= 1 else {
            throw TaskError(path: task, line: nil, reason: "learned composition needs at least one shot per label and one evaluation (shots \(shots), budget \(budget))")
        }
        let train = try bench.data(task, split: "train")
        let idx = ProbeEvaluation.sample(train, shots: shots, seed: 1000 + seed)
        let texts = idx.map { train.texts[$0] }, labels = idx.map { train.labels[$0] }
        let head = bench.expert(for: task)?.head
        var evals = 0
        let n = bench.experts.count
        let result = try CMAES.minimize(start: [Double](repeating: 0, count: n), sigma: 0.5, budget: budget, seed: seed,
                                        populationSize: max(6, 4 + Int(3 * log(Double(n)))), bounds: -1.5...1.5) { w -> Double in
            evals += 1
            bench.progress?("learning weights · \(task)", evals, budget)
            let emb = bench.embed(texts, bench.composition(w, name: "candidate"), pooling: head?.pooling)
            let loss = head.map { headLoss($0, emb, labels) } ?? prototypeLoss(emb, labels)
            return loss + l1 * w.reduce(0) { $0 + abs($1) } / Double(max(1, w.count))
        }
        return Learned(weights: result.x, loss: result.value, evaluations: result.evaluations, examples: texts.count)
    }

    static func headLoss(_ head: ClassificationHead, _ emb: [[Float]], _ labels: [String]) -> Double {
        var loss = 0.0
        for (e, l) in zip(emb, labels) {
            let p = head.probabilities(e)
            loss -= log(max(1e-12, Double(p[head.labels.firstIndex(of: l) ?? 0])))
        }
        return loss / Double(emb.count)
    }

    static func prototypeLoss(_ emb: [[Float]], _ labels: [String], temperature: Double = 0.05) -> Double {
        let u = emb.map { v -> [Double] in let n = max(1e-12, Double(v.reduce(0) { $0 + $1 * $1 }.squareRoot())); return v.map { Double($0) / n } }
        let classes = Array(Set(labels)).sorted()
        let d = u[0].count
        var sums = [String: [Double]](), counts = [String: Int]()
        for (v, l) in zip(u, labels) {
            sums[l, default: [Double](repeating: 0, count: d)] = zip(sums[l] ?? [Double](repeating: 0, count: d), v).map { $0 + $1 }
            counts[l, default: 0] += 1
        }
        var loss = 0.0
        for (v, l) in zip(u, labels) {
            var logits: [Double] = []
            for c in classes {
                var proto = sums[c, default: []], k = counts[c, default: 0]  // classes come from these labels
                if c == l { proto = zip(proto, v).map { $0 - $1 }; k -= 1 }   // leave this example out
                guard k > 0 else { logits.append(-1e9); continue }
                let pn = max(1e-12, proto.reduce(0) { $0 + $1 * $1 }.squareRoot())
                logits.append(zip(proto, v).reduce(0) { $0 + $1.0 * $1.1 } / pn / temperature)
            }
            let m = logits.max()!
            let lse = m + log(logits.reduce(0) { $0 + exp($1 - m) })
            loss += lse - logits[classes.firstIndex(of: l)!]
        }
        return loss / Double(u.count)
    }

    /// Expert retrieval as in ELM (Jang et al., 2023, "Exploring the Benefits of Training Expert
    /// Language Models over Instruction Tuning"): embed up to `perExpert` training inputs of each
    /// expert's task and the task's first `queries` unlabelled test inputs with the base encoder;
    /// each query votes for the expert owning its nearest training input (dot product of the
    /// normalised embeddings); experts are ranked by votes, ties by mean best similarity.
    public static func retrieve(_ bench: Workbench, task: String, queries: Int = 32, perExpert: Int = 100) throws -> [(expert: String, score: Double)] {
        guard !bench.experts.isEmpty else { throw TaskError(path: task, line: nil, reason: "retrieval needs at least one expert") }
        let base = Variant(name: "base")
        func unit(_ e: [[Float]]) -> [[Float]] { e.map { v in let n = max(1e-12, v.reduce(0) { $0 + $1 * $1 }.squareRoot()); return v.map { $0 / n } } }
        let q = unit(bench.embed(Array(try bench.data(task, split: "test").texts.prefix(queries)), base))
        let keys = try bench.experts.map { unit(try expertKeys(bench, $0, perExpert: perExpert)) }
        var votes = [Int](repeating: 0, count: keys.count), similarity = [Double](repeating: 0, count: keys.count)
        for v in q {
            let best = keys.map { k in Double(k.map { zip($0, v).reduce(0) { $0 + $1.0 * $1.1 } }.max() ?? -1) }
            votes[best.indices.max { best[$0] < best[$1] }!] += 1
            for i in best.indices { similarity[i] += best[i] / Double(q.count) }
        }
        // Score: the share of votes, plus a tie-breaker below one vote.
        return bench.experts.indices.map { (bench.experts[$0].name, Double(votes[$0]) / Double(q.count) + similarity[$0] * 1e-3 / Double(q.count + 1)) }
            .sorted { $0.1 > $1.1 }
    }

    static func expertKeys(_ bench: Workbench, _ e: Expert, perExpert: Int) throws -> [[Float]] {
        let key = "\(e.name)#\(perExpert)"
        if let k = bench.retrievalKeys[key] { return k }
        let k = bench.embed(Array(try bench.data(e.task, split: "train").texts.prefix(perExpert)), Variant(name: "base"))
        bench.retrievalKeys[key] = k
        return k
    }

    /// A mergekit-style recipe for a weighted composition of `experts` over `base`: task
    /// arithmetic with the weights — what `alloy merge` and `alloy eval --compose` read.
    public static func recipe(base: String, experts: [String], weights: [Double], comment: String) -> String {
        var s = comment.split(separator: "\n").map { "# \($0)\n" }.joined()
        s += "merge_method: task_arithmetic\nbase_model: \(base)\nparameters:\n  lambda: 1.0\nmodels:\n"
        let kept = zip(experts, weights).filter { abs($0.1) >= 5e-5 }
        for (e, w) in kept.isEmpty ? Array(zip(experts.prefix(1), [0.0])) : kept {
            s += "  - model: \(e)\n    parameters:\n      weight: \(String(format: "%.4f", w))\n"
        }
        return s
    }
}
