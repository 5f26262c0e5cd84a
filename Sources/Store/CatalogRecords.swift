import Foundation
import Formats
import GRDB

// The catalog's records: one Swift type per table (schema in Catalog.migrator).

/// What an entry holds: its kind decides which blobs (roles) it has.
public enum EntryKind: String, CaseIterable, Sendable, Codable {
    /// Base weights (`weights`) and the model's config/tokenizer files (`files`).
    case base
    /// A dense task vector τ = θ_ft − θ_base (`weights`), the entries where base + τ does not
    /// reproduce θ_ft bit-exactly (`exact`), tensors absent from the base (`head`) and the
    /// fine-tuned model's files (`files`).
    case taskVector = "task-vector"
    /// A PEFT LoRA adapter: its tensors as saved (`weights`) and adapter_config.json (`files`).
    case lora
    /// A diff-pruned delta (Guo et al., 2021): dense-shaped tensors stored with the sparse codec.
    case sparse
    /// A classification head on its own.
    case head
    /// A merge result, stored as a task vector over its base, with its recipe and parents.
    case merged

    public var isDelta: Bool { self != .base && self != .head }
}

/// A catalog row.
public struct StoreEntry: Codable, FetchableRecord, MutablePersistableRecord, Sendable {
    public static let databaseTableName = "entry"
    public var id: Int64?
    /// SHA-256 over kind, base and the blobs: equal content ⇒ equal digest (dedup).
    public var digest: String
    public var kind: EntryKind
    public var baseID: Int64?
    /// The content hash (docs/FORMAT.md) of the base's weights this delta was made for.
    public var baseSHA256: String?
    /// The content hash of this entry's own weights.
    public var contentSHA256: String
    public var task: String?
    public var tags: String
    public var parameters: Int
    public var rawBytes: Int
    public var storedBytes: Int
    public var metadata: String
    public var source: String
    public var createdAt: String

    enum CodingKeys: String, CodingKey {
        case id, digest, kind, task, tags, parameters, metadata, source
        case baseID = "base_id", baseSHA256 = "base_sha256", contentSHA256 = "content_sha256"
        case rawBytes = "raw_bytes", storedBytes = "stored_bytes", createdAt = "created_at"
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

    public var tagList: [String] {
        guard case .array(let a)? = try? JSONValue.parse(tags) else { return [] }
        return a.compactMap { if case .string(let s) = $0 { return s }; return nil }
    }
    public var meta: JSONValue { (try? JSONValue.parse(metadata)) ?? .object([]) }
    public var shortDigest: String { String(digest.prefix(12)) }
}

struct BlobRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "blob"
    var entryID: Int64
    var role: String
    var sha256: String
    var bytes: Int
    enum CodingKeys: String, CodingKey { case role, sha256, bytes, entryID = "entry_id" }
}

struct NameRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "name"
    var name: String
    var entryID: Int64
    enum CodingKeys: String, CodingKey { case name, entryID = "entry_id" }
}

struct LineageRow: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "lineage"
    var entryID: Int64
    var parentID: Int64?
    var parentDigest: String
    var parentName: String
    var relation: String
    var weight: Double?
    enum CodingKeys: String, CodingKey {
        case relation, weight, entryID = "entry_id", parentID = "parent_id", parentDigest = "parent_digest", parentName = "parent_name"
    }
}

/// An entry with its names and blobs, as commands see it.
public struct StoredItem: Sendable {
    public let entry: StoreEntry
    public let names: [String]
    public let blobs: [String: (sha256: String, bytes: Int)]
    public let parents: [(name: String, relation: String, weight: Double?)]
    /// The first name, or the short digest when the entry has none.
    public var ref: String { names.first ?? entry.shortDigest }
}

