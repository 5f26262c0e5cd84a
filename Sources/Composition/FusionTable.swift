import Encoder
import Evaluation
import Foundation

/// A FusionBench-style table (Tang et al., 2024): rows are the base, each expert, merges and
/// compositions; columns are the seen tasks (expert heads), the held-out tasks (k-shot probe),
/// and the two averages.
public struct FusionTable: Codable, Sendable {
    public struct Row: Codable, Sendable {
        public let name: String
        public let kind: String
        public var scores: [Score]
        /// Per-task notes: learned weights, the retrieved expert.
        public var details: [String: String]
        public var seenAverage: Double?
        public var heldOutAverage: Double?

        enum CodingKeys: String, CodingKey { case name, kind, scores, details, seenAverage = "seen_average", heldOutAverage = "held_out_average" }
    }
    public let seen: [String]
    public let heldOut: [String]
    public var rows: [Row] = []
    public var settings: [String: String]
    public var seconds = 0.0

    enum CodingKeys: String, CodingKey { case seen, rows, settings, seconds, heldOut = "held_out" }

    public init(seen: [String], heldOut: [String], settings: [String: String]) {
        self.seen = seen; self.heldOut = heldOut; self.settings = settings
    }

    mutating func add(_ name: String, kind: String, scores: [Score], details: [String: String] = [:]) {
        func avg(_ tasks: [String]) -> Double? {
            let v = tasks.compactMap { t in scores.first { $0.task == t }?.accuracy }
            return v.isEmpty || v.count < tasks.count ? nil : v.reduce(0, +) / Double(v.count)
        }
        rows.append(Row(name: name, kind: kind, scores: scores, details: details, seenAverage: avg(seen), heldOutAverage: avg(heldOut)))
    }

    /// Evaluates every variant row, then the learned composition and retrieval rows (per task).
    public static func run(_ bench: Workbench, seen: [String], heldOut: [String], variants: [(name: String, kind: String, variant: Variant)],
                           learned: Bool, retrieval: Bool, composeShots: Int, budget: Int, l1: Double, settings: [String: String]) throws -> FusionTable {
        let start = Date()
        var table = FusionTable(seen: seen, heldOut: heldOut, settings: settings)
        func scores(_ v: Variant, tasks: [String]) throws -> [Score] {
            try tasks.map { t in try bench.evaluate(v, task: t, proto: seen.contains(t) ? .head : .probe) }
        }
        var cache: [String: [String: Score]] = [:]
        for (name, kind, v) in variants {
            let s = try scores(v, tasks: seen + heldOut)
            cache[name] = Dictionary(uniqueKeysWithValues: s.map { ($0.task, $0) })
            table.add(name, kind: kind, scores: s)
        }
        let names = bench.experts.map(\.name)
        if learned {
            var s: [Score] = [], details: [String: String] = [:]
            for t in seen + heldOut {
                let l = try Composer.learn(bench, task: t, shots: composeShots, budget: budget, l1: l1)
                details[t] = zip(names, l.weights).map { "\($0)=\(String(format: "%.2f", $1))" }.joined(separator: " ")
                s.append(try bench.evaluate(bench.composition(l.weights, name: "learned·\(t)"), task: t, proto: seen.contains(t) ? .head : .probe))
            }
            table.add("learned composition", kind: "learned", scores: s, details: details)
        }
        if retrieval {
            var s: [Score] = [], details: [String: String] = [:]
            for t in seen + heldOut {
                let ranked = try Composer.retrieve(bench, task: t, queries: bench.retrievalQueries, perExpert: bench.retrievalKeysPerExpert)
                let pick = ranked[0].expert
                details[t] = "\(pick) (\(Int((ranked[0].score * 100).rounded(.down)))% of votes)"
                if let row = variants.first(where: { $0.name == pick }), let hit = cache[row.name]?[t] { s.append(hit); continue }
                let w = names.map { $0 == pick ? 1.0 : 0.0 }
                s.append(try bench.evaluate(bench.composition(w, name: "retrieved·\(t)"), task: t, proto: seen.contains(t) ? .head : .probe))
            }
            table.add("retrieval (ELM, top-1)", kind: "retrieval", scores: s, details: details)
        }
        table.seconds = Date().timeIntervalSince(start)
        return table
    }

    // MARK: rendering

    func cell(_ row: Row, _ task: String) -> String {
        guard let s = row.scores.first(where: { $0.task == task }) else { return "—" }
        return s.proto == .probe ? String(format: "%.1f±%.1f", 100 * s.accuracy, 100 * s.std) : String(format: "%.1f", 100 * s.accuracy)
    }

    public var header: [String] { ["model"] + seen + heldOut + ["seen avg", "held-out avg"] }

    public var cells: [[String]] {
        rows.map { r in
            [r.name] + (seen + heldOut).map { cell(r, $0) }
                + [r.seenAverage.map { String(format: "%.1f", 100 * $0) } ?? "—", r.heldOutAverage.map { String(format: "%.1f", 100 * $0) } ?? "—"]
        }
    }

    public func markdown() -> String {
        var s = "| " + header.joined(separator: " | ") + " |\n|" + header.enumerated().map { $0.offset == 0 ? "---" : "---:" }.joined(separator: "|") + "|\n"
        for c in cells { s += "| " + c.joined(separator: " | ") + " |\n" }
        return s
    }

    public func json() throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try e.encode(self), as: UTF8.self)
    }

    /// A horizontal bar chart of the seen and held-out averages per row.
    public func svg(title: String = "Seen vs held-out accuracy") -> String {
        Chart.pairedBars(title: title, legend: ("seen tasks (expert heads)", "held-out tasks (k-shot probe)"),
                         rows.map { ($0.name, $0.seenAverage, $0.heldOutAverage) })
    }
}
