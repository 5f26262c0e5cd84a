import ArgumentParser
import Foundation
import Encoder
import Formats

/// Options shared by the commands that run the encoder.
struct EncoderOptions: ParsableArguments {
    @Option(help: "Base model: an HF folder with tokenizer.json, or a base in the store.")
    var model: String

    @Option(name: .customLong("adapter"), help: "Adapter PATH[@SCALE]: a PEFT LoRA folder, a sparse delta (.alloy or indices/values), a task-vector .safetensors or a fine-tuned HF model directory. Repeat to sum deltas.")
    var adapters: [String] = []

    @Option(help: "Sequences per batch.")
    var batchSize = 32

    @OptionGroup var storeOptions: StoreOptions

    func load() throws -> (SentenceEncoder, AdapterSet, [LoRAAdapter]) {
        let encoder = try SentenceEncoder(directory: try storeOptions.resolve(model))
        var set = AdapterSet()
        var loras: [LoRAAdapter] = []
        for spec in adapters {
            var (path, scale) = try parseAdapterArgument(spec)
            path = try storeOptions.resolve(path)
            if let l = try set.add(path: path, scale: scale, model: encoder.model, labels: ClassificationHead.labels(near: path)) { loras.append(l) }
        }
        return (encoder, set, loras)
    }

}

/// The `--input` of commands that read one text per line.
struct InputOptions: ParsableArguments {
    @Option(help: "Text file, one input per line (- for standard input).")
    var input: String

    func lines() throws -> [String] {
        let text: String
        if input == "-" {
            text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        } else {
            guard let d = FileManager.default.contents(atPath: input) else { throw ValidationError("cannot read \(input)") }
            text = String(decoding: d, as: UTF8.self)
        }
        var ls = text.components(separatedBy: "\n")
        if ls.last == "" { ls.removeLast() }
        return ls
    }
}

/// A one-line progress bar on stderr, shown only on a terminal.
struct Progress {
    let total: Int
    let label: String
    let enabled = Console.stderrIsTerminal
    func update(_ done: Int) {
        guard enabled, total > 0 else { return }
        let w = 30, f = done * w / total
        FileHandle.standardError.write(Data("\r\(label) [\(String(repeating: "█", count: f))\(String(repeating: " ", count: w - f))] \(done)/\(total)".utf8))
        if done >= total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Embed texts with the base model and adapters applied on the fly; prints JSONL {\"embedding\": [...]}.")

    @OptionGroup var options: EncoderOptions
    @OptionGroup var input: InputOptions

    func run() throws {
        let (encoder, set, _) = try options.load()
        let texts = try input.lines()
        let progress = Progress(total: texts.count, label: "embedding")
        let vectors = encoder.encode(texts, adapters: set, batchSize: options.batchSize, progress: progress.update)
        var out = ""
        out.reserveCapacity(vectors.count * encoder.model.hidden * 12)
        for v in vectors {
            out += "{\"embedding\":["
            out += v.map { "\($0)" }.joined(separator: ",")
            out += "]}\n"
        }
        FileHandle.standardOutput.write(Data(out.utf8))
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

    func run() throws {
        let (encoder, set, loras) = try options.load()
        let h: ClassificationHead
        if let head {
            h = try ClassificationHead.load(path: head, model: encoder.model)
        } else if let l = loras.compactMap(\.head).first {
            h = l
        } else if let p = options.adapters.map({ try? parseAdapterArgument($0).path }).compactMap({ $0 }).first(where: {
            FileManager.default.fileExists(atPath: ($0 as NSString).appendingPathComponent("head.safetensors"))
        }) {
            h = try ClassificationHead.load(path: p, model: encoder.model)
        } else {
            throw ValidationError("no head: pass --head, or an adapter that ships one (a PEFT folder with modules_to_save, or a folder with head.safetensors)")
        }
        let texts = try input.lines()
        let progress = Progress(total: texts.count, label: "classifying")
        let pooled = encoder.encode(texts, adapters: set, normalized: false, maxLength: h.maxLength, batchSize: options.batchSize, progress: progress.update)
        let probs = pooled.map(h.probabilities)
        if json {
            for p in probs {
                let best = p.indices.max { p[$0] < p[$1] }!
                let obj: [String: Any] = ["label": h.labels[best], "probabilities": Dictionary(uniqueKeysWithValues: zip(h.labels, p.map(Double.init)))]
                let d = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
                print(String(decoding: d, as: UTF8.self))
            }
            return
        }
        var table = TextTable(["text", "label"] + h.labels, align: [.left, .left] + h.labels.map { _ in .right })
        for (t, p) in zip(texts, probs) {
            let best = p.indices.max { p[$0] < p[$1] }!
            let short = t.count > 50 ? String(t.prefix(47)) + "..." : t
            table.add([short, h.labels[best]] + p.map { String(format: "%.3f", $0) })
        }
        print(table.render())
    }
}
