import Foundation
import XCTest
import Tensors

/// Seeded mutation fuzzing of Alloy's parsers (issue 14: no input crashes Alloy).
///
/// Each target has valid seed inputs (a few named files), a mutation style per file, and a
/// parse closure that reads a directory holding one input. Mutant `i` of a target is made by a
/// SplitMix generator seeded from (base seed, target name, i) alone, so any mutant can be
/// regenerated from its index without replaying the others. A thrown error is a pass; a trap
/// kills the test process, so before each parse the mutant is written to
/// `<work root>/<target>/current/` with `current.txt` saying how to reproduce it, a signal
/// handler prints that note when the process traps or faults (`CrashNote`), and a watchdog
/// thread ends the process with the note if one parse runs past `hangSeconds`. A parse slower
/// than `slowSeconds` fails the test with the mutant's index.
///
/// Environment: `ALLOY_FUZZ_MUTANTS` (mutants per target, default `FuzzConfig.defaultMutants`),
/// `ALLOY_FUZZ_SEED` (base seed), `ALLOY_FUZZ_INDEX` (run only that mutant: reproduces a crash),
/// `ALLOY_FUZZ_DIR` (where mutants are written), `ALLOY_FUZZ_VERBOSE` (print which errors the
/// mutants met, to see how deep they get).
enum FuzzConfig {
    static let defaultMutants = 2000
    static let defaultSeed: UInt64 = 0xA110_7F22
    /// A parse slower than this (seconds, debug build) fails the test with its index.
    static let slowSeconds = 10.0
    /// A parse still running after this long ends the process (a hang).
    static let hangSeconds = 60.0

    static var env: [String: String] { ProcessInfo.processInfo.environment }
    static var mutants: Int { env["ALLOY_FUZZ_MUTANTS"].flatMap(Int.init) ?? defaultMutants }
    static var seed: UInt64 { env["ALLOY_FUZZ_SEED"].flatMap { UInt64($0.hasPrefix("0x") ? String($0.dropFirst(2)) : $0, radix: $0.hasPrefix("0x") ? 16 : 10) } ?? defaultSeed }
    static var verbose: Bool { env["ALLOY_FUZZ_VERBOSE"] != nil }
    static var onlyIndex: Int? { env["ALLOY_FUZZ_INDEX"].flatMap(Int.init) }
    /// Where mutants are written: `ALLOY_FUZZ_DIR`, else a RAM disk when there is one (each
    /// mutant is a few file writes), else the temporary directory.
    static let workRoot: String = {
        let parent = env["ALLOY_FUZZ_DIR"] ?? (FileManager.default.isWritableFile(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory())
        return (parent as NSString).appendingPathComponent("alloy-fuzz-\(getpid())")
    }()
}

/// How a file of an input is mutated.
enum MutationStyle {
    /// Bytes: flips, inserts, deletes, truncation, splices, interesting integers.
    case binary
    /// JSON or JSONL text: the binary operations plus number, type, key and nesting edits.
    case json
    /// YAML text: as JSON, with YAML nesting.
    case yaml
    /// A safetensors file: the header's JSON is mutated as text and the length prefix fixed,
    /// or the bytes as binary.
    case safetensors
    /// A `.alloy` file: header fields, chunk payloads or raw bytes, with the checksums
    /// recomputed for most mutants so they reach the parser past the CRC checks.
    case alloy
    /// Not mutated (a companion file the parser needs).
    case fixed
}

/// One file of an input: bytes to write, or a path to link to.
struct FuzzFile {
    var name: String
    var bytes: [UInt8]
    var style: MutationStyle
    /// When set, the file is a symbolic link to this path (large fixed companions).
    var link: String? = nil
}

struct FuzzInput {
    var name: String
    var files: [FuzzFile]
}

struct FuzzTarget {
    let name: String
    let seeds: [FuzzInput]
    /// Reads the input in `dir`; any thrown error is fine.
    let parse: (_ dir: String) throws -> Void
}

/// The file writes and process-level crash reporting of one fuzz run.
final class FuzzRun: @unchecked Sendable {
    private let lock = NSLock()
    private var current: (label: String, started: Date)?
    private var watchdog: Thread?

    init() {
        CrashNote.install()
        let t = Thread { [weak self] in
            while true {
                Thread.sleep(forTimeInterval: 1)
                guard let self else { return }
                self.lock.lock()
                let c = self.current
                self.lock.unlock()
                if let c, Date().timeIntervalSince(c.started) > FuzzConfig.hangSeconds {
                    FileHandle.standardError.write(Data("FUZZ HANG: \(c.label) ran over \(FuzzConfig.hangSeconds) s\n".utf8))
                    exit(86)
                }
            }
        }
        t.start()
        watchdog = t
    }

    func begin(_ label: String) { lock.lock(); current = (label, Date()); lock.unlock(); CrashNote.set(label) }
    func end() { CrashNote.clear(); lock.lock(); current = nil; lock.unlock() }

    /// Writes `input` into a fresh `dir`.
    static func write(_ input: FuzzInput, to dir: String) throws {
        let fm = FileManager.default
        try? fm.removeItem(atPath: dir)
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        written[dir] = nil
        try overwrite(input, in: dir)
    }

    nonisolated(unsafe) static var written: [String: Set<String>] = [:]

    /// Writes `input` into `dir` in place: files are truncated and rewritten, links made once,
    /// and only files the input does not have are removed (fast enough for thousands of mutants).
    static func overwrite(_ input: FuzzInput, in dir: String) throws {
        let fm = FileManager.default
        let names = Set(input.files.map(\.name))
        if let previous = written[dir], previous != names {
            for p in previous.subtracting(names) { try? fm.removeItem(atPath: (dir as NSString).appendingPathComponent(p)) }
        }
        written[dir] = names
        for f in input.files {
            let p = (dir as NSString).appendingPathComponent(f.name)
            let parent = (p as NSString).deletingLastPathComponent
            if !fm.fileExists(atPath: parent) { try fm.createDirectory(atPath: parent, withIntermediateDirectories: true) }
            if let link = f.link {
                if (try? fm.destinationOfSymbolicLink(atPath: p)) != link {
                    try? fm.removeItem(atPath: p)
                    try fm.createSymbolicLink(atPath: p, withDestinationPath: link)
                }
                continue
            }
            if (try? fm.destinationOfSymbolicLink(atPath: p)) != nil { try fm.removeItem(atPath: p) }
            try writeBytes(f.bytes, to: p)
        }
    }

    static func writeBytes(_ bytes: [UInt8], to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + done, bytes.count - done) }
            guard n > 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
            done += n
        }
    }

    /// Error messages (digits dropped) and how often they were thrown, with ALLOY_FUZZ_VERBOSE.
    var errorKinds: [String: Int] = [:]

    /// Seconds spent making, writing and parsing mutants in the last `fuzz`.
    /// and how many mutants parsed without error (a target whose mutants all fail early only
    /// tests its first check).
    private(set) var timing = (mutate: 0.0, write: 0.0, parse: 0.0, slowest: 0.0, slowestIndex: 0, accepted: 0)

    func fuzz(_ target: FuzzTarget, count: Int, seed: UInt64) throws -> (ran: Int, failures: [String]) {
        timing = (0, 0, 0, 0, 0, 0)
        let base = (FuzzConfig.workRoot as NSString).appendingPathComponent(target.name)
        let dir = (base as NSString).appendingPathComponent("current")
        let note = (base as NSString).appendingPathComponent("current.txt")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var failures: [String] = []
        let indices = FuzzConfig.onlyIndex.map { [$0] } ?? Array(0..<count)
        let targetSeed = seed ^ fnv1a(target.name)
        for i in indices {
            let tm = Date()
            var m = Mutator(seed: targetSeed &+ UInt64(i) &* 0x9E37_79B9_7F4A_7C15)
            let input = m.mutant(of: target.seeds)
            timing.mutate += Date().timeIntervalSince(tm)
            let tw = Date()
            let label = "fuzz target \(target.name) mutant \(i) (seed \(input.name), ALLOY_FUZZ_SEED=\(seed)); reproduce: ALLOY_FUZZ_SEED=\(seed) ALLOY_FUZZ_INDEX=\(i) swift test --filter FuzzTests; input left in \(dir)"
            if i % 250 == 0 { print("fuzz \(target.name): mutant \(i)/\(count)"); fflush(nil) }
            try FuzzRun.overwrite(input, in: dir)
            try FuzzRun.writeBytes(Array(label.utf8), to: note)
            timing.write += Date().timeIntervalSince(tw)
            begin(label)
            let t0 = Date()
            do { try target.parse(dir); timing.accepted += 1 } catch {
                if FuzzConfig.verbose {
                    let kind = String("\(error)".replacingOccurrences(of: dir, with: "").filter { !$0.isNumber }.prefix(90))
                    errorKinds[kind, default: 0] += 1
                }
            }
            let dt = Date().timeIntervalSince(t0)
            end()
            timing.parse += dt
            if dt > timing.slowest { timing.slowest = dt; timing.slowestIndex = i }
            if dt > FuzzConfig.slowSeconds { failures.append("\(label): took \(String(format: "%.1f", dt)) s") }
        }
        return (indices.count, failures)
    }
}

func fnv1a(_ s: String) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    return h
}

/// The seeded mutator.
struct Mutator {
    var rng: SplitMix
    init(seed: UInt64) { rng = SplitMix(seed: seed) }

    mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(rng.next() % UInt64(n)) }
    mutating func chance(_ p: Double) -> Bool { Double(rng.next() >> 11) / Double(1 << 53) < p }
    mutating func pick<T>(_ a: [T]) -> T { a[below(a.count)] }

    static let interestingIntegers: [Int64] = [0, 1, -1, 2, 7, 8, 63, 64, 127, 128, 255, 256, 0x7FFF, 0xFFFF, 1 << 18, 1 << 24,
                                               Int64(Int32.max), Int64(Int32.max) + 1, Int64(UInt32.max), 1 << 36, 1 << 40,
                                               Int64.max, Int64.min, Int64.max - 7, -2, -(1 << 31)]
    static let interestingNumbers = ["0", "-0", "1", "-1", "2", "3", "255", "256", "65536", "262144", "2147483647", "2147483648",
                                     "4294967296", "-2147483649", "9223372036854775807", "9223372036854775808",
                                     "-9223372036854775808", "-9223372036854775809", "18446744073709551616",
                                     "1e308", "-1e308", "1e309", "4.9e-324", "0.5", "1.0", "-0.0", "NaN", "Infinity",
                                     "-Infinity", "1e1000", "99999999999999999999999999999", "0x10", "1_000", ".5", "1.", "01"]
    static let wrongValues = ["null", "true", "false", "\"\"", "\"x\"", "[]", "{}", "[1,2]", "{\"a\":1}", "[[]]", "\"F32\"",
                              "\"I64\"", "\"U8\"", "\"BOOL\"", "\"F64\"", "\"I8\"", "\"I16\"", "\"BF16\"", "\"F16\"", "\"I32\"",
                              "\"LORA\"", "\"mean\"", "\"Normalize\"", "\"WordPiece\"", "\"BertNormalizer\"", "\"ties\"",
                              "\"dare_ties\"", "\"slerp\"", "\"linear\"", "\"task_arithmetic\"", "\"model_stock\"",
                              "\"../../../etc/passwd\"", "\"\\u0000\"", "\"\\ud800\"", "\"" + String(repeating: "A", count: 3000) + "\""]

    /// A mutant of one of `seeds`: 1–3 edits to one file (sometimes two), styled by its file.
    mutating func mutant(of seeds: [FuzzInput]) -> FuzzInput {
        var input = pick(seeds)
        let mutable = input.files.indices.filter { input.files[$0].style != .fixed }
        guard !mutable.isEmpty else { return input }
        let donors = seeds.flatMap { $0.files.filter { $0.style != .fixed }.map(\.bytes) }
        let nFiles = chance(0.15) && mutable.count > 1 ? 2 : 1
        for _ in 0..<nFiles {
            let k = pick(mutable)
            var f = input.files[k]
            let edits = 1 + below(3)
            for _ in 0..<edits {
                f.bytes = mutate(f.bytes, style: f.style, donors: donors)
                if f.bytes.count > 4 << 20 { f.bytes.removeSubrange((4 << 20)...) }  // keep mutants ≤ 4 MiB
            }
            input.files[k] = f
        }
        return input
    }

    mutating func mutate(_ b: [UInt8], style: MutationStyle, donors: [[UInt8]]) -> [UInt8] {
        switch style {
        case .fixed: return b
        case .binary: return binary(b, donors: donors)
        case .json:
            if chance(0.5), let t = jsonTree(b) { return t }
            return chance(0.6) ? text(b, yaml: false) : binary(b, donors: donors)
        case .yaml: return chance(0.75) ? text(b, yaml: true) : binary(b, donors: donors)
        case .safetensors: return safetensors(b, donors: donors)
        case .alloy: return AlloyMutation.mutate(b, with: &self, donors: donors)
        }
    }

    // MARK: bytes

    mutating func binary(_ input: [UInt8], donors: [[UInt8]]) -> [UInt8] {
        var b = input
        let n = b.count
        switch below(10) {
        case 0 where n > 0:
            b[below(n)] ^= UInt8(1 << below(8))
        case 1 where n > 0:
            b[below(n)] = pick([0, 0xFF, 0x7F, 0x80, 0x20, 0x22, 0x7B, 0x5B, 0x5C, 0x2D, 0x0D, 0x0A, UInt8(truncatingIfNeeded: rng.next())])
        case 2:
            let count = pick([1, 2, 4, 8, 64, 1000])
            let byte = UInt8(truncatingIfNeeded: rng.next())
            let bytes = chance(0.5) ? [UInt8](repeating: byte, count: count) : (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            b.insert(contentsOf: bytes, at: below(n + 1))
        case 3 where n > 0:
            let lo = below(n), len = 1 + below(min(n - lo, chance(0.7) ? 8 : n))
            b.removeSubrange(lo..<(lo + len))
        case 4:
            b = Array(b.prefix(below(n + 1)))
        case 5 where n > 0:
            let lo = below(n), len = 1 + below(min(n - lo, 256))
            b.insert(contentsOf: b[lo..<(lo + len)], at: below(n + 1))
        case 6 where !donors.isEmpty:
            let d = pick(donors)
            if !d.isEmpty {
                let cut = below(n + 1), from = below(d.count)
                b = Array(b.prefix(cut)) + Array(d[from...])
            }
        case 7, 8 where n > 0:
            let v = pick(Self.interestingIntegers)
            let width = pick([1, 2, 4, 8])
            let at = below(n)
            withUnsafeBytes(of: v.littleEndian) { raw in
                for j in 0..<width where at + j < n { b[at + j] = raw[j] }
            }
        default:
            if n > 0 { b[below(n)] = UInt8(truncatingIfNeeded: rng.next()) } else { b = [UInt8(truncatingIfNeeded: rng.next())] }
        }
        return b
    }

    // MARK: text

    /// Byte ranges of number tokens in JSON/YAML text.
    static func numberRanges(_ b: [UInt8]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = 0
        func isNum(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || c == 0x2D || c == 0x2E || c == 0x65 || c == 0x45 || c == 0x2B }
        while i < b.count {
            if (b[i] >= 0x30 && b[i] <= 0x39) || (b[i] == 0x2D && i + 1 < b.count && b[i + 1] >= 0x30 && b[i + 1] <= 0x39) {
                let s = i
                while i < b.count, isNum(b[i]) { i += 1 }
                out.append(s..<i)
            } else { i += 1 }
        }
        return out
    }

    /// The byte range of the JSON value that follows the `:` at `colon` (up to the next `,`,
    /// `}`, `]` or newline at the same nesting level, roughly; at most 64 KiB scanned).
    static func valueRange(_ b: [UInt8], colon i: Int) -> Range<Int>? {
        var s = i + 1
        while s < b.count, b[s] == 0x20 { s += 1 }
        var e = s, depth = 0, inString = false
        let limit = min(b.count, s + 65536)
        while e < limit {
            let ch = b[e]
            if inString { if ch == 0x5C { e += 1 } else if ch == 0x22 { inString = false } }
            else if ch == 0x22 { inString = true }
            else if ch == 0x7B || ch == 0x5B { depth += 1 }
            else if ch == 0x7D || ch == 0x5D { if depth == 0 { break }; depth -= 1 }
            else if (ch == 0x2C || ch == 0x0A) && depth == 0 { break }
            e += 1
        }
        return e > s ? s..<min(e, b.count) : nil
    }

    /// The value after a randomly chosen `:`, if any.
    mutating func randomValueRange(_ b: [UInt8]) -> Range<Int>? {
        let colons = b.indices.filter { b[$0] == 0x3A }
        guard !colons.isEmpty else { return nil }
        return Self.valueRange(b, colon: pick(colons))
    }

    static func stringRanges(_ b: [UInt8]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = 0
        while i < b.count {
            if b[i] == 0x22 {
                let s = i
                i += 1
                while i < b.count, b[i] != 0x22 { if b[i] == 0x5C { i += 1 }; i += 1 }
                if i < b.count { out.append(s..<(i + 1)) }
            }
            i += 1
        }
        return out
    }

    mutating func text(_ input: [UInt8], yaml: Bool) -> [UInt8] {
        var b = input
        switch below(8) {
        case 0, 1:
            let r = Self.numberRanges(b)
            guard !r.isEmpty else { return binary(b, donors: []) }
            b.replaceSubrange(pick(r), with: Array(pick(Self.interestingNumbers).utf8))
        case 2:
            guard let r = randomValueRange(b) else { return binary(b, donors: []) }
            b.replaceSubrange(r, with: Array(pick(Self.wrongValues).utf8))
        case 3:
            let r = Self.stringRanges(b)
            guard !r.isEmpty else { return binary(b, donors: []) }
            b.replaceSubrange(pick(r), with: Array(pick(Self.wrongValues).utf8))
        case 4:
            // Duplicate a member: `"k": v` again right after itself.
            guard let v = randomValueRange(b) else { return binary(b, donors: []) }
            var ks = v.lowerBound - 1
            var steps = 0
            while ks > 0, b[ks] != 0x2C, b[ks] != 0x7B, b[ks] != 0x0A, steps < 4096 { ks -= 1; steps += 1 }
            let member = Array(b[(ks + 1)..<v.upperBound])
            b.insert(contentsOf: (yaml ? [0x0A] : [0x2C]) + member, at: v.upperBound)
        case 5:
            // Deep nesting.
            let depth = pick([64, 200, 1000, 5000, 5000, 100_000])
            let open = yaml ? pick(["[", "{a: ", "- "]) : pick(["[", "{\"a\":"])
            let close = open == "[" ? "]" : open.hasPrefix("{") ? "}" : ""
            let at = below(b.count + 1)
            var nest = Array(String(repeating: open, count: depth).utf8)
            if chance(0.5) { nest += Array(String(repeating: close, count: depth).utf8) }
            b.insert(contentsOf: nest, at: at)
        case 6 where yaml:
            // Anchors and aliases, tabs, odd scalars.
            let s = pick(["\r", "\r- - - -", "\r\n", "\u{85}", "&a [*a]", "*undefined", "!!binary AAAA", "<<: *a", "\t", "? [a]\n: b", "--- \n...\n", "~", "0o17", ".nan", ".inf", "!!python/object:os.system ls", "a: &x [1, 2]\nb: [*x, *x, *x, *x]"])
            b.insert(contentsOf: Array(s.utf8), at: below(b.count + 1))
        default:
            return binary(b, donors: [])
        }
        return b
    }

    // MARK: safetensors

    mutating func safetensors(_ input: [UInt8], donors: [[UInt8]]) -> [UInt8] {
        if chance(0.3), let relaid = safetensorsRelayout(input) { return relaid }
        guard input.count >= 8, chance(0.7) else { return binary(input, donors: donors) }
        let n = input.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) & 0xFFFF_FFFF) }
        guard n <= input.count - 8 else { return binary(input, donors: donors) }
        let header = Array(input[8..<(8 + n)])
        let data = Array(input[(8 + n)...])
        var h = chance(0.6) ? (jsonTree(header) ?? text(header, yaml: false)) : text(header, yaml: false)
        // The reference writer pads the header with spaces to a multiple of 8.
        if chance(0.5) { while h.count % 8 != 0 { h.append(0x20) } }
        var d = data
        if chance(0.2) { d = d.isEmpty ? [0] : Array(d.prefix(below(d.count + 1))) }
        if chance(0.1) { h.append(contentsOf: [UInt8](repeating: 0x20, count: below(9))) }
        var out = [UInt8]()
        withUnsafeBytes(of: UInt64(h.count).littleEndian) { out.append(contentsOf: $0) }
        return out + h + d
    }
}

/// On a trap or fault while a mutant is parsed, writes which mutant it was to stderr, then
/// hands the signal back to the previous handler (Swift's backtracer), so a crash names its
/// input in the test log and not only in `current.txt`.
enum CrashNote {
    static let capacity = 4096
    nonisolated(unsafe) static let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
    nonisolated(unsafe) static var length = 0
    static let signals: [Int32] = [SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGFPE]
    nonisolated(unsafe) static let previous = UnsafeMutablePointer<sigaction>.allocate(capacity: 5)
    nonisolated(unsafe) static var installed = false

    /// Sets the note written on a crash (truncated to the buffer).
    static func set(_ note: String) {
        let bytes = Array(("\nFUZZ CRASH while parsing " + note + "\n").utf8.prefix(capacity))
        length = 0
        bytes.withUnsafeBufferPointer { b in if let base = b.baseAddress { buffer.update(from: base, count: b.count) } }
        length = bytes.count
    }

    static func clear() { length = 0 }

    static func install() {
        guard !installed else { return }
        installed = true
        // The handler runs on an alternate stack, so a stack overflow (a fault on the guard
        // page) still reaches it, as it reaches Swift's backtracer.
        var current = stack_t()
        sigaltstack(nil, &current)
        if current.ss_flags & Int32(SS_DISABLE) != 0 {
            let size = 1 << 16
            var alt = stack_t()
            alt.ss_sp = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
            alt.ss_size = size
            alt.ss_flags = 0
            sigaltstack(&alt, nil)
        }
        for (i, sig) in signals.enumerated() {
            sigaction(sig, nil, previous + i)
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { sig in
                if CrashNote.length > 0 { _ = write(2, CrashNote.buffer, CrashNote.length) }
                // Restore the previous handler; returning re-executes the faulting
                // instruction, which now reaches it.
                if let i = CrashNote.signals.firstIndex(of: sig) { sigaction(sig, CrashNote.previous + i, nil) }
                else { signal(sig, SIG_DFL) }
            }
            action.sa_flags = Int32(SA_ONSTACK)
            sigaction(sig, &action, nil)
        }
    }
}
