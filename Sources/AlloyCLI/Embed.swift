import ArgumentParser
import Composition
import Encoder
import Foundation

struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Embed texts with the base model and adapters applied on the fly; prints JSONL {\"embedding\": [...]}, or with --json one JSON array.")

    @OptionGroup var options: EncoderOptions
    @OptionGroup var input: InputOptions
    @Flag(help: "Print one JSON array of {\"text\", \"embedding\"} objects instead of JSONL.") var json = false

    struct Row: Encodable { let text: String; let embedding: [JSONNumber] }

    func run() throws {
        let (shop, adapters) = try options.load()
        let texts = try input.lines()
        let progress = Progress(total: texts.count, label: "embedding")
        let vectors = shop.encoder.encode(texts, adapters: adapters.set, batchSize: options.batchSize, progress: progress.update)
        if json { return try Console.printJSON(zip(texts, vectors).map { Row(text: $0, embedding: $1.map(JSONNumber.init)) }) }
        var out = ""
        out.reserveCapacity(vectors.count * shop.encoder.model.hidden * 12)
        for v in vectors {
            out += "{\"embedding\":["
            out += v.map { $0.isFinite ? "\($0)" : "null" }.joined(separator: ",")
            out += "]}\n"
        }
        Console.print(out, terminator: "")
    }
}

struct Classify: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Classify texts with a head on the (adapted) encoder; prints the label and the probabilities.")

    @OptionGroup var options: EncoderOptions
    @OptionGroup var input: InputOptions

    @Option(help: "Head: head.safetensors, a directory holding one, or a PEFT folder with a classifier in modules_to_save. Default: the head shipped with the adapter.")
    var head: String?

    @Flag(help: "Print JSONL {\"label\", \"probabilities\"} instead of a table.")
    var json = false

    struct Row: Encodable { let label: String; let probabilities: [String: JSONNumber] }

    func run() throws {
        let (shop, adapters) = try options.load()
        let h = try shop.head(explicit: head, adapters: adapters)
        let texts = try input.lines()
        let progress = Progress(total: texts.count, label: "classifying")
        let pooled = shop.encoder.encode(texts, adapters: adapters.set, maxLength: h.maxLength, pooling: h.pooling, batchSize: options.batchSize, progress: progress.update)
        let probs = pooled.map(h.probabilities)
        func best(_ p: [Float]) -> String { p.indices.max { p[$0] < p[$1] }.map { h.labels[$0] } ?? "" }
        if json {
            for p in probs {
                Console.print(try Console.json(Row(label: best(p), probabilities: Dictionary(zip(h.labels, p.map(JSONNumber.init)), uniquingKeysWith: { a, _ in a })), pretty: false))
            }
            return
        }
        var table = TextTable(["text", "label"] + h.labels, align: [.left, .left] + h.labels.map { _ in .right })
        for (t, p) in zip(texts, probs) {
            let short = t.count > 50 ? String(t.prefix(47)) + "..." : t
            table.add([short, best(p)] + p.map { String(format: "%.3f", $0) })
        }
        Console.print(table.render())
    }
}
