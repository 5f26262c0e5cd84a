import Encoder
import Evaluation
import Foundation
import Merging

/// The settings of a fusion table or a sweep: the tasks, the probe and the composition rows.
public struct FusionSettings: Sendable {
    public var seen: [String]
    public var heldOut: [String]
    /// Test examples per task (nil: all).
    public var limit: Int?
    public var shots = 16
    public var seeds = 3
    public var learned = true
    public var retrieval = true
    public var composeShots = 5
    public var budget = 30
    public var l1 = 0.05

    public init(seen: [String], heldOut: [String]) { self.seen = seen; self.heldOut = heldOut }
}

extension Workshop {
    /// A workbench over `experts` set up for `settings` (limit, shots, seeds).
    public func workbench(experts: [String], tasksDir: String, settings: FusionSettings) throws -> Workbench {
        let bench = try workbench(experts: experts, tasksDir: tasksDir)
        bench.limit = settings.limit
        bench.shots = settings.shots; bench.seeds = settings.seeds
        return bench
    }

    /// The FusionBench-style table: the base, each expert, one row per `rows` entry
    /// (`NAME=SPEC`, see `variant(name:spec:)`), then the learned-composition and retrieval rows.
    /// - Parameters:
    ///   - model, experts: how the command line named them (recorded in the settings).
    ///   - onRow: called before each extra row is prepared, with its name and spec.
    public func fusion(_ bench: Workbench, model: String, experts: String, rows: [String], settings: FusionSettings,
                       onRow: ((String, String) -> Void)? = nil) throws -> FusionTable {
        var variants: [(String, String, Variant)] = [("base", "base", Variant(name: "base"))]
        for e in bench.experts {
            var set = AdapterSet(); set.loras = [(e.adapter, 1)]
            variants.append((e.name, "expert", Variant(name: e.name, adapters: set)))
        }
        for r in rows {
            guard let eq = r.firstIndex(of: "="), eq != r.startIndex else { throw CompositionError.badSpec(spec: r, reason: "--row wants NAME=SPEC") }
            let name = String(r[..<eq]), spec = String(r[r.index(after: eq)...])
            onRow?(name, spec)
            variants.append((name, "merge", try variant(name: name, spec: spec)))
        }
        let recorded = ["model": model, "experts": experts, "limit": settings.limit.map(String.init) ?? "all",
                        "probe": "\(settings.shots)-shot × \(settings.seeds) seeds, StandardScaler + LogisticRegression(C=1)",
                        "learned": "CMA-ES, budget \(settings.budget) evaluations (whole generations only), \(settings.composeShots) shots/label, L1 \(settings.l1)·mean|w|",
                        "retrieval": "top-1 by votes of 32 queries' nearest training inputs (100 per expert)"]
        return try FusionTable.run(bench, seen: settings.seen, heldOut: settings.heldOut, variants: variants, learned: settings.learned,
                                   retrieval: settings.retrieval, composeShots: settings.composeShots, budget: settings.budget, l1: settings.l1,
                                   settings: recorded)
    }

    /// One merge parameter of a recipe swept over `values`: a row per value.
    /// - Parameter onValue: called before each value's merge.
    public func sweep(_ bench: Workbench, recipe path: String, param: String, values: [Double], settings: FusionSettings,
                      onValue: ((Double) -> Void)? = nil) throws -> Sweep {
        guard !values.isEmpty else { throw CompositionError.badSpec(spec: param, reason: "no values to sweep") }
        let r = try recipe(path)
        var variants: [(String, String, Variant)] = []
        for x in values {
            onValue?(x)
            variants.append(("\(param) = \(x)", "sweep", try variant(name: "\(param)=\(x)", recipe: try r.overriding(param, with: x))))
        }
        let table = try FusionTable.run(bench, seen: settings.seen, heldOut: settings.heldOut, variants: variants, learned: false, retrieval: false,
                                        composeShots: 0, budget: 0, l1: 0,
                                        settings: ["recipe": path, "method": r.method.name, "param": param,
                                                   "limit": settings.limit.map(String.init) ?? "all", "probe": "\(settings.shots)-shot × \(settings.seeds) seeds"])
        return Sweep(method: r.method.name, param: param, values: values, table: table)
    }
}

/// A swept merge parameter: the table (a row per value) and its line plot.
public struct Sweep: Sendable {
    public let method: String
    public let param: String
    public let values: [Double]
    public let table: FusionTable

    /// Seen and held-out averages against the parameter.
    public func svg() -> String {
        let seen = zip(values, table.rows).compactMap { x, row in row.seenAverage.map { (x, $0) } }
        let held = zip(values, table.rows).compactMap { x, row in row.heldOutAverage.map { (x, $0) } }
        return Chart.lines(title: "\(method): accuracy vs \(param)", xLabel: param, [("seen avg (heads)", seen), ("held-out avg (probe)", held)])
    }
}
