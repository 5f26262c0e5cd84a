import Crypto
import Foundation
import Formats
import Synchronization
import Tensors

/// A base model's linear weights packed for the forward pass and kept on disk, so that a process
/// maps them at start instead of packing 110M weights again on every run.
///
/// One file per base content hash (docs/FORMAT.md's canonical hash), precision, instruction set
/// and packing layout: `DIR/<sha256>-<precision>-<isa>-<layout>.alloypack`. The layout tag is a
/// hash of what the packing routines make of a fixed probe matrix, so a changed packing routine
/// never reads an old file. A model directory's content hash is computed once and remembered
/// under `DIR/fingerprints/`, keyed by its weight files' device, inode, size and change times.
///
/// File (little-endian): the magic `ALLOYPK1`, the header's length (UInt64), the header (JSON:
/// `content_sha256`, `precision`, `isa`, `layout`, `tensors`: `[{name, n, k, parts: [[offset,
/// bytes], …]}]`), the header's SHA-256, zero padding, then every part at a 64-byte aligned
/// offset. `open` checks the magic, the header's hash and every field against the model (names,
/// shapes, part sizes, offsets inside the file, alignment); a file that fails a check is rebuilt,
/// never read. The packed values themselves are not hashed (that would cost what mapping saves):
/// files are written atomically (temporary file, fsync, rename) and any bit pattern in them is a
/// valid weight.
public struct PackedWeightCache: Sendable {
    public let directory: String
    /// Models whose packed linear weights total fewer bytes are packed in memory, not cached.
    public let minimumBytes: Int
    /// Beyond this many bytes of packed files, the least recently used are removed.
    public let maximumBytes: Int

    public init(directory: String, minimumBytes: Int = 4 << 20, maximumBytes: Int = 8 << 30) {
        self.directory = directory
        self.minimumBytes = minimumBytes
        self.maximumBytes = maximumBytes
    }

    /// The user's cache: `$ALLOY_CACHE_DIR/packed`, else `$XDG_CACHE_HOME/alloy/packed`, else
    /// `~/.cache/alloy/packed`; nil when `ALLOY_PACK_CACHE=off` or no home is known.
    public static func user(environment env: [String: String] = ProcessInfo.processInfo.environment) -> PackedWeightCache? {
        if env["ALLOY_PACK_CACHE"] == "off" { return nil }
        let root: String
        if let d = env["ALLOY_CACHE_DIR"], !d.isEmpty { root = d }
        else if let x = env["XDG_CACHE_HOME"], !x.isEmpty { root = (x as NSString).appendingPathComponent("alloy") }
        else if let h = env["HOME"], !h.isEmpty { root = (h as NSString).appendingPathComponent(".cache/alloy") }
        else { return nil }
        return PackedWeightCache(directory: (root as NSString).appendingPathComponent("packed"))
    }

    /// One linear weight to pack: its canonical name, shape (n×k) and f32 values.
    struct Layer {
        let name: String
        let n: Int, k: Int
        let values: UnsafePointer<Float>
    }

    /// What a file is for.
    struct Key: Equatable {
        let contentHash: String
        let precision: Precision
        let isa: Kernels.ISA
        var layout: String { PackedWeightCache.layoutTag(precision) }
        var fileName: String { "\(contentHash)-\(precision)-\(isa)-\(layout).alloypack" }
    }

    /// Why a cache file was not used (it is then rebuilt).
    struct Invalid: Error, CustomStringConvertible {
        let path: String
        let reason: String
        var description: String { "\(path): \(reason)" }
    }

    static let magic = Array("ALLOYPK1".utf8)
    static let headerCap = 16 << 20
    static let partAlignment = 64
    static let dataAlignment = 4096

    // MARK: use

    /// The packed `layers`, mapped from the file for `key` (written first when it is missing or
    /// fails a check); nil when the cache cannot be used here (too small a model, a directory
    /// that cannot be written), and the caller packs in memory.
    func packed(_ layers: [Layer], key: () throws -> String, precision: Precision) -> [String: PackedLinear]? {
        let total = layers.reduce(0) { $0 + PackedLinear.partSizes(precision, n: $1.n, k: $1.k).reduce(0, +) }
        guard total >= minimumBytes, let hash = try? key() else { return nil }
        let k = Key(contentHash: hash, precision: precision, isa: Kernels.isa)
        let path = (directory as NSString).appendingPathComponent(k.fileName)
        if let found = try? open(path, key: k, layers: layers) {
            touch(path)
            return found
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try write(path, key: k, layers: layers)
            prune(keeping: path)
            return try open(path, key: k, layers: layers)
        } catch {
            return nil
        }
    }

    // MARK: the file

    /// Maps the file at `path` and returns views of its parts, after checking everything
    /// against `key` and `layers`.
    func open(_ path: String, key: Key, layers: [Layer]) throws -> [String: PackedLinear] {
        let file = try MappedFile(path: path)
        let bytes = file.bytes
        func invalid(_ r: String) -> Invalid { Invalid(path: path, reason: r) }
        guard bytes.count >= 16, Array(bytes[0..<8]) == Self.magic else { throw invalid("not a packed-weight file (magic)") }
        let length = bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self).littleEndian
        guard length <= UInt64(Self.headerCap), 16 + Int(length) + 32 <= bytes.count else { throw invalid("header length \(length) out of range") }
        let header = UnsafeRawBufferPointer(rebasing: bytes[16..<(16 + Int(length))])
        guard Self.digest(header) == Array(bytes[(16 + Int(length))..<(16 + Int(length) + 32)]) else { throw invalid("header checksum mismatch") }
        let json = try JSONValue.parse(header)
        guard json["content_sha256"] == .string(key.contentHash), json["precision"] == .string(key.precision.rawValue),
              json["isa"] == .string("\(key.isa)"), json["layout"] == .string(key.layout) else { throw invalid("written for another model, precision, instruction set or layout") }
        guard case .array(let tensors)? = json["tensors"], tensors.count == layers.count else { throw invalid("tensor count differs") }
        var out: [String: PackedLinear] = [:]
        for (t, layer) in zip(tensors, layers) {
            guard t["name"] == .string(layer.name), t["n"] == .integer(layer.n), t["k"] == .integer(layer.k),
                  case .array(let parts)? = t["parts"] else { throw invalid("entry for \(layer.name) differs") }
            let sizes = PackedLinear.partSizes(key.precision, n: layer.n, k: layer.k)
            guard parts.count == sizes.count else { throw invalid("\(layer.name): \(parts.count) parts, expected \(sizes.count)") }
            var pointers: [UnsafeRawPointer] = []
            for (p, size) in zip(parts, sizes) {
                guard case .array(let pair) = p, pair.count == 2, case .integer(let offset) = pair[0], case .integer(let count) = pair[1],
                      count == size, offset >= 0, offset % Self.partAlignment == 0,
                      case (let end, false) = offset.addingReportingOverflow(count), end <= bytes.count,
                      let base = bytes.baseAddress else { throw invalid("\(layer.name): a part's offset or size is out of range") }
                pointers.append(base + offset)
            }
            out[layer.name] = PackedLinear(mapped: pointers, precision: key.precision, n: layer.n, k: layer.k, mapping: file)
        }
        return out
    }

    /// Packs `layers` into a new file (layers spread over the cores) and renames it into place.
    func write(_ path: String, key: Key, layers: [Layer]) throws {
        var offset = 0
        var places: [[(offset: Int, size: Int)]] = []
        for l in layers {
            var parts: [(offset: Int, size: Int)] = []
            for size in PackedLinear.partSizes(key.precision, n: l.n, k: l.k) {
                parts.append((offset, size))
                offset = (offset + size + Self.partAlignment - 1) / Self.partAlignment * Self.partAlignment
            }
            places.append(parts)
        }
        // Offsets are relative to the data start until the header's size is known.
        func header(dataStart: Int) -> [UInt8] {
            let entries: [JSONValue] = zip(layers, places).map { l, parts in
                .object([("name", .string(l.name)), ("n", .integer(l.n)), ("k", .integer(l.k)),
                         ("parts", .array(parts.map { .array([.integer(dataStart + $0.offset), .integer($0.size)]) }))])
            }
            let json: JSONValue = .object([("content_sha256", .string(key.contentHash)), ("precision", .string(key.precision.rawValue)),
                                           ("isa", .string("\(key.isa)")), ("layout", .string(key.layout)), ("tensors", .array(entries))])
            return Array(json.serialized().utf8)
        }
        var start = 0, text: [UInt8] = []
        repeat {   // the header's length depends on the offsets it holds: settle it
            let s = start
            text = header(dataStart: s)
            start = (16 + text.count + 32 + Self.dataAlignment - 1) / Self.dataAlignment * Self.dataAlignment
            if start == s { break }
        } while true
        let file = try AtomicFile(path: path)
        var prefix = Self.magic
        withUnsafeBytes(of: UInt64(text.count).littleEndian) { prefix += $0 }
        prefix += text
        prefix += text.withUnsafeBytes { Self.digest($0) }
        try prefix.withUnsafeBytes { try file.write($0, at: 0) }
        // Each layer is packed into a scratch buffer on one core and written at its place; the
        // disk starts on it while the next is packed.
        let failure = Mutex<(any Error)?>(nil)
        let box = UnsafeSendableBox((file, layers, places))
        Parallel.forEach(count: layers.count) { i in
            let (file, layers, places) = box.value
            let l = layers[i], parts = places[i]
            let bytes = parts.last.map { $0.offset + $0.size - parts[0].offset } ?? 0
            let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64)
            defer { scratch.deallocate() }
            scratch.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
            PackedLinear.pack(l.values, n: l.n, k: l.k, precision: key.precision, into: parts.map { scratch + $0.offset - parts[0].offset })
            let at = start + (parts.first?.offset ?? 0)
            do {
                try file.write(UnsafeRawBufferPointer(start: scratch, count: bytes), at: at)
                file.startWriteback(at..<(at + bytes))
            } catch {
                failure.withLock { $0 = $0 ?? error }
            }
        }
        if let e = failure.withLock({ $0 }) { throw e }
        try file.commit()
    }

    /// The header's checksum: its SHA-256.
    static func digest(_ bytes: UnsafeRawBufferPointer) -> [UInt8] { Array(SHA256.hash(data: bytes)) }

    // MARK: housekeeping

    /// Marks `path` as used now (the pruning order).
    func touch(_ path: String) {
        _ = utimensat(AT_FDCWD, path, nil, 0)
    }

    /// Removes the least recently used packed files while they total more than `maximumBytes`
    /// (never `keeping`).
    func prune(keeping: String) {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory) else { return }
        var files: [(path: String, size: Int, used: Date)] = names.filter { $0.hasSuffix(".alloypack") }.compactMap { n in
            let p = (directory as NSString).appendingPathComponent(n)
            guard let a = try? fm.attributesOfItem(atPath: p), let size = a[.size] as? Int, let date = a[.modificationDate] as? Date else { return nil }
            return (p, size, date)
        }
        var total = files.reduce(0) { $0 + $1.size }
        files.sort { $0.used < $1.used }
        for f in files where total > maximumBytes && f.path != keeping {
            if (try? fm.removeItem(atPath: f.path)) != nil { total -= f.size }
        }
    }

    // MARK: keys

    /// The content hash of the weight files `paths`, remembered under `fingerprints/` by their
    /// identity (device, inode, size, modification and change times) so that it is computed
    /// once per file version.
    func contentHash(files paths: [String], compute: () throws -> String) throws -> String {
        var id = ""
        for p in paths {
            var st = stat()
            guard stat(p, &st) == 0 else { return try compute() }
            id += "\(p)\0\(st.st_dev)\0\(st.st_ino)\0\(st.st_size)\0\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)\0\(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec)\n"
        }
        let name = SHA256.hash(data: Array(id.utf8)).map { String(format: "%02x", $0) }.joined()
        let dir = (directory as NSString).appendingPathComponent("fingerprints")
        let path = (dir as NSString).appendingPathComponent(name)
        if let d = FileManager.default.contents(atPath: path), let s = String(bytes: d, encoding: .utf8),
           s.utf8.count == 64, s.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) {
            return s
        }
        let hash = try compute()
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try? AtomicFile.write(Array(hash.utf8), to: path)
        return hash
    }

    /// A hash of what the packing routines make of a fixed 37×29 probe at `precision`: it
    /// changes whenever a routine's layout or arithmetic does.
    static func layoutTag(_ precision: Precision) -> String {
        layoutTags[precision.rawValue] ?? ""
    }

    private static let layoutTags: [String: String] = {
        let (n, k) = (37, 29)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let w: [Float] = (0..<(n * k)).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int64(bitPattern: state >> 11) % 2_000_001 - 1_000_000) / 250_000
        }
        var tags: [String: String] = [:]
        for p in Precision.allCases {
            let sizes = PackedLinear.partSizes(p, n: n, k: k)
            let parts = sizes.map { s -> UnsafeMutableRawPointer in
                let m = UnsafeMutableRawPointer.allocate(byteCount: s, alignment: 64)
                m.initializeMemory(as: UInt8.self, repeating: 0, count: s)
                return m
            }
            defer { parts.forEach { $0.deallocate() } }
            w.withUnsafeBufferPointer { PackedLinear.pack($0.baseAddress!, n: n, k: k, precision: p, into: parts) }
            var sha = SHA256()
            for (m, s) in zip(parts, sizes) { sha.update(bufferPointer: UnsafeRawBufferPointer(start: m, count: s)) }
            tags[p.rawValue] = sha.finalize().prefix(6).map { String(format: "%02x", $0) }.joined()
        }
        return tags
    }()
}
