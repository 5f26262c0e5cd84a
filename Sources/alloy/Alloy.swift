import ArgumentParser

@main
struct Alloy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alloy",
        abstract: "Store, merge, compose, serve and evaluate fine-tuned experts of a BERT-family encoder.",
        version: "0.1.0",
        subcommands: [Serve.self, Fusion.self, Compose.self, Sweep.self, Import.self, List.self, Inspect.self, Export.self, Remove.self, Verify.self, GC.self, Pack.self, Unpack.self, Embed.self, Classify.self, Eval.self, Merge.self, Experts.self, ExtractLoRA.self, Sparsify.self, MergeLoRA.self]
    )
}
