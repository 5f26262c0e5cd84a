import Dispatch
import Encoder
import Formats
import Foundation
import Store
import Synchronization

/// How a forward pass applies an adapter to a sequence.
enum BatchGroup: Sendable {
    /// The base, or one unmerged LoRA: any number of these share a forward pass, grouped per
    /// adapter inside it (`hiddenStates(_:perSequence:)`).
    case shared(LoRAAdapter?)
    /// Patched weights (a sparse delta, a task vector, a composition): they replace base
    /// weights, so only sequences with the same `key` share a pass.
    case exclusive(key: String, set: AdapterSet)

    var key: String? {
        if case .exclusive(let k, _) = self { return k }
        return nil
    }
}

/// An adapter (or a weighted composition of several) loaded for the base.
public struct LoadedAdapter: Sendable {
    /// The id requests name it by (a store ref, a path, or `a@w+b@w` for a composition).
    public let id: String
    /// lora, sparse, task-vector, fine-tuned, alloy-delta or composition.
    public let kind: String
    /// The folder or file it was read from (empty for a composition).
    public let path: String
    let group: BatchGroup
    /// The classification head shipped with it, if any.
    public let head: ClassificationHead?
    /// Seconds its loading took.
    public let loadSeconds: Double
}

/// The store adapters are looked up in, opened on its first use and kept open (a first request
/// does not wait for the catalog to be opened again).
final class StoreHandle: Sendable {
    let root: String?
    private let opened = Mutex<Store?>(nil)

    init(root: String?) { self.root = root }

    /// The store at `root`; nil when there is none (no catalog.sqlite yet).
    func store() throws -> Store? {
        guard let root, FileManager.default.fileExists(atPath: (root as NSString).appendingPathComponent("catalog.sqlite")) else { return nil }
        return try opened.withLock { s in
            if let s { return s }
            let fresh = try Store(root: root, create: false)
            s = fresh
            return fresh
        }
    }
}

/// Adapters in memory, loaded on first use from a path or the store and evicted least recently
/// used beyond `capacity`. Concurrent first uses of one id share one load.
actor AdapterRegistry {
    private struct Entry { var adapter: LoadedAdapter; var lastUse: UInt64 }
    private var entries: [String: Entry] = [:]
    private var loading: [String: Task<LoadedAdapter, any Error>] = [:]
    private var tick: UInt64 = 0
    let encoder: SentenceEncoder
    let store: StoreHandle
    let allowPaths: Bool
    let capacity: Int
    let metrics: ServerMetrics
    private static let loadQueue = DispatchQueue(label: "alloy.serve.adapter-load", attributes: .concurrent)

    init(encoder: SentenceEncoder, storeRoot: String?, allowPaths: Bool, capacity: Int, metrics: ServerMetrics) {
        self.encoder = encoder
        self.store = StoreHandle(root: storeRoot)
        self.allowPaths = allowPaths
        self.capacity = max(1, capacity)
        self.metrics = metrics
    }

    /// The adapter `id`, loading it if needed.
    func adapter(_ id: String) async throws -> LoadedAdapter {
        try await cachedOrLoad(id) { [encoder, store, allowPaths] in
            switch try Self.resolve(id, in: store, allowPaths: allowPaths) {
            case .path(let path): return try Self.load(id: id, path: path, encoder: encoder)
            case .stored(let store, let item, let files): return try Self.load(id: id, item: item, files: files, store: store, encoder: encoder)
            }
        }
    }

    /// The weighted sum of `parts` (each a LoRA scale or a delta's λ), built once and cached.
    func composition(_ parts: [(id: String, weight: Float)]) async throws -> LoadedAdapter {
        let canonical = parts.sorted { ($0.id, $0.weight) < ($1.id, $1.weight) }
        let key = canonical.map { "\($0.id)@\($0.weight)" }.joined(separator: "+")
        return try await cachedOrLoad(key) { [encoder, store, allowPaths] in
            var set = AdapterSet()
            for p in canonical {
                let origin = try Self.resolve(p.id, in: store, allowPaths: allowPaths)
                do {
                    switch origin {
                    case .path(let path):
                        try set.add(path: path, scale: p.weight, model: encoder.model, labels: ClassificationHead.labels(near: path))
                    case .stored(let store, let item, let files):
                        _ = try Self.add(item, files: files, from: store, scale: p.weight, to: &set, model: encoder.model)
                    }
                } catch let e as ServingError {
                    throw e
                } catch {
                    throw ServingError.adapterLoad(id: p.id, reason: "\(error)")
                }
            }
            return LoadedAdapter(id: key, kind: "composition", path: "", group: .exclusive(key: key, set: set), head: nil, loadSeconds: 0)
        }
    }

    private func cachedOrLoad(_ id: String, _ work: @escaping @Sendable () throws -> LoadedAdapter) async throws -> LoadedAdapter {
        tick += 1
        if var e = entries[id] {
            e.lastUse = tick
            entries[id] = e
            return e.adapter
        }
        if let t = loading[id] { return try await t.value }
        let metrics = self.metrics
        let task = Task<LoadedAdapter, any Error> {
            let start = ContinuousClock.now
            let loaded: LoadedAdapter = try await withCheckedThrowingContinuation { c in
                Self.loadQueue.async { c.resume(with: Result { try work() }) }
            }
            let took = ContinuousClock.now - start
            metrics.adapterLoadTime.record(took)
            return LoadedAdapter(id: loaded.id, kind: loaded.kind, path: loaded.path, group: loaded.group, head: loaded.head,
                                 loadSeconds: Double(took.components.seconds) + Double(took.components.attoseconds) * 1e-18)
        }
        loading[id] = task
        defer { loading[id] = nil }
        let loaded = try await task.value
        tick += 1
        entries[id] = Entry(adapter: loaded, lastUse: tick)
        metrics.adaptersLoaded.increment()
        while entries.count > capacity, let victim = entries.filter({ $0.key != id }).min(by: { $0.value.lastUse < $1.value.lastUse })?.key {
            entries[victim] = nil
            metrics.adaptersEvicted.increment()
        }
        metrics.adaptersResident.set(Double(entries.count))
        return loaded
    }

    /// Unloads `id`; false when it was not loaded.
    func remove(_ id: String) -> Bool {
        guard entries.removeValue(forKey: id) != nil else { return false }
        metrics.adaptersResident.set(Double(entries.count))
        return true
    }

    /// The loaded adapters, most recently used first.
    func list() -> [LoadedAdapter] {
        entries.values.sorted { $0.lastUse > $1.lastUse }.map(\.adapter)
    }

    /// Where an adapter's bytes are.
    enum Origin {
        /// A folder or file the runtime reads (a path given by the client, or a checkout).
        case path(String)
        /// A store entry read straight from its blobs (`load(id:item:files:store:encoder:)`),
        /// with its small files (decoded once).
        case stored(Store, StoredItem, files: [(String, [UInt8])])
    }

    /// A path on disk (when allowed) is used as is; anything else is a store ref. A LoRA or a
    /// delta is read from the store's blobs in memory; an entry whose files hold a transformers
    /// config.json (a fine-tuned classifier's delta, whose head needs its folder) is checked out.
    static func resolve(_ ref: String, in handle: StoreHandle, allowPaths: Bool) throws -> Origin {
        if allowPaths, FileManager.default.fileExists(atPath: ref) { return .path(ref) }
        let item: StoredItem
        let store: Store
        do {
            guard let s = try handle.store() else {
                throw ServingError.unknownAdapter(id: ref, reason: allowPaths ? "no such path, and no store to look it up in" : "no store to look it up in")
            }
            store = s
            item = try store.resolve(ref)
        } catch let e as StoreError {
            if case .notFound = e { throw ServingError.unknownAdapter(id: ref, reason: "not in the store at \(handle.root ?? "")") }
            throw ServingError.adapterLoad(id: ref, reason: "\(e)")
        } catch let e as ServingError {
            throw e
        } catch {
            throw ServingError.adapterLoad(id: ref, reason: "\(error)")
        }
        guard item.entry.kind.isDelta else {
            throw ServingError.adapterLoad(id: ref, reason: "the store entry is a \(item.entry.kind.rawValue), not an adapter")
        }
        let files: [(String, [UInt8])]
        do {
            files = try store.files(of: item)
            if files.contains(where: { $0.0 == "config.json" }) { return .path(try store.checkout(item)) }
        } catch {
            throw ServingError.adapterLoad(id: ref, reason: "\(error)")
        }
        return .stored(store, item, files: files)
    }

    /// Loads the adapter at `path` as `alloy embed --adapter PATH` and `alloy classify` do.
    static func load(id: String, path: String, encoder: SentenceEncoder) throws -> LoadedAdapter {
        do {
            let source = try AdapterSource.detect(path)
            var set = AdapterSet()
            let lora = try set.add(path: path, scale: 1, model: encoder.model, labels: ClassificationHead.labels(near: path))
            var head = lora?.head
            if head == nil, FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent("head.safetensors"))
                || ClassificationHead.isTransformersClassifier(path) {
                head = try ClassificationHead.load(path: path, model: encoder.model)
            }
            let kind: String
            switch source {
            case .lora: kind = "lora"
            case .sparse: kind = "sparse"
            case .taskVector: kind = "task-vector"
            case .fineTuned: kind = "fine-tuned"
            case .alloyDelta: kind = "delta"
            }
            let group: BatchGroup
            if let lora, set.patched.isEmpty { group = .shared(lora) } else { group = .exclusive(key: id, set: set) }
            return LoadedAdapter(id: id, kind: kind, path: path, group: group, head: head, loadSeconds: 0)
        } catch let e as ServingError {
            throw e
        } catch {
            throw ServingError.adapterLoad(id: id, reason: "\(error)")
        }
    }

    /// Loads a store entry from its blobs, writing nothing: no checkout folder is built (the
    /// first request of an adapter would wait for its files to be written and fsync'ed).
    ///
    /// What is verified is what a checkout verifies when it copies the blobs: each blob's
    /// header CRC and structure when it is opened, and the CRC-32 of every chunk of each tensor
    /// read (`AlloyFile`); a delta's `base_sha256` against the served base's content hash;
    /// the PEFT config, card and every shape as for a folder. The blobs' SHA-256 is checked by
    /// `alloy store verify`, as for a checkout.
    static func load(id: String, item: StoredItem, files: [(String, [UInt8])], store: Store, encoder: SentenceEncoder) throws -> LoadedAdapter {
        do {
            var set = AdapterSet()
            let (lora, card) = try add(item, files: files, from: store, scale: 1, to: &set, model: encoder.model)
            var head = lora?.head
            if head == nil, item.blobs["head"] != nil {
                let f = try store.open(item, role: "head")
                head = try ClassificationHead.linear(names: f.names, tensor: f.tensor, labels: card?.labels ?? [], maxLength: card?.head?.maxLength,
                                                     model: encoder.model, source: "the head of \(item.ref) in the store")
            }
            let kind = item.entry.kind == .lora ? "lora" : "delta"
            let group: BatchGroup
            if let lora, set.patched.isEmpty { group = .shared(lora) } else { group = .exclusive(key: id, set: set) }
            return LoadedAdapter(id: id, kind: kind, path: store.blobPath(item.blobs["weights"]?.sha256 ?? ""), group: group, head: head, loadSeconds: 0)
        } catch let e as ServingError {
            throw e
        } catch {
            throw ServingError.adapterLoad(id: id, reason: "\(error)")
        }
    }

    /// Adds the store entry `item` (a LoRA, or a sparse, task-vector or merged delta) to `set`
    /// with `scale`, read from its blobs (`files`: its small files, decoded once by `resolve`);
    /// returns the LoRA, if it is one, and the entry's card.
    static func add(_ item: StoredItem, files: [(String, [UInt8])], from store: Store, scale: Float, to set: inout AdapterSet,
                    model: EncoderModel) throws -> (lora: LoRAAdapter?, card: ExpertCard?) {
        let source = "\(item.ref) in the store"
        let card = try store.card(of: item).map { try ExpertCard.decode(Data($0), path: "the card of \(source)") }
        guard let weights = item.blobs["weights"] else { throw ServingError.adapterLoad(id: item.ref, reason: "the store entry has no weights blob") }
        if item.entry.kind == .lora {
            guard let config = files.first(where: { $0.0 == "adapter_config.json" })?.1 else {
                throw ServingError.adapterLoad(id: item.ref, reason: "the store entry has no adapter_config.json")
            }
            let peft = try PEFTAdapter(source: source, config: Data(config)) {
                let f = try store.open(item, role: "weights")
                return (f.names, f.tensor)
            }
            let lora = try LoRAAdapter(peft: peft, name: item.ref, card: card, for: model, labels: card?.labels ?? [])
            set.loras.append((lora, scale))
            return (lora, card)
        }
        // A delta's checkout is a link to this blob; `add(path:)` checks its kind and base hash.
        try set.add(path: store.blobPath(weights.sha256), scale: scale, model: model)
        return (nil, card)
    }
}
