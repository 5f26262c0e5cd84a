import ArgumentParser
import Composition
import Foundation
import Formats
import Merging

struct ExtractLoRA: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "extract-lora",
        abstract: "Extract a LoRA adapter (PEFT folder) from a fine-tuned model: truncated SVD of each linear layer's delta; reports the energy kept.")

    @Argument(help: "Fine-tuned model directory or .safetensors.") var source: String
    @Option(help: "Base model directory.") var base: String
    @Option(help: "LoRA rank (≥ 1).") var rank: Int
    @Option(name: .shortAndLong, help: "Output PEFT folder.") var out: String
    @Flag(help: "Print the per-tensor report as JSON.") var json = false

    func validate() throws { try Check.atLeast(rank, 1, "--rank") }

    func run() throws {
        let (factors, reports) = try DeltaTools.extractLoRA(fineTuned: WeightSource(path: source), base: WeightSource(path: base), rank: rank)
        let targets = Set(factors.keys.compactMap { $0.split(separator: ".").last.map(String.init) })
        try LoRAMerge.writePEFT(factors, to: out, targetModules: targets.sorted())
        try printReport(reports, json: json, what: "energy kept at rank \(rank)")
        if !json { Console.print("wrote \(factors.count) LoRA modules (rank \(rank)) → \(out)") }
    }
}

struct Sparsify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a diff-pruned (sparse) delta of a fine-tuned model over its base, stored as a .alloy sparse delta; reports the energy kept.")

    @Argument(help: "Fine-tuned model directory or .safetensors.") var source: String
    @Option(help: "Base model directory.") var base: String
    @Option(help: "magnitude, random or breadcrumbs.") var method: DeltaTools.SparsifyMethod = .magnitude
    @Option(help: "Fraction of entries to keep, in (0, 1].") var density: Double
    @Option(help: "Breadcrumbs: fraction of largest entries dropped as outliers, in [0, 1).") var gamma: Double = 0.01
    @Flag(help: "Select per row (last dimension) instead of per tensor.") var perRow = false
    @Option(help: "Seed for the random method.") var seed: UInt64 = 0
    @Option(name: .shortAndLong, help: "Output .alloy file.") var out: String
    @Flag(help: "Print the per-tensor report as JSON.") var json = false

    func validate() throws {
        try Check.fraction(density, "--density")
        guard gamma >= 0, gamma < 1 else { throw ValidationError("--gamma \(gamma) is outside [0, 1)") }
    }

    func run() throws {
        let s = try DeltaTools.sparsified(fineTuned: WeightSource(path: source), base: WeightSource(path: base), method: method, density: density,
                                          gamma: gamma, perRow: perRow, seed: seed,
                                          provenance: [("source", .string(source)), ("tool", .string("alloy sparsify --method \(method.rawValue) --density \(density)"))])
        try s.encoded.write(to: out)
        try printReport(s.reports, json: json, what: "energy kept")
        if !json { Console.print("kept \(Fmt.int(s.kept)) of \(Fmt.int(s.total)) entries (\(String(format: "%.3f", 100 * s.density))%) → \(out) (\(Fmt.bytes(s.encoded.size)))") }
    }
}

/// `merge-lora --method`.
enum LoRAMergeName: String, CaseIterable, ExpressibleByArgument {
    case linear, ties, dareLinear = "dare_linear", dareTies = "dare_ties", cat, svd
}

struct MergeLoRA: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "merge-lora",
        abstract: "Merge LoRA adapters in LoRA space as PEFT's add_weighted_adapter does; writes a PEFT folder.")

    @Option(name: .customLong("adapter"), help: "PEFT folder PATH[@WEIGHT] (repeat).") var adapters: [String]
    @Option(help: "linear, ties, dare_linear, dare_ties, cat or svd.") var method: LoRAMergeName = .linear
    @Option(help: "Density for ties/dare, in (0, 1].") var density = 0.5
    @Option(help: "Rank for svd, ≥ 1 (default: the largest input rank).") var rank: Int?
    @Option(help: "Seed for dare.") var seed: UInt64 = 0
    @Option(name: .shortAndLong, help: "Output PEFT folder.") var out: String
    @Flag(help: "Print the result as JSON.") var json = false

    struct Report: Encodable { let adapters: Int; let method: String; let modules: Int; let out: String }

    func validate() throws {
        guard !adapters.isEmpty else { throw ValidationError("give at least one --adapter PATH[@WEIGHT]") }
        for a in adapters { do { _ = try AdapterSpec(parsing: a) } catch { throw ValidationError("--adapter \(error)") } }
        try Check.fraction(density, "--density")
        if let rank { try Check.atLeast(rank, 1, "--rank") }
    }

    func run() throws {
        let specs = try adapters.map { try AdapterSpec(parsing: $0) }
        let peft = try specs.map { try PEFTAdapter(directory: $0.path) }
        let m: LoRAMerge.Method
        switch method {
        case .linear: m = .linear
        case .ties: m = .ties(density: density)
        case .dareLinear: m = .dareLinear(density: density, seed: seed)
        case .dareTies: m = .dareTies(density: density, seed: seed)
        case .cat: m = .cat
        case .svd: m = .svd(rank: rank ?? peft.map(\.rank).max() ?? 1)
        }
        let factors = try LoRAMerge.merge(peft, weights: specs.map(\.weight), method: m)
        try LoRAMerge.writePEFT(factors, to: out, targetModules: Array(Set(peft.flatMap(\.targetModules))).sorted())
        if json { return try Console.printJSON(Report(adapters: peft.count, method: method.rawValue, modules: factors.count, out: out)) }
        Console.print("merged \(peft.count) adapters (\(method.rawValue)) into \(factors.count) modules → \(out)")
    }
}

struct TensorReportJSON: Encodable {
    let tensor: String, energyKept: JSONNumber, kept: Int, total: Int
    enum CodingKeys: String, CodingKey { case tensor, kept, total, energyKept = "energy_kept" }
}

/// The per-tensor table (or JSON) of `extract-lora` and `sparsify`.
func printReport(_ reports: [DeltaTools.TensorReport], json: Bool, what: String) throws {
    if json {
        return try Console.printJSON(reports.map { TensorReportJSON(tensor: $0.name, energyKept: JSONNumber($0.energyKept), kept: $0.kept, total: $0.total) })
    }
    var table = TextTable(["tensor", what, "kept", "of"], align: [.left, .right, .right, .right])
    for r in reports { table.add([r.name, String(format: "%.4f", r.energyKept), Fmt.int(r.kept), Fmt.int(r.total)]) }
    Console.print(table.render())
}
