import Dispatch
import Encoder
import Foundation
import Store

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

/// Adapters in memory, loaded on first use from a path or the store and evicted least recently
/// used beyond `capacity`. Concurrent first uses of one id share one load.
actor AdapterRegistry {
    private struct Entry { var adapter: LoadedAdapter; var lastUse: UInt64 }
    private var entries: [String: Entry] = [:]
    private var loading: [String: Task<LoadedAdapter, any Error>] = [:]
    private var tick: UInt64 = 0
    let encoder: SentenceEncoder
    let storeRoot: String?
    let allowPaths: Bool
    let capacity: Int
    let metrics: ServerMetrics
    private static let loadQueue = DispatchQueue(label: "alloy.serve.adapter-load", attributes: .concurrent)

    init(encoder: SentenceEncoder, storeRoot: String?, allowPaths: Bool, capacity: Int, metrics: ServerMetrics) {
        self.encoder = encoder
        self.storeRoot = storeRoot
        self.allowPaths = allowPaths
        self.capacity = max(1, capacity)
        self.metrics = metrics
    }

    /// The adapter `id`, loading it if needed.
    func adapter(_ id: String) async throws -> LoadedAdapter {
        try await cachedOrLoad(id) { [encoder, storeRoot, allowPaths] in
            let path = try Self.resolve(id, storeRoot: storeRoot, allowPaths: allowPaths)
            return try Self.load(id: id, path: path, encoder: encoder)
        }
    }

    /// The weighted sum of `parts` (each a LoRA scale or a delta's λ), built once and cached.
    func composition(_ parts: [(id: String, weight: Float)]) async throws -> LoadedAdapter {
        let canonical = parts.sorted { ($0.id, $0.weight) < ($1.id, $1.weight) }
        let key = canonical.map { "\($0.id)@\($0.weight)" }.joined(separator: "+")
        return try await cachedOrLoad(key) { [encoder, storeRoot, allowPaths] in
            var set = AdapterSet()
            for p in canonical {
                let path = try Self.resolve(p.id, storeRoot: storeRoot, allowPaths: allowPaths)
                do {
                    try set.add(path: path, scale: p.weight, model: encoder.model, labels: ClassificationHead.labels(near: path))
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

    /// A path on disk (when allowed) is used as is; anything else is a store ref, checked out.
    static func resolve(_ ref: String, storeRoot: String?, allowPaths: Bool) throws -> String {
        if allowPaths, FileManager.default.fileExists(atPath: ref) { return ref }
        guard let root = storeRoot, FileManager.default.fileExists(atPath: (root as NSString).appendingPathComponent("catalog.sqlite")) else {
            throw ServingError.unknownAdapter(id: ref, reason: allowPaths ? "no such path, and no store to look it up in" : "no store to look it up in")
        }
        let item: StoredItem
        let store: Store
        do {
            store = try Store(root: root, create: false)
            item = try store.resolve(ref)
        } catch let e as StoreError {
            if case .notFound = e { throw ServingError.unknownAdapter(id: ref, reason: "not in the store at \(root)") }
            throw ServingError.adapterLoad(id: ref, reason: "\(e)")
        } catch {
            throw ServingError.adapterLoad(id: ref, reason: "\(error)")
        }
        guard item.entry.kind.isDelta else {
            throw ServingError.adapterLoad(id: ref, reason: "the store entry is a \(item.entry.kind.rawValue), not an adapter")
        }
        do { return try store.checkout(item) } catch { throw ServingError.adapterLoad(id: ref, reason: "\(error)") }
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
}
