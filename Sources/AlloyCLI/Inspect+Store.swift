import ArgumentParser
import Composition
import Foundation
import Store

extension Inspect {
    struct ComparisonJSON: Encodable {
        struct Layer: Encodable {
            let layer: String, cosine: JSONNumber, signConflict: JSONNumber, overlap: Int
            enum CodingKeys: String, CodingKey { case layer, cosine, overlap, signConflict = "sign_conflict" }
        }
        let a: String, b: String, cosine: JSONNumber, signConflict: JSONNumber, overlap: Int, layers: [Layer]
        enum CodingKeys: String, CodingKey { case a, b, cosine, overlap, layers, signConflict = "sign_conflict" }
    }

    /// A store entry: kind, base, sizes, rank/density and the delta's norm per layer; with
    /// `--compare`, cosine and sign conflicts per layer.
    func inspectEntry() throws {
        guard storeOptions.locator.storeExists else { throw CompositionError.notFound(ref: path, store: storeOptions.root) }
        let store = try storeOptions.open()
        let item = try store.resolve(path)
        if let other = compare {
            let b = try store.resolve(other)
            let c = try store.compare(item, b)
            if json {
                return try Console.printJSON(ComparisonJSON(
                    a: item.ref, b: b.ref, cosine: JSONNumber(c.cosine), signConflict: JSONNumber(c.signConflict), overlap: c.overlap,
                    layers: c.groups.map { .init(layer: $0.name, cosine: JSONNumber($0.cosine), signConflict: JSONNumber($0.signConflict), overlap: $0.overlap) }))
            }
            var t = TextTable(["layer", "cosine", "sign conflict", "both changed"], align: [.left, .right, .right, .right])
            for g in c.groups { t.add([g.name, String(format: "%.4f", g.cosine), String(format: "%.2f%%", g.signConflict * 100), Fmt.int(g.overlap)]) }
            t.rule()
            t.add(["all", String(format: "%.4f", c.cosine), String(format: "%.2f%%", c.signConflict * 100), Fmt.int(c.overlap)])
            Console.print("\(item.ref) vs \(b.ref)\n")
            Console.print(t.render())
            return
        }
        let e = item.entry
        var obj = EntryJSON(item)
        var lines = ["name:        \(item.names.joined(separator: ", "))", "kind:        \(e.kind.rawValue)", "digest:      \(e.digest)"]
        if let base = item.parents.first(where: { $0.relation == "base" }) { lines.append("base:        \(base.name) (content \(e.baseSHA256?.prefix(12) ?? "?")…)") }
        if let t = e.task { lines.append("task:        \(t)") }
        lines.append("parameters:  \(Fmt.int(e.parameters))")
        lines.append("size:        \(Fmt.bytes(e.storedBytes)) stored, \(Fmt.bytes(e.rawBytes)) raw (×\(String(format: "%.2f", Double(e.rawBytes) / Double(max(1, e.storedBytes)))))")
        if case .integer(let r)? = e.meta["rank"] { lines.append("rank:        \(r)") }
        let merges = item.parents.filter { $0.relation != "base" }
        if !merges.isEmpty {
            lines.append("merged from: " + merges.map { "\($0.name)\($0.weight.map { String(format: " ×%.3g", $0) } ?? "")" }.joined(separator: ", "))
        }
        if !e.tagList.isEmpty { lines.append("tags:        \(e.tagList.joined(separator: ", "))") }
        lines.append("created:     \(e.createdAt) from \(e.source)")
        var table: TextTable? = nil
        if e.kind.isDelta {
            let s = try store.statistics(item)
            let density = Double(s.nonzero) / Double(max(1, s.parameters))
            lines.append(String(format: "density:     %.4f%% of the touched tensors' entries changed", 100 * density))
            lines.append(String(format: "norm:        %.6g", s.norm))
            var t = TextTable(["layer", "tensors", "changed", "norm"], align: [.left, .right, .right, .right])
            for g in s.groups { t.add([g.name, String(g.tensors), Fmt.int(g.nonzero), String(format: "%.6g", g.norm)]) }
            table = t
            obj.density = JSONNumber(density)
            obj.norm = JSONNumber(s.norm)
            obj.layers = s.groups.map { .init(layer: $0.name, tensors: $0.tensors, changed: $0.nonzero, norm: JSONNumber($0.norm)) }
        }
        if json { return try Console.printJSON(obj) }
        Console.print(lines.joined(separator: "\n"))
        if let table { Console.print("\n" + table.render()) }
    }
}
