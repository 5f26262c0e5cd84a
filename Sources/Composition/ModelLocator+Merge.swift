import Encoder
import Foundation
import Formats
import Merging
import Store
import Tensors

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
    /// Writes the head of every transformers classifier among the recipe's models to
    /// `dir/heads/<folder name>/` (its config.json with the labels, tokenizer_config.json, and
    /// head.safetensors), as FusionBench evaluates a merged encoder with each task's own head;
    /// `alloy classify --model DIR --head DIR/heads/NAME` uses one.
    static func keepHeads(of recipe: Recipe, in dir: String) throws {
        let fm = FileManager.default
        var used = Set<String>()
        for m in recipe.models where m.path != recipe.baseModel {
            guard let layout = try ClassificationHead.transformersLayout(directory: m.path) else { continue }
            var name = (m.path as NSString).lastPathComponent
            while used.contains(name) { name += "_" }
            used.insert(name)
            let out = ((dir as NSString).appendingPathComponent("heads") as NSString).appendingPathComponent(name)
            try fm.createDirectory(atPath: out, withIntermediateDirectories: true)
            let source = try WeightSource(path: m.path)
            var tensors: [(String, Tensor)] = []
            for n in layout.tensorNames {
                if let found = TensorNames.aliases(n).first(where: { source.info($0) != nil }) { tensors.append((found, try source.tensor(found))) }
            }
            try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: (out as NSString).appendingPathComponent("head.safetensors"))
            for f in ["config.json", "tokenizer_config.json"] {
                let src = (m.path as NSString).appendingPathComponent(f)
                guard fm.fileExists(atPath: src) else { continue }
                try AtomicFile.write(Array(try Data(contentsOf: URL(fileURLWithPath: src))), to: (out as NSString).appendingPathComponent(f))
            }
        }
    }

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
        let template = recipe.baseModel ?? recipe.models.first?.path
        let baseHead = try template.flatMap { try ClassificationHead.transformersLayout(directory: $0) }
        let baseNames = try template.map { try WeightSource(path: $0).names } ?? []
        let unmerged = Set(baseNames.filter { n in baseHead?.tensorNames.contains { TensorNames.aliases($0).contains(n) } ?? false })
        let report = try Merger.run(recipe, outputDirectory: dir, unmerged: unmerged, progress: progress)
        try Self.keepHeads(of: recipe, in: dir)
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
