import ArgumentParser
import Foundation
import Store

extension Inspect {
    /// A store entry: kind, base, sizes, rank/density and the delta's norm per layer; with
    /// `--compare`, cosine and sign conflicts per layer.
    func inspectEntry() throws {
        guard FileManager.default.fileExists(atPath: (storeOptions.root as NSString).appendingPathComponent("catalog.sqlite")) else {
            throw ValidationError("\(path): no such file or directory (and no store at \(storeOptions.root) to look it up in)")
        }
        let store = try storeOptions.open()
        let item = try store.resolve(path)
        if let other = compare {
            let b = try store.resolve(other)
            let c = try store.compare(item, b)
            if json {
                print(Console.json(["a": item.ref, "b": b.ref, "cosine": c.cosine, "sign_conflict": c.signConflict, "overlap": c.overlap,
                                    "layers": c.groups.map { ["layer": $0.name, "cosine": $0.cosine, "sign_conflict": $0.signConflict, "overlap": $0.overlap] }]))
                return
            }
            var t = TextTable(["layer", "cosine", "sign conflict", "both changed"], align: [.left, .right, .right, .right])
            for g in c.groups { t.add([g.name, String(format: "%.4f", g.cosine), String(format: "%.2f%%", g.signConflict * 100), Fmt.int(g.overlap)]) }
            t.rule()
            t.add(["all", String(format: "%.4f", c.cosine), String(format: "%.2f%%", c.signConflict * 100), Fmt.int(c.overlap)])
            print("\(item.ref) vs \(b.ref)\n")
            print(t.render())
            return
        }
        let e = item.entry
        var obj = EntryJSON.of(item, store: store)
        var lines = ["name:        \(item.names.joined(separator: ", "))", "kind:        \(e.kind.rawValue)", "digest:      \(e.digest)"]
        if let base = item.parents.first(where: { $0.relation == "base" }) { lines.append("base:        \(base.name) (content \(e.baseSHA256?.prefix(12) ?? "?")…)") }
        if let t = e.task { lines.append("task:        \(t)") }
        lines.append("parameters:  \(Fmt.int(e.parameters))")
        lines.append("size:        \(Fmt.bytes(e.storedBytes)) stored, \(Fmt.bytes(e.rawBytes)) raw (×\(String(format: "%.2f", Double(e.rawBytes) / Double(max(1, e.storedBytes)))))")
        let meta = e.meta
        if case .integer(let r)? = meta["rank"] { lines.append("rank:        \(r)") }
        if let merges = item.parents.filter({ $0.relation != "base" }) as [(name: String, relation: String, weight: Double?)]?, !merges.isEmpty {
            lines.append("merged from: " + merges.map { "\($0.name)\($0.weight.map { String(format: " ×%.3g", $0) } ?? "")" }.joined(separator: ", "))
        }
        if !e.tagList.isEmpty { lines.append("tags:        \(e.tagList.joined(separator: ", "))") }
        lines.append("created:     \(e.createdAt) from \(e.source)")
        var table: TextTable? = nil
        if e.kind.isDelta {
            let s = try store.statistics(item)
            lines.append(String(format: "density:     %.4f%% of the touched tensors' entries changed", 100 * Double(s.nonzero) / Double(max(1, s.parameters))))
            lines.append(String(format: "norm:        %.6g", s.norm))
            var t = TextTable(["layer", "tensors", "changed", "norm"], align: [.left, .right, .right, .right])
            for g in s.groups { t.add([g.name, String(g.tensors), Fmt.int(g.nonzero), String(format: "%.6g", g.norm)]) }
            table = t
            obj["density"] = Double(s.nonzero) / Double(max(1, s.parameters))
            obj["norm"] = s.norm
            obj["layers"] = s.groups.map { ["layer": $0.name, "tensors": $0.tensors, "changed": $0.nonzero, "norm": $0.norm] as [String: Any] }
        }
        if json { print(Console.json(obj)); return }
        print(lines.joined(separator: "\n"))
        if let table { print("\n" + table.render()) }
    }
}
