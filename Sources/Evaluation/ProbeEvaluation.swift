import Formats
import Foundation
import Tensors

/// Feature standardisation (z-scores) fitted on a training set, as scikit-learn's StandardScaler.
public struct Standardizer: Sendable {
    public let mean: [Float]
    public let scale: [Float]

    public init(fit x: [[Float]]) {
        let d = x[0].count, n = Double(x.count)
        var m = [Double](repeating: 0, count: d), v = [Double](repeating: 0, count: d)
        for r in x { for j in 0..<d { m[j] += Double(r[j]) } }
        for j in 0..<d { m[j] /= n }
        for r in x { for j in 0..<d { let t = Double(r[j]) - m[j]; v[j] += t * t } }
        mean = m.map(Float.init)
        scale = v.map { let s = ($0 / n).squareRoot(); return s > 0 ? Float(s) : 1 }
    }

    public func apply(_ x: [Float]) -> [Float] { (0..<x.count).map { (x[$0] - mean[$0]) / scale[$0] } }
}

/// The `probe` protocol for held-out tasks: a k-shot linear probe (standardised features +
/// L2 logistic regression, C = 1) on the composed encoder's mean-pooled embeddings, repeated
/// over seeds — the linear-probe evaluation of representation transfer (e.g. Kornblith et
/// al., 2019; FusionBench's held-out protocol uses a frozen-feature classifier the same way).
public enum ProbeEvaluation {
    /// `shots` training indices per label, drawn with `seed` (all of a label's when it has fewer).
    /// Nested: the first k of a seed's draw for k < k' are a subset of its draw for k'.
    public static func sample(_ task: TaskData, shots: Int, seed: UInt64) -> [Int] {
        var rng = SplitMix(seed: seed &* 0x9E37_79B9 &+ 1)
        var byLabel: [String: [Int]] = [:]
        for (i, l) in task.labels.enumerated() { byLabel[l, default: []].append(i) }
        var out: [Int] = []
        for l in byLabel.keys.sorted() {
            var idx = byLabel[l]!
            for i in stride(from: idx.count - 1, to: 0, by: -1) { idx.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            out += idx.prefix(shots)
        }
        return out
    }

    /// Fits the probe on (`train`, `trainLabels`) and scores it on (`test`, `testLabels`).
    public static func score(train: [[Float]], trainLabels: [String], test: [[Float]], testLabels: [String], c: Double = 1) -> Metrics {
        let scaler = Standardizer(fit: train)
        let model = LogisticRegression(features: train.map(scaler.apply), labels: trainLabels, c: c)
        return Metrics(predicted: test.map { model.predict(scaler.apply($0)) }, gold: testLabels)
    }
}

/// The `zero-shot` protocol: a text gets the label whose description embeds nearest (cosine).
public enum ZeroShotEvaluation {
    public static func predict(texts: [[Float]], descriptions: [(label: String, embedding: [Float])]) -> [String] {
        func unit(_ v: [Float]) -> [Float] { let n = max(1e-12, v.reduce(0) { $0 + $1 * $1 }.squareRoot()); return v.map { $0 / n } }
        let d = descriptions.map { ($0.label, unit($0.embedding)) }
        return texts.map { t in
            let u = unit(t)
            return d.max { a, b in zip(a.1, u).reduce(0) { $0 + $1.0 * $1.1 } < zip(b.1, u).reduce(0) { $0 + $1.0 * $1.1 } }!.0
        }
    }

    /// Label descriptions for `task` from Tasks/zero-shot.json (label names otherwise): an object
    /// of task → label → description, read with the strict `JSONValue` parser.
    public static func descriptions(task: String, labels: [String], file: String) throws -> [(String, String)] {
        func plain(_ l: String) -> String { l.replacingOccurrences(of: "_", with: " ") }
        guard let data = FileManager.default.contents(atPath: file) else { return labels.map { ($0, plain($0)) } }
        let root: JSONValue
        do { root = try JSONValue.parse(String(decoding: data, as: UTF8.self)) } catch {
            throw TaskError(path: file, line: nil, reason: "not valid JSON: \(error)")
        }
        guard case .object = root else { throw TaskError(path: file, line: nil, reason: "not a JSON object of task → label → description") }
        return labels.map { l in
            if case .string(let d)? = root[task]?[l] { return (l, d) }
            return (l, plain(l))
        }
    }
}
