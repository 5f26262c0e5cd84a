import Foundation
import Formats
import Tensors

/// What a merge did.
public struct MergeReport: Sendable {
    public var tensors = 0
    public var parameters = 0
    public var bytesRead = 0
    public var bytesWritten = 0
    public var seconds = 0.0
    public var kept = KeepStatistics()
}

/// Runs recipes: every input is mapped, every tensor is merged on its own (streaming, both
/// cores) and written straight into the mapped output file (or kept in memory for callers that
/// want the tensors). Checks everything it can before any work: models exist, architectures and
/// tensor names/shapes agree.
public enum Merger {
    /// The merged tensors, in the base's tensor order. Tensors named in `unmerged` (a
    /// classifier's own head: merging heads of different tasks means nothing) are the base's.
    public static func merge(_ recipe: Recipe, unmerged: Set<String> = [], progress: ((Int, Int) -> Void)? = nil) throws -> ([(String, Tensor)], MergeReport) {
        let plan = try Plan(recipe, unmerged: unmerged)
        var out: [(String, Tensor)] = []
        let report = try merge(plan, progress: progress, file: nil, emit: { out.append(($0, $1)) })
        return (out, report)
    }

    /// Merges `recipe` into `outputDirectory/model.safetensors` (each tensor written at its place
    /// in the file as it is computed) plus the base's side files (config.json, tokenizer, …).
    @discardableResult
    public static func run(_ recipe: Recipe, outputDirectory dir: String, unmerged: Set<String> = [],
                           progress: ((Int, Int) -> Void)? = nil) throws -> MergeReport {
        try run(recipe, outputDirectory: dir, unmerged: unmerged, progress: progress, batchLimit: pendingLimit)
    }

    /// `run`, its batches of passes running once they hold `batchLimit` bytes of converted
    /// inputs (0: after every tensor; tests).
    static func run(_ recipe: Recipe, outputDirectory dir: String, unmerged: Set<String> = [],
                    progress: ((Int, Int) -> Void)?, batchLimit: Int) throws -> MergeReport {
        let plan = try Plan(recipe, unmerged: unmerged)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let file = try SafetensorsWriter.Placed(plan.entries, metadata: ["format": "pt", "merged_by": "alloy \(recipe.method.name)"],
                                                path: (dir as NSString).appendingPathComponent("model.safetensors"))
        let report = try merge(plan, progress: progress, file: file, batchLimit: batchLimit, emit: { _, _ in })
        try file.commit()
        try ModelFolder.copySideFiles(from: recipe.baseModel ?? recipe.models[0].path, to: dir)
        return report
    }

    /// A checked recipe: its models opened, names and shapes agreed, the output's tensors known.
    struct Plan {
        let recipe: Recipe
        let unmerged: Set<String>
        let base: WeightSource?
        let others: [Recipe.Model]
        let inputs: [WeightSource]
        let template: WeightSource
        let layers: Int
        let start = Date()

        init(_ recipe: Recipe, unmerged: Set<String>) throws {
            func open(_ path: String, line: Int?) throws -> (WeightSource, HFConfig?) {
                guard FileManager.default.fileExists(atPath: path) else {
                    throw RecipeError(path: recipe.path, line: line, message: "model \(path) does not exist")
                }
                let src: WeightSource
                do { src = try WeightSource(path: path) } catch {
                    throw RecipeError(path: recipe.path, line: line, message: "model \(path): \(error)")
                }
                let cfg = (path as NSString).appendingPathComponent("config.json")
                return (src, FileManager.default.fileExists(atPath: cfg) ? try HFConfig.load(path: cfg) : nil)
            }
            let base = try recipe.baseModel.map { try open($0, line: nil) }
            let others = recipe.models.filter { $0.path != recipe.baseModel }
            let inputs = try others.map { try open($0.path, line: $0.line) }
            let template = base ?? inputs[0]
            for (m, (src, cfg)) in zip(others, inputs) {
                if let a = template.1, let b = cfg, a.hiddenSize != b.hiddenSize || a.numHiddenLayers != b.numHiddenLayers || a.modelType != b.modelType {
                    throw RecipeError(path: recipe.path, line: m.line, message: "model \(m.path) is \(b.summary), the base is \(a.summary)")
                }
                for e in template.0.entries where !unmerged.contains(e.name) {
                    guard let info = Merger.resolve(e.name, in: src).map({ src.info($0) }) ?? nil else {
                        // Buffers (ids, not weights) are optional: the output takes the base's.
                        if TensorNames.isOptionalBuffer(e.name) || !e.info.dtype.isFloatingPoint { continue }
                        throw RecipeError(path: recipe.path, line: m.line, message: "model \(m.path) lacks tensor \"\(e.name)\"")
                    }
                    guard info.shape == e.info.shape else {
                        throw RecipeError(path: recipe.path, line: m.line, message: "tensor \"\(e.name)\" of \(m.path) has shape \(info.shape), the base \(e.info.shape)")
                    }
                }
            }
            self.recipe = recipe
            self.unmerged = unmerged
            self.base = base?.0
            self.others = others
            self.inputs = inputs.map(\.0)
            self.template = template.0
            layers = template.1?.numHiddenLayers ?? 1
        }

        /// Whether the template's tensor is merged (else the output takes the base's).
        func isMerged(_ info: TensorInfo) -> Bool {
            info.dtype.isFloatingPoint && info.shape.elementCount > 0 && !unmerged.contains(info.name)
        }

        /// The output's tensors: the template's names and shapes, merged ones in the recipe's dtype.
        var entries: [SafetensorsWriter.Entry] {
            template.entries.map { e in
                SafetensorsWriter.Entry(name: e.name, dtype: isMerged(e.info) ? recipe.dtype ?? e.info.dtype : e.info.dtype, shape: e.info.shape)
            }
        }
    }

    /// Merges every tensor of `plan`: into `file` when given, else handed to `emit`.
    ///
    /// Into a file, the F32 results of linear and task arithmetic are written chunk by chunk as
    /// the kernels finish them, and the chunks of many tensors run in one parallel loop (a
    /// model's tensors are mostly small: a loop per tensor left a core waiting at each one's
    /// end). Their inputs stay mapped, or converted up to `batchLimit` bytes, until the loop
    /// runs. The disk's writeback of each tensor starts once its last chunk is written.
    static func merge(_ plan: Plan, progress: ((Int, Int) -> Void)?, file: SafetensorsWriter.Placed?, batchLimit: Int = pendingLimit,
                      emit: (String, Tensor) -> Void) throws -> MergeReport {
        let recipe = plan.recipe
        var report = MergeReport()
        let entries = plan.template.entries
        var batch = PassBatch(total: entries.count, progress: progress, file: file)
        for e in entries {
            let name = e.name
            let ref = try plan.template.tensor(name)
            // The plan's entries are the template's: every name has a range in the file.
            let place = file.flatMap { f in f.range(name).map { (f, $0.lowerBound) } }
            report.tensors += 1
            guard plan.isMerged(e.info) else {
                // ids and masks (and empty tensors, unmerged ones): the base's
                if case let (f, at)? = place { f.write(ref.rawBytes, at: at); f.finished(name) } else { emit(name, ref) }
                batch.done(name: nil)
                continue
            }
            let parameters = try Self.parameters(recipe, others: plan.others, tensor: name, position: layerPosition(name, layers: plan.layers))
            // F32 views (zero-copy for F32 inputs).
            var keep: [Tensor] = [], converted = 0
            func floats(_ t: Tensor) throws -> UnsafePointer<Float> {
                let f = t.dtype == .f32 ? t : try t.converted(to: .f32)
                if t.dtype != .f32 { converted += f.byteCount }
                keep.append(f)
                report.bytesRead += t.byteCount
                return f.rawBytes.nonEmptyBase.assumingMemoryBound(to: Float.self)
            }
            let basePtr = try plan.base.map { try floats(try $0.tensor(name)) }
            let modelPtrs = try plan.inputs.map { input in
                // The plan found every floating-point tensor in every model.
                guard let n = Self.resolve(name, in: input) else { throw RecipeError(path: recipe.path, line: nil, message: "a model lacks tensor \"\(name)\"") }
                return try floats(try input.tensor(n))
            }
            let x = TensorInputs(models: modelPtrs, count: ref.elementCount)
            let target = recipe.dtype ?? ref.dtype
            report.parameters += ref.elementCount
            report.bytesWritten += ref.elementCount * target.byteSize
            // Straight into the output file, batched, when it is F32 there and the kernel works
            // chunk by chunk; else a buffer, converted and written (or emitted) after.
            let chunked: Bool
            switch recipe.method.kind { case .linear, .taskArithmetic: chunked = true; case .slerp, .modelStock: chunked = false }
            if target == .f32, chunked, let (f, at) = place {
                let sink = MergeOutput(target: .file(f, offset: at))
                switch (recipe.method.kind, basePtr) {
                case (.linear, _): batch.add(MergeKernels.linearPass(x, parameters, out: sink), name: name, keep: keep, converted: converted, counts: false)
                case let (.taskArithmetic(s, consensus), base?):
                    let (pass, st) = MergeKernels.taskArithmeticPass(x, base: base, parameters, sparsification: s, consensus: consensus, tensor: name, out: sink)
                    report.kept.total += st.total
                    batch.add(pass, name: name, keep: keep, converted: converted, counts: true)
                default: throw RecipeError(path: recipe.path, line: nil, message: "\(recipe.method.name) needs a base_model")
                }
                if batch.converted >= batchLimit { report.kept.kept += batch.run() }
                continue
            }
            let result = try Tensor(dtype: .f32, shape: ref.shape, buffer: TensorBuffer(uninitializedByteCount: ref.elementCount * 4))
            let out = result.buffer.mutableBase.assumingMemoryBound(to: Float.self)
            switch (recipe.method.kind, basePtr) {
            case (.linear, _): MergeKernels.linear(x, parameters, out: MergeOutput(target: .memory(out)))
            case let (.taskArithmetic(s, consensus), base?):
                let st = MergeKernels.taskArithmetic(x, base: base, parameters, sparsification: s, consensus: consensus, tensor: name, out: MergeOutput(target: .memory(out)))
                report.kept.kept += st.kept; report.kept.total += st.total
            case let (.slerp, base?): MergeKernels.slerp(x, base: base, t: parameters.t, out: out)
            case let (.modelStock, base?): MergeKernels.modelStock(x, base: base, out: out)
            case (_, nil): throw RecipeError(path: recipe.path, line: nil, message: "\(recipe.method.name) needs a base_model")
            }
            let final = target == .f32 ? result : try result.converted(to: target)
            if case let (f, at)? = place { f.write(final.rawBytes, at: at); f.finished(name) } else { emit(name, final) }
            batch.done(name: nil)
        }
        report.kept.kept += batch.run()
        report.seconds = Date().timeIntervalSince(plan.start)
        return report
    }

    /// Bytes of converted (non-F32) inputs a batch of passes may hold before it runs.
    static let pendingLimit = 256 << 20

    /// Tensors' merge passes waiting to run together, and the count of tensors done, for
    /// `progress`: a tensor is done when its last chunk is written, which also starts the
    /// disk's writeback of its bytes.
    struct PassBatch {
        private(set) var converted = 0
        private var passes: [(pass: ChunkedPass, name: String, counts: Bool)] = []
        private var keep: [Tensor] = []
        private let tally: Tally

        init(total: Int, progress: ((Int, Int) -> Void)?, file: SafetensorsWriter.Placed?) {
            tally = Tally(total: total, progress: progress, file: file)
        }

        mutating func add(_ pass: ChunkedPass, name: String, keep: [Tensor], converted: Int, counts: Bool) {
            passes.append((pass, name, counts)); self.keep += keep; self.converted += converted
        }

        /// A tensor finished outside the batch (`name` nil: its writeback is the caller's).
        func done(name: String?) { tally.done(name) }

        /// Runs every pending chunk on both cores; the entries kept by the passes that count them.
        mutating func run() -> Int {
            defer { passes = []; keep = []; converted = 0 }
            var items: [(pass: Int, chunk: Int)] = []
            for (p, entry) in passes.enumerated() { for c in 0..<entry.pass.chunks { items.append((p, c)) } }
            guard !items.isEmpty else { return 0 }
            var kept = [Int](repeating: 0, count: items.count)
            var left = passes.map(\.pass.chunks)
            let lock = NSLock(), passes = passes, tally = tally
            kept.withUnsafeMutableBufferPointer { k in
                left.withUnsafeMutableBufferPointer { l in
                    let box = UnsafeSendableBox((k.nonEmptyBase, l.nonEmptyBase))
                    Parallel.forEach(count: items.count) { i in
                        let (p, c) = items[i]
                        box.value.0[i] = passes[p].pass.run(c)
                        let last = lock.withLock { box.value.1[p] -= 1; return box.value.1[p] == 0 }
                        if last { tally.done(passes[p].name) }
                    }
                }
            }
            return zip(items, kept).reduce(0) { sum, pair in passes[pair.0.pass].counts ? sum + pair.1 : sum }
        }
    }

    /// Counts finished tensors for `progress` (from any thread) and starts each one's writeback.
    final class Tally: @unchecked Sendable {
        private let total: Int
        private let progress: ((Int, Int) -> Void)?
        private let file: SafetensorsWriter.Placed?
        private var count = 0
        private let lock = NSLock()

        init(total: Int, progress: ((Int, Int) -> Void)?, file: SafetensorsWriter.Placed?) {
            self.total = total; self.progress = progress; self.file = file
        }

        func done(_ name: String?) {
            if let name { file?.finished(name) }
            lock.withLock { count += 1; progress?(count, total) }
        }
    }

    /// The name under which `source` holds the template's tensor `name` (the same name, or a
    /// task model's prefixed or unprefixed form: `bert.encoder.…` ↔ `encoder.…`).
    static func resolve(_ name: String, in source: WeightSource) -> String? {
        TensorNames.aliases(name).first { source.info($0) != nil }
    }

    /// mergekit's position of a tensor in the layer stack: layer i of L → i/(L−1); other tensors 0.
    static func layerPosition(_ name: String, layers: Int) -> Double {
        guard let n = TensorNames.layerIndex(name) else { return 0 }
        return layers > 1 ? Double(n) / Double(layers - 1) : 1
    }

    /// The recipe's parameters for one tensor at layer position `position`, as plain values.
    /// A parameter the method requires (no default) that has no value for this tensor — an
    /// empty gradient, or conditions none of whose filters match — is an error naming the
    /// model's line, the parameter and the tensor (mergekit fails there too).
    static func parameters(_ recipe: Recipe, others: [Recipe.Model], tensor: String, position: Double) throws -> TensorParameters {
        let method = recipe.method
        func value(_ name: String, _ setting: Setting?, neutral: Double, model: Recipe.Model?) throws -> Double {
            guard let declared = method.parameter(name) else { return neutral }
            if let v = setting?.evaluate(tensor: tensor, t: position) { return v }
            if let d = declared.defaultValue { return d }
            let whose = model.map { " of model \($0.ref)" } ?? ""
            let why = setting == nil ? "it is not given" : "none of its conditions matches the tensor"
            throw RecipeError(path: recipe.path, line: model?.line, message: "parameter \(name)\(whose) has no value for tensor \"\(tensor)\": \(why); add a condition without a filter")
        }
        func perModel(_ name: String, neutral: Double) throws -> [Double] {
            try others.map { m in try value(name, m.parameters[name] ?? recipe.parameters[name], neutral: neutral, model: m) }
        }
        func global(_ name: String, neutral: Double) throws -> Double { try value(name, recipe.parameters[name], neutral: neutral, model: nil) }
        let seed = try global("seed", neutral: 0)
        // Recipe validation keeps seeds whole and in [0, 2^63); a gradient between two such seeds stays in range.
        guard seed >= 0, seed < 0x1p63 else { throw RecipeError(path: recipe.path, line: nil, message: "seed \(seed) is outside [0, 2^63)") }
        return TensorParameters(
            weights: try perModel("weight", neutral: 1).map { Float($0) },
            densities: try perModel("density", neutral: 1), gammas: try perModel("gamma", neutral: 0),
            normalize: try global("normalize", neutral: 0) != 0, rescale: try global("rescale", neutral: 0) != 0,
            lambda: Float(try global("lambda", neutral: 1)), seed: UInt64(seed), t: try global("t", neutral: 0))
    }
}
