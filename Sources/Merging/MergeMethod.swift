/// A merge method as a small named value: its name, paper, declared parameters with defaults,
/// and which member of the generalized-task-arithmetic family it is (mergekit's registry,
/// `merge_methods/registry.py`, with the same names, defaults and semantics as mergekit 0.1.5).
public struct MergeMethod: Sendable {
    public enum Scope: Sendable { case global, perModel }

    public struct Parameter: Sendable {
        public let name: String
        public let scope: Scope
        /// nil: required.
        public let defaultValue: Double?
    }

    public enum Sparsification: Sendable {
        /// Keep the top `density` of |τ| per tensor (TIES trimming).
        case magnitude
        /// Keep each entry with probability `density` (DARE), seeded.
        case random
        /// Drop the top `gamma` of |τ| as outliers, then keep the next `density` (Model Breadcrumbs).
        case magnitudeOutliers
    }

    public enum Kind: Sendable {
        case linear
        /// θ = θ_base + λ · Σ wᵢ·sparsify(τᵢ) [÷ Σ wᵢ], with optional sign consensus.
        case taskArithmetic(sparsification: Sparsification?, consensus: Bool)
        case slerp
        case modelStock
    }

    public let name: String
    public let paper: String
    public let kind: Kind
    public let parameters: [Parameter]
    public let needsBase: Bool

    public func parameter(_ name: String) -> Parameter? { parameters.first { $0.name == name } }

    static func gta(_ name: String, _ paper: String, _ s: Sparsification?, consensus: Bool, normalize: Bool, rescale: Bool) -> MergeMethod {
        var params: [Parameter] = [
            .init(name: "int8_mask", scope: .global, defaultValue: 0),
            .init(name: "normalize", scope: .global, defaultValue: normalize ? 1 : 0),
            .init(name: "rescale", scope: .global, defaultValue: rescale ? 1 : 0),
            .init(name: "lambda", scope: .global, defaultValue: 1),
            .init(name: "seed", scope: .global, defaultValue: 0),
            .init(name: "weight", scope: .perModel, defaultValue: nil),
            .init(name: "density", scope: .perModel, defaultValue: 1),
        ]
        if s == .magnitudeOutliers { params.append(.init(name: "gamma", scope: .perModel, defaultValue: 0.01)) }
        return MergeMethod(name: name, paper: paper, kind: .taskArithmetic(sparsification: s, consensus: consensus), parameters: params, needsBase: true)
    }

    /// Every method, by name.
    public static let registry: [String: MergeMethod] = {
        let all: [MergeMethod] = [
            MergeMethod(name: "linear", paper: "https://arxiv.org/abs/2203.05482", kind: .linear,
                        parameters: [.init(name: "weight", scope: .perModel, defaultValue: nil), .init(name: "normalize", scope: .global, defaultValue: 1)],
                        needsBase: false),
            gta("task_arithmetic", "https://arxiv.org/abs/2212.04089", nil, consensus: false, normalize: false, rescale: false),
            gta("ties", "https://arxiv.org/abs/2306.01708", .magnitude, consensus: true, normalize: true, rescale: false),
            gta("dare_ties", "https://arxiv.org/abs/2311.03099", .random, consensus: true, normalize: false, rescale: true),
            gta("dare_linear", "https://arxiv.org/abs/2311.03099", .random, consensus: false, normalize: false, rescale: true),
            gta("breadcrumbs", "https://arxiv.org/abs/2312.06795", .magnitudeOutliers, consensus: false, normalize: false, rescale: false),
            gta("breadcrumbs_ties", "https://arxiv.org/abs/2312.06795", .magnitudeOutliers, consensus: true, normalize: false, rescale: false),
            MergeMethod(name: "slerp", paper: "https://en.wikipedia.org/wiki/Slerp", kind: .slerp,
                        parameters: [.init(name: "t", scope: .global, defaultValue: nil)], needsBase: true),
            MergeMethod(name: "model_stock", paper: "https://arxiv.org/abs/2403.19522", kind: .modelStock, parameters: [], needsBase: true),
        ]
        return Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })
    }()
}
