/// Errors of the encoder runtime; each names the file, tensor or adapter concerned.
public enum EncoderError: Error, CustomStringConvertible {
    case missingFile(path: String, hint: String)
    case unsupportedTokenizer(path: String, reason: String)
    case unknownArchitecture(path: String, found: String)
    case invalidConfig(path: String, reason: String)
    case missingTensor(model: String, tensor: String)
    case unexpectedTensor(model: String, tensor: String)
    case shapeMismatch(source: String, tensor: String, expected: [Int], found: [Int])
    case adapter(path: String, reason: String)
    case head(path: String, reason: String)

    public var description: String {
        switch self {
        case let .missingFile(p, h): return "\(p): not found; \(h)"
        case let .unsupportedTokenizer(p, r): return "\(p): unsupported tokenizer: \(r)"
        case let .unknownArchitecture(p, f): return "\(p): unknown architecture \"\(f)\" (supported: \(Architecture.all.map(\.name).joined(separator: ", ")))"
        case let .invalidConfig(p, r): return "\(p): \(r)"
        case let .missingTensor(m, t): return "\(m): missing tensor \"\(t)\""
        case let .unexpectedTensor(m, t): return "\(m): unexpected tensor \"\(t)\" (not part of the architecture)"
        case let .shapeMismatch(s, t, e, f): return "\(s): tensor \"\(t)\" has shape \(f), the base expects \(e) — was it made for another base model?"
        case let .adapter(p, r): return "\(p): \(r)"
        case let .head(p, r): return "\(p): \(r)"
        }
    }
}
