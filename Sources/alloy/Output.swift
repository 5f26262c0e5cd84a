import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Aligned text tables and number formatting for command output (stdout); diagnostics go to
/// stderr. The only place output formatting lives.
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
                let pad = String(repeating: " ", count: max(0, widths[i] - c.count))
                return align[i] == .right ? pad + c : c + pad
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
        let s = String(abs(n))
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
}

enum Console {
    static var stderrIsTerminal: Bool { isatty(STDERR_FILENO) != 0 }

    static func error(_ message: String) {
        FileHandle.standardError.write(Data(("error: " + message + "\n").utf8))
    }

    static func note(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    /// Pretty-printed, key-sorted JSON of a JSON-compatible value.
    static func json(_ value: Any) -> String {
        let data = try! JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }
}
