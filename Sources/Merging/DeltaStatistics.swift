import Formats
import Foundation
import Tensors

/// One tensor of a dense delta: its base tensor name and F32 values (row-major).
public typealias DeltaTensor = (name: String, values: [Float], shape: Shape)

/// Per-layer statistics of a delta: tensors, parameters, changed entries and L2 norm per group.
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

    /// Statistics of `delta`, grouped by `layerGroup`; groups sorted by name.
    public init(_ delta: [DeltaTensor]) {
        var acc: [String: (t: Int, p: Int, nz: Int, sq: Double)] = [:]
        for (name, v, _) in delta {
            var nz = 0, sq = 0.0
            for x in v where x != 0 { nz += 1; sq += Double(x) * Double(x) }
            let g = Self.layerGroup(name)
            let a = acc[g] ?? (0, 0, 0, 0)
            acc[g] = (a.t + 1, a.p + v.count, a.nz + nz, a.sq + sq)
        }
        groups = acc.sorted { $0.key < $1.key }.map { k, a in
            Group(name: k, tensors: a.t, parameters: a.p, nonzero: a.nz, norm: a.sq.squareRoot())
        }
    }

    /// `encoder.layer.3.attention…` → "layer 03"; embeddings, pooler and others by name.
    public static func layerGroup(_ name: String) -> String {
        if let n = TensorNames.layerIndex(name) { return String(format: "layer %02d", n) }
        if name.contains("embeddings") { return "embeddings" }
        if name.contains("pooler") { return "pooler" }
        return "other"
    }
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

    /// Compares `a` with `b` tensor by tensor (matched by name; groups by `a`'s tensors, the
    /// overall cosine over all of `b`). Tensors of different sizes are compared as absent.
    public init(_ a: [DeltaTensor], _ b: [DeltaTensor]) {
        var byName: [String: [Float]] = [:]
        for t in b { byName[t.name] = t.values }
        var acc: [String: (dot: Double, na: Double, nb: Double, both: Int, conflict: Int)] = [:]
        var nbTotal = 0.0
        for t in b { for x in t.values { nbTotal += Double(x) * Double(x) } }
        for (name, va, _) in a {
            let g = DeltaStatistics.layerGroup(name)
            var s = acc[g] ?? (0, 0, 0, 0, 0)
            if let vb = byName[name], vb.count == va.count {
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
        var groups: [Group] = []
        for (k, s) in acc.sorted(by: { $0.key < $1.key }) {
            dot += s.dot; na += s.na; both += s.both; conflict += s.conflict
            groups.append(Group(name: k, cosine: s.na > 0 && s.nb > 0 ? s.dot / (s.na * s.nb).squareRoot() : 0,
                                signConflict: s.both > 0 ? Double(s.conflict) / Double(s.both) : 0, overlap: s.both))
        }
        cosine = na > 0 && nbTotal > 0 ? dot / (na * nbTotal).squareRoot() : 0
        signConflict = both > 0 ? Double(conflict) / Double(both) : 0
        overlap = both
        self.groups = groups
    }
}
