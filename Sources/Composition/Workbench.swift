import Encoder
import Evaluation
import Foundation
import Tensors

/// How a task is scored.
public enum EvalProtocol: String, CaseIterable, Sendable, Codable {
    /// The task's expert head on the (composed) encoder — for tasks an expert was trained on.
    case head
    /// A k-shot logistic-regression probe on the encoder's embeddings — for held-out tasks.
    case probe
    /// Cosine similarity to label descriptions.
    case zeroShot = "zero-shot"
}

/// An expert: a LoRA adapter with its task and head (labels from its card).
public struct Expert: Sendable {
    public let name: String
    public let task: String
    public let adapter: LoRAAdapter
    public var head: ClassificationHead? { adapter.head }
    public init(name: String, task: String, adapter: LoRAAdapter) { self.name = name; self.task = task; self.adapter = adapter }
}

/// An encoder variant: the base with an adapter set (LoRAs with scales, patched deltas).
public struct Variant: Sendable {
    public let name: String
    public let adapters: AdapterSet
    public init(name: String, adapters: AdapterSet = AdapterSet()) { self.name = name; self.adapters = adapters }
}

/// One task's result.
public struct Score: Sendable, Codable {
    public let task: String
    public let proto: EvalProtocol
    public let accuracy: Double
    public let macroF1: Double
    /// 95% bootstrap CI of the accuracy (probe: averaged over seeds).
    public let ci: [Double]
    /// Std of the accuracy over probe seeds (0 for head and zero-shot).
    public let std: Double
    public let n: Int
    public let note: String?

    enum CodingKeys: String, CodingKey { case task, accuracy, ci, std, n, note, proto = "protocol", macroF1 = "macro_f1" }

    public init(task: String, proto: EvalProtocol, accuracy: Double, macroF1: Double, ci: [Double], std: Double, n: Int, note: String?) {
        self.task = task; self.proto = proto; self.accuracy = accuracy; self.macroF1 = macroF1; self.ci = ci; self.std = std; self.n = n; self.note = note
    }

    /// As the synthesised encoding, but a non-finite number (a std over one seed, say) is `null`.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        func number(_ v: Double, _ k: CodingKeys) throws { if v.isFinite { try c.encode(v, forKey: k) } else { try c.encodeNil(forKey: k) } }
        try c.encode(task, forKey: .task); try c.encode(proto, forKey: .proto)
        try number(accuracy, .accuracy); try number(macroF1, .macroF1); try number(std, .std)
        try c.encode(ci.map { $0.isFinite ? $0 : nil }, forKey: .ci)
        try c.encode(n, forKey: .n); try c.encodeIfPresent(note, forKey: .note)
    }
}

/// Evaluates encoder variants on task splits, sharing the tokenised tasks and the base.
public final class Workbench {
    public let encoder: SentenceEncoder
    public let tasksDir: String
    public let experts: [Expert]
    /// Test examples per task (seeded subsample), nil for all.
    public var limit: Int?
    public var shots = 16
    public var seeds = 3
    public var maxLength = 128
    public var batchSize = 32
    public var zeroShotFile = "Tasks/zero-shot.json"
    public var progress: ((String, Int, Int) -> Void)?
    private var cache: [String: TaskData] = [:]
    /// Retrieval: unlabelled test inputs embedded per task, training inputs per expert.
    public var retrievalQueries = 32
    public var retrievalKeysPerExpert = 100
    /// Base-encoder embeddings of experts' training inputs, for retrieval.
    var retrievalKeys: [String: [[Float]]] = [:]

    public init(encoder: SentenceEncoder, tasksDir: String, experts: [Expert]) {
        self.encoder = encoder
        self.tasksDir = tasksDir
        self.experts = experts
    }

    public func expert(for task: String) -> Expert? { experts.first { $0.task == task } }

    /// The split of `task`, the test split subsampled to `limit` (seeded, order kept).
    public func data(_ task: String, split: String) throws -> TaskData {
        let key = "\(task)/\(split)"
        if let d = cache[key] { return d }
        let path = task.hasSuffix(".jsonl") ? task : "\(tasksDir)/\(task)/\(split).jsonl"
        var d = try TaskData(path: path, name: task, allowed: expert(for: task)?.head?.labels)
        if split == "test", let limit, d.texts.count > limit {
            var rng = SplitMix(seed: 2024)
            var idx = Array(d.texts.indices)
            for i in stride(from: idx.count - 1, to: 0, by: -1) { idx.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            d = d.subset(Array(idx.prefix(limit)).sorted())
        }
        cache[key] = d
        return d
    }

    /// Unnormalised sentence vectors (what probes read), or states pooled as `pooling` says
    /// (what a head reads: `head.pooling`).
    public func embed(_ texts: [String], _ v: Variant, label: String? = nil, pooling: Pooling? = nil) -> [[Float]] {
        let total = texts.count
        return encoder.encode(texts, adapters: v.adapters, normalized: false, maxLength: maxLength, pooling: pooling, batchSize: max(1, batchSize)) { [progress] done in
            if let label { progress?(label, done, total) }
        }
    }

    /// Scores `v` on each of `tasks` with `proto`; the probe once per entry of `shots` (k per label).
    public func evaluate(_ v: Variant, tasks: [String], proto: EvalProtocol, shots: [Int]) throws -> [Score] {
        var results: [Score] = []
        for t in tasks {
            guard proto == .probe else { results.append(try evaluate(v, task: t, proto: proto)); continue }
            for k in shots {
                self.shots = k
                results.append(try evaluate(v, task: t, proto: .probe))
            }
        }
        return results
    }

    public func evaluate(_ v: Variant, task: String, proto: EvalProtocol) throws -> Score {
        if proto == .probe {
            guard shots >= 1, seeds >= 1 else {
                throw TaskError(path: task, line: nil, reason: "the probe needs at least one shot per label and one seed (shots \(shots), seeds \(seeds))")
            }
        }
        let test = try data(task, split: "test")
        switch proto {
        case .head:
            guard let head = expert(for: task)?.head else {
                throw TaskError(path: task, line: nil, reason: "no expert with a head for this task; use --protocol probe or zero-shot")
            }
            let emb = embed(test.texts, v, label: "\(v.name) · \(task)", pooling: head.pooling)
            let pred = emb.map { head.predict($0) }
            let m = Metrics(predicted: pred, gold: test.labels)
            return Score(task: task, proto: .head, accuracy: m.accuracy, macroF1: m.macroF1, ci: m.accuracyCI, std: 0, n: m.count, note: nil)
        case .probe:
            let train = try data(task, split: "train")
            let draws = (0..<seeds).map { ProbeEvaluation.sample(train, shots: shots, seed: UInt64($0)) }
            let pool = Array(Set(draws.flatMap { $0 })).sorted()
            let all = embed(pool.map { train.texts[$0] } + test.texts, v, label: "\(v.name) · \(task)")
            let at = Dictionary(uniqueKeysWithValues: pool.enumerated().map { ($1, $0) })
            let testEmb = Array(all[pool.count...])
            let ms = draws.map { d in
                ProbeEvaluation.score(train: d.map { all[at[$0, default: 0]] }, trainLabels: d.map { train.labels[$0] }, test: testEmb, testLabels: test.labels)
            }
            let accs = ms.map(\.accuracy), mean = accs.reduce(0, +) / Double(accs.count)
            let std = (accs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(1, accs.count - 1))).squareRoot()
            return Score(task: task, proto: .probe, accuracy: mean, macroF1: ms.map(\.macroF1).reduce(0, +) / Double(ms.count),
                         ci: [ms.map { $0.accuracyCI[0] }.reduce(0, +) / Double(ms.count), ms.map { $0.accuracyCI[1] }.reduce(0, +) / Double(ms.count)],
                         std: std, n: test.texts.count, note: "\(shots)-shot × \(seeds) seeds")
        case .zeroShot:
            let desc = try ZeroShotEvaluation.descriptions(task: task, labels: test.labelSet, file: zeroShotFile)
            let emb = embed(desc.map(\.1) + test.texts, v, label: "\(v.name) · \(task)")
            let pred = ZeroShotEvaluation.predict(texts: Array(emb[desc.count...]), descriptions: zip(desc.map(\.0), emb.prefix(desc.count)).map { ($0, $1) })
            let m = Metrics(predicted: pred, gold: test.labels)
            return Score(task: task, proto: .zeroShot, accuracy: m.accuracy, macroF1: m.macroF1, ci: m.accuracyCI, std: 0, n: m.count, note: nil)
        }
    }

    /// The variant with the experts' LoRAs at `weights` (unmerged, applied on the fly).
    public func composition(_ weights: [Double], name: String) -> Variant {
        var set = AdapterSet()
        set.loras = zip(experts, weights).filter { $0.1 != 0 }.map { ($0.0.adapter, Float($0.1)) }
        return Variant(name: name, adapters: set)
    }
}

extension TaskData {
    func subset(_ idx: [Int]) -> TaskData { TaskData(name: name, texts: idx.map { texts[$0] }, labels: idx.map { labels[$0] }) }
}
