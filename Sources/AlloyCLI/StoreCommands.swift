import ArgumentParser
import Foundation
import Formats
import Merging
import Store

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import a base, a fine-tuned model (as a task vector), a PEFT LoRA folder, a diff-pruned expert or a .alloy file into the store.")

    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "HF model folder (safetensors, sharded, or pytorch_model.bin; a classifier keeps its head), .safetensors or .bin file, PEFT folder, expert folder (delta.alloy + head.safetensors), or .alloy file.")
    var source: String
    @Option(help: "Name of the entry.") var name: String
    @Option(help: "Base entry the delta belongs to.") var base: String?
    @Option(help: "Task the expert was trained for (default: card.json's task).") var task: String?
    @Option(parsing: .upToNextOption, help: "Tags.") var tags: [String] = []
    @Option(help: "How to read an ambiguous source: base, head or task-vector.") var kind: EntryKind?
    @Option(help: "Store a fine-tuned model as a diff-pruned delta: magnitude, random or breadcrumbs.") var sparsify: DeltaTools.SparsifyMethod?
    @Option(help: "Fraction kept per tensor with --sparsify, in (0, 1].") var density = 0.01
    @Flag(help: "Accept a delta recorded for another base hash, or one that looks unrelated to the base.") var force = false
    @Flag(help: "Print the entry as JSON.") var json = false

    func validate() throws {
        guard !name.isEmpty else { throw ValidationError("--name must not be empty") }
        try Check.fraction(density, "--density")
    }

    func run() throws {
        let store = try storeOptions.open(create: true)
        var o = ImportOptions(name: name)
        o.base = base; o.task = task; o.tags = tags; o.kind = kind; o.force = force; o.sparsify = sparsify; o.density = density
        let r = try store.importSource(source, options: o)
        for n in r.notes { Console.note("note: \(n)") }
        if json { return try Console.printJSON(EntryJSON(r.item)) }
        let e = r.item.entry
        Console.print(r.existed ? "\(name): already stored as \(r.item.names.joined(separator: ", ")) (\(e.kind.rawValue) \(e.shortDigest)); nothing new written"
                                : "\(name): imported \(e.kind.rawValue) \(e.shortDigest) — \(Fmt.int(e.parameters)) parameters, \(Fmt.bytes(e.storedBytes)) stored (raw \(Fmt.bytes(e.rawBytes)))")
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
        if json { return try Console.printJSON(items.map(EntryJSON.init)) }
        var t = TextTable(["name", "kind", "task", "base", "digest", "parameters", "stored", "raw", "created"],
                          align: [.left, .left, .left, .left, .left, .right, .right, .right, .left])
        for i in items {
            let base = i.parents.first { $0.relation == "base" }?.name ?? ""
            t.add([i.names.joined(separator: ","), i.entry.kind.rawValue, i.entry.task ?? "", base, i.entry.shortDigest,
                   Fmt.int(i.entry.parameters), Fmt.bytes(i.entry.storedBytes), Fmt.bytes(i.entry.rawBytes), String(i.entry.createdAt.prefix(19))])
        }
        Console.print(t.render())
        Console.print("\n\(items.count) entr\(items.count == 1 ? "y" : "ies") in \(store.root)")
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write an entry out: hf (model with the delta applied and head attached), peft (LoRA folder) or safetensors (the entry's tensors).")
    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "Entry name or digest.") var ref: String
    @Option(help: "Output folder (or .safetensors file for --format safetensors).") var out: String
    @Option(help: "hf, peft or safetensors.") var format: ExportFormat = .hf
    @Flag(help: "Print the files written as JSON.") var json = false

    struct Report: Encodable { let entry: String; let format: String; let out: String; let files: [String] }

    func run() throws {
        let store = try storeOptions.open()
        let files = try store.export(try store.resolve(ref), format: format, to: out)
        if json { return try Console.printJSON(Report(entry: ref, format: format.rawValue, out: out, files: files.sorted())) }
        Console.print("\(ref): wrote \(files.count) file\(files.count == 1 ? "" : "s") to \(out)")
    }
}

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove entries from the catalog (their blobs go at the next `alloy gc`).")
    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "Entry names or digests.") var refs: [String]
    @Flag(help: "Print the removed entries as JSON.") var json = false

    func validate() throws { guard !refs.isEmpty else { throw ValidationError("name at least one entry to remove") } }

    func run() throws {
        let store = try storeOptions.open()
        var removed: [EntryJSON] = []
        for r in refs {
            let i = try store.remove(r)
            removed.append(EntryJSON(i))
            if !json { Console.print("removed \(i.entry.kind.rawValue) \(i.names.joined(separator: ",")) (\(i.entry.shortDigest))") }
        }
        if json { try Console.printJSON(removed) }
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Re-hash every blob, decode it fully, and check the catalog against the blobs; exit status 1 on a problem.")
    @OptionGroup var storeOptions: StoreOptions
    @Flag(help: "Print JSON.") var json = false

    struct Report: Encodable {
        let ok: Bool; let entries: Int; let blobs: Int; let bytes: Int; let caches: Int
        let problems: [String]; let leftovers: [String]; let incompleteCaches: [String]
        enum CodingKeys: String, CodingKey { case ok, entries, blobs, bytes, caches, problems, leftovers, incompleteCaches = "incomplete_caches" }
    }

    func run() throws {
        let store = try storeOptions.open()
        var bar: Progress?
        let r = try store.verify { done, total in
            if bar == nil { bar = Progress(total: total, label: "verifying") }
            bar?.update(done)
        }
        if json {
            try Console.printJSON(Report(ok: r.ok, entries: r.entries, blobs: r.blobs, bytes: r.bytes, caches: r.caches,
                                           problems: r.problems, leftovers: r.leftovers, incompleteCaches: r.incompleteCaches))
        } else {
            for p in r.problems { Console.print("PROBLEM  \(p)") }
            for l in r.leftovers { Console.print("leftover \(l) — `alloy gc` removes it") }
            for c in r.incompleteCaches { Console.print("incomplete cache \(c) — rebuilt when next needed; `alloy gc` removes it") }
            Console.print("\(r.entries) entries, \(r.blobs) blobs, \(Fmt.bytes(r.bytes)): \(r.ok ? "ok" : "\(r.problems.count) problem\(r.problems.count == 1 ? "" : "s")")")
        }
        if !r.ok { throw ExitCode(1) }
    }
}

struct GC: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gc", abstract: "Delete unreferenced blobs, temporary files and the checkout cache.")
    @OptionGroup var storeOptions: StoreOptions
    @Flag(help: "Print JSON.") var json = false

    struct Report: Encodable { let files: Int; let folders: Int; let bytes: Int }

    func run() throws {
        let r = try storeOptions.open().gc()
        if json { return try Console.printJSON(Report(files: r.files, folders: r.folders, bytes: r.bytes)) }
        Console.print("removed \(r.files) file\(r.files == 1 ? "" : "s") and \(r.folders) folder\(r.folders == 1 ? "" : "s"), \(Fmt.bytes(r.bytes))")
    }
}
