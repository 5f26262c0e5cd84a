import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where the commands write: results to `out` (standard output), diagnostics and progress
/// bars to `err` (standard error). Commands never call `print`; they write through
/// `Output.current`, which tests replace for the duration of a call with `Output.$current.withValue`.
public struct Output: Sendable {
    /// Writes text to the results stream (the text carries its own newlines).
    public let out: @Sendable (String) -> Void
    /// Writes text to the diagnostics stream.
    public let err: @Sendable (String) -> Void
    /// Whether progress bars are drawn (only when diagnostics go to a terminal).
    public let drawsProgress: Bool

    public init(out: @escaping @Sendable (String) -> Void, err: @escaping @Sendable (String) -> Void, drawsProgress: Bool) {
        self.out = out; self.err = err; self.drawsProgress = drawsProgress
    }

    /// Standard output and standard error; progress bars when standard error is a terminal.
    public static let standard = Output(
        out: { FileHandle.standardOutput.write(Data($0.utf8)) },
        err: { FileHandle.standardError.write(Data($0.utf8)) },
        drawsProgress: isatty(STDERR_FILENO) != 0)

    /// The sink the commands running in this task write to.
    @TaskLocal public static var current = Output.standard
}

/// An in-memory `Output` for tests: everything written, per stream.
public final class CapturedOutput: Sendable {
    private let streams = Mutex<(out: String, err: String)>(("", ""))

    public init() {}

    public var output: Output {
        Output(out: { s in self.streams.withLock { $0.out += s } }, err: { s in self.streams.withLock { $0.err += s } }, drawsProgress: false)
    }
    public var stdout: String { streams.withLock { $0.out } }
    public var stderr: String { streams.withLock { $0.err } }
}

/// Writing for commands: results, notes, JSON.
enum Console {
    /// A line (or `terminator`-ended text) of results.
    static func print(_ text: String = "", terminator: String = "\n") { Output.current.out(text + terminator) }

    /// A diagnostic line on standard error.
    static func note(_ message: String) { Output.current.err(message + "\n") }

    /// Pretty-printed, key-sorted JSON of an `Encodable` value, as one line of results.
    static func printJSON<T: Encodable>(_ value: T) throws { print(try json(value)) }

    static func json<T: Encodable>(_ value: T, pretty: Bool = true) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try e.encode(value), as: UTF8.self)
    }
}

/// A number in JSON output: non-finite values (NaN, ±∞) are written as `null`, which JSON
/// has no other way to say.
struct JSONNumber: Encodable, Sendable {
    let value: Double
    init(_ value: Double) { self.value = value }
    init(_ value: Float) { self.value = Double(value) }

    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        if value.isFinite { try c.encode(value) } else { try c.encodeNil() }
    }
}

/// A one-line progress bar on standard error, drawn only when `Output.current` draws progress.
final class Progress: @unchecked Sendable {
    // @unchecked: the state sits behind `lock`; the encoder calls `update` from one thread at a time,
    // but the closure it is called through is @Sendable.
    private let lock = NSLock()
    private let total: Int
    private let label: String
    private let output: Output

    /// A bar writing to `output` (the caller's: worker threads do not see the task's `Output.current`).
    init(total: Int, label: String, output: Output = .current) { self.total = total; self.label = label; self.output = output }

    func update(_ done: Int) {
        guard output.drawsProgress, total > 0 else { return }
        lock.lock(); defer { lock.unlock() }
        let w = 30, f = min(w, done * w / total)
        output.err("\r\(label) [\(String(repeating: "█", count: f))\(String(repeating: " ", count: w - f))] \(done)/\(total)")
        if done >= total { output.err("\n") }
    }
}

/// Progress bars for labelled stages (a library's `(label, done, total)` callback).
final class StageProgress: @unchecked Sendable {
    // @unchecked: `bars` is guarded by `lock`.
    private let lock = NSLock()
    private var bars: [String: Progress] = [:]
    private let output = Output.current

    func update(_ label: String, _ done: Int, _ total: Int) {
        lock.lock()
        let bar = bars[label] ?? Progress(total: total, label: label, output: output)
        bars[label] = bar
        lock.unlock()
        bar.update(done)
    }
}

/// Aligned text tables for command output.
struct TextTable {
    enum Align { case left, right }
    var headers: [String]
    var align: [Align]
    var rows: [[String]] = []
    /// Indices of rows after which a rule is drawn.
    var rules: Set<Int> = []

    init(_ headers: [String], align: [Align]? = nil) {
        self.headers = headers
        self.align = align ?? headers.map { _ in .left }
    }

    mutating func add(_ row: [String]) { rows.append(row) }
    mutating func rule() { if !rows.isEmpty { rules.insert(rows.count - 1) } }

    func render() -> String {
        var widths = headers.map(\.count)
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in
                let w = i < widths.count ? widths[i] : c.count
                let pad = String(repeating: " ", count: max(0, w - c.count))
                return (i < align.count ? align[i] : .left) == .right ? pad + c : c + pad
            }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        let sep = widths.map { String(repeating: "─", count: $0) }.joined(separator: "  ")
        var out = [line(headers), sep]
        for (i, r) in rows.enumerated() {
            out.append(line(r))
            if rules.contains(i) && i != rows.count - 1 { out.append(sep) }
        }
        return out.joined(separator: "\n")
    }
}

enum Fmt {
    static func int(_ n: Int) -> String {
        let s = String(n.magnitude)
        var out = ""
        for (i, c) in s.reversed().enumerated() {
            if i > 0 && i % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + String(out.reversed())
    }

    static func bytes(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n), u = 0
        while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(n) B" : String(format: "%.2f %@", v, units[u])
    }

    static func shape(_ dims: [Int]) -> String { "[" + dims.map(String.init).joined(separator: ", ") + "]" }

    /// `%.2f` of 100·x (a percentage), "—" when not finite.
    static func percent(_ x: Double, digits: Int = 2) -> String { x.isFinite ? String(format: "%.\(digits)f", 100 * x) : "—" }
}
