import Encoder
import Foundation
import Formats
import Tensors

/// Formats `alloy export` writes.
public enum ExportFormat: String, CaseIterable, Sendable {
    /// An HF model folder: the base with the delta applied and the head attached (transformers loads it).
    case hf
    /// A PEFT LoRA folder (LoRA entries).
    case peft
    /// The entry's own tensors (the delta itself for deltas) in one safetensors file.
    case safetensors
}

extension Store {
    // MARK: checkout

    /// A folder the runtime can read for `item`, materialised once under `cache/` and reused:
    /// a base as an HF model folder, a LoRA as a PEFT folder, a delta as `delta.alloy` (a link
    /// to its blob) with `head.safetensors` and `card.json`.
    public func checkout(_ item: StoredItem) throws -> String {
        let dest = (cacheDir as NSString).appendingPathComponent(item.entry.digest)
        if FileManager.default.fileExists(atPath: dest) { return dest }
        let tmp = (tmpDir as NSString).appendingPathComponent("checkout-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let fm = FileManager.default
        do { try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true) } catch {
            throw StoreError.io(path: tmp, reason: error.localizedDescription)
        }
        defer { try? fm.removeItem(atPath: tmp) }
        func put(_ rel: String, _ bytes: [UInt8]) throws {
            let p = (tmp as NSString).appendingPathComponent(rel)
            try? fm.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try AtomicFile.write(bytes, to: p)
        }
        switch item.entry.kind {
        case .base:
            let w = try open(item, role: "weights")
            try SafetensorsWriter.write(try w.names.map { ($0, try tensor(w, $0, item: item, role: "weights")) },
                                        metadata: w.safetensorsMetadata, to: (tmp as NSString).appendingPathComponent("model.safetensors"))
        case .lora:
            let w = try open(item, role: "weights")
            try SafetensorsWriter.write(try w.names.map { ($0, try tensor(w, $0, item: item, role: "weights")) },
                                        to: (tmp as NSString).appendingPathComponent("adapter_model.safetensors"))
        case .sparse, .taskVector, .merged:
            let w = try open(item, role: "weights")
            try fm.createSymbolicLink(atPath: (tmp as NSString).appendingPathComponent("delta.alloy"), withDestinationPath: w.path)
        case .head:
            break
        }
        if item.blobs["head"] != nil || item.entry.kind == .head {
            let role = item.entry.kind == .head ? "weights" : "head"
            let h = try open(item, role: role)
            try SafetensorsWriter.write(try h.names.map { ($0, try tensor(h, $0, item: item, role: role)) },
                                        to: (tmp as NSString).appendingPathComponent("head.safetensors"))
        }
        for (rel, bytes) in try files(of: item) { try put(rel, bytes) }
        if let card = try cardBytes(item) { try put("card.json", card) }
        Self.fsyncDirectory(tmp)
        if rename(tmp, dest) != 0 && !fm.fileExists(atPath: dest) {
            throw StoreError.io(path: dest, reason: "cannot move the checkout into place: \(String(cString: strerror(errno)))")
        }
        return dest
    }

    func cardBytes(_ item: StoredItem) throws -> [UInt8]? {
        guard item.blobs["card"] != nil else { return nil }
        let f = try open(item, role: "card")
        return Array(try tensor(f, "card.json", item: item, role: "card").rawBytes)
    }

    /// The base entry of a delta.
    public func base(of item: StoredItem) throws -> StoredItem {
        guard let id = item.entry.baseID else { throw StoreError.unsupported(ref: item.ref, reason: "has no base recorded") }
        return try db.read { try self.item($0, id: id) }
    }

    // MARK: dense deltas

    /// The delta of `item` as dense F32 values per base tensor name (LoRA: scale·B·A), in the
    /// base's tensor order; tensors the delta does not touch are absent.
    public func denseDelta(_ item: StoredItem) throws -> [(name: String, values: [Float], shape: Shape)] {
        guard item.entry.kind.isDelta else { throw StoreError.unsupported(ref: item.ref, reason: "is a \(item.entry.kind.rawValue), not a delta") }
        let base = try self.base(of: item)
        let baseDir = try checkout(base)
        let baseWeights = try WeightSource(path: baseDir)
        let model = try EncoderModel(directory: baseDir)
        var byCanonical: [String: String] = [:]
        for n in baseWeights.names { byCanonical[model.architecture.canonical(n)] = n }
        var out: [String: ([Float], Shape)] = [:]
        if item.entry.kind == .lora {
            let adapter = try LoRAAdapter(peft: try checkout(item), for: model)
            for (path, l) in adapter.layers {
                guard let name = byCanonical[path + ".weight"], let info = baseWeights.info(name) else { continue }
                let (outDim, inDim) = (info.shape.dims[0], info.shape.dims[1])
                var d = [Float](repeating: 0, count: outDim * inDim)
                try l.b.withFloats { b in try l.a.withFloats { a in
                    GEMM.sgemm(m: outDim, n: inDim, k: l.rank, alpha: l.scale, a: b.baseAddress!, lda: l.rank,
                               b: a.baseAddress!, ldb: inDim, c: &d, ldc: inDim)
                } }
                out[name] = (d, info.shape)
            }
        } else {
            let w = try open(item, role: "weights")
            for n in w.names {
                guard let name = byCanonical[model.architecture.canonical(n)] else { continue }
                let t = try tensor(w, n, item: item, role: "weights")
                out[name] = (try t.floats(), t.shape)
            }
        }
        return baseWeights.names.compactMap { n in out[n].map { (n, $0.0, $0.1) } }
    }

    // MARK: export

    /// Writes `item` to `out` in `format`; returns the files written.
    @discardableResult
    public func export(_ item: StoredItem, format: ExportFormat, to out: String) throws -> [String] {
        let fm = FileManager.default
        func dirFile(_ rel: String) throws -> String {
            try fm.createDirectory(atPath: ((out as NSString).appendingPathComponent(rel) as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            return (out as NSString).appendingPathComponent(rel)
        }
        var written: [String] = []
        switch format {
        case .safetensors:
            let path = out.hasSuffix(".safetensors") ? out : try dirFile("model.safetensors")
            if out.hasSuffix(".safetensors") { try? fm.createDirectory(atPath: (out as NSString).deletingLastPathComponent, withIntermediateDirectories: true) }
            var tensors: [(String, Tensor)] = []
            for role in ["weights", "head"] where item.blobs[role] != nil {
                let f = try open(item, role: role)
                tensors += try f.names.map { ($0, try tensor(f, $0, item: item, role: role)) }
            }
            try SafetensorsWriter.write(tensors, to: path)
            written.append(path)
        case .peft:
            guard item.entry.kind == .lora else {
                throw StoreError.unsupported(ref: item.ref, reason: "is a \(item.entry.kind.rawValue); only LoRA entries export as PEFT folders (export --format hf, then `alloy extract-lora`)")
            }
            let w = try open(item, role: "weights")
            let p = try dirFile("adapter_model.safetensors")
            try SafetensorsWriter.write(try w.names.map { ($0, try tensor(w, $0, item: item, role: "weights")) }, to: p)
            written.append(p)
            for (rel, bytes) in try files(of: item) { let fp = try dirFile(rel); try AtomicFile.write(bytes, to: fp); written.append(fp) }
            if let card = try cardBytes(item) { let fp = try dirFile("card.json"); try AtomicFile.write(card, to: fp); written.append(fp) }
        case .hf:
            written = try exportHF(item, to: out, dirFile: dirFile)
        }
        return written
    }

    private func exportHF(_ item: StoredItem, to out: String, dirFile: (String) throws -> String) throws -> [String] {
        var written: [String] = []
        if item.entry.kind == .head { throw StoreError.unsupported(ref: item.ref, reason: "a head alone is not a model; export its base with a delta") }
        let base = item.entry.kind == .base ? item : try self.base(of: item)
        let bw = try open(base, role: "weights")
        var tensors: [(String, Tensor)] = []
        // The base's files, overlaid by the entry's own (a fine-tuned model's config.json).
        var files = try self.files(of: base)
        if item.entry.kind != .lora && item.entry.kind != .base {
            for (rel, bytes) in try self.files(of: item) {
                if let i = files.firstIndex(where: { $0.0 == rel }) { files[i].1 = bytes } else { files.append((rel, bytes)) }
            }
        }
        if item.entry.kind == .base {
            tensors = try bw.names.map { ($0, try tensor(bw, $0, item: base, role: "weights")) }
        } else {
            let meta = item.entry.meta
            var renamed: [String: String] = [:]
            if case .object(let kv)? = meta["names"] { for (k, v) in kv { if case .string(let s) = v { renamed[k] = s } } }
            var omitted = Set<String>()
            if case .array(let a)? = meta["omitted"] { for v in a { if case .string(let s) = v { omitted.insert(s) } } }
            let deltas = Dictionary(uniqueKeysWithValues: try denseDelta(item).map { ($0.name, $0.values) })
            let exact = item.blobs["exact"] != nil ? try open(item, role: "exact") : nil
            for name in bw.names where !omitted.contains(name) {
                let t = try tensor(bw, name, item: base, role: "weights")
                guard let d = deltas[name] else { tensors.append((renamed[name] ?? name, t)); continue }
                var v = try t.floats()
                for i in v.indices { v[i] += d[i] }
                if let exact, exact.entry(name + ".indices") != nil {
                    let idx = try tensor(exact, name + ".indices", item: item, role: "exact")
                    let val = try tensor(exact, name + ".values", item: item, role: "exact").floats()
                    let ip = idx.rawBytes.bindMemory(to: Int64.self)
                    for k in 0..<val.count {
                        let i = Int(ip[k])
                        guard i >= 0, i < v.count else { throw StoreError.corruptBlob(ref: item.ref, role: "exact", reason: "index \(i) outside \(name)") }
                        v[i] = val[k]
                    }
                }
                tensors.append((renamed[name] ?? name, try Tensor(v, shape: t.shape)))
            }
            var headTensors: [(String, Tensor)] = []
            if item.blobs["head"] != nil {
                let h = try open(item, role: "head")
                headTensors = try h.names.map { ($0, try tensor(h, $0, item: item, role: "head")) }
            } else if item.entry.kind == .lora {
                let w = try open(item, role: "weights")
                for n in w.names where !n.contains(".lora_") {
                    var short = n.hasPrefix("base_model.model.") ? String(n.dropFirst("base_model.model.".count)) : n
                    short = short.replacingOccurrences(of: ".modules_to_save.default", with: "")
                    headTensors.append((short, try tensor(w, n, item: item, role: "weights")))
                }
            }
            tensors += headTensors
            // A head needs a sequence-classification config: take the base's and add labels.
            if item.blobs["files"] == nil || item.entry.kind == .lora, let w = headTensors.first(where: { $0.0.hasSuffix("classifier.weight") })?.1 {
                files = try files.map { rel, bytes in
                    guard rel == "config.json" else { return (rel, bytes) }
                    return (rel, try Self.classificationConfig(bytes, labels: Self.labels(item.entry.meta), count: w.shape.dims[0]))
                }
            }
        }
        let p = try dirFile("model.safetensors")
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: p)
        written.append(p)
        for (rel, bytes) in files { let fp = try dirFile(rel); try AtomicFile.write(bytes, to: fp); written.append(fp) }
        if let card = try cardBytes(item) { let fp = try dirFile("card.json"); try AtomicFile.write(card, to: fp); written.append(fp) }
        return written
    }

    static func labels(_ meta: JSONValue) -> [String] {
        guard case .array(let a)? = meta["labels"] else { return [] }
        return a.compactMap { if case .string(let s) = $0 { return s }; return nil }
    }

    /// The base's config.json turned into a BertForSequenceClassification config with labels.
    static func classificationConfig(_ bytes: [UInt8], labels: [String], count: Int) throws -> [UInt8] {
        guard var obj = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { return bytes }
        let names = labels.count == count ? labels : (0..<count).map { "LABEL_\($0)" }
        let prefix = (obj["model_type"] as? String).map { ["roberta": "Roberta", "distilbert": "DistilBert"][$0] ?? "Bert" } ?? "Bert"
        obj["architectures"] = ["\(prefix)ForSequenceClassification"]
        obj["id2label"] = Dictionary(uniqueKeysWithValues: names.enumerated().map { (String($0.offset), $0.element) })
        obj["label2id"] = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($0.element, $0.offset) })
        return Array(try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys]))
    }
}
