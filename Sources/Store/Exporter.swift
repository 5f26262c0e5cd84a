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

/// Writes entries out: `export` in each format, and the dense delta (LoRA: scale·B·A) that
/// export, merges and statistics read. Reads blobs and checkouts; never writes the store.
struct Exporter {
    let catalog: Catalog
    let blobs: BlobStore
    let cache: CheckoutCache

    /// The base entry of a delta.
    func base(of item: StoredItem) throws -> StoredItem {
        guard let id = item.entry.baseID else { throw StoreError.unsupported(ref: item.ref, reason: "has no base recorded") }
        return try catalog.item(id: id)
    }

    // MARK: dense deltas

    /// The delta of `item` as dense F32 values per base tensor name (LoRA: scale·B·A), in the
    /// base's tensor order; tensors the delta does not touch are absent.
    func denseDelta(_ item: StoredItem) throws -> [(name: String, values: [Float], shape: Shape)] {
        guard item.entry.kind.isDelta else { throw StoreError.unsupported(ref: item.ref, reason: "is a \(item.entry.kind.rawValue), not a delta") }
        let base = try self.base(of: item)
        let layout = try BaseLayout(base: base, blobs: blobs)
        var out: [String: ([Float], Shape)] = [:]
        if item.entry.kind == .lora {
            let peft: PEFTAdapter
            do { peft = try PEFTAdapter(directory: try cache.checkout(item)) } catch let e as PEFTError {
                throw StoreError.corruptBlob(ref: item.ref, role: "weights", reason: e.reason)
            }
            try layout.checkLoRA(peft, source: item.ref)
            for m in peft.modules {
                // checkLoRA guarantees a base matrix of B's rows × A's columns for each module.
                guard let name = layout.baseName(m.path + ".weight"), let shape = layout.shapes[name] else { continue }
                let (outDim, inDim, rank) = (shape.dims[0], shape.dims[1], m.a.shape.dims[0])
                let d = try m.b.withFloats { b in try m.a.withFloats { a -> [Float] in
                    guard let bp = b.baseAddress, let ap = a.baseAddress else { return [Float](repeating: 0, count: outDim * inDim) }
                    return LowRank.dense(b: bp, a: ap, rows: outDim, cols: inDim, rank: rank, scale: m.scale)
                } }
                out[name] = (d, shape)
            }
        } else {
            let w = try blobs.open(item, role: "weights")
            for n in w.names {
                guard let name = layout.baseName(n) else { continue }
                let t = try blobs.tensor(w, n, item: item, role: "weights")
                out[name] = (try t.floats(), t.shape)
            }
        }
        return layout.names.compactMap { n in out[n].map { (n, $0.0, $0.1) } }
    }

    // MARK: export

    /// Writes `item` to `out` in `format`; returns the files written.
    func export(_ item: StoredItem, format: ExportFormat, to out: String) throws -> [String] {
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
                let f = try blobs.open(item, role: role)
                tensors += try f.names.map { ($0, try blobs.tensor(f, $0, item: item, role: role)) }
            }
            try Self.write(tensors, to: path, ref: item.ref)
            written.append(path)
        case .peft:
            guard item.entry.kind == .lora else {
                throw StoreError.unsupported(ref: item.ref, reason: "is a \(item.entry.kind.rawValue); only LoRA entries export as PEFT folders (export --format hf, then `alloy extract-lora`)")
            }
            let w = try blobs.open(item, role: "weights")
            let p = try dirFile("adapter_model.safetensors")
            try Self.write(try w.names.map { ($0, try blobs.tensor(w, $0, item: item, role: "weights")) }, to: p, ref: item.ref)
            written.append(p)
            for (rel, bytes) in try blobs.files(of: item) { let fp = try dirFile(rel); try AtomicFile.write(bytes, to: fp); written.append(fp) }
            if let card = try blobs.card(of: item) { let fp = try dirFile("card.json"); try AtomicFile.write(card, to: fp); written.append(fp) }
        case .hf:
            written = try exportHF(item, to: out, dirFile: dirFile)
        }
        return written
    }

    private func exportHF(_ item: StoredItem, to out: String, dirFile: (String) throws -> String) throws -> [String] {
        var written: [String] = []
        if item.entry.kind == .head { throw StoreError.unsupported(ref: item.ref, reason: "a head alone is not a model; export its base with a delta") }
        let base = item.entry.kind == .base ? item : try self.base(of: item)
        let bw = try blobs.open(base, role: "weights")
        var tensors: [(String, Tensor)] = []
        // The base's files, overlaid by the entry's own (a fine-tuned model's config.json).
        var files = try blobs.files(of: base)
        if item.entry.kind != .lora && item.entry.kind != .base {
            for (rel, bytes) in try blobs.files(of: item) {
                if let i = files.firstIndex(where: { $0.0 == rel }) { files[i].1 = bytes } else { files.append((rel, bytes)) }
            }
        }
        if item.entry.kind == .base {
            tensors = try bw.names.map { ($0, try blobs.tensor(bw, $0, item: base, role: "weights")) }
        } else {
            let meta = item.entry.meta
            var renamed: [String: String] = [:]
            if case .object(let kv)? = meta["names"] { for (k, v) in kv { if case .string(let s) = v { renamed[k] = s } } }
            var omitted = Set<String>()
            if case .array(let a)? = meta["omitted"] { for v in a { if case .string(let s) = v { omitted.insert(s) } } }
            let deltas = Dictionary(uniqueKeysWithValues: try denseDelta(item).map { ($0.name, $0.values) })
            let exact = item.blobs["exact"] != nil ? try blobs.open(item, role: "exact") : nil
            for name in bw.names where !omitted.contains(name) {
                let t = try blobs.tensor(bw, name, item: base, role: "weights")
                guard let d = deltas[name] else { tensors.append((renamed[name] ?? name, t)); continue }
                var v = try t.floats()
                guard d.count == v.count else {
                    throw StoreError.corruptBlob(ref: item.ref, role: "weights", reason: "the delta of \(name) has \(d.count) values, the base tensor \(v.count)")
                }
                for i in v.indices { v[i] += d[i] }
                if let exact, exact.entry(name + ".indices") != nil {
                    let idx = try blobs.tensor(exact, name + ".indices", item: item, role: "exact")
                    let val = try blobs.tensor(exact, name + ".values", item: item, role: "exact").floats()
                    guard idx.dtype == .i64, idx.elementCount == val.count else {
                        throw StoreError.corruptBlob(ref: item.ref, role: "exact", reason: "\(name): \(idx.elementCount) \(idx.dtype.rawValue) indices for \(val.count) values")
                    }
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
                let h = try blobs.open(item, role: "head")
                headTensors = try h.names.map { ($0, try blobs.tensor(h, $0, item: item, role: "head")) }
            } else if item.entry.kind == .lora {
                let w = try blobs.open(item, role: "weights")
                for n in w.names where !n.contains(".lora_") {
                    var short = n.hasPrefix("base_model.model.") ? String(n.dropFirst("base_model.model.".count)) : n
                    short = short.replacingOccurrences(of: ".modules_to_save.default", with: "")
                    headTensors.append((short, try blobs.tensor(w, n, item: item, role: "weights")))
                }
            }
            tensors += headTensors
            // A head needs a sequence-classification config: take the base's and add labels.
            if item.blobs["files"] == nil || item.entry.kind == .lora, let w = headTensors.first(where: { $0.0.hasSuffix("classifier.weight") })?.1 {
                files = try files.map { rel, bytes in
                    guard rel == "config.json" else { return (rel, bytes) }
                    return (rel, try Self.classificationConfig(bytes, labels: Self.labels(item.entry.meta), count: w.shape.dims.first ?? 0))
                }
            }
        }
        let p = try dirFile("model.safetensors")
        try Self.write(tensors, metadata: ["format": "pt"], to: p, ref: item.ref)
        written.append(p)
        for (rel, bytes) in files { let fp = try dirFile(rel); try AtomicFile.write(bytes, to: fp); written.append(fp) }
        if let card = try blobs.card(of: item) { let fp = try dirFile("card.json"); try AtomicFile.write(card, to: fp); written.append(fp) }
        return written
    }

    /// Writes a safetensors file, refusing duplicate tensor names (a delta's head naming a
    /// tensor the base also has) instead of trapping in the writer.
    static func write(_ tensors: [(String, Tensor)], metadata: [String: String]? = nil, to path: String, ref: String) throws {
        var seen = Set<String>()
        for (n, _) in tensors where !seen.insert(n).inserted {
            throw StoreError.unsupported(ref: ref, reason: "two tensors would be named \"\(n)\" in \(path)")
        }
        try SafetensorsWriter.write(tensors, metadata: metadata, to: path)
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
