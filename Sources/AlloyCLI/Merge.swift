import ArgumentParser
import Composition
import Foundation
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

    struct Report: Encodable {
        let method: String, tensors: Int, parameters: Int, seconds: JSONNumber, bytesRead: Int, bytesWritten: Int, memoryGBps: JSONNumber
        let out: String?, entry: String?, digest: String?
        enum CodingKeys: String, CodingKey {
            case method, tensors, parameters, seconds, out, entry, digest
            case bytesRead = "bytes_read", bytesWritten = "bytes_written", memoryGBps = "memory_GBps"
        }
    }

    func validate() throws {
        if out == nil && intoStore == nil { throw ValidationError("give --out DIR, --into-store NAME, or both") }
    }

    func run() throws {
        var bar: Progress?
        let m = try storeOptions.locator.merge(recipe: recipe, out: out, intoStore: intoStore) { done, total in
            if bar == nil { bar = Progress(total: total, label: "merging") }
            bar?.update(done)
        }
        let r = m.report
        let gbps = Double(r.bytesRead + r.bytesWritten) / r.seconds / 1e9
        if json {
            return try Console.printJSON(Report(method: m.method, tensors: r.tensors, parameters: r.parameters, seconds: JSONNumber(r.seconds),
                                                bytesRead: r.bytesRead, bytesWritten: r.bytesWritten, memoryGBps: JSONNumber(gbps),
                                                out: m.out, entry: m.stored?.ref, digest: m.stored?.entry.digest))
        }
        Console.print("merged \(r.tensors) tensors (\(Fmt.int(r.parameters)) parameters) with \(m.method) in \(String(format: "%.3f", r.seconds)) s — \(String(format: "%.1f", gbps)) GB/s of inputs+output" + (out.map { " → \($0)" } ?? ""))
        if let s = m.stored { Console.print("stored as \(s.entry.kind.rawValue) \(s.ref) (\(s.entry.shortDigest)), \(Fmt.bytes(s.entry.storedBytes))") }
    }
}
