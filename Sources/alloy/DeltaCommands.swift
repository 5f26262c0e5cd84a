import ArgumentParser
import Foundation
import Formats
import Merging

struct ExtractLoRA: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "extract-lora",
        abstract: "Extract a LoRA adapter (PEFT folder) from a fine-tuned model: truncated SVD of each linear layer's delta; reports the energy kept.")

    @Argument(help: "Fine-tuned model directory or .safetensors.") var source: String
    @Option(help: "Base model directory.") var base: String
    @Option(help: "LoRA rank.") var rank: Int
    @Option(name: .shortAndLong, help: "Output PEFT folder.") var out: String
    @Flag(help: "Print the per-tensor report as JSON.") var json = false

    func validate() throws { guard rank > 0 else { throw ValidationError("--rank must be positive") } }

    func run() throws {
        let (factors, reports) = try DeltaTools.extractLoRA(fineTuned: WeightSource(path: source), base: WeightSource(path: base), rank: rank)
        let targets = Set(factors.keys.map { String($0.split(separator: ".").last!) })
        try LoRAMerge.writePEFT(factors, to: out, targetModules: Array(targets))
        try report(reports, json: json, what: "energy kept at rank \(rank)")
        print("wrote \(factors.count) LoRA modules (rank \(rank)) → \(out)")
    }
}

struct Sparsify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a diff-pruned (sparse) delta of a fine-tuned model over its base, stored as a .alloy sparse delta; reports the energy kept.")

    @Argument(help: "Fine-tuned model directory or .safetensors.") var source: String
    @Option(help: "Base model directory.") var base: String
    @Option(help: "magnitude, random or breadcrumbs.") var method: String = "magnitude"
    @Option(help: "Fraction of entries to keep, in (0, 1].") var density: Double
    @Option(help: "Breadcrumbs: fraction of largest entries dropped as outliers.") var gamma: Double = 0.01
    @Flag(help: "Select per row (last dimension) instead of per tensor.") var perRow = false
    @Option(help: "Seed for the random method.") var seed: UInt64 = 0
    @Option(name: .shortAndLong, help: "Output .alloy file.") var out: String
    @Flag(help: "Print the per-tensor report as JSON.") var json = false

    func validate() throws {
        guard DeltaTools.SparsifyMethod(rawValue: method) != nil else { throw ValidationError("unknown method \(method) (magnitude, random, breadcrumbs)") }
        guard density > 0, density <= 1 else { throw ValidationError("--density \(density) is outside (0, 1]") }
        guard gamma >= 0, gamma < 1 else { throw ValidationError("--gamma \(gamma) is outside [0, 1)") }
    }

    func run() throws {
        let baseSource = try WeightSource(path: base)
        let (tensors, reports) = try DeltaTools.sparsify(fineTuned: WeightSource(path: source), base: baseSource,
                                                         method: DeltaTools.SparsifyMethod(rawValue: method)!, density: density,
                                                         gamma: gamma, perRow: perRow, seed: seed)
        let kept = reports.reduce(0) { $0 + $1.kept }, total = reports.reduce(0) { $0 + $1.total }
        let encoded = try AlloyWriter.encode(tensors.map { .init(name: $0.0, tensor: $0.1, codec: .sparse) }, metadata: [
            ("kind", .string("sparse")), ("base_sha256", .string(try AlloyFile.contentHash(of: baseSource))),
            ("density", .number(Double(kept) / Double(max(1, total)))),
            ("provenance", .object([("source", .string(source)), ("tool", .string("alloy sparsify --method \(method) --density \(density)"))])),
        ])
        try encoded.write(to: out)
        try report(reports, json: json, what: "energy kept")
        print("kept \(Fmt.int(kept)) of \(Fmt.int(total)) entries (\(String(format: "%.3f", 100 * Double(kept) / Double(max(1, total))))%) → \(out) (\(Fmt.bytes(encoded.size)))")
    }
}

struct MergeLoRA: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "merge-lora",
        abstract: "Merge LoRA adapters in LoRA space as PEFT's add_weighted_adapter does; writes a PEFT folder.")

    @Option(name: .customLong("adapter"), help: "PEFT folder PATH[@WEIGHT] (repeat).") var adapters: [String]
    @Option(help: "linear, ties, dare_linear, dare_ties, cat or svd.") var method = "linear"
    @Option(help: "Density for ties/dare.") var density = 0.5
    @Option(help: "Rank for svd (default: the largest input rank).") var rank: Int?
    @Option(help: "Seed for dare.") var seed: UInt64 = 0
    @Option(name: .shortAndLong, help: "Output PEFT folder.") var out: String

    func run() throws {
        var peft: [PEFTAdapter] = [], weights: [Double] = []
        for spec in adapters {
            let (path, w): (String, Double) = {
                if let at = spec.lastIndex(of: "@"), let v = Double(spec[spec.index(after: at)...]) { return (String(spec[..<at]), v) }
                return (spec, 1)
            }()
            peft.append(try PEFTAdapter(directory: path)); weights.append(w)
        }
        let m: LoRAMerge.Method
        switch method {
        case "linear": m = .linear
        case "ties": m = .ties(density: density)
        case "dare_linear": m = .dareLinear(density: density, seed: seed)
        case "dare_ties": m = .dareTies(density: density, seed: seed)
        case "cat": m = .cat
        case "svd": m = .svd(rank: rank ?? peft.map(\.rank).max()!)
        default: throw ValidationError("unknown method \(method)")
        }
        let factors = try LoRAMerge.merge(peft, weights: weights, method: m)
        try LoRAMerge.writePEFT(factors, to: out, targetModules: Array(Set(peft.flatMap(\.targetModules))))
        print("merged \(peft.count) adapters (\(method)) into \(factors.count) modules → \(out)")
    }
}

func report(_ reports: [DeltaTools.TensorReport], json: Bool, what: String) throws {
    if json {
        print(Console.json(reports.map { ["tensor": $0.name, "energy_kept": $0.energyKept, "kept": $0.kept, "total": $0.total] as [String: Any] }))
        return
    }
    var table = TextTable(["tensor", what, "kept", "of"], align: [.left, .right, .right, .right])
    for r in reports { table.add([r.name, String(format: "%.4f", r.energyKept), Fmt.int(r.kept), Fmt.int(r.total)]) }
    print(table.render())
}
