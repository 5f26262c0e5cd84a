import Foundation
import Formats
import Merging
import Store

/// What `merge` did: the engine's report, the method, where it wrote and the store entry.
public struct MergeOutcome: Sendable {
    public let report: MergeReport
    public let method: String
    /// The output folder, when one was asked for.
    public let out: String?
    /// The `merged` store entry, when one was asked for.
    public let stored: StoredItem?
}

extension ModelLocator {
    /// Merges the recipe at `recipePath` (its models may be store entries): into the folder `out`,
    /// into the store as a `merged` entry named `intoStore` (a task vector over the recipe's base,
    /// with its parents and weights as lineage), or both. The base entry is the store entry the
    /// recipe names as base, else the stored base whose content hash matches the base model
    /// (or the first model when the recipe has no base).
    public func merge(recipe recipePath: String, out: String?, intoStore: String?,
                      progress: ((Int, Int) -> Void)? = nil) throws -> MergeOutcome {
        guard out != nil || intoStore != nil else { throw CompositionError.badSpec(spec: recipePath, reason: "nowhere to write the merge: give an output folder, a store entry name, or both") }
        final class Used { var store: Store?; var items: [String: StoredItem] = [:] }
        let used = Used()
        let recipe = try Recipe(path: recipePath) { ref in
            guard self.storeExists else { return nil }
            let s = try used.store ?? self.open()
            used.store = s
            let item = try s.resolve(ref)
            used.items[ref] = item
            return try s.materialize(item)
        }
        let dir = out ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("alloy-merge-\(UUID().uuidString)")
        defer { if out == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let report = try Merger.run(recipe, outputDirectory: dir, progress: progress)
        guard let name = intoStore else { return MergeOutcome(report: report, method: recipe.method.name, out: out, stored: nil) }
        let s = try used.store ?? open(create: true)
        let baseItem: StoredItem
        if let ref = recipe.baseRef, let b = used.items[ref] { baseItem = b } else {
            guard let template = recipe.baseModel ?? recipe.models.first?.path else {
                throw CompositionError.badSpec(spec: recipePath, reason: "the recipe names no models")
            }
            guard let b = try s.base(contentSHA256: try AlloyFile.contentHash(of: WeightSource(path: template))) else {
                throw CompositionError.baseNotStored(template: template)
            }
            baseItem = b
        }
        let parents = try recipe.models.map { m -> (item: StoredItem, weight: Double?) in
            let item = try used.items[m.ref] ?? s.resolve(m.ref)
            if case .scalar(let w)? = m.parameters["weight"] { return (item, w) }
            return (item, nil)
        }
        let text = (try? String(contentsOfFile: recipePath, encoding: .utf8)) ?? ""
        let stored = try s.importMerged(dir, name: name, base: baseItem, parents: parents, method: recipe.method.name, recipe: text).item
        return MergeOutcome(report: report, method: recipe.method.name, out: out, stored: stored)
    }
}
