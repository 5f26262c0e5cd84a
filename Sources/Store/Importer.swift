import Crypto
import Encoder
import Foundation
import Formats
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

/// Turns a source on disk into a new entry: reads and checks it (shapes against the base's
/// layout), encodes its blobs, then commits blobs and catalog row under the store lock. Owns
/// what each source kind becomes (docs/STORE.md, "Entries").
struct Importer {
    let catalog: Catalog
    let blobs: BlobStore
    let cache: CheckoutCache
    /// Runs its argument holding the store's exclusive lock.
    let exclusive: (() throws -> Void) throws -> Void

    /// Imports `source` (an HF model directory or weight file — safetensors, sharded, or
    /// `pytorch_model.bin` —, a fine-tuned model or classifier with
    /// `options.base`, a PEFT LoRA folder, a `.alloy` file, or an expert folder holding
    /// `delta.alloy` and `head.safetensors`) under `options.name`.
    func importSource(_ source: String, options: ImportOptions) throws -> ImportResult {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDir) else {
            throw StoreError.invalidSource(source: source, reason: "no such file or directory")
        }
        let base = try options.base.map { ref -> StoredItem in
            let b = try catalog.resolve(ref)
            guard b.entry.kind == .base else { throw StoreError.unsupported(ref: ref, reason: "is a \(b.entry.kind.rawValue), not a base") }
            return b
        }
        let card = isDir.boolValue ? try Self.card(in: [source, (source as NSString).deletingLastPathComponent])
                                   : try Self.card(in: [(source as NSString).deletingLastPathComponent])
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
            pending.blobs.append(("card", .encoded(try BlobStore.encodeFiles([("card.json", card.bytes)]))))
            if let labels = card.card.labels { pending.metadata.append(("labels", .array(labels.map { .string($0) }))) }
        }
        if card?.card.labels == nil, isDir.boolValue, try ClassificationHead.transformersLayout(directory: source) != nil {
            // A transformers classifier names its labels in config.json (id2label); the head is checked here.
            let labels = try ClassificationHead.transformers(directory: source).labels
            pending.metadata.append(("labels", .array(labels.map { .string($0) })))
        }
        pending.task = options.task ?? card?.card.task
        if let b = base { pending.base = b; pending.baseSHA256 = pending.baseSHA256 ?? b.entry.contentSHA256 }
        if let b = pending.base { pending.parents.append((b, "base", nil)) }
        return try commit(pending, name: options.name, tags: options.tags, source: source)
    }

    func require(_ base: StoredItem?, for source: String) throws -> StoredItem {
        guard let base else { throw StoreError.invalidSource(source: source, reason: "a delta needs --base REF (the base entry it was made for)") }
        return base
    }

    /// The expert card (card.json) in the first of `dirs` that has one (a folder, then for
    /// Adapters/<task>/<kind> its parent): its bytes, stored as they are, and its checked
    /// contents. An invalid card is an error naming the file and field.
    static func card(in dirs: [String]) throws -> (bytes: [UInt8], card: ExpertCard)? {
        for d in dirs {
            let p = (d as NSString).appendingPathComponent("card.json")
            guard let data = FileManager.default.contents(atPath: p) else { continue }
            return (Array(data), try ExpertCard.decode(data, path: p))
        }
        return nil
    }

    /// Reads the files the store keeps beside weights: HF configs, tokenizer, pooling, cards.
    static func collectFiles(in dir: String, extra: [String] = []) throws -> [(String, [UInt8])] {
        let fm = FileManager.default
        var out: [(String, [UInt8])] = []
        let wanted = ModelFolder.sideFiles + ["adapter_config.json", "card.json", "README.md"] + extra
        for rel in wanted {
            let p = (dir as NSString).appendingPathComponent(rel)
            if let d = fm.contents(atPath: p) { out.append((rel, Array(d))) }
        }
        return out
    }

    /// Stores a merge result (an HF folder written by the merge engine) as a `merged` entry:
    /// a lossless task vector over `base`, with the recipe and its parents as lineage.
    func importMerged(_ dir: String, name: String, base: StoredItem, parents: [(item: StoredItem, weight: Double?)],
                      method: String, recipe: String, tags: [String]) throws -> ImportResult {
        var o = ImportOptions(name: name)
        o.force = true   // a merge of distant experts may move far from the base; that is the user's recipe
        var p = try pendingFineTuned(dir, base: base, options: o)
        p.kind = .merged
        p.metadata += [("method", .string(method)), ("recipe", .string(recipe))]
        p.parents.append((base, "base", nil))
        for (item, w) in parents where item.entry.id != base.entry.id { p.parents.append((item, "merge", w)) }
        return try commit(p, name: name, tags: tags, source: "alloy merge (\(method))")
    }

    static func encodeTensors(_ f: any WeightFile, kind: String) throws -> AlloyWriter.Encoded {
        let inputs = try f.tensors.map(\.name).map { n -> AlloyWriter.Input in
            let t = try f.tensor(n)
            return .init(name: n, tensor: t, codec: AlloyCodec.automatic(for: t))
        }
        return try AlloyWriter.encode(inputs, metadata: [("kind", .string(kind))])
    }

    // MARK: sources

    func pendingBase(_ source: String) throws -> PendingEntry {
        let w = try WeightSource(path: source)
        let enc = try AlloyFile.pack(w, kind: "base")
        let files = FileManager.default.isDirectory(source) ? try Self.collectFiles(in: source) : []
        let content = enc.contentHash
        var p = PendingEntry(kind: .base, contentSHA256: content, parameters: w.entries.reduce(0) { $0 + $1.info.shape.elementCount },
                             rawBytes: w.entries.reduce(0) { $0 + $1.info.dataRange.count }, blobs: [("weights", .encoded(enc))])
        if !files.isEmpty { p.blobs.append(("files", .encoded(try BlobStore.encodeFiles(files.filter { $0.0 != "card.json" })))) }
        if !files.contains(where: { $0.0 == "config.json" }) {
            p.notes.append("no config.json beside the weights: the runtime cannot load this base; import the HF model folder instead")
        }
        return p
    }

    func pendingLoRA(_ dir: String, base: StoredItem) throws -> PendingEntry {
        let peft: PEFTAdapter
        do { peft = try PEFTAdapter(directory: dir) } catch let e as PEFTError {
            throw StoreError.invalidSource(source: dir, reason: e.reason)
        }
        // Every module against the base's shapes, named on mismatch.
        try BaseLayout(base: base, blobs: blobs).checkLoRA(peft, source: dir)
        // A .bin adapter is stored as any other: a checkout or export writes adapter_model.safetensors.
        let file = try PEFTAdapter.weights(in: dir)
        let enc = try Self.encodeTensors(file, kind: "lora")
        let files = try Self.collectFiles(in: dir).filter { $0.0 == "adapter_config.json" || $0.0 == "README.md" }
        let ranks = Set(peft.modules.map { $0.a.shape.dims[0] }).sorted()
        return PendingEntry(kind: .lora, base: base, baseSHA256: base.entry.contentSHA256,
                            contentSHA256: enc.contentHash,
                            parameters: file.tensors.reduce(0) { $0 + $1.shape.elementCount }, rawBytes: file.tensors.reduce(0) { $0 + $1.dataRange.count },
                            metadata: [("rank", .integer(peft.rank)), ("ranks", .array(ranks.map { .integer($0) })), ("alpha", .number(peft.alpha)),
                                       ("rslora", .bool(peft.useRSLoRA)), ("targets", .integer(peft.modules.count)),
                                       ("modules_to_save", .array(peft.modulesToSave.map { .string($0) }))],
                            blobs: [("weights", .encoded(enc)), ("files", .encoded(try BlobStore.encodeFiles(files)))])
    }

    func pendingAlloyDelta(_ file: String, base: StoredItem?, force: Bool) throws -> PendingEntry {
        let f = try AlloyFile(path: file)
        guard let kind = f.kind.flatMap(EntryKind.init(rawValue:)), kind.isDelta else {
            throw StoreError.invalidSource(source: file, reason: "a .alloy delta must be of kind sparse, task-vector or merged, this one is \(f.kind ?? "unlabelled")")
        }
        guard case .string(let recorded)? = f.metadata["base_sha256"] else {
            throw StoreError.invalidSource(source: file, reason: "records no base_sha256, so its base cannot be checked")
        }
        guard let b = try base ?? catalog.base(contentSHA256: recorded) else {
            throw StoreError.invalidSource(source: file, reason: "its base (content hash \(recorded.prefix(12))…) is not in the store; import the base first or pass --base")
        }
        if b.entry.contentSHA256 != recorded && !force {
            throw StoreError.wrongBase(source: file, expected: recorded, found: b.entry.contentSHA256)
        }
        // Shapes against the base, tensor by tensor.
        try BaseLayout(base: b, blobs: blobs).checkDelta(f.tensors.map { ($0.name, $0.shape) }, source: file)
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
        let layout = try BaseLayout(base: base, blobs: blobs)
        // The base's values, mapped from its checkout (rebuilt if missing or incomplete).
        let baseWeights = try WeightSource(path: try cache.checkout(base))
        var deltas: [(String, [Float], Shape)] = [], head: [AlloyWriter.Input] = []
        var renamed: [(String, JSONValue)] = [], exact: [AlloyWriter.Input] = []
        var covered = Set<String>()
        var sqDelta = 0.0, sqBase = 0.0, exactCount = 0
        // A transformers classifier keeps its whole head with it, also the part that shares a
        // name with the base (BERT's pooler): the head is the expert's own, never a delta.
        let folder = FileManager.default.isDirectory(source) ? source : (source as NSString).deletingLastPathComponent
        let headNames = Set(try ClassificationHead.transformersLayout(directory: folder)?.tensorNames ?? [])
        for name in ft.names {
            let t = try ft.tensor(name)
            guard let bname = layout.baseName(name), let binfo = baseWeights.info(bname), t.dtype.isFloatingPoint,
                  !headNames.contains(bname) else {
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
        let omitted = layout.names.filter { !covered.contains($0) }
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
        if !files.isEmpty { p.blobs.append(("files", .encoded(try BlobStore.encodeFiles(files)))) }
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
        try BaseLayout(base: base, blobs: blobs).checkDelta(f.tensors.map { ($0.name, $0.shape) }, source: source,
                                                            hint: " — is this a task vector of another model?")
        let inputs = try f.names.map { n -> AlloyWriter.Input in
            let t = try f.tensor(n)
            return .init(name: n, tensor: t, codec: AlloyCodec.automatic(for: t))
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
        var result: (item: StoredItem, existed: Bool)?
        try exclusive {
            var stored: [(role: String, sha256: String, bytes: Int)] = []
            for (role, data) in p.blobs {
                let (sha, bytes): (String, Int)
                switch data {
                case .encoded(let e): (sha, bytes) = try blobs.put(e)
                case .file(let f): (sha, bytes) = try blobs.put(file: f)
                }
                stored.append((role, sha, bytes))
            }
            let metaJSON = JSONValue.object(p.metadata).serialized()
            var digestInput = "alloy-entry-v1\nkind=\(p.kind.rawValue)\nbase=\(p.baseSHA256 ?? "")\nmeta=\(metaJSON)\n"
            for b in stored.sorted(by: { $0.role < $1.role }) { digestInput += "\(b.role)=\(b.sha256)\n" }
            let digest = BlobStore.hex(SHA256.hash(data: Array(digestInput.utf8)))
            result = try catalog.record(Catalog.NewEntry(
                digest: digest, kind: p.kind, baseID: p.base?.entry.id, baseSHA256: p.baseSHA256, contentSHA256: p.contentSHA256,
                task: p.task, tags: tags, parameters: p.parameters, rawBytes: p.rawBytes, metadataJSON: metaJSON, source: source,
                blobs: stored, parents: p.parents), name: name)
        }
        guard let result else { throw StoreError.io(path: source, reason: "the import did not run (store lock)") }
        return ImportResult(item: result.item, existed: result.existed, notes: p.notes)
    }
}
