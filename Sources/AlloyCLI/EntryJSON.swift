import Formats
import Store

/// A store entry as JSON (`ls --json`, `import --json`, `inspect REF --json`).
struct EntryJSON: Encodable {
    struct Blob: Encodable { let sha256: String; let bytes: Int }
    struct Parent: Encodable { let parent: String; let relation: String; let weight: JSONNumber? }
    struct Layer: Encodable { let layer: String; let tensors: Int; let changed: Int; let norm: JSONNumber }

    let names: [String]
    let digest: String
    let kind: String
    let parameters: Int
    let rawBytes: Int
    let storedBytes: Int
    let contentSHA256: String
    let tags: [String]
    let source: String
    let createdAt: String
    let blobs: [String: Blob]
    let lineage: [Parent]
    let baseSHA256: String?
    let task: String?
    let metadata: JSONTree?
    /// Delta statistics (`inspect` only).
    var density: JSONNumber?
    var norm: JSONNumber?
    var layers: [Layer]?

    enum CodingKeys: String, CodingKey {
        case names, digest, kind, parameters, tags, source, blobs, lineage, task, metadata, density, norm, layers
        case rawBytes = "raw_bytes", storedBytes = "stored_bytes", contentSHA256 = "content_sha256", createdAt = "created_at", baseSHA256 = "base_sha256"
    }

    init(_ i: StoredItem) {
        let e = i.entry
        names = i.names; digest = e.digest; kind = e.kind.rawValue; parameters = e.parameters
        rawBytes = e.rawBytes; storedBytes = e.storedBytes; contentSHA256 = e.contentSHA256
        tags = e.tagList; source = e.source; createdAt = e.createdAt
        blobs = i.blobs.mapValues { Blob(sha256: $0.sha256, bytes: $0.bytes) }
        lineage = i.parents.map { Parent(parent: $0.name, relation: $0.relation, weight: $0.weight.map(JSONNumber.init)) }
        baseSHA256 = e.baseSHA256; task = e.task
        metadata = (try? JSONValue.parse(e.metadata)).map(JSONTree.init)
    }
}

/// A parsed JSON value written back out (object keys sorted by the encoder).
struct JSONTree: Encodable {
    let value: JSONValue
    init(_ value: JSONValue) { self.value = value }

    private struct Key: CodingKey {
        let stringValue: String
        init(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: Encoder) throws {
        switch value {
        case .null: var c = encoder.singleValueContainer(); try c.encodeNil()
        case .bool(let b): var c = encoder.singleValueContainer(); try c.encode(b)
        case .number(let d): try JSONNumber(d).encode(to: encoder)
        case .integer(let i): var c = encoder.singleValueContainer(); try c.encode(i)
        case .string(let s): var c = encoder.singleValueContainer(); try c.encode(s)
        case .array(let a): var c = encoder.unkeyedContainer(); for v in a { try c.encode(JSONTree(v)) }
        case .object(let m):
            var c = encoder.container(keyedBy: Key.self)
            for (k, v) in m { try c.encode(JSONTree(v), forKey: Key(stringValue: k)) }
        }
    }
}
