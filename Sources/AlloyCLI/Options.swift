import ArgumentParser
import Composition
import Encoder
import Foundation
import Formats
import Merging
import Store
import Tensors

/// `--store DIR` (default `$ALLOY_STORE`, else `~/.alloy`).
struct StoreOptions: ParsableArguments {
    @Option(help: "Store folder (default: $ALLOY_STORE, else ~/.alloy).")
    var store: String?

    var root: String { store ?? Store.defaultRoot }
    var locator: ModelLocator { ModelLocator(storeRoot: root) }

    func open(create: Bool = false) throws -> Store {
        try Store(root: root, create: create) { _ in Console.note("alloy: waiting for another alloy process to finish with the store \(root)") }
    }
}

/// Options shared by the commands that run the encoder.
struct EncoderOptions: ParsableArguments {
    @Option(help: "Base model: an HF folder with tokenizer.json, or a base in the store.")
    var model: String

    @Option(name: .customLong("adapter"), help: "Adapter PATH[@SCALE]: a PEFT LoRA folder, a sparse delta (.alloy or indices/values), a task-vector .safetensors or a fine-tuned HF model directory. Repeat to sum deltas.")
    var adapters: [String] = []

    @Option(help: "Sequences per batch (≥ 1).")
    var batchSize = 32

    @Option(help: "Arithmetic of the linear layers: f32, bf16 (AVX-512 BF16 where present) or int8 (dynamic quantisation, VNNI where present).")
    var precision: Precision = .f32

    @OptionGroup var storeOptions: StoreOptions

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1 (got \(batchSize))") }
        for a in adapters { _ = try adapterSpec(a) }
    }

    func adapterSpec(_ text: String) throws -> AdapterSpec {
        do { return try AdapterSpec(parsing: text) } catch { throw ValidationError("--adapter \(error)") }
    }

    /// The base encoder and the adapters, loaded.
    func load() throws -> (Workshop, Workshop.LoadedAdapters) {
        if !precision.accelerated {
            Console.note("alloy: this CPU lacks the instructions for --precision \(precision) (AVX-512 \(precision == .int8 ? "VNNI" : "BF16")); it runs a portable path, slower than f32")
        }
        let shop = try Workshop(model: model, locator: storeOptions.locator, precision: precision, packCache: .user())
        return (shop, try shop.adapters(try adapters.map(adapterSpec)))
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
            guard let d = FileManager.default.contents(atPath: input) else { throw CLIError("cannot read \(input)") }
            text = String(decoding: d, as: UTF8.self)
        }
        var ls = text.components(separatedBy: "\n")
        if ls.last == "" { ls.removeLast() }
        return ls
    }
}

/// A run-time failure the CLI reports itself (exit status 1).
struct CLIError: Error, CustomStringConvertible, LocalizedError {
    let description: String
    init(_ description: String) { self.description = description }
    var errorDescription: String? { description }
}

/// Checks shared by the commands' `validate()`.
enum Check {
    static func atLeast(_ value: Int, _ minimum: Int, _ option: String) throws {
        guard value >= minimum else { throw ValidationError("\(option) must be at least \(minimum) (got \(value))") }
    }

    /// A fraction in (0, 1].
    static func fraction(_ value: Double, _ option: String) throws {
        guard value > 0, value <= 1 else { throw ValidationError("\(option) \(value) is outside (0, 1]") }
    }

    /// A comma-separated list of names, none empty.
    static func names(_ list: String, _ option: String) throws {
        let parts = list.split(separator: ",", omittingEmptySubsequences: false)
        guard !list.isEmpty, parts.allSatisfy({ !$0.isEmpty }) else { throw ValidationError("\(option) wants a comma-separated list of names (got \"\(list)\")") }
    }
}

extension String {
    /// The comma-separated items of an option.
    var commaList: [String] { split(separator: ",").map(String.init) }
}

extension EntryKind: ExpressibleByArgument {}
extension Precision: ExpressibleByArgument {}
extension ExportFormat: ExpressibleByArgument {}
extension DeltaTools.SparsifyMethod: ExpressibleByArgument {}
extension EvalProtocol: ExpressibleByArgument {}
extension Composer.Method: ExpressibleByArgument {}
