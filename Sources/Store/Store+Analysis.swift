import Foundation
import Tensors

/// Per-layer statistics of a delta and the agreement of two deltas.
public struct DeltaStatistics: Sendable {
    public struct Group: Sendable {
        public let name: String
        public let tensors: Int
        public let parameters: Int
        public let nonzero: Int
        public let norm: Double
    }
    public let groups: [Group]
    public var norm: Double { groups.reduce(0) { $0 + $1.norm * $1.norm }.squareRoot() }
    public var nonzero: Int { groups.reduce(0) { $0 + $1.nonzero } }
    public var parameters: Int { groups.reduce(0) { $0 + $1.parameters } }
}

/// How two deltas over one base agree, in the terms TIES-Merging (Yadav et al., 2023) uses:
/// cosine similarity, and the share of coordinates both change whose signs disagree.
public struct DeltaComparison: Sendable {
    public struct Group: Sendable {
        public let name: String
        public let cosine: Double
        public let signConflict: Double
        public let overlap: Int
    }
    public let cosine: Double
    public let signConflict: Double
    /// Coordinates both deltas change.
    public let overlap: Int
    public let groups: [Group]
}

extension Store {
    /// `encoder.layer.3.attention…` → "layer 3"; embeddings, pooler and others by name.
    static func layerGroup(_ name: String) -> String {
        let parts = name.split(separator: ".")
        if let i = parts.firstIndex(where: { $0 == "layer" || $0 == "layers" }), i + 1 < parts.count, let n = Int(parts[i + 1]) { return String(format: "layer %02d", n) }
        if name.contains("embeddings") { return "embeddings" }
        if name.contains("pooler") { return "pooler" }
        return "other"
    }

    public func statistics(_ item: StoredItem) throws -> DeltaStatistics {
        var acc: [String: (t: Int, p: Int, nz: Int, sq: Double)] = [:]
        for (name, v, _) in try denseDelta(item) {
            var nz = 0, sq = 0.0
            for x in v where x != 0 { nz += 1; sq += Double(x) * Double(x) }
            let g = Self.layerGroup(name)
            let a = acc[g] ?? (0, 0, 0, 0)
            acc[g] = (a.t + 1, a.p + v.count, a.nz + nz, a.sq + sq)
        }
        return DeltaStatistics(groups: acc.keys.sorted().map { k in
            let a = acc[k]!
            return .init(name: k, tensors: a.t, parameters: a.p, nonzero: a.nz, norm: a.sq.squareRoot())
        })
    }

    public func compare(_ a: StoredItem, _ b: StoredItem) throws -> DeltaComparison {
        guard a.entry.baseSHA256 == b.entry.baseSHA256 else {
            throw StoreError.wrongBase(source: b.ref, expected: a.entry.baseSHA256 ?? "none", found: b.entry.baseSHA256 ?? "none")
        }
        let da = try denseDelta(a), db = Dictionary(uniqueKeysWithValues: try denseDelta(b).map { ($0.name, $0.values) })
        var acc: [String: (dot: Double, na: Double, nb: Double, both: Int, conflict: Int)] = [:]
        var nbTotal = 0.0
        for (_, v) in db { for x in v { nbTotal += Double(x) * Double(x) } }
        for (name, va, _) in da {
            let g = Self.layerGroup(name)
            var s = acc[g] ?? (0, 0, 0, 0, 0)
            if let vb = db[name] {
                for i in va.indices {
                    let x = Double(va[i]), y = Double(vb[i])
                    s.dot += x * y; s.na += x * x; s.nb += y * y
                    if x != 0 && y != 0 { s.both += 1; if (x > 0) != (y > 0) { s.conflict += 1 } }
                }
            } else {
                for x in va { s.na += Double(x) * Double(x) }
            }
            acc[g] = s
        }
        var dot = 0.0, na = 0.0, both = 0, conflict = 0
        var groups: [DeltaComparison.Group] = []
        for k in acc.keys.sorted() {
            let s = acc[k]!
            dot += s.dot; na += s.na; both += s.both; conflict += s.conflict
            groups.append(.init(name: k, cosine: s.na > 0 && s.nb > 0 ? s.dot / (s.na * s.nb).squareRoot() : 0,
                                signConflict: s.both > 0 ? Double(s.conflict) / Double(s.both) : 0, overlap: s.both))
        }
        return DeltaComparison(cosine: na > 0 && nbTotal > 0 ? dot / (na * nbTotal).squareRoot() : 0,
                               signConflict: both > 0 ? Double(conflict) / Double(both) : 0, overlap: both, groups: groups)
    }
}
