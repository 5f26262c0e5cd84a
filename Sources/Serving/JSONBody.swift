import Foundation
import Formats

/// A request body parsed as a JSON object (Formats' `JSONValue`, depth-limited), with typed
/// accessors whose errors name the field.
struct JSONBody {
    let members: [(String, JSONValue)]

    init(_ bytes: [UInt8]) throws {
        guard !bytes.isEmpty else { throw ServingError.malformedJSON(reason: "empty body; expected a JSON object") }
        let parsed: JSONValue
        do {
            parsed = try bytes.withUnsafeBytes { try JSONValue.parse($0) }
        } catch {
            throw ServingError.malformedJSON(reason: "\(error)")
        }
        guard case .object(let m) = parsed else { throw ServingError.malformedJSON(reason: "expected a JSON object at the top level") }
        members = m
    }

    func value(_ key: String) -> JSONValue? {
        guard let v = members.first(where: { $0.0 == key })?.1, v != .null else { return nil }
        return v
    }

    func has(_ key: String) -> Bool { value(key) != nil }

    /// `str | [str]`: the texts and whether a single string was given.
    func texts(_ key: String) throws -> (texts: [String], single: Bool) {
        guard let v = value(key) else { throw ServingError.invalidField(field: key, reason: "missing; expected a string or a list of strings") }
        if case .string(let s) = v { return ([s], true) }
        guard case .array(let list) = v else { throw ServingError.invalidField(field: key, reason: "expected a string or a list of strings") }
        if list.isEmpty { throw ServingError.emptyInput(field: key) }
        return (try list.enumerated().map { i, e in
            guard case .string(let s) = e else { throw ServingError.invalidField(field: "\(key)[\(i)]", reason: "expected a string") }
            return s
        }, false)
    }

    func bool(_ key: String, default d: Bool) throws -> Bool {
        guard let v = value(key) else { return d }
        guard case .bool(let b) = v else { throw ServingError.invalidField(field: key, reason: "expected true or false") }
        return b
    }

    func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard case .string(let s) = v else { throw ServingError.invalidField(field: key, reason: "expected a string") }
        if s.isEmpty { throw ServingError.emptyInput(field: key) }
        return s
    }

    /// `[{"id": REF, "weight": w}]`.
    func weightedAdapters(_ key: String) throws -> [(id: String, weight: Float)]? {
        guard let v = value(key) else { return nil }
        guard case .array(let list) = v else { throw ServingError.invalidField(field: key, reason: "expected a list of {\"id\", \"weight\"}") }
        if list.isEmpty { throw ServingError.emptyInput(field: key) }
        return try list.enumerated().map { i, e in
            guard case .string(let id)? = e["id"], !id.isEmpty else {
                throw ServingError.invalidField(field: "\(key)[\(i)].id", reason: "expected a non-empty string")
            }
            var w: Float = 1
            switch e["weight"] {
            case nil, .null?: break
            case .integer(let n)?: w = Float(n)
            case .number(let d)? where d.isFinite: w = Float(d)
            default: throw ServingError.invalidField(field: "\(key)[\(i)].weight", reason: "expected a finite number")
            }
            return (id, w)
        }
    }
}

/// Small JSON writers for the answers (vectors are written directly: shortest round-trip
/// decimal of each Float).
enum JSONOut {
    static func vector(_ v: [Float], into s: inout String) {
        s += "["
        for (i, x) in v.enumerated() {
            if i > 0 { s += "," }
            s += x.isFinite ? x.description : "null"
        }
        s += "]"
    }

    static func vectors(_ vs: [[Float]]) -> String {
        var s = "["
        s.reserveCapacity(vs.reduce(0) { $0 + $1.count * 12 } + 2)
        for (i, v) in vs.enumerated() {
            if i > 0 { s += "," }
            vector(v, into: &s)
        }
        return s + "]"
    }

    /// A JSON string literal, escaped as `JSONValue` writes strings.
    static func string(_ str: String) -> String {
        var s = ""
        JSONValue.writeString(str, into: &s)
        return s
    }

    /// A small response object (strings, numbers, booleans, arrays, string-keyed dictionaries
    /// with sorted keys), written through `JSONValue`; anything else is `null`.
    static func object(_ o: Any) -> String { value(o).serialized() }

    static func value(_ o: Any) -> JSONValue {
        switch o {
        case let b as Bool: return .bool(b)
        case let i as Int: return .integer(i)
        case let d as Double: return d.isFinite ? .number(d) : .null
        case let f as Float: return f.isFinite ? .number(Double(f)) : .null
        case let s as String: return .string(s)
        case let a as [Any]: return .array(a.map(value))
        case let m as [String: Any]: return .object(m.keys.sorted().map { ($0, m[$0].map(value) ?? .null) })
        default: return .null
        }
    }
}
