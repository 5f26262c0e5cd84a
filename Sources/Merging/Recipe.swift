import Foundation
import Tensors
import Yams

/// A parameter value as mergekit recipes write it: a scalar, a gradient list interpolated
/// over the layers, or a list of `{filter, value}` conditions matched by substring.
public indirect enum Setting: Sendable, Equatable {
    case scalar(Double)
    case gradient([Double])
    case conditional([Condition])

    public struct Condition: Sendable, Equatable {
        public let filter: String?
        public let value: Setting
    }

    /// The value for `tensor` at layer position `t` ∈ [0, 1] (mergekit `evaluate_setting`).
    public func evaluate(tensor: String, t: Double) -> Double? {
        switch self {
        case .scalar(let v): return v
        case .gradient(let vs):
            guard !vs.isEmpty else { return nil }
            let scaled = t * Double(vs.count - 1)
            let i0 = Int(scaled), i1 = min(vs.count - 1, i0 + 1)
            let frac = scaled - Double(i0)
            return (1 - frac) * vs[i0] + frac * vs[i1]
        case .conditional(let cs):
            for c in cs {
                guard let f = c.filter, f != "*" else { return c.value.evaluate(tensor: tensor, t: t) }
                if tensor.contains(f) { return c.value.evaluate(tensor: tensor, t: t) }
            }
            return nil
        }
    }

    /// Every number the setting can produce (for range checks before any work).
    var allValues: [Double] {
        switch self {
        case .scalar(let v): return [v]
        case .gradient(let vs): return vs
        case .conditional(let cs): return cs.flatMap { $0.value.allValues }
        }
    }
}

/// A recipe error names the file and line, and says what to do.
public struct RecipeError: Error, CustomStringConvertible {
    public let path: String
    public let line: Int?
    public let message: String
    public var description: String { line.map { "\(path):\($0): \(message)" } ?? "\(path): \(message)" }
}

/// A mergekit-compatible merge recipe (YAML): `merge_method`, `base_model`,
/// `models: [{model, parameters}]`, global `parameters`, `dtype`.
public struct Recipe {
    public struct Model {
        public let path: String
        /// The model as the recipe names it (a path, or a store entry).
        public let ref: String
        public internal(set) var parameters: [String: Setting]
        public let line: Int
    }

    public let path: String
    public let method: MergeMethod
    public let baseModel: String?
    /// The base as the recipe names it.
    public let baseRef: String?
    public private(set) var models: [Model]
    public private(set) var parameters: [String: Setting]
    public let dtype: DType?

    /// Parses and checks the recipe at `path`; model paths are relative to its directory.
    /// `lookup` maps a model that is not a path on disk (e.g. a store entry) to a folder.
    public init(path: String, lookup: ((String) throws -> String?)? = nil) throws {
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
        if let size, size > Self.maxBytes {
            throw RecipeError(path: path, line: nil, message: "the recipe is \(size) bytes; recipes are at most \(Self.maxBytes)")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw RecipeError(path: path, line: nil, message: "cannot read the recipe (missing, unreadable or not UTF-8)")
        }
        try self.init(yaml: text, path: path, lookup: lookup)
    }

    /// Limits on untrusted recipes, checked before the YAML parser sees the text: a recipe
    /// is a few hundred bytes nested four or five levels deep; a deeply nested document would
    /// overflow the parser's stack, and aliases could expand a small file exponentially.
    public static let maxBytes = 1 << 20
    public static let maxDepth = 64
    static let maxSettingNodes = 100_000

    public init(yaml text: String, path: String, lookup: ((String) throws -> String?)? = nil) throws {
        self.path = path
        let dir = (path as NSString).deletingLastPathComponent
        func fail(_ node: Node?, _ msg: String) -> RecipeError { RecipeError(path: path, line: node?.mark.map { $0.line }, message: msg) }
        guard text.utf8.count <= Self.maxBytes else {
            throw RecipeError(path: path, line: nil, message: "the recipe is \(text.utf8.count) bytes; recipes are at most \(Self.maxBytes)")
        }
        if let (depth, line) = Self.nesting(text), depth > Self.maxDepth {
            throw RecipeError(path: path, line: line, message: "the recipe nests \(depth) levels deep; recipes nest at most \(Self.maxDepth)")
        }
        let root: Node
        do {
            guard let r = try Yams.compose(yaml: text) else { throw RecipeError(path: path, line: nil, message: "empty recipe") }
            root = r
        } catch let e as RecipeError { throw e } catch let e as YamlError {
            throw RecipeError(path: path, line: nil, message: "not valid YAML: \(e)")
        }
        guard let map = root.mapping else { throw fail(root, "a recipe is a mapping with merge_method, models, …") }
        func resolve(_ p: String) throws -> String {
            let local = p.hasPrefix("/") ? p : (dir.isEmpty ? p : (dir as NSString).appendingPathComponent(p))
            if FileManager.default.fileExists(atPath: local) { return local }
            return try lookup?(p) ?? local
        }
        for (k, _) in map {
            guard let key = k.string, ["merge_method", "base_model", "models", "parameters", "dtype", "tokenizer_source", "name"].contains(key) else {
                throw fail(k, "unknown key \"\(k.string ?? "?")\" (slices and modules are not supported; use models)")
            }
        }
        guard let methodNode = map["merge_method"], let name = methodNode.string else { throw fail(root, "missing merge_method") }
        guard let method = MergeMethod.registry[name] else {
            throw fail(methodNode, "unknown merge_method \"\(name)\" (known: \(MergeMethod.registry.keys.sorted().joined(separator: ", ")))")
        }
        self.method = method
        baseModel = try map["base_model"]?.string.map(resolve)
        baseRef = map["base_model"]?.string
        if method.needsBase && baseModel == nil { throw fail(methodNode, "\(name) needs a base_model") }
        if let d = map["dtype"] {
            switch d.string {
            case "float32": dtype = .f32
            case "float16": dtype = .f16
            case "bfloat16": dtype = .bf16
            default: throw fail(d, "dtype must be float32, float16 or bfloat16")
            }
        } else { dtype = nil }

        var settingNodes = 0
        func setting(_ node: Node, _ pname: String) throws -> Setting {
            settingNodes += 1
            guard settingNodes <= Self.maxSettingNodes else { throw fail(node, "parameter \(pname): more than \(Self.maxSettingNodes) values (aliases expanding?)") }
            if let s = node.scalar {
                if let v = Double(s.string) ?? Double.construct(from: s) {
                    guard v.isFinite else { throw fail(node, "parameter \(pname) must be finite, not \(s.string)") }
                    return .scalar(v)
                }
                if let b = Bool.construct(from: s) { return .scalar(b ? 1 : 0) }
                throw fail(node, "parameter \(pname) must be a number or a boolean, not \"\(s.string)\"")
            }
            guard let seq = node.sequence else { throw fail(node, "parameter \(pname) must be a value, a list, or a list of {filter, value}") }
            guard !seq.isEmpty else { throw fail(node, "parameter \(pname) is an empty list; give a value, a gradient [a, b, …] or conditions [{filter, value}]") }
            let scalars = seq.compactMap(\.scalar)
            if scalars.count == seq.count {
                return .gradient(try zip(seq, scalars).map { n, s -> Double in
                    guard let v = Double(s.string) ?? Double.construct(from: s), v.isFinite else { throw fail(n, "gradient values of \(pname) must be finite numbers, not \"\(s.string)\"") }
                    return v
                })
            }
            return .conditional(try seq.map { n in
                guard let m = n.mapping, let v = m["value"] else { throw fail(n, "conditions of \(pname) are {filter, value}") }
                if let f = m["filter"], f.string == nil { throw fail(f, "the filter of a \(pname) condition must be a string") }
                return Setting.Condition(filter: m["filter"]?.string, value: try setting(v, pname))
            })
        }
        func parseParameters(_ node: Node?, scope: MergeMethod.Scope) throws -> [String: Setting] {
            guard let node else { return [:] }
            guard let m = node.mapping else { throw fail(node, "parameters must be a mapping") }
            var out: [String: Setting] = [:]
            for (k, v) in m {
                let key = k.string ?? ""
                if key == "int8_mask" { continue }  // accepted, ignored (storage detail in mergekit)
                guard let p = method.parameter(key) else {
                    throw fail(k, "\(name) has no parameter \"\(key)\" (it takes \(method.parameters.map(\.name).joined(separator: ", ")))")
                }
                if scope == .perModel && p.scope == .global && key != "lambda" && key != "normalize" {
                    throw fail(k, "\(key) is a global parameter of \(name); put it under the recipe's parameters")
                }
                let s = try setting(v, key)
                if let problem = Self.outOfRange(key, s.allValues) { throw fail(v, problem) }
                out[key] = s
            }
            return out
        }
        self.parameters = try parseParameters(map["parameters"], scope: .global)
        guard let modelsNode = map["models"], let seq = modelsNode.sequence, !seq.isEmpty else { throw fail(root, "missing models") }
        var models: [Model] = []
        for n in seq {
            guard let m = n.mapping, let p = m["model"]?.string else { throw fail(n, "each model is {model: PATH, parameters: …}") }
            models.append(Model(path: try resolve(p), ref: p, parameters: try parseParameters(m["parameters"], scope: .perModel), line: n.mark?.line ?? 0))
        }
        self.models = models
        let others = models.filter { $0.path != baseModel }
        switch method.kind {
        case .slerp where others.count != 1: throw fail(modelsNode, "slerp merges the base with exactly one other model")
        case .modelStock where others.count < 2: throw fail(modelsNode, "model_stock needs at least two models besides the base")
        default: break
        }
        if let w = method.parameter("weight"), w.defaultValue == nil {
            for m in others where m.parameters["weight"] == nil && self.parameters["weight"] == nil {
                throw RecipeError(path: path, line: m.line, message: "model \(m.path) needs a weight for \(name)")
            }
        }
        if case .slerp = method.kind, self.parameters["t"] == nil { throw fail(methodNode, "slerp needs a parameter t") }
    }

    /// Why a value of parameter `key` is invalid, or nil when every value is in range.
    static func outOfRange(_ key: String, _ values: [Double]) -> String? {
        for x in values {
            if !x.isFinite { return "\(key) must be finite, not \(x)" }
            switch key {
            case "density" where !(x > 0 && x <= 1): return "density \(x) is outside (0, 1]"
            case "gamma", "t": if !(x >= 0 && x <= 1) { return "\(key) \(x) is outside [0, 1]" }
            case "seed" where !(x >= 0 && x < 0x1p63 && x == x.rounded()): return "seed \(x) must be a whole number in [0, 2^63)"
            default: break
            }
        }
        return nil
    }

    /// The deepest nesting of `text` and the line (1-based) where it occurs, over-approximated
    /// without parsing: block indentation levels, `- ` entries opened on one line, and flow
    /// brackets outside quoted scalars (a quote opens a scalar only where a scalar can start).
    /// nil for a text with no content.
    static func nesting(_ text: String) -> (depth: Int, line: Int)? {
        // Lines end where libyaml ends them: LF, CR, CRLF, NEL, LS, PS (a break the scan
        // missed would hide nesting from it).
        var lines: [[Unicode.Scalar]] = [[]]
        var previous: Unicode.Scalar = " "
        for c in text.unicodeScalars {
            switch c {
            case "\n" where previous == "\r": break
            case "\n", "\r", "\u{85}", "\u{2028}", "\u{2029}": lines.append([])
            default: lines[lines.count - 1].append(c)
            }
            previous = c
        }
        var indents: [Int] = []
        var flow = 0, best: (depth: Int, line: Int)? = nil
        var quote: Unicode.Scalar? = nil
        for (number, line) in lines.enumerated() {
            var i = 0
            while i < line.count, line[i] == " " || line[i] == "\t" { i += 1 }
            if quote == nil && flow == 0 {
                if i == line.count || line[i] == "#" { continue }
                while let top = indents.last, top > i { indents.removeLast() }
                if indents.last != i { indents.append(i) }
            }
            var dashes = 0
            while quote == nil, i + 1 < line.count, line[i] == "-", line[i + 1] == " " || line[i + 1] == "\t" {
                dashes += 1; i += 2
                while i < line.count, line[i] == " " || line[i] == "\t" { i += 1 }
            }
            var deepest = flow
            var before: Unicode.Scalar = " "
            while i < line.count {
                let c = line[i]
                if let q = quote {
                    if c == q { quote = nil }
                } else {
                    let scalarStart = before == " " || before == "\t" || before == "[" || before == "{" || before == "," || before == ":"
                    switch c {
                    case "\"", "'": if scalarStart { quote = c }
                    case "[", "{": flow += 1; deepest = max(deepest, flow)
                    case "]", "}": flow = max(0, flow - 1)
                    case "#" where before == " " || before == "\t": i = line.count; continue
                    default: break
                    }
                }
                before = c
                i += 1
            }
            let depth = indents.count + dashes + deepest
            if depth > (best?.depth ?? -1) { best = (depth, number + 1) }
        }
        return best
    }

    /// The recipe with parameter `name` set to `value` for every model (a sweep point):
    /// the global value is replaced and per-model values of it are dropped.
    public func overriding(_ name: String, with value: Double) throws -> Recipe {
        guard method.parameter(name) != nil else {
            throw RecipeError(path: path, line: nil, message: "\(method.name) has no parameter \"\(name)\" (it takes \(method.parameters.map(\.name).joined(separator: ", ")))")
        }
        if let problem = Self.outOfRange(name, [value]) { throw RecipeError(path: path, line: nil, message: problem) }
        var r = self
        r.parameters[name] = .scalar(value)
        for i in r.models.indices { r.models[i].parameters[name] = nil }
        return r
    }
}
