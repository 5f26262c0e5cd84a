import ArgumentParser
import Foundation
import Merging

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Merge models with a mergekit-compatible YAML recipe; writes DIR/model.safetensors plus the base's config and tokenizer.",
        discussion: "Methods: \(MergeMethod.registry.keys.sorted().joined(separator: ", ")). Model paths are relative to the recipe.")

    @Argument(help: "The recipe (YAML).")
    var recipe: String

    @Option(name: .shortAndLong, help: "Output directory.")
    var out: String

    @Flag(help: "Print the report as JSON.")
    var json = false

    func run() throws {
        let r = try Recipe(path: recipe)
        var bar: Progress?
        let report = try Merger.run(r, outputDirectory: out) { done, total in
            if bar == nil { bar = Progress(total: total, label: "merging") }
            bar?.update(done)
        }
        let gbps = Double(report.bytesRead + report.bytesWritten) / report.seconds / 1e9
        if json {
            print(Console.json(["method": r.method.name, "tensors": report.tensors, "parameters": report.parameters,
                                "seconds": report.seconds, "bytes_read": report.bytesRead, "bytes_written": report.bytesWritten,
                                "memory_GBps": gbps, "out": out]))
            return
        }
        print("merged \(report.tensors) tensors (\(Fmt.int(report.parameters)) parameters) with \(r.method.name) in \(String(format: "%.3f", report.seconds)) s — \(String(format: "%.1f", gbps)) GB/s of inputs+output → \(out)")
    }
}
