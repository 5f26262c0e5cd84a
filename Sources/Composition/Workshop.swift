import Encoder
import Evaluation
import Formats
import Foundation
import Merging
import Store
import Tensors

/// The application layer under the CLI: loads the base encoder, experts, adapters, recipes and
/// compositions named on a command line (paths or store references) and builds encoder
/// variants and workbenches from them.
public struct Workshop {
    public let locator: ModelLocator
    public let encoder: SentenceEncoder

    public init(encoder: SentenceEncoder, locator: ModelLocator) {
        self.encoder = encoder; self.locator = locator
    }

    /// Loads the base `model` (a folder or a store entry), its linear layers at `precision`, their
    /// packed weights kept in `packCache` when given.
    public init(model: String, locator: ModelLocator, precision: Precision = .f32, packCache: PackedWeightCache? = nil) throws {
        self.init(encoder: try SentenceEncoder(directory: try locator.path(model), precision: precision, packCache: packCache), locator: locator)
    }

    /// Adapters loaded from `--adapter` specs, summed into one set.
    public struct LoadedAdapters {
        public var set = AdapterSet()
        /// The LoRA adapters among them (with their heads, when their PEFT folders ship one).
        public var loras: [LoRAAdapter] = []
        /// The resolved path of every adapter, in order.
        public var paths: [String] = []
    }

    /// Loads `specs` (PEFT LoRA folders, sparse deltas, task vectors, fine-tuned models; paths or
    /// store entries) at their weights.
    public func adapters(_ specs: [AdapterSpec]) throws -> LoadedAdapters {
        var loaded = LoadedAdapters()
        for spec in specs {
            let path = try locator.path(spec.path)
            if let l = try loaded.set.add(path: path, scale: Float(spec.weight), model: encoder.model, labels: ClassificationHead.labels(near: path)) {
                loaded.loras.append(l)
            }
            loaded.paths.append(path)
        }
        return loaded
    }

    /// `--experts a,b,…`: LoRA experts (store entries or PEFT folders) with a card.json naming
    /// the task, in the folder or beside it.
    public func experts(_ refs: [String]) throws -> [Expert] {
        try refs.map { ref in
            let path = try locator.path(ref)
            var scratch = AdapterSet()
            guard let a = try scratch.add(path: path, scale: 1, model: encoder.model, labels: ClassificationHead.labels(near: path)) else {
                throw CompositionError.notLoRA(expert: ref)
            }
            guard let task = try ExpertCard.near(path)?.task else { throw CompositionError.noCard(expert: ref) }
            return Expert(name: ref, task: task, adapter: a)
        }
    }

    /// A workbench over `experts` and the tasks in `tasksDir`.
    public func workbench(experts: [String], tasksDir: String) throws -> Workbench {
        Workbench(encoder: encoder, tasksDir: tasksDir, experts: try self.experts(experts))
    }

    /// A variant from `spec`: a recipe (.yaml, merged in memory), `ref@w,ref@w` (LoRAs and deltas
    /// summed with weights), one store entry or adapter path, or `base`.
    public func variant(name: String, spec: String) throws -> Variant {
        if spec.hasSuffix(".yaml") || spec.hasSuffix(".yml") { return try variant(name: name, recipe: try recipe(spec)) }
        if spec == "base" { return Variant(name: name) }
        return Variant(name: name, adapters: try adapters(try AdapterSpec.list(spec)).set)
    }

    /// A recipe whose models may be store entries (materialised once in the store's cache).
    public func recipe(_ path: String) throws -> Recipe {
        try Recipe(path: path) { ref in
            guard locator.storeExists else { return nil }   // the recipe then reports the missing model
            let s = try locator.open()
            return try s.materialize(try s.resolve(ref))
        }
    }

    /// The recipe merged in memory, applied to the base as a dense delta.
    public func variant(name: String, recipe: Recipe) throws -> Variant {
        let (tensors, _) = try Merger.merge(recipe)
        var set = AdapterSet()
        try set.add(weights: tensors, scale: 1, model: encoder.model, source: recipe.path)
        return Variant(name: name, adapters: set)
    }

    /// `set` with the composition `spec` added: LoRAs are appended; a weight both patch is the
    /// sum of their deltas over the base (θ_a + θ_b − θ_base).
    public func composed(_ set: AdapterSet, with spec: String) throws -> AdapterSet {
        var out = set
        let extra = try variant(name: "composed", spec: spec).adapters
        out.loras += extra.loras
        for (name, t) in extra.patched {
            guard let mine = out.patched[name] else { out.patched[name] = t; continue }
            guard let base = encoder.model.weights[name] else {
                throw CompositionError.badSpec(spec: spec, reason: "patches \(name), which is not a weight of the base")
            }
            var a = try mine.floats()
            let b = try t.floats(), w = try base.floats()
            for i in a.indices { a[i] += b[i] - w[i] }
            out.patched[name] = try Tensor(a, shape: t.shape)
        }
        return out
    }

    /// The head `classify` uses: `explicit` (a file, a folder holding head.safetensors, or a PEFT
    /// folder), else the first loaded LoRA's head, else a head.safetensors beside an adapter.
    public func head(explicit: String?, adapters: LoadedAdapters) throws -> ClassificationHead {
        if let explicit { return try ClassificationHead.load(path: try locator.path(explicit), model: encoder.model) }
        if let h = adapters.loras.compactMap(\.head).first { return h }
        if let p = adapters.paths.first(where: { Self.hasHeadFile($0) }) { return try ClassificationHead.load(path: p, model: encoder.model) }
        if Self.hasHeadFile(encoder.model.directory) { return try ClassificationHead.load(path: encoder.model.directory, model: encoder.model) }
        throw CompositionError.noHead(task: nil, reason: "pass --head, or an adapter or model that ships one (a PEFT folder with modules_to_save, a folder with head.safetensors, a transformers …ForSequenceClassification checkpoint)")
    }

    /// Head-protocol experts for `tasks` (what `eval --protocol head` scores with): `explicit`
    /// for every task; else the single head the adapters ship; else each task's shipped expert
    /// `expertsDir/<task>/lora`.
    public func taskHeads(_ tasks: [String], explicit: String?, adapters: LoadedAdapters, expertsDir: String) throws -> [Expert] {
        var shipped = adapters.loras.compactMap(\.head)
        for p in adapters.paths where Self.hasHeadFile(p) { shipped.append(try ClassificationHead.load(path: p, model: encoder.model)) }
        let common = try explicit.map { try ClassificationHead.load(path: try locator.path($0), model: encoder.model) }
        return try tasks.map { t in
            let h: ClassificationHead
            if let common { h = common } else if shipped.count == 1 { h = shipped[0] } else {
                let lora = "\(expertsDir)/\(t)/lora"
                guard FileManager.default.fileExists(atPath: lora) else {
                    throw CompositionError.noHead(task: t, reason: "pass --head, one adapter with a head, or ship an expert in \(lora)")
                }
                h = try ClassificationHead.load(path: lora, model: encoder.model)
            }
            return Expert(name: "head", task: t, adapter: LoRAAdapter(name: "head", layers: [:], head: h))
        }
    }

    /// Whether `dir` ships a head: head.safetensors, or a transformers classifier checkpoint.
    static func hasHeadFile(_ dir: String) -> Bool {
        FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent("head.safetensors"))
            || ClassificationHead.isTransformersClassifier(dir)
    }
}
