/// The entries of a zip archive held in memory (a mapped file), located through the central
/// directory as PKWARE's APPNOTE (4.3.12–4.3.16, 4.5.3) lays it out, ZIP64 included.
///
/// Written for the archives `torch.save` produces (PyTorch's `PyTorchStreamWriter`, miniz):
/// every entry stored (method 0), local headers padded with an "FB" extra field so data starts
/// 64-byte aligned, sizes in the central directory (local headers may hold zeros and a data
/// descriptor), and a ZIP64 end-of-central-directory record. Like torch's reader, offsets come
/// from the central directory and only the local header's name/extra lengths are read from it.
/// Every offset and size is checked against the file with overflow-checked arithmetic; entry
/// count and name length are capped. CRCs are not verified: data is used in place, unread.
public struct ZipArchive: Sendable {
    public static let maxEntries = 1 << 20
    public static let maxNameLength = 4096

    public struct Entry: Sendable, Equatable {
        public let name: String
        /// Where the entry's (stored) bytes lie in the file.
        public let dataRange: Range<Int>
        /// Compression method: 0 is stored; anything else is refused when the entry is read.
        public let method: Int
    }

    public let path: String
    public let entries: [Entry]
    private let index: [String: Int]

    public func entry(_ name: String) -> Entry? { index[name].map { entries[$0] } }

    /// The byte range of a stored entry; a compressed one is refused, naming it.
    public func storedRange(_ name: String) throws -> Range<Int>? {
        guard let e = entry(name) else { return nil }
        guard e.method == 0 else { throw TorchCheckpointError.compressedEntry(path: path, entry: name, method: e.method) }
        return e.dataRange
    }

    public init(bytes: UnsafeRawBufferPointer, path: String) throws {
        self.path = path
        let r = ZipBytes(bytes: bytes, path: path)
        let size = bytes.count

        // End of central directory: the last signature whose comment reaches the end of the file.
        let eocdSize = 22
        guard size >= eocdSize else { throw r.fail("file is \(size) bytes, too small for a zip end record; the file is truncated") }
        var eocd = -1
        var at = size - eocdSize
        let lowest = max(0, size - eocdSize - 0xFFFF)
        while at >= lowest {
            if try r.u32(at) == 0x0605_4B50, at + eocdSize + Int(try r.u16(at + 20)) == size { eocd = at; break }
            at -= 1
        }
        guard eocd >= 0 else { throw r.fail("no end-of-central-directory record; the file is truncated or not a zip archive") }
        var count = Int(try r.u16(eocd + 10))
        var cdSize = Int(try r.u32(eocd + 12))
        var cdOffset = Int(try r.u32(eocd + 16))
        guard try r.u16(eocd + 4) == 0, try r.u16(eocd + 6) == 0 else { throw r.fail("multi-disk archives are not supported") }

        // ZIP64: a locator just before the end record points at the ZIP64 end record.
        if eocd >= 20, try r.u32(eocd - 20) == 0x0706_4B50 {
            let z = try r.offset(try r.u64(eocd - 12), what: "ZIP64 end record offset")
            guard try r.u32(z) == 0x0606_4B50 else { throw r.fail("ZIP64 locator points at byte \(z), which holds no ZIP64 end record") }
            count = try r.offset(try r.u64(z + 32), what: "ZIP64 entry count")
            cdSize = try r.offset(try r.u64(z + 40), what: "ZIP64 central directory size")
            cdOffset = try r.offset(try r.u64(z + 48), what: "ZIP64 central directory offset")
        }
        guard count <= Self.maxEntries else { throw r.fail("\(count) entries exceed the cap of \(Self.maxEntries)") }
        guard let cdEnd = r.end(cdOffset, cdSize), cdEnd <= size else {
            throw r.fail("central directory [\(cdOffset), +\(cdSize)) lies outside the \(size)-byte file; the file is truncated")
        }

        var entries: [Entry] = []
        entries.reserveCapacity(count)
        var index = [String: Int](minimumCapacity: count)
        var p = cdOffset
        for i in 0..<count {
            guard let fixedEnd = r.end(p, 46), fixedEnd <= cdEnd, try r.u32(p) == 0x0201_4B50 else {
                throw r.fail("central directory record \(i) at byte \(p) is missing or truncated")
            }
            let flags = try r.u16(p + 8), method = Int(try r.u16(p + 10))
            var csize = Int(try r.u32(p + 20)), usize = Int(try r.u32(p + 24))
            let nameLen = Int(try r.u16(p + 28)), extraLen = Int(try r.u16(p + 30)), commentLen = Int(try r.u16(p + 32))
            var local = Int(try r.u32(p + 42))
            guard nameLen <= Self.maxNameLength else { throw r.fail("entry \(i) has a \(nameLen)-byte name, over the \(Self.maxNameLength)-byte cap") }
            guard let recordEnd = r.end(fixedEnd, nameLen + extraLen + commentLen), recordEnd <= cdEnd else {
                throw r.fail("central directory record \(i) runs past the directory's end")
            }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[fixedEnd..<(fixedEnd + nameLen)]), as: UTF8.self)
            guard !name.isEmpty, !name.utf8.contains(0) else { throw r.fail("entry \(i) has an empty or NUL-bearing name") }
            guard flags & 1 == 0 else { throw r.fail("entry \"\(name)\" is encrypted") }

            // ZIP64 extended information: the 64-bit values of the saturated 32-bit fields, in order.
            var e = fixedEnd + nameLen
            let extraEnd = e + extraLen
            while e + 4 <= extraEnd {
                let id = try r.u16(e), len = Int(try r.u16(e + 2))
                guard e + 4 + len <= extraEnd else { throw r.fail("entry \"\(name)\": extra field runs past its record") }
                if id == 0x0001 {
                    var f = e + 4
                    func next() throws -> Int {
                        guard f + 8 <= e + 4 + len else { throw r.fail("entry \"\(name)\": ZIP64 extra field is too short") }
                        defer { f += 8 }
                        return try r.offset(try r.u64(f), what: "entry \"\(name)\" ZIP64 field")
                    }
                    if usize == 0xFFFF_FFFF { usize = try next() }
                    if csize == 0xFFFF_FFFF { csize = try next() }
                    if local == 0xFFFF_FFFF { local = try next() }
                }
                e += 4 + len
            }

            // The local header: only its name and extra lengths are used (sizes may be zero there).
            guard let lhEnd = r.end(local, 30), lhEnd <= size, try r.u32(local) == 0x0403_4B50 else {
                throw r.fail("entry \"\(name)\": no local header at byte \(local); the file is truncated or corrupt")
            }
            let dataStart = lhEnd + Int(try r.u16(local + 26)) + Int(try r.u16(local + 28))
            if method == 0, csize != usize {
                throw r.fail("stored entry \"\(name)\" declares \(csize) stored but \(usize) uncompressed bytes")
            }
            guard let dataEnd = r.end(dataStart, csize), dataEnd <= size else {
                throw r.fail("entry \"\(name)\" data [\(dataStart), +\(csize)) lies outside the \(size)-byte file; the file is truncated")
            }
            guard index[name] == nil else { throw r.fail("two entries are named \"\(name)\"") }
            index[name] = entries.count
            entries.append(Entry(name: name, dataRange: dataStart..<dataEnd, method: method))
            p = recordEnd
        }
        self.entries = entries
        self.index = index
    }
}

/// Bounds-checked little-endian reads from untrusted bytes.
struct ZipBytes {
    let bytes: UnsafeRawBufferPointer
    let path: String

    func fail(_ reason: String) -> TorchCheckpointError { .zip(path: path, reason: reason) }

    /// `start + count` when it does not overflow and neither is negative.
    func end(_ start: Int, _ count: Int) -> Int? {
        guard start >= 0, count >= 0 else { return nil }
        let (s, o) = start.addingReportingOverflow(count)
        return o ? nil : s
    }

    func check(_ at: Int, _ n: Int) throws {
        guard let e = end(at, n), e <= bytes.count else {
            throw fail("a \(n)-byte field at byte \(at) lies past the end of the \(bytes.count)-byte file; the file is truncated")
        }
    }

    func u16(_ at: Int) throws -> UInt16 { try check(at, 2); return bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self).littleEndian }
    func u32(_ at: Int) throws -> UInt32 { try check(at, 4); return bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self).littleEndian }
    func u64(_ at: Int) throws -> UInt64 { try check(at, 8); return bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self).littleEndian }

    /// A 64-bit size or offset as `Int`, refused when it cannot be one.
    func offset(_ v: UInt64, what: String) throws -> Int {
        guard v <= UInt64(Int.max) else { throw fail("\(what) \(v) is out of range") }
        return Int(v)
    }
}
