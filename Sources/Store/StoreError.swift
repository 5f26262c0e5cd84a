import Foundation

/// Errors of the checkpoint store. Each names the ref, file or tensor involved and what to do.
public enum StoreError: Error, CustomStringConvertible, Equatable {
    case notFound(ref: String, store: String)
    case ambiguous(ref: String, matches: [String])
    case nameTaken(name: String, existing: String)
    case wrongBase(source: String, expected: String, found: String)
    case shapeMismatch(source: String, tensor: String, expected: [Int], found: [Int])
    case missingBlob(ref: String, role: String, path: String)
    case corruptBlob(ref: String, role: String, reason: String)
    case invalidSource(source: String, reason: String)
    case inUse(ref: String, dependents: [String])
    case unsupported(ref: String, reason: String)
    case io(path: String, reason: String)

    public var description: String {
        switch self {
        case .notFound(let r, let s):
            return "no entry \"\(r)\" in the store at \(s) (see `alloy ls`)"
        case .ambiguous(let r, let m):
            return "\"\(r)\" matches several entries (\(m.joined(separator: ", "))); use a longer digest or the name"
        case .nameTaken(let n, let e):
            return "the name \"\(n)\" already belongs to another entry (\(e)); pick another --name or `alloy rm \(n)` first"
        case .wrongBase(let s, let e, let f):
            return "\(s) was made for a base with content hash \(e.prefix(12))…, but the base given has \(f.prefix(12))… — import it against the base it was made for, or pass --force"
        case .shapeMismatch(let s, let t, let e, let f):
            return "\(s): tensor \"\(t)\" has shape \(f), the base has \(e) — it was made for another base or architecture"
        case .missingBlob(let r, let role, let p):
            return "entry \"\(r)\": its \(role) blob \(p) is missing — the store was damaged; run `alloy verify` and re-import \(r)"
        case .corruptBlob(let r, let role, let why):
            return "entry \"\(r)\": its \(role) blob is corrupt: \(why) — run `alloy verify` and re-import \(r)"
        case .invalidSource(let s, let why):
            return "\(s): \(why)"
        case .inUse(let r, let d):
            return "\"\(r)\" is the base of \(d.joined(separator: ", ")); remove those first"
        case .unsupported(let r, let why):
            return "\(r): \(why)"
        case .io(let p, let why):
            return "\(p): \(why)"
        }
    }
}
