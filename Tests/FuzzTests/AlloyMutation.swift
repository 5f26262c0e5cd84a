import Foundation
import Tensors
@testable import Formats

/// Structure-aware mutations of `.alloy` files (docs/FORMAT.md): most mutants get their
/// checksums recomputed so they reach the header and payload checks behind the CRCs.
enum AlloyMutation {
    struct Layout {
        /// (offset, width in bytes) of every integer field of the preamble and header.
        var fields: [(Int, Int)] = []
        /// Per chunk: offset of its record in the file, and its payload's range.
        var chunks: [(record: Int, payload: Range<Int>)] = []
        var headerSize = 0
        /// Per tensor: offsets of its dims, of its chunk-elements field, and its chunk count.
        var entries: [(dims: [Int], chunkElements: Int, chunks: Int)] = []
    }

    static func u(_ b: [UInt8], _ at: Int, _ w: Int) -> UInt64? {
        guard at >= 0, at + w <= b.count else { return nil }
        var v: UInt64 = 0
        for j in 0..<w { v |= UInt64(b[at + j]) << (8 * UInt64(j)) }
        return v
    }

    static func put(_ b: inout [UInt8], _ at: Int, _ w: Int, _ v: UInt64) {
        for j in 0..<w where at + j < b.count { b[at + j] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(j))) }
    }

    /// The field layout of a well-formed file, or nil.
    static func layout(_ b: [UInt8]) -> Layout? {
        guard let h64 = u(b, 16, 8), h64 < 1 << 24, 32 + Int(h64) <= b.count else { return nil }
        var l = Layout()
        l.headerSize = Int(h64)
        l.fields = [(8, 4), (12, 4), (16, 8), (24, 4), (28, 4)]
        var p = 32
        let end = 32 + l.headerSize
        func field(_ w: Int) -> UInt64? {
            guard p + w <= end, let v = u(b, p, w) else { return nil }
            l.fields.append((p, w)); p += w
            return v
        }
        guard let m = field(4), p + Int(m) <= end else { return nil }
        p += Int(m)
        guard let t = field(4), t < 10_000 else { return nil }
        for _ in 0..<t {
            guard let nl = field(2), p + Int(nl) <= end else { return nil }
            p += Int(nl)
            guard field(1) != nil, let rank = field(1), rank <= 8 else { return nil }
            var dims: [Int] = []
            for _ in 0..<rank { dims.append(p); guard field(8) != nil else { return nil } }
            guard field(1) != nil, field(1) != nil, field(2) != nil else { return nil }
            let ce = p
            guard field(8) != nil, let c = field(4), c < 100_000 else { return nil }
            l.entries.append((dims, ce, Int(c)))
            for _ in 0..<c {
                let record = p
                guard let off = field(8), let size = field(4), field(4) != nil else { return nil }
                guard off <= UInt64(b.count), Int(off) + Int(size) <= b.count else { return nil }
                l.chunks.append((record, Int(off)..<(Int(off) + Int(size))))
            }
        }
        return l
    }

    static func crc(_ b: ArraySlice<UInt8>) -> UInt32 { Array(b).withUnsafeBytes { Deflate.crc32($0) } }

    /// Recomputes the header CRC, if the header size field is usable.
    static func fixHeaderCRC(_ b: inout [UInt8]) {
        guard let h = u(b, 16, 8), h <= UInt64(b.count), 32 + Int(h) <= b.count else { return }
        put(&b, 24, 4, UInt64(crc(b[32..<(32 + Int(h))])))
    }

    static func mutate(_ input: [UInt8], with m: inout Mutator, donors: [[UInt8]]) -> [UInt8] {
        var b = input
        guard let l = layout(b), !l.fields.isEmpty else {
            b = m.binary(b, donors: donors)
            if m.chance(0.7) { fixHeaderCRC(&b) }
            return b
        }
        // A single-chunk tensor claims a larger shape with a consistent chunk table (the
        // chunk then holds all of the new element count): issue 14's 2^18 × 2^18 entry.
        let single = l.entries.filter { $0.chunks == 1 && !$0.dims.isEmpty }
        if !single.isEmpty, m.chance(0.15) {
            let e = m.pick(single)
            for d in e.dims where m.chance(0.6) || d == e.dims.last {
                put(&b, d, 8, UInt64(m.pick([1 << 10, 1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 31, 3, 1000])))
            }
            let n = e.dims.reduce(UInt64(1)) { acc, d in acc.multipliedReportingOverflow(by: max(1, u(b, d, 8) ?? 1)).partialValue }
            put(&b, e.chunkElements, 8, m.chance(0.8) ? n : UInt64(m.pick([1 << 22, (1 << 22) + 1, 1 << 36, 1 << 40])))
            fixHeaderCRC(&b)
            return b
        }
        let op = m.below(10)
        switch l.chunks.isEmpty && (4...6).contains(op) ? 0 : op {
        case 0, 1, 2, 3:
            // One integer field set to an interesting value.
            let (at, w) = m.pick(l.fields)
            let v: UInt64
            if m.chance(0.3), let old = u(b, at, w) { v = old &+ UInt64(bitPattern: Int64(m.pick([-1, 1, -8, 8, 64, -64]))) }
            else { v = UInt64(bitPattern: m.pick(Mutator.interestingIntegers)) }
            put(&b, at, w, v)
            if m.chance(0.95) { fixHeaderCRC(&b) }
        case 4, 5, 6:
            // A chunk payload edited in place, its CRC and the header CRC fixed.
            let c = m.pick(l.chunks)
            guard !c.payload.isEmpty else { return b }
            var payload = Array(b[c.payload])
            for _ in 0..<(1 + m.below(3)) {
                let k = m.below(payload.count)
                switch m.below(3) {
                case 0: payload[k] ^= UInt8(1 << m.below(8))
                case 1: payload[k] = m.pick([0, 0xFF, 0x80, 0x7F, 0x01, 0x02])
                default:
                    let v = UInt64(bitPattern: m.pick(Mutator.interestingIntegers))
                    for j in 0..<4 where k + j < payload.count { payload[k + j] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(j))) }
                }
            }
            b.replaceSubrange(c.payload, with: payload)
            put(&b, c.record + 12, 4, UInt64(crc(b[c.payload])))
            fixHeaderCRC(&b)
        case 7:
            // The metadata JSON as text, sizes and CRC fixed.
            guard let msize = u(b, 32, 4), 36 + Int(msize) <= 32 + l.headerSize else { return b }
            let meta = Array(b[36..<(36 + Int(msize))])
            let mutated = m.text(meta, yaml: false)
            b.replaceSubrange(36..<(36 + Int(msize)), with: mutated)
            put(&b, 32, 4, UInt64(mutated.count))
            put(&b, 16, 8, UInt64(l.headerSize + mutated.count - meta.count))
            fixHeaderCRC(&b)
        case 8:
            b = m.binary(b, donors: donors)
            fixHeaderCRC(&b)
        default:
            b = m.binary(b, donors: donors)
        }
        return b
    }
}
