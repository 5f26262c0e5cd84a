import Foundation
import Tensors

/// A PEFT LoRA folder: `adapter_config.json` + `adapter_model.safetensors` (or, as PEFT wrote
/// before safetensors became its default, `adapter_model.bin`: a `torch.save` of the factors).
///
/// Scaling follows PEFT: α/r, or α/√r with `use_rslora`; `rank_pattern` and `alpha_pattern`
/// override r and α for modules whose name ends with a pattern key (PEFT matches
/// `(.*\.)?key$`). Tensors of `modules_to_save` (e.g. a classifier) are returned as-is.
public struct PEFTAdapter {
    public struct Module {
        /// Module path without PEFT's `base_model.model.` prefix, e.g. `bert.encoder.layer.0.attention.self.query`.
        public let path: String
        public let a: Tensor     // r × in
        public let b: Tensor     // out × r
        public let scale: Float
    }

    public let directory: String
    public let rank: Int
    public let alpha: Double
    public let useRSLoRA: Bool
    public let targetModules: [String]
    public let modulesToSave: [String]
    public let modules: [Module]
    /// Tensors of `modules_to_save`, by name without the PEFT prefix (e.g. `classifier.weight`).
    public let savedTensors: [String: Tensor]
    public let baseModelName: String?
    /// PEFT's `task_type` (`SEQ_CLS`, `FEATURE_EXTRACTION`, …), if recorded.
    public let taskType: String?
    /// The class PEFT wrapped (`auto_mapping.base_model_class`), if recorded: a transformers
    /// `…ForSequenceClassification`, or a custom module such as Alloy's `MeanPoolClassifier`.
    public let baseModelClass: String?

    public init(directory: String) throws {
        let cfgPath = (directory as NSString).appendingPathComponent("adapter_config.json")
        guard let data = FileManager.default.contents(atPath: cfgPath) else {
            throw PEFTError(path: directory, reason: "no adapter_config.json: not a PEFT adapter folder")
        }
        try self.init(source: directory, config: data) {
            let file = try Self.weights(in: directory)
            return (file.tensors.map(\.name), file.tensor)
        }
    }

    /// The weight files a PEFT folder may hold, in the order PEFT's loader prefers them.
    public static let weightFiles = ["adapter_model.safetensors", "adapter_model.bin"]

    /// The folder's adapter weights: adapter_model.safetensors, else adapter_model.bin (read by
    /// `TorchCheckpoint`, which rebuilds tensors without running the pickle).
    public static func weights(in directory: String) throws -> any WeightFile {
        let paths = weightFiles.map { (directory as NSString).appendingPathComponent($0) }
        guard let path = paths.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw PEFTError(path: directory, reason: "no adapter_model.safetensors or adapter_model.bin")
        }
        return path.hasSuffix(".bin") ? try TorchCheckpoint(path: path) : try SafetensorsFile(path: path)
    }

    /// A PEFT LoRA held elsewhere than in a folder (a store's blobs): `config` is the bytes of
    /// its adapter_config.json; `weights` gives the names of adapter_model.safetensors' tensors
    /// and a reader of one (called once, after the config passed its checks). `source` names
    /// it in errors and becomes `directory`.
    public init(source: String, config data: Data, weights: () throws -> (names: [String], tensor: (String) throws -> Tensor)) throws {
        self.directory = source
        let directory = source
        func fail(_ r: String) -> PEFTError { PEFTError(path: directory, reason: r) }
        let cfg: JSONValue
        do { cfg = try data.withUnsafeBytes { try JSONValue.parse($0, maxDepth: 32) } } catch {
            throw fail("adapter_config.json is not valid JSON (\(error))")
        }
        guard cfg.members != nil else { throw fail("adapter_config.json is not a JSON object") }
        /// A present, non-null field of the wrong type is an error, never a silent default.
        func field<T>(_ key: String, _ type: String, _ read: (JSONValue) -> T?) throws -> T? {
            guard let v = cfg[key], v != .null else { return nil }
            guard let t = read(v) else { throw fail("\(key) in adapter_config.json must be \(type), is \(v.serialized().prefix(80))") }
            return t
        }
        let peftType = try field("peft_type", "a string", \.string)
        guard peftType?.uppercased() == "LORA" else { throw fail("peft_type is \(peftType ?? "missing"); only LORA is supported") }
        guard let r = try field("r", "an integer", \.int), r > 0 else { throw fail("adapter_config.json lacks a positive r") }
        rank = r
        alpha = try field("lora_alpha", "a number", \.double) ?? Double(r)
        useRSLoRA = try field("use_rslora", "a boolean", \.bool) ?? false
        if try field("fan_in_fan_out", "a boolean", \.bool) == true { throw fail("fan_in_fan_out = true (Conv1D models) is not supported for BERT-family encoders") }
        if let bias = try field("bias", "a string", \.string), bias != "none" { throw fail("bias = \"\(bias)\" is not supported (only \"none\")") }
        if try field("use_dora", "a boolean", \.bool) == true { throw fail("DoRA adapters are not supported") }
        let strings: (JSONValue) -> [String]? = { v in v.array.flatMap { a in
            let s = a.compactMap(\.string)
            return s.count == a.count ? s : nil
        } }
        targetModules = try field("target_modules", "a string or a list of strings") { v in v.string.map { [$0] } ?? strings(v) } ?? []
        modulesToSave = try field("modules_to_save", "a list of strings", strings) ?? []
        baseModelName = try field("base_model_name_or_path", "a string", \.string)
        taskType = try field("task_type", "a string", \.string)
        baseModelClass = try field("auto_mapping", "an object", \.members).flatMap { m in m.first { $0.0 == "base_model_class" }?.1.string }
        func numbers<V>(_ key: String, _ read: @escaping (JSONValue) -> V?) throws -> [String: V] {
            let members = try field(key, "an object of numbers", \.members) ?? []
            var out: [String: V] = [:]
            for (k, v) in members {
                guard let n = read(v) else { throw fail("\(key).\(k) in adapter_config.json must be a number, is \(v.serialized().prefix(80))") }
                out[k] = n
            }
            return out
        }
        let rankPattern = try numbers("rank_pattern", \.int)
        let alphaPattern = try numbers("alpha_pattern", \.double)
        let file = try weights()

        func pattern<V>(_ p: [String: V], _ module: String) -> V? {
            p.keys.sorted().first { module == $0 || module.hasSuffix("." + $0) }.flatMap { p[$0] }
        }
        var a: [String: Tensor] = [:], b: [String: Tensor] = [:], saved: [String: Tensor] = [:]
        for name in file.names {
            var n = name
            if n.hasPrefix("base_model.model.") { n.removeFirst("base_model.model.".count) }
            let t = try file.tensor(name)
            if let (module, isA) = Self.loraFactor(n) {
                guard n.hasSuffix(".weight") else { throw fail("tensor \"\(name)\": only LoRA weights are supported") }
                guard t.shape.rank == 2, t.dtype.isFloatingPoint else { throw fail("tensor \"\(name)\" must be a floating-point matrix, is \(t.dtype.rawValue) \(t.shape)") }
                if isA { a[module] = try t.converted(to: .f32) } else { b[module] = try t.converted(to: .f32) }
            } else if modulesToSave.contains(where: { n.hasPrefix($0 + ".") || n.contains("." + $0 + ".") }) {
                saved[n.replacingOccurrences(of: ".modules_to_save.default", with: "")] = try t.converted(to: .f32)
            } else {
                throw fail("tensor \"\(name)\" is neither a LoRA weight nor in modules_to_save")
            }
        }
        var modules: [Module] = []
        for (module, at) in a.sorted(by: { $0.key < $1.key }) {
            guard let bt = b[module] else { throw fail("module \(module) has lora_A but no lora_B") }
            let rm = at.shape.dims[0]
            let expectRank = pattern(rankPattern, module) ?? r
            guard rm == expectRank, bt.shape.dims[1] == rm else {
                throw fail("module \(module): lora_A \(at.shape) and lora_B \(bt.shape) do not match rank \(expectRank)")
            }
            let am = pattern(alphaPattern, module) ?? alpha
            let scale = useRSLoRA ? am / Double(rm).squareRoot() : am / Double(rm)
            modules.append(Module(path: module, a: at, b: bt, scale: Float(scale)))
        }
        for module in b.keys where a[module] == nil { throw fail("module \(module) has lora_B but no lora_A") }
        guard !modules.isEmpty || !saved.isEmpty else { throw fail("the adapter's weights hold no LoRA factors") }
        self.modules = modules
        self.savedTensors = saved
    }

    /// The module of a LoRA factor's tensor name (`<module>.lora_A.<adapter>.weight`) and
    /// whether it is A: the text before the first `.lora_A.`, else the first `.lora_B.`.
    static func loraFactor(_ name: String) -> (module: String, isA: Bool)? {
        let u = Array(name.utf8)
        func find(_ factor: UInt8) -> Int? {
            let marker = Array(".lora_".utf8) + [factor, UInt8(ascii: ".")]
            guard u.count >= marker.count else { return nil }
            return (0...(u.count - marker.count)).first { i in u[i] == marker[0] && u[i..<(i + marker.count)].elementsEqual(marker) }
        }
        if let i = find(UInt8(ascii: "A")) { return (String(decoding: u[..<i], as: UTF8.self), true) }
        if let i = find(UInt8(ascii: "B")) { return (String(decoding: u[..<i], as: UTF8.self), false) }
        return nil
    }
}

public struct PEFTError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}
