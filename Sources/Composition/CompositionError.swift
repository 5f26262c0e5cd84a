import Foundation

/// Why the application layer refused a request: each case names the spec, file or task.
public enum CompositionError: Error, CustomStringConvertible, LocalizedError, Equatable {
    /// A model or adapter given by path or store name that is neither.
    case notFound(ref: String, store: String)
    /// An `--experts` entry that is not a LoRA adapter.
    case notLoRA(expert: String)
    /// An expert without a card.json naming its task.
    case noCard(expert: String)
    /// A card.json that cannot be read.
    case badCard(path: String, reason: String)
    /// A malformed spec (`PATH@W`, `NAME=SPEC`, a list of values …).
    case badSpec(spec: String, reason: String)
    /// No classification head for a task or for `classify`.
    case noHead(task: String?, reason: String)
    /// A directory without shipped experts.
    case noExperts(dir: String)
    /// `merge --into-store` with a recipe whose base is not stored.
    case baseNotStored(template: String)

    public var description: String {
        switch self {
        case let .notFound(ref, store): return "\(ref): no such file or directory (and no store at \(store) to look it up in)"
        case let .notLoRA(e): return "expert \(e) is not a LoRA adapter (compositions weight LoRA experts)"
        case let .noCard(e): return "expert \(e): no card.json with a task beside it"
        case let .badCard(p, r): return "\(p): \(r)"
        case let .badSpec(s, r): return "\(s): \(r)"
        case let .noHead(t?, r): return "no head for task \(t): \(r)"
        case let .noHead(nil, r): return "no head: \(r)"
        case let .noExperts(d): return "no experts with card.json in \(d)"
        case let .baseNotStored(t): return "--into-store: the recipe's base \(t) is not in the store; `alloy import` it first"
        }
    }

    public var errorDescription: String? { description }
}
