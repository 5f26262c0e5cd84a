import ArgumentParser
import Foundation
import Formats
import Merging
import Store

/// `--store DIR` (default `$ALLOY_STORE`, else `~/.alloy`).
struct StoreOptions: ParsableArguments {
    @Option(help: "Store folder (default: $ALLOY_STORE, else ~/.alloy).")
    var store: String?

    var root: String { store ?? Store.defaultRoot }

    func open(create: Bool = false) throws -> Store { try Store(root: root, create: create) }

    /// A path on disk is used as is; anything else is looked up as a store ref and checked out.
    func resolve(_ pathOrRef: String) throws -> String {
        if FileManager.default.fileExists(atPath: pathOrRef) { return pathOrRef }
        guard FileManager.default.fileExists(atPath: (root as NSString).appendingPathComponent("catalog.sqlite")) else {
            throw ValidationError("\(pathOrRef): no such file or directory (and no store at \(root) to look it up in)")
        }
        let s = try open()
        return try s.checkout(try s.resolve(pathOrRef))
    }
}

extension EntryKind: ExpressibleByArgument {}
extension ExportFormat: ExpressibleByArgument {}
extension DeltaTools.SparsifyMethod: ExpressibleByArgument {}

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import a base, a fine-tuned model (as a task vector), a PEFT LoRA folder, a diff-pruned expert or a .alloy file into the store.")

    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "HF model folder or .safetensors, PEFT folder, expert folder (delta.alloy + head.safetensors), or .alloy file.")
    var source: String
    @Option(help: "Name of the entry.") var name: String
    @Option(help: "Base entry the delta belongs to.") var base: String?
    @Option(help: "Task the expert was trained for (default: card.json's task).") var task: String?
    @Option(parsing: .upToNextOption, help: "Tags.") var tags: [String] = []
    @Option(help: "How to read an ambiguous source: base, head or task-vector.") var kind: EntryKind?
    @Option(help: "Store a fine-tuned model as a diff-pruned delta: magnitude, random or breadcrumbs.") var sparsify: DeltaTools.SparsifyMethod?
    @Option(help: "Fraction kept per tensor with --sparsify.") var density = 0.01
    @Flag(help: "Accept a delta recorded for another base hash, or one that looks unrelated to the base.") var force = false
    @Flag(help: "Print the entry as JSON.") var json = false

    func run() throws {
        let store = try storeOptions.open(create: true)
        var o = ImportOptions(name: name)
        o.base = base; o.task = task; o.tags = tags; o.kind = kind; o.force = force; o.sparsify = sparsify; o.density = density
        let r = try store.importSource(source, options: o)
        for n in r.notes { Console.note("note: \(n)") }
        if json { print(Console.json(EntryJSON.of(r.item, store: store))); return }
        let e = r.item.entry
        print(r.existed ? "\(name): already stored as \(r.item.names.joined(separator: ", ")) (\(e.kind.rawValue) \(e.shortDigest)); nothing new written"
                        : "\(name): imported \(e.kind.rawValue) \(e.shortDigest) — \(Fmt.int(e.parameters)) parameters, \(Fmt.bytes(e.storedBytes)) stored (raw \(Fmt.bytes(e.rawBytes)))")
    }
}

enum EntryJSON {
    static func of(_ i: StoredItem, store: Store) -> [String: Any] {
        let e = i.entry
        var o: [String: Any] = [
            "names": i.names, "digest": e.digest, "kind": e.kind.rawValue, "parameters": e.parameters,
            "raw_bytes": e.rawBytes, "stored_bytes": e.storedBytes, "content_sha256": e.contentSHA256,
            "tags": e.tagList, "source": e.source, "created_at": e.createdAt,
            "blobs": i.blobs.mapValues { ["sha256": $0.sha256, "bytes": $0.bytes] },
            "lineage": i.parents.map { ["parent": $0.name, "relation": $0.relation, "weight": $0.weight ?? NSNull()] as [String: Any] },
        ]
        if let b = e.baseSHA256 { o["base_sha256"] = b }
        if let t = e.task { o["task"] = t }
        if let m = try? JSONSerialization.jsonObject(with: Data(e.metadata.utf8)) { o["metadata"] = m }
        return o
    }
}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the store's entries.")
    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "Only this kind.") var kind: EntryKind?
    @Option(help: "Only deltas of this base.") var base: String?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let store = try storeOptions.open()
        let items = try store.list(kind: kind, base: base)
        if json { print(Console.json(items.map { EntryJSON.of($0, store: store) })); return }
        var t = TextTable(["name", "kind", "task", "base", "digest", "parameters", "stored", "raw", "created"],
                          align: [.left, .left, .left, .left, .left, .right, .right, .right, .left])
        for i in items {
            let base = i.parents.first { $0.relation == "base" }?.name ?? ""
            t.add([i.names.joined(separator: ","), i.entry.kind.rawValue, i.entry.task ?? "", base, i.entry.shortDigest,
                   Fmt.int(i.entry.parameters), Fmt.bytes(i.entry.storedBytes), Fmt.bytes(i.entry.rawBytes), String(i.entry.createdAt.prefix(19))])
        }
        print(t.render())
        print("\n\(items.count) entr\(items.count == 1 ? "y" : "ies") in \(store.root)")
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write an entry out: hf (model with the delta applied and head attached), peft (LoRA folder) or safetensors (the entry's tensors).")
    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "Entry name or digest.") var ref: String
    @Option(help: "Output folder (or .safetensors file for --format safetensors).") var out: String
    @Option(help: "hf, peft or safetensors.") var format: ExportFormat = .hf

    func run() throws {
        let store = try storeOptions.open()
        let files = try store.export(try store.resolve(ref), format: format, to: out)
        print("\(ref): wrote \(files.count) file\(files.count == 1 ? "" : "s") to \(out)")
    }
}

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove entries from the catalog (their blobs go at the next `alloy gc`).")
    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "Entry names or digests.") var refs: [String]

    func run() throws {
        let store = try storeOptions.open()
        for r in refs {
            let i = try store.remove(r)
            print("removed \(i.entry.kind.rawValue) \(i.names.joined(separator: ",")) (\(i.entry.shortDigest))")
        }
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Re-hash every blob, decode it fully, and check the catalog against the blobs.")
    @OptionGroup var storeOptions: StoreOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let store = try storeOptions.open()
        let r = try store.verify { done, total in Progress(total: total, label: "verifying").update(done) }
        if json {
            print(Console.json(["ok": r.ok, "entries": r.entries, "blobs": r.blobs, "bytes": r.bytes, "problems": r.problems, "leftovers": r.leftovers]))
        } else {
            for p in r.problems { print("PROBLEM  \(p)") }
            for l in r.leftovers { print("leftover \(l) — `alloy gc` removes it") }
            print("\(r.entries) entries, \(r.blobs) blobs, \(Fmt.bytes(r.bytes)): \(r.ok ? "ok" : "\(r.problems.count) problem\(r.problems.count == 1 ? "" : "s")")")
        }
        if !r.ok { throw ExitCode(1) }
    }
}

struct GC: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gc", abstract: "Delete unreferenced blobs, temporary files and the checkout cache.")
    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        let (files, bytes) = try storeOptions.open().gc()
        print("removed \(files) file\(files == 1 ? "" : "s"), \(Fmt.bytes(bytes))")
    }
}
