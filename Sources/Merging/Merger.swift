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
/// cores), outputs are kept until one deterministic write. Checks everything it can before
/// any work: models exist, architectures and tensor names/shapes agree.
public enum Merger {
    /// The merged tensors, in the base's tensor order. Tensors named in `unmerged` (a
    /// classifier's own head: merging heads of different tasks means nothing) are the base's.
    public static func merge(_ recipe: Recipe, unmerged: Set<String> = [], progress: ((Int, Int) -> Void)? = nil) throws -> ([(String, Tensor)], MergeReport) {
        let start = Date()
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
        let layers = template.1?.numHiddenLayers ?? 1
        for (m, (src, cfg)) in zip(others, inputs) {
            if let a = template.1, let b = cfg, a.hiddenSize != b.hiddenSize || a.numHiddenLayers != b.numHiddenLayers || a.modelType != b.modelType {
                throw RecipeError(path: recipe.path, line: m.line, message: "model \(m.path) is \(b.summary), the base is \(a.summary)")
            }
            for e in template.0.entries where !unmerged.contains(e.name) {
                guard let info = Self.resolve(e.name, in: src).map({ src.info($0) }) ?? nil else {
                    // Buffers (ids, not weights) are optional: the output takes the base's.
                    if TensorNames.isOptionalBuffer(e.name) || !e.info.dtype.isFloatingPoint { continue }
                    throw RecipeError(path: recipe.path, line: m.line, message: "model \(m.path) lacks tensor \"\(e.name)\"")
                }
                guard info.shape == e.info.shape else {
                    throw RecipeError(path: recipe.path, line: m.line, message: "tensor \"\(e.name)\" of \(m.path) has shape \(info.shape), the base \(e.info.shape)")
                }
            }
        }
        var report = MergeReport()
        var out: [(String, Tensor)] = []
        let names = template.0.names
        for (index, name) in names.enumerated() {
            let ref = try template.0.tensor(name)
            report.tensors += 1
            guard ref.dtype.isFloatingPoint, ref.elementCount > 0, !unmerged.contains(name) else {
                out.append((name, ref))   // ids and masks (and empty tensors, unmerged ones): the base's
                progress?(index + 1, names.count)
                continue
            }
            let parameters = try Self.parameters(recipe, others: others, tensor: name, position: layerPosition(name, layers: layers))
            // F32 views (zero-copy for F32 inputs).
            var keep: [Tensor] = []
            func floats(_ t: Tensor) throws -> UnsafePointer<Float> {
                let f = t.dtype == .f32 ? t : try t.converted(to: .f32)
                keep.append(f)
                report.bytesRead += t.byteCount
                return f.rawBytes.nonEmptyBase.assumingMemoryBound(to: Float.self)
            }
            let basePtr = try base.map { try floats(try $0.0.tensor(name)) }
            let modelPtrs = try inputs.map { input in
                // The checks above found every floating-point tensor in every model.
                guard let n = Self.resolve(name, in: input.0) else { throw RecipeError(path: recipe.path, line: nil, message: "a model lacks tensor \"\(name)\"") }
                return try floats(try input.0.tensor(n))
            }
            let x = TensorInputs(models: modelPtrs, count: ref.elementCount)
            let result = try Tensor(dtype: .f32, shape: ref.shape, buffer: TensorBuffer(uninitializedByteCount: ref.elementCount * 4))
            let dst = result.buffer.mutableBase.assumingMemoryBound(to: Float.self)
            switch (recipe.method.kind, basePtr) {
            case (.linear, _): MergeKernels.linear(x, parameters, out: dst)
            case let (.taskArithmetic(s, consensus), base?):
                let st = MergeKernels.taskArithmetic(x, base: base, parameters, sparsification: s, consensus: consensus, tensor: name, out: dst)
                report.kept.kept += st.kept; report.kept.total += st.total
            case let (.slerp, base?): MergeKernels.slerp(x, base: base, t: parameters.t, out: dst)
            case let (.modelStock, base?): MergeKernels.modelStock(x, base: base, out: dst)
            case (_, nil): throw RecipeError(path: recipe.path, line: nil, message: "\(recipe.method.name) needs a base_model")
            }
            let target = recipe.dtype ?? ref.dtype
            let final = target == .f32 ? result : try result.converted(to: target)
            report.parameters += ref.elementCount
            report.bytesWritten += final.byteCount
            out.append((name, final))
            progress?(index + 1, names.count)
        }
        report.seconds = Date().timeIntervalSince(start)
        return (out, report)
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

    /// Merges and writes `DIR/model.safetensors`, copying config and tokenizer files from the base.
    @discardableResult
    public static func run(_ recipe: Recipe, outputDirectory dir: String, unmerged: Set<String> = [],
                           progress: ((Int, Int) -> Void)? = nil) throws -> MergeReport {
        let (tensors, report) = try merge(recipe, unmerged: unmerged, progress: progress)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt", "merged_by": "alloy \(recipe.method.name)"],
                                    to: (dir as NSString).appendingPathComponent("model.safetensors"))
        try ModelFolder.copySideFiles(from: recipe.baseModel ?? recipe.models[0].path, to: dir)
        return report
    }
}
