/// A minimal zip writer for fuzzing: stored entries, no CRCs (Alloy's reader does not check
/// them), PKWARE APPNOTE 4.3 layout. Wraps mutated pickles into archives `TorchCheckpoint` opens.
enum StoredZip {
    static func make(_ entries: [(name: String, bytes: [UInt8])]) -> [UInt8] {
        func le(_ v: Int, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        var out: [UInt8] = [], central: [UInt8] = []
        for (name, bytes) in entries {
            let n = Array(name.utf8), offset = out.count
            out += le(0x0403_4B50, 4) + le(20, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(0, 4)
                + le(bytes.count, 4) + le(bytes.count, 4) + le(n.count, 2) + le(0, 2) + n + bytes
            central += le(0x0201_4B50, 4) + le(20, 2) + le(20, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(0, 4)
                + le(bytes.count, 4) + le(bytes.count, 4) + le(n.count, 2) + le(0, 2) + le(0, 2) + le(0, 2) + le(0, 2)
                + le(0, 4) + le(offset, 4) + n
        }
        let cdOffset = out.count
        out += central
        out += le(0x0605_4B50, 4) + le(0, 4) + le(entries.count, 2) + le(entries.count, 2) + le(central.count, 4) + le(cdOffset, 4) + le(0, 2)
        return out
    }
}
