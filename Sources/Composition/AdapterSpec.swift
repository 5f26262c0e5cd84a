/// An adapter with a weight, written `PATH@W` (or `PATH`, weight 1) on the command line and in
/// `REF@W,REF@W` compositions. The one place that syntax is parsed.
public struct AdapterSpec: Equatable, Sendable, CustomStringConvertible {
    /// A path or a store reference.
    public let path: String
    public let weight: Double

    public init(path: String, weight: Double = 1) { self.path = path; self.weight = weight }

    /// Parses `PATH@W`: the text after the last `@` is the weight when it is a finite number;
    /// otherwise the whole text is the path (paths may contain `@`).
    public init(parsing text: String) throws {
        if let at = text.lastIndex(of: "@"), let w = Double(text[text.index(after: at)...]) {
            guard w.isFinite else { throw CompositionError.badSpec(spec: text, reason: "the weight after @ is not a finite number") }
            path = String(text[..<at]); weight = w
        } else {
            path = text; weight = 1
        }
        guard !path.isEmpty else { throw CompositionError.badSpec(spec: text, reason: "no path before @") }
    }

    /// A comma-separated list of specs (`REF@W,REF@W`).
    public static func list(_ text: String) throws -> [AdapterSpec] {
        try text.split(separator: ",").map { try AdapterSpec(parsing: String($0)) }
    }

    public var description: String { weight == 1 ? path : "\(path)@\(weight)" }
}
