import Foundation

/// Errors a request can meet; each carries the HTTP status and TEI's `error_type` it is
/// answered with, and a message naming the field, adapter or limit concerned.
public enum ServingError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The body is not JSON (syntax error, or not an object).
    case malformedJSON(reason: String)
    /// A field has the wrong type or value.
    case invalidField(field: String, reason: String)
    /// An input list, or an input itself, is empty.
    case emptyInput(field: String)
    /// More inputs in one request than `--max-client-batch-size`.
    case tooManyInputs(count: Int, limit: Int)
    /// Input `index` has more tokens than the model takes, and `truncate` is false.
    case tooManyTokens(index: Int, count: Int, limit: Int)
    /// The request body is larger than the server accepts.
    case bodyTooLarge(limit: Int)
    /// No adapter by that name: neither a path nor a store ref.
    case unknownAdapter(id: String, reason: String)
    /// The `--model` to serve is neither a folder nor a store ref.
    case unknownModel(ref: String, reason: String)
    /// The adapter exists but cannot be loaded for this base.
    case adapterLoad(id: String, reason: String)
    /// `/predict` with an adapter (or the base) that has no classification head.
    case noHead(adapter: String)
    /// The server holds `--max-concurrent-requests` requests already.
    case overloaded(limit: Int)
    /// The server is draining for shutdown.
    case shuttingDown
    /// No route for this method and path.
    case noRoute(method: String, path: String)

    /// The HTTP status code the error is answered with.
    public var status: Int {
        switch self {
        case .malformedJSON: return 400
        case .invalidField, .emptyInput, .adapterLoad, .noHead: return 422
        case .tooManyInputs, .tooManyTokens, .bodyTooLarge: return 413
        case .unknownAdapter, .unknownModel, .noRoute: return 404
        case .overloaded: return 429
        case .shuttingDown: return 503
        }
    }

    /// TEI's `error_type`.
    public var errorType: String {
        switch self {
        case .malformedJSON, .invalidField, .tooManyInputs, .tooManyTokens, .bodyTooLarge, .noHead: return "Validation"
        case .emptyInput: return "Empty"
        case .unknownAdapter, .unknownModel, .noRoute: return "NotFound"
        case .adapterLoad: return "Backend"
        case .overloaded: return "Overloaded"
        case .shuttingDown: return "Unhealthy"
        }
    }

    public var description: String {
        switch self {
        case .malformedJSON(let r): return "malformed JSON body: \(r)"
        case .invalidField(let f, let r): return "field \"\(f)\": \(r)"
        case .emptyInput(let f): return "field \"\(f)\" is empty"
        case .tooManyInputs(let c, let l): return "batch size \(c) > maximum allowed batch size \(l) (--max-client-batch-size)"
        case .tooManyTokens(let i, let c, let l): return "input \(i) has \(c) tokens, more than the model's \(l); shorten it or pass \"truncate\": true"
        case .bodyTooLarge(let l): return "request body larger than \(l) bytes"
        case .unknownAdapter(let id, let r): return "unknown adapter \"\(id)\": \(r)"
        case .unknownModel(let ref, let r): return "unknown model \"\(ref)\": \(r)"
        case .adapterLoad(let id, let r): return "adapter \"\(id)\" cannot be loaded: \(r)"
        case .noHead(let a): return "\(a) has no classification head (a PEFT classifier in modules_to_save, or head.safetensors beside the delta)"
        case .overloaded(let l): return "model is overloaded: \(l) requests in flight (--max-concurrent-requests)"
        case .shuttingDown: return "the server is shutting down"
        case .noRoute(let m, let p): return "no route \(m) \(p)"
        }
    }
}
