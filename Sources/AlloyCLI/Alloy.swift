import ArgumentParser

/// The `alloy` command: its subcommands, grouped as the README lists them.
public struct Alloy: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "alloy",
        abstract: "Store, merge, compose, serve and evaluate fine-tuned experts of a BERT-family encoder.",
        version: "0.1.0",
        groupedSubcommands: [
            CommandGroup(name: "Store", subcommands: [Import.self, List.self, Inspect.self, Export.self, Remove.self, Verify.self, GC.self]),
            CommandGroup(name: "Files", subcommands: [Pack.self, Unpack.self]),
            CommandGroup(name: "Merge", subcommands: [Merge.self, MergeLoRA.self, ExtractLoRA.self, Sparsify.self]),
            CommandGroup(name: "Run", subcommands: [Embed.self, Classify.self, Serve.self]),
            CommandGroup(name: "Evaluate", subcommands: [Eval.self, Compose.self, Fusion.self, Sweep.self, Experts.self]),
        ])

    public init() {}
}
