import Crypto
import Encoder
import Foundation
import Formats
import GRDB
import Merging
import Tensors

/// What `alloy import` is told beyond the source path.
public struct ImportOptions: Sendable {
    public var name: String
    /// The base entry a delta belongs to (required for deltas unless the delta names its base's hash).
    public var base: String?
    public var task: String?
    public var tags: [String] = []
    /// Forces the interpretation of an ambiguous source (`head`, `task-vector`).
    public var kind: EntryKind?
    /// Accepts a delta whose recorded base hash differs from `base`, or that looks unrelated to it.
    public var force = false
    /// Stores a fine-tuned model as a diff-pruned delta instead of a lossless task vector.
    public var sparsify: DeltaTools.SparsifyMethod?
    public var density = 0.01
    public var gamma = 0.01
    public var seed: UInt64 = 0

    public init(name: String) { self.name = name }
}

public struct ImportResult: Sendable {
    public let item: StoredItem
    /// True when the same content was already stored (only a name may have been added).
    public let existed: Bool
    public let notes: [String]
}

/// An entry computed from its source, ready to be committed.
struct PendingEntry {
    var kind: EntryKind
    var base: StoredItem?
    var baseSHA256: String?
    var contentSHA256: String
    var task: String?
    var parameters: Int
    var rawBytes: Int
    var metadata: [(String, JSONValue)] = []
    var blobs: [(role: String, data: BlobData)] = []
    var parents: [(item: StoredItem, relation: String, weight: Double?)] = []
    var notes: [String] = []

    enum BlobData { case encoded(AlloyWriter.Encoded), file(String) }
}

extension Store {
    /// Imports `source` (an HF model directory or safetensors file, a fine-tuned model with
    /// `options.base`, a PEFT LoRA folder, a `.alloy` file, or an expert folder holding
    /// `delta.alloy` and `head.safetensors`) under `options.name`.
    public func importSource(_ source: String, options: ImportOptions) throws -> ImportResult {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDir) else {
            throw StoreError.invalidSource(source: source, reason: "no such file or directory")
        }
        let base = try options.base.map { ref -> StoredItem in
            let b = try resolve(ref)
            guard b.entry.kind == .base else { throw StoreError.unsupported(ref: ref, reason: "is a \(b.entry.kind.rawValue), not a base") }
            return b
        }
        let card = isDir.boolValue ? Self.card(near: source) : Self.card(in: (source as NSString).deletingLastPathComponent)
        var pending: PendingEntry
        func join(_ f: String) -> String { (source as NSString).appendingPathComponent(f) }
        let fm = FileManager.default
        if isDir.boolValue {
            if fm.fileExists(atPath: join("adapter_config.json")) {
                pending = try pendingLoRA(source, base: try require(base, for: source))
            } else if fm.fileExists(atPath: join("delta.alloy")) {
                pending = try pendingAlloyDelta(join("delta.alloy"), base: base, force: options.force)
                if fm.fileExists(atPath: join("head.safetensors")) {
                    let head = try SafetensorsFile(path: join("head.safetensors"))
                    pending.blobs.append(("head", .encoded(try Self.encodeTensors(head, kind: "head"))))
                }
            } else if let b = base, options.kind != .base {
                pending = try pendingFineTuned(source, base: b, options: options)
            } else {
                pending = try pendingBase(source)
            }
        } else if source.hasSuffix(".alloy") {
            let f = try AlloyFile(path: source)
            if f.kind == "base" || (f.kind == nil && base == nil) {
                pending = PendingEntry(kind: .base, contentSHA256: f.contentHash ?? "", parameters: f.tensors.reduce(0) { $0 + $1.shape.elementCount },
                                       rawBytes: f.tensors.reduce(0) { $0 + $1.rawBytes }, blobs: [("weights", .file(source))])
                pending.notes.append("a bare .alloy base has no config.json or tokenizer: the runtime cannot load it; import the HF model folder instead")
            } else {
                pending = try pendingAlloyDelta(source, base: base, force: options.force)
            }
        } else if options.kind == .head {
            let f = try SafetensorsFile(path: source)
            let enc = try Self.encodeTensors(f, kind: "head")
            pending = PendingEntry(kind: .head, base: base, baseSHA256: base?.entry.contentSHA256, contentSHA256: enc.contentHash,
                                   parameters: f.tensors.reduce(0) { $0 + $1.shape.elementCount }, rawBytes: f.tensors.reduce(0) { $0 + $1.dataRange.count })
            pending.blobs.append(("weights", .encoded(enc)))
        } else if let b = base, options.kind == .taskVector {
            pending = try pendingTaskVectorFile(source, base: b)
        } else if let b = base {
            pending = try pendingFineTuned(source, base: b, options: options)
        } else {
            pending = try pendingBase(source)
        }
        if let card {
            pending.blobs.append(("card", .encoded(try Self.encodeFiles([("card.json", card.bytes)]))))
            if let labels = card.json["labels"] { pending.metadata.append(("labels", labels)) }
        }
        pending.task = options.task ?? { if case .string(let t)? = card?.json["task"] { return t }; return nil }()
        if let b = base { pending.base = b; pending.baseSHA256 = pending.baseSHA256 ?? b.entry.contentSHA256 }
        if let b = pending.base { pending.parents.append((b, "base", nil)) }
        return try commit(pending, name: options.name, tags: options.tags, source: source)
    }

    func require(_ base: StoredItem?, for source: String) throws -> StoredItem {
        guard let base else { throw StoreError.invalidSource(source: source, reason: "a delta needs --base REF (the base entry it was made for)") }
        return base
    }

    /// The expert card (card.json) of a folder: in it or, for Adapters/<task>/<kind>, its parent.
    static func card(near dir: String) -> (bytes: [UInt8], json: JSONValue)? {
        card(in: dir) ?? card(in: (dir as NSString).deletingLastPathComponent)
    }

    static func card(in dir: String) -> (bytes: [UInt8], json: JSONValue)? {
        guard let data = FileManager.default.contents(atPath: (dir as NSString).appendingPathComponent("card.json")),
              let v = try? JSONValue.parse(String(decoding: data, as: UTF8.self)) else { return nil }
        return (Array(data), v)
    }

    static func encodeTensors(_ f: SafetensorsFile, kind: String) throws -> AlloyWriter.Encoded {
        let inputs = try f.names.map { n -> AlloyWriter.Input in
            let t = try f.tensor(n)
            return .init(name: n, tensor: t, codec: AlloyCodec.automatic(for: t))
        }
        return try AlloyWriter.encode(inputs, metadata: [("kind", .string(kind))])
    }

    // MARK: sources

    func pendingBase(_ source: String) throws -> PendingEntry {
        let w = try WeightSource(path: source)
        let enc = try AlloyFile.pack(w, kind: "base")
        var isDir: ObjCBool = false
        FileManager.default.fileExists(atPath: source, isDirectory: &isDir)
        let files = isDir.boolValue ? try Self.collectFiles(in: source) : []
        let content = enc.contentHash
        var p = PendingEntry(kind: .base, contentSHA256: content, parameters: w.entries.reduce(0) { $0 + $1.info.shape.elementCount },
                             rawBytes: w.entries.reduce(0) { $0 + $1.info.dataRange.count }, blobs: [("weights", .encoded(enc))])
        if !files.isEmpty { p.blobs.append(("files", .encoded(try Self.encodeFiles(files.filter { $0.0 != "card.json" })))) }
        if !files.contains(where: { $0.0 == "config.json" }) {
            p.notes.append("no config.json beside the weights: the runtime cannot load this base; import the HF model folder instead")
        }
        return p
    }

    func pendingLoRA(_ dir: String, base: StoredItem) throws -> PendingEntry {
        let model = try EncoderModel(directory: try checkout(base))
        // Loading through the runtime checks every module against the base's shapes.
        let adapter: LoRAAdapter
        do { adapter = try LoRAAdapter(peft: dir, for: model) } catch let e as EncoderError {
            if case .shapeMismatch(_, let t, let exp, let found) = e { throw StoreError.shapeMismatch(source: dir, tensor: t, expected: exp, found: found) }
            throw StoreError.invalidSource(source: dir, reason: "\(e)")
        }
        let file = try SafetensorsFile(path: (dir as NSString).appendingPathComponent("adapter_model.safetensors"))
        let enc = try Self.encodeTensors(file, kind: "lora")
        let files = try Self.collectFiles(in: dir).filter { $0.0 == "adapter_config.json" || $0.0 == "README.md" }
        let peft = try PEFTAdapter(directory: dir)
        let ranks = Set(adapter.layers.values.map(\.rank)).sorted()
        return PendingEntry(kind: .lora, base: base, baseSHA256: base.entry.contentSHA256,
                            contentSHA256: enc.contentHash,
                            parameters: file.tensors.reduce(0) { $0 + $1.shape.elementCount }, rawBytes: file.tensors.reduce(0) { $0 + $1.dataRange.count },
                            metadata: [("rank", .integer(peft.rank)), ("ranks", .array(ranks.map { .integer($0) })), ("alpha", .number(peft.alpha)),
                                       ("rslora", .bool(peft.useRSLoRA)), ("targets", .integer(adapter.layers.count)),
                                       ("modules_to_save", .array(peft.modulesToSave.map { .string($0) }))],
                            blobs: [("weights", .encoded(enc)), ("files", .encoded(try Self.encodeFiles(files)))])
    }

    func pendingAlloyDelta(_ file: String, base: StoredItem?, force: Bool) throws -> PendingEntry {
        let f = try AlloyFile(path: file)
        guard let kind = f.kind.flatMap(EntryKind.init(rawValue:)), kind.isDelta else {
            throw StoreError.invalidSource(source: file, reason: "a .alloy delta must be of kind sparse, task-vector or merged, this one is \(f.kind ?? "unlabelled")")
        }
        guard case .string(let recorded)? = f.metadata["base_sha256"] else {
            throw StoreError.invalidSource(source: file, reason: "records no base_sha256, so its base cannot be checked")
        }
        var b = base
        if b == nil {
            b = try db.read { db in try StoreEntry.filter(Column("kind") == "base" && Column("content_sha256") == recorded).fetchOne(db) }
                .map { e in try db.read { try item($0, id: e.id!) } }
            if b == nil { throw StoreError.invalidSource(source: file, reason: "its base (content hash \(recorded.prefix(12))…) is not in the store; import the base first or pass --base") }
        }
        if b!.entry.contentSHA256 != recorded && !force {
            throw StoreError.wrongBase(source: file, expected: recorded, found: b!.entry.contentSHA256)
        }
        // Shapes against the base, tensor by tensor.
        let model = try EncoderModel(directory: try checkout(b!))
        for e in f.tensors {
            let c = model.architecture.canonical(e.name)
            guard let w = model.weights[c] else { throw StoreError.invalidSource(source: file, reason: "tensor \"\(e.name)\" is not a weight of the base") }
            guard w.shape == e.shape else { throw StoreError.shapeMismatch(source: file, tensor: e.name, expected: w.shape.dims, found: e.shape.dims) }
        }
        var meta: [(String, JSONValue)] = []
        if let d = f.metadata["density"] { meta.append(("density", d)) }
        return PendingEntry(kind: kind, base: b, baseSHA256: recorded, contentSHA256: f.contentHash ?? "",
                            parameters: f.tensors.reduce(0) { $0 + $1.shape.elementCount }, rawBytes: f.tensors.reduce(0) { $0 + $1.rawBytes },
                            metadata: meta, blobs: [("weights", .file(file))])
    }

    /// τ = θ_ft − θ_base per tensor the two share (Ilharco et al., 2023, "Editing models with
    /// task arithmetic"). Lossless: where fl(θ_base + τ) ≠ θ_ft the exact value is kept aside
    /// (`exact` blob), so export reproduces θ_ft bit for bit.
    func pendingFineTuned(_ source: String, base: StoredItem, options: ImportOptions) throws -> PendingEntry {
        let ft = try WeightSource(path: source)
        let baseDir = try checkout(base)
        let model = try EncoderModel(directory: baseDir)
        let baseWeights = try WeightSource(path: baseDir)
        var byCanonical: [String: String] = [:]
        for n in baseWeights.names { byCanonical[model.architecture.canonical(n)] = n }
        var deltas: [(String, [Float], Shape)] = [], head: [AlloyWriter.Input] = []
        var renamed: [(String, JSONValue)] = [], exact: [AlloyWriter.Input] = []
        var covered = Set<String>()
        var sqDelta = 0.0, sqBase = 0.0, exactCount = 0
        for name in ft.names {
            let t = try ft.tensor(name)
            guard let bname = byCanonical[model.architecture.canonical(name)], let binfo = baseWeights.info(bname), t.dtype.isFloatingPoint else {
                head.append(.init(name: name, tensor: t, codec: AlloyCodec.automatic(for: t)))
                continue
            }
            guard binfo.shape == t.shape else { throw StoreError.shapeMismatch(source: source, tensor: name, expected: binfo.shape.dims, found: t.shape.dims) }
            covered.insert(bname)
            if bname != name { renamed.append((bname, .string(name))) }
            let a = try t.floats(), b = try baseWeights.tensor(bname).floats()
            var d = [Float](repeating: 0, count: a.count)
            var fixIdx: [Int64] = [], fixVal: [Float] = []
            for i in 0..<a.count {
                d[i] = a[i] - b[i]
                if (b[i] + d[i]).bitPattern != a[i].bitPattern { fixIdx.append(Int64(i)); fixVal.append(a[i]) }
                sqDelta += Double(d[i]) * Double(d[i]); sqBase += Double(b[i]) * Double(b[i])
            }
            if t.dtype != .f32 { throw StoreError.unsupported(ref: source, reason: "tensor \"\(name)\" is \(t.dtype.rawValue); lossless task vectors need F32 checkpoints") }
            if !fixIdx.isEmpty {
                exactCount += fixIdx.count
                let idx = try fixIdx.withUnsafeBytes { try Tensor(dtype: .i64, shape: Shape([fixIdx.count]), bytes: $0) }
                exact.append(.init(name: bname + ".indices", tensor: idx, codec: .raw))
                exact.append(.init(name: bname + ".values", tensor: try Tensor(fixVal, shape: Shape([fixVal.count])), codec: .float))
            }
            deltas.append((bname, d, t.shape))
        }
        guard !deltas.isEmpty else { throw StoreError.invalidSource(source: source, reason: "shares no tensor with the base — is it a model of another architecture?") }
        let relative = (sqDelta / max(sqBase, 1e-30)).squareRoot()
        if relative > 0.5 && !options.force {
            throw StoreError.invalidSource(source: source, reason: String(format: "its weights differ from the base by %.0f%% of the base's norm — fine-tunes differ by a few percent; it was probably trained from another base (pass --force to store it anyway)", relative * 100))
        }
        let omitted = baseWeights.names.filter { !covered.contains($0) }
        var p = PendingEntry(kind: .taskVector, base: base, baseSHA256: base.entry.contentSHA256, contentSHA256: "", parameters: 0, rawBytes: 0)
        let files = try Self.collectFiles(in: FileManager.default.isDirectory(source) ? source : (source as NSString).deletingLastPathComponent)
            .filter { $0.0 != "card.json" && $0.0 != "README.md" }
        if let method = options.sparsify {
            let (kept, reports) = try DeltaTools.sparsify(deltas: deltas, method: method, density: options.density, gamma: options.gamma, seed: options.seed)
            let n = reports.reduce(0) { $0 + $1.kept }, total = reports.reduce(0) { $0 + $1.total }
            let enc = try AlloyWriter.encode(kept.map { .init(name: $0.0, tensor: $0.1, codec: .sparse) },
                                             metadata: [("kind", .string("sparse")), ("base_sha256", .string(base.entry.contentSHA256)),
                                                        ("density", .number(Double(n) / Double(max(1, total))))])
            p.kind = .sparse
            p.metadata += [("density", .number(Double(n) / Double(max(1, total)))), ("method", .string(method.rawValue))]
            p.blobs.append(("weights", .encoded(enc)))
            p.contentSHA256 = enc.contentHash
        } else {
            let enc = try AlloyWriter.encode(try deltas.map { .init(name: $0.0, tensor: try Tensor($0.1, shape: $0.2), codec: .float) },
                                             metadata: [("kind", .string("task-vector")), ("base_sha256", .string(base.entry.contentSHA256))])
            p.blobs.append(("weights", .encoded(enc)))
            p.contentSHA256 = enc.contentHash
            if !exact.isEmpty { p.blobs.append(("exact", .encoded(try AlloyWriter.encode(exact, metadata: [("kind", .string("exact"))])))) }
            p.metadata.append(("inexact_entries", .integer(exactCount)))
        }
        if !head.isEmpty { p.blobs.append(("head", .encoded(try AlloyWriter.encode(head, metadata: [("kind", .string("head"))])))) }
        if !files.isEmpty { p.blobs.append(("files", .encoded(try Self.encodeFiles(files)))) }
        if !renamed.isEmpty { p.metadata.append(("names", .object(renamed))) }
        if !omitted.isEmpty { p.metadata.append(("omitted", .array(omitted.map { .string($0) }))) }
        p.metadata.append(("relative_norm", .number(relative)))
        p.parameters = deltas.reduce(0) { $0 + $1.1.count }
        p.rawBytes = p.parameters * 4
        return p
    }

    /// A safetensors file that already holds τ (names of the base, shapes checked).
    func pendingTaskVectorFile(_ source: String, base: StoredItem) throws -> PendingEntry {
        let f = try SafetensorsFile(path: source)
        let model = try EncoderModel(directory: try checkout(base))
        var inputs: [AlloyWriter.Input] = []
        for n in f.names {
            let t = try f.tensor(n)
            guard let w = model.weights[model.architecture.canonical(n)] else {
                throw StoreError.invalidSource(source: source, reason: "tensor \"\(n)\" is not a weight of the base — is this a task vector of another model?")
            }
            guard w.shape == t.shape else { throw StoreError.shapeMismatch(source: source, tensor: n, expected: w.shape.dims, found: t.shape.dims) }
            inputs.append(.init(name: n, tensor: t, codec: AlloyCodec.automatic(for: t)))
        }
        let enc = try AlloyWriter.encode(inputs, metadata: [("kind", .string("task-vector")), ("base_sha256", .string(base.entry.contentSHA256))])
        return PendingEntry(kind: .taskVector, base: base, baseSHA256: base.entry.contentSHA256, contentSHA256: enc.contentHash,
                            parameters: f.tensors.reduce(0) { $0 + $1.shape.elementCount }, rawBytes: f.tensors.reduce(0) { $0 + $1.dataRange.count },
                            blobs: [("weights", .encoded(enc))])
    }

    // MARK: commit

    /// Writes the blobs, then records the entry in one transaction, holding the store lock.
    func commit(_ p: PendingEntry, name: String, tags: [String], source: String) throws -> ImportResult {
        guard !name.isEmpty, !name.contains(where: { $0 == "/" || $0.isWhitespace }), !(name.count >= 6 && name.allSatisfy(\.isHexDigit)) else {
            throw StoreError.invalidSource(source: source, reason: "the name \"\(name)\" must be non-empty, without spaces or slashes, and not look like a digest")
        }
        return try withLock(exclusive: true) {
            var blobs: [(String, String, Int)] = []
            for (role, data) in p.blobs {
                let (sha, bytes): (String, Int)
                switch data {
                case .encoded(let e): (sha, bytes) = try putBlob(e)
                case .file(let f): (sha, bytes) = try putBlob(file: f)
                }
                blobs.append((role, sha, bytes))
            }
            let metaJSON = JSONValue.object(p.metadata).serialized()
            var digestInput = "alloy-entry-v1\nkind=\(p.kind.rawValue)\nbase=\(p.baseSHA256 ?? "")\nmeta=\(metaJSON)\n"
            for (role, sha, _) in blobs.sorted(by: { $0.0 < $1.0 }) { digestInput += "\(role)=\(sha)\n" }
            let digest = SHA256.hash(data: Array(digestInput.utf8)).map { String(format: "%02x", $0) }.joined()
            let tagsJSON = JSONValue.array(tags.map { .string($0) }).serialized()
            let (id, existed): (Int64, Bool) = try db.write { db in
                if let owner = try NameRow.fetchOne(db, key: name), let e = try StoreEntry.fetchOne(db, key: owner.entryID), e.digest != digest {
                    throw StoreError.nameTaken(name: name, existing: "\(e.kind.rawValue) \(e.shortDigest)")
                }
                if let e = try StoreEntry.filter(Column("digest") == digest).fetchOne(db) {
                    if try NameRow.fetchOne(db, key: name) == nil { try NameRow(name: name, entryID: e.id!).insert(db) }
                    return (e.id!, true)
                }
                let formatter = ISO8601DateFormatter()
                var e = StoreEntry(id: nil, digest: digest, kind: p.kind, baseID: p.base?.entry.id, baseSHA256: p.baseSHA256,
                                   contentSHA256: p.contentSHA256, task: p.task, tags: tagsJSON, parameters: p.parameters,
                                   rawBytes: p.rawBytes, storedBytes: blobs.reduce(0) { $0 + $1.2 }, metadata: metaJSON,
                                   source: source, createdAt: formatter.string(from: Date()))
                try e.insert(db)
                try NameRow(name: name, entryID: e.id!).insert(db)
                for (role, sha, bytes) in blobs { try BlobRow(entryID: e.id!, role: role, sha256: sha, bytes: bytes).insert(db) }
                for par in p.parents {
                    try LineageRow(entryID: e.id!, parentID: par.item.entry.id, parentDigest: par.item.entry.digest, parentName: par.item.ref,
                                   relation: par.relation, weight: par.weight).insert(db)
                }
                return (e.id!, false)
            }
            let item = try db.read { try self.item($0, id: id) }
            return ImportResult(item: item, existed: existed, notes: p.notes)
        }
    }
}

extension FileManager {
    func isDirectory(_ path: String) -> Bool {
        var d: ObjCBool = false
        return fileExists(atPath: path, isDirectory: &d) && d.boolValue
    }
}
