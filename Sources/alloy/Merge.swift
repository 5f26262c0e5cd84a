import ArgumentParser
import Foundation
import Formats
import Merging
import Store

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Merge models with a mergekit-compatible YAML recipe; writes DIR/model.safetensors plus the base's config and tokenizer, or a `merged` store entry.",
        discussion: "Methods: \(MergeMethod.registry.keys.sorted().joined(separator: ", ")). Model paths are relative to the recipe; a model that is not a path is looked up in the store (any entry: deltas are applied to their base).")

    @Argument(help: "The recipe (YAML).")
    var recipe: String

    @Option(name: .shortAndLong, help: "Output directory.")
    var out: String?

    @Option(help: "Store the result as a `merged` entry of this name (a task vector over the recipe's base, with its lineage).")
    var intoStore: String?

    @OptionGroup var storeOptions: StoreOptions

    @Flag(help: "Print the report as JSON.")
    var json = false

    func validate() throws {
        if out == nil && intoStore == nil { throw ValidationError("give --out DIR, --into-store NAME, or both") }
    }

    func run() throws {
        var store: Store? = nil
        var used: [String: StoredItem] = [:]
        let r = try Recipe(path: recipe) { ref in
            guard FileManager.default.fileExists(atPath: (storeOptions.root as NSString).appendingPathComponent("catalog.sqlite")) else { return nil }
            if store == nil { store = try storeOptions.open() }
            let item = try store!.resolve(ref)
            used[ref] = item
            return try store!.materialize(item)
        }
        let dir = out ?? (NSTemporaryDirectory() + "alloy-merge-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        defer { if out == nil { try? FileManager.default.removeItem(atPath: dir) } }
        var bar: Progress?
        let report = try Merger.run(r, outputDirectory: dir) { done, total in
            if bar == nil { bar = Progress(total: total, label: "merging") }
            bar?.update(done)
        }
        var stored: StoredItem? = nil
        if let name = intoStore {
            let s = try store ?? storeOptions.open(create: true)
            let baseItem: StoredItem
            if let ref = r.baseRef, let b = used[ref] { baseItem = b } else {
                let template = r.baseModel ?? r.models[0].path
                let hash = try AlloyFile.contentHash(of: WeightSource(path: template))
                guard let b = try s.base(contentSHA256: hash) else {
                    throw ValidationError("--into-store: the recipe's base \(template) is not in the store; `alloy import` it first")
                }
                baseItem = b
            }
            let parents = try r.models.map { m -> (item: StoredItem, weight: Double?) in
                let item = try used[m.ref] ?? s.resolve(m.ref)
                if case .scalar(let w)? = m.parameters["weight"] { return (item, w) }
                return (item, nil)
            }
            let text = (try? String(contentsOfFile: recipe, encoding: .utf8)) ?? ""
            stored = try s.importMerged(dir, name: name, base: baseItem, parents: parents, method: r.method.name, recipe: text).item
        }
        let gbps = Double(report.bytesRead + report.bytesWritten) / report.seconds / 1e9
        if json {
            var o: [String: Any] = ["method": r.method.name, "tensors": report.tensors, "parameters": report.parameters,
                                    "seconds": report.seconds, "bytes_read": report.bytesRead, "bytes_written": report.bytesWritten,
                                    "memory_GBps": gbps]
            if let out { o["out"] = out }
            if let stored { o["entry"] = stored.ref; o["digest"] = stored.entry.digest }
            print(Console.json(o))
            return
        }
        print("merged \(report.tensors) tensors (\(Fmt.int(report.parameters)) parameters) with \(r.method.name) in \(String(format: "%.3f", report.seconds)) s — \(String(format: "%.1f", gbps)) GB/s of inputs+output" + (out.map { " → \($0)" } ?? ""))
        if let stored { print("stored as \(stored.entry.kind.rawValue) \(stored.ref) (\(stored.entry.shortDigest)), \(Fmt.bytes(stored.entry.storedBytes))") }
    }
}
