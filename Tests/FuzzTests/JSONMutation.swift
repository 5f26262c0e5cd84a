import Foundation
import Formats
import Tensors

/// Structure-aware JSON mutations: the document is parsed, one node of the tree is changed
/// (interesting numbers, other types, removed, duplicated or renamed members, other dtype and
/// tensor names), and the tree serialized again, so most mutants stay valid JSON and reach
/// the checks behind the syntax.
extension Mutator {
    static let dictionaryStrings = ["F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "", " ",
                                    "LORA", "lora", "LoHa", "none", "all", "lora_only", "mean", "cls", "max", "Normalize",
                                    "sentence_transformers.models.Normalize", "WordPiece", "BPE", "BertNormalizer", "Lowercase",
                                    "BertPreTokenizer", "Whitespace", "[UNK]", "[CLS]", "[SEP]", "[PAD]", "##", "LayerNorm",
                                    "query", "classifier", "bert", "roberta", "BertModel", "XLMRobertaModel", "gelu", "relu",
                                    "weight", "bias", "model.safetensors", "model-00001-of-00002.safetensors", "../x", "/abs",
                                    "a.weight", "w", "base", "\u{0}", "\u{FEFF}", "é", String(repeating: "x", count: 2000)]

    static func keys(_ v: JSONValue, into out: inout [String]) {
        switch v {
        case .object(let m): for (k, x) in m { out.append(k); keys(x, into: &out) }
        case .array(let a): for x in a { keys(x, into: &out) }
        default: break
        }
    }

    static func nodeCount(_ v: JSONValue) -> Int {
        switch v {
        case .object(let m): return 1 + m.reduce(0) { $0 + nodeCount($1.1) }
        case .array(let a): return 1 + a.reduce(0) { $0 + nodeCount($1) }
        default: return 1
        }
    }

    mutating func interestingValue(keys: [String]) -> JSONValue {
        switch below(9) {
        case 0, 1: return .integer(Int(pick(Self.interestingIntegers)))
        case 2: return .number(pick([1e308, -1e308, 0.5, -0.0, 1e-300, 4.9e-324, 3.4028235e38, 65504, .nan, .infinity]))
        case 3, 4: return .string(pick(Self.dictionaryStrings + keys))
        case 5: return pick([.null, .bool(true), .bool(false)])
        case 6: return .array(pick([[], [.integer(1)], [.integer(0), .integer(-1)], [.string("x")], [.array([])]]))
        case 7: return .object(pick([[], [("a", .integer(1))], [(keys.isEmpty ? "k" : pick(keys), .null)]]))
        default: return .integer(Int(pick(Self.interestingIntegers)) &+ (below(2) == 0 ? 1 : -1))
        }
    }

    /// The node at pre-order index `target` of `v`, mutated.
    mutating func mutateNode(_ v: JSONValue, target: inout Int, keys: [String]) -> JSONValue {
        if target == 0 {
            target = -1
            switch v {
            case .object(var m) where below(3) > 0:
                switch below(5) {
                case 0 where !m.isEmpty: m.remove(at: below(m.count))
                case 1 where !m.isEmpty: m.insert(m[below(m.count)], at: below(m.count + 1))  // a duplicate key
                case 2 where !m.isEmpty: m[below(m.count)].0 = pick(keys.isEmpty ? Self.dictionaryStrings : keys)
                case 3 where m.count > 1: let i = below(m.count), j = below(m.count); let t = m[i].1; m[i].1 = m[j].1; m[j].1 = t
                default: m.append((pick(keys.isEmpty ? ["k"] : keys), interestingValue(keys: keys)))
                }
                return .object(m)
            case .array(var a) where below(3) > 0:
                switch below(5) {
                case 0 where !a.isEmpty: a.remove(at: below(a.count))
                case 1 where !a.isEmpty: a.insert(a[below(a.count)], at: below(a.count + 1))
                case 2: a = []
                case 3 where !a.isEmpty: a = Array(repeating: a[0], count: pick([3, 9, 100]))
                default: a.append(interestingValue(keys: keys))
                }
                return .array(a)
            case .integer(let i) where below(2) == 0:
                return .integer(pick([i &+ 1, i &- 1, 0 &- i, i &* 2, i / 2, i &+ 8, Int(Int32.max), Int.max, Int.min]))
            default:
                return interestingValue(keys: keys)
            }
        }
        target -= 1
        switch v {
        case .object(let m):
            var out = m
            for i in out.indices where target >= 0 { out[i].1 = mutateNode(out[i].1, target: &target, keys: keys) }
            return .object(out)
        case .array(let a):
            var out = a
            for i in out.indices where target >= 0 { out[i] = mutateNode(out[i], target: &target, keys: keys) }
            return .array(out)
        default:
            return v
        }
    }

    /// `input` parsed, mutated at one node and serialized; nil when it is not JSON (or JSONL).
    mutating func jsonTree(_ input: [UInt8]) -> [UInt8]? {
        if let v = try? input.withUnsafeBytes({ try JSONValue.parse($0, maxDepth: 128) }) {
            var ks: [String] = []
            Self.keys(v, into: &ks)
            var target = below(Self.nodeCount(v))
            let m = mutateNode(v, target: &target, keys: ks)
            return Array(m.serialized().utf8)
        }
        // JSONL: one line mutated.
        var lines = input.split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
        let candidates = lines.indices.filter { !lines[$0].isEmpty }
        guard !candidates.isEmpty else { return nil }
        let k = pick(candidates)
        guard let v = try? lines[k].withUnsafeBytes({ try JSONValue.parse($0, maxDepth: 128) }) else { return nil }
        var ks: [String] = []
        Self.keys(v, into: &ks)
        var target = below(Self.nodeCount(v))
        lines[k] = Array(mutateNode(v, target: &target, keys: ks).serialized().utf8)
        return Array(lines.joined(separator: [0x0A]))
    }
}

/// Safetensors files kept valid while their meaning changes: one tensor gets another dtype
/// and/or shape, its bytes are cut or extended to fit, and every data offset is recomputed,
/// so the mutant passes the container checks and reaches the code that uses the tensors
/// (e.g. `.indices` of the wrong dtype, LoRA factors of the wrong rank, 1-D classifiers).
extension Mutator {
    static let dtypeNames = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"]

    mutating func safetensorsRelayout(_ input: [UInt8]) -> [UInt8]? {
        guard input.count >= 8 else { return nil }
        let n = input.withUnsafeBytes { Int(truncatingIfNeeded: UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        guard n >= 0, n <= input.count - 8,
              let root = try? Array(input[8..<(8 + n)]).withUnsafeBytes({ try JSONValue.parse($0) }),
              case .object(var members) = root else { return nil }
        struct Entry { var member: Int; var dtype: String; var shape: [Int]; var bytes: [UInt8] }
        var entries: [Entry] = []
        let data = Array(input[(8 + n)...])
        for (i, (name, v)) in members.enumerated() where name != "__metadata__" {
            guard case .string(let dt)? = v["dtype"], case .array(let s)? = v["shape"], case .array(let o)? = v["data_offsets"], o.count == 2,
                  case .integer(let b) = o[0], case .integer(let e) = o[1], b >= 0, b <= e, e <= data.count else { return nil }
            let shape = s.compactMap { x -> Int? in if case .integer(let d) = x { return d }; return nil }
            entries.append(Entry(member: i, dtype: dt, shape: shape, bytes: Array(data[b..<e])))
        }
        guard !entries.isEmpty else { return nil }
        let k = below(entries.count)
        var e = entries[k]
        if chance(0.6) { e.dtype = pick(Self.dtypeNames) }
        if chance(0.6) || e.dtype == entries[k].dtype {
            if !e.shape.isEmpty, chance(0.6) { e.shape[below(e.shape.count)] = pick([0, 1, 2, 3, 4, 7, 8, 32, 64]) }
            else { e.shape = pick([[], [0], [1], [3], [32], [2, 2], [4, 32], [32, 4], [2, 32], [32, 2], [1, 1, 1], [17]]) }
        }
        var size = DType(rawValue: e.dtype)?.byteSize ?? 1
        for d in e.shape {
            guard d >= 0 else { return nil }
            let (p, overflow) = size.multipliedReportingOverflow(by: d)
            guard !overflow, p <= 1 << 20 else { return nil }
            size = p
        }
        if e.bytes.count > size { e.bytes.removeSubrange(size...) }
        while e.bytes.count < size { e.bytes.append(UInt8(truncatingIfNeeded: rng.next())) }
        entries[k] = e
        var out = [UInt8](), offset = 0
        for x in entries {
            guard case .object(var fields) = members[x.member].1 else { return nil }
            for j in fields.indices {
                switch fields[j].0 {
                case "dtype": fields[j].1 = .string(x.dtype)
                case "shape": fields[j].1 = .array(x.shape.map { .integer($0) })
                case "data_offsets": fields[j].1 = .array([.integer(offset), .integer(offset + x.bytes.count)])
                default: break
                }
            }
            members[x.member].1 = .object(fields)
            out += x.bytes
            offset += x.bytes.count
        }
        var header = Array(JSONValue.object(members).serialized().utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var file = [UInt8]()
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { file.append(contentsOf: $0) }
        return file + header + out
    }
}
