import ArgumentParser
import Foundation
import XCTest
@testable import AlloyCLI

/// Runs `alloy` commands in-process and compares what they print with golden files.
///
/// A golden file (Golden/<case>.txt) holds the command line, standard output, standard error
/// and, for a failure, the error message and exit status, after `normalise`: the case's
/// temporary folder becomes `$TMP`, the repository `$REPO`, dates `<date>` and timings `<t>`.
/// `ALLOY_UPDATE_GOLDEN=1` rewrites the files instead of comparing (review the diff).
class CLITestCase: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized.path
    static let goldenDir = repo + "/Tests/alloyTests/Golden"
    static let updating = ProcessInfo.processInfo.environment["ALLOY_UPDATE_GOLDEN"] == "1"

    /// A fresh temporary folder per test, removed afterwards.
    var tmp = ""

    override func setUpWithError() throws {
        tmp = (NSTemporaryDirectory() as NSString).appendingPathComponent("alloy-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: tmp)
    }

    struct Result {
        var stdout: String
        var stderr: String
        /// `Alloy.message(for:)` of the error thrown, nil on success.
        var error: String?
        var exitCode: Int32
    }

    /// Parses and runs `args` as `alloy` would, with the output captured.
    func alloy(_ args: [String]) -> Result {
        let capture = CapturedOutput()
        var message: String? = nil, code: Int32 = 0
        Output.$current.withValue(capture.output) {
            do {
                var command = try Alloy.parseAsRoot(args)
                try command.run()
            } catch {
                message = Alloy.message(for: error)
                code = Alloy.exitCode(for: error).rawValue
            }
        }
        return Result(stdout: capture.stdout, stderr: capture.stderr, error: message, exitCode: code)
    }

    /// Runs `args` and expects success; returns standard output.
    @discardableResult
    func ok(_ args: [String], file: StaticString = #filePath, line: UInt = #line) -> String {
        let r = alloy(args)
        XCTAssertNil(r.error, "alloy \(args.joined(separator: " ")) failed", file: file, line: line)
        XCTAssertEqual(r.exitCode, 0, file: file, line: line)
        return r.stdout
    }

    /// Runs `args`, expects success (or, with `fails`, a failure), and compares the transcript
    /// with Golden/<name>.txt.
    @discardableResult
    func golden(_ name: String, _ args: [String], fails: Bool = false, file: StaticString = #filePath, line: UInt = #line) -> Result {
        let r = alloy(args)
        if fails {
            XCTAssertNotNil(r.error, "\(name): expected a failure", file: file, line: line)
            XCTAssertNotEqual(r.exitCode, 0, "\(name): expected a non-zero exit status", file: file, line: line)
        } else {
            XCTAssertNil(r.error, "\(name): \(r.error ?? "")", file: file, line: line)
            XCTAssertEqual(r.exitCode, 0, file: file, line: line)
        }
        var text = "$ alloy " + args.map { $0.contains(" ") || $0.isEmpty ? "'\($0)'" : $0 }.joined(separator: " ") + "\n" + r.stdout
        if !r.stderr.isEmpty { text += "--- stderr\n" + r.stderr }
        if let e = r.error { text += "--- error (exit \(r.exitCode))\n" + e + "\n" }
        compare(name, normalise(text), file: file, line: line)
        return r
    }

    /// Compares `text` with Golden/<name>.txt (or writes it when updating).
    func compare(_ name: String, _ text: String, file: StaticString = #filePath, line: UInt = #line) {
        let path = Self.goldenDir + "/\(name).txt"
        if Self.updating {
            XCTAssertNoThrow(try text.write(toFile: path, atomically: true, encoding: .utf8), file: file, line: line)
        } else if let expected = try? String(contentsOfFile: path, encoding: .utf8) {
            if expected != text {
                XCTFail("\(name): output differs from Golden/\(name).txt\n\(diff(expected, text))", file: file, line: line)
            }
        } else {
            XCTFail("\(name): no Golden/\(name).txt (run with ALLOY_UPDATE_GOLDEN=1 to write it)\n\(text)", file: file, line: line)
        }
    }

    /// Temporary and repository paths, dates, digests of temporary content and timings made stable.
    func normalise(_ s: String) -> String {
        var t = s.replacingOccurrences(of: tmp, with: "$TMP")
        t = t.replacingOccurrences(of: (tmp as NSString).resolvingSymlinksInPath, with: "$TMP")
        t = t.replacingOccurrences(of: Self.repo, with: "$REPO")
        let rules: [(String, String)] = [
            (#"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?Z?"#, "<date>"),
            (#"in \d+\.\d+ s"#, "in <t> s"),
            (#"\d+\.\d GB/s"#, "<t> GB/s"),
            (#""(seconds|memory_GBps)" : [-0-9.e+]+"#, "\"$1\" : <t>"),
            (#"(?m)^\d+ s; "#, "<t> s; "),
        ]
        for (pattern, template) in rules {
            t = t.replacingOccurrences(of: pattern, with: template, options: .regularExpression)
        }
        return roundLongNumbers(t)
    }

    /// Numbers printed at full precision keep 10 significant digits: sums whose order is not
    /// fixed (Store.compare adds per-layer figures from a dictionary) differ in the last bits.
    func roundLongNumbers(_ s: String) -> String {
        guard let re = try? NSRegularExpression(pattern: #"-?\d+\.\d{9,}(e[-+]?\d+)?"#) else { return s }
        var out = s
        for m in re.matches(in: s, range: NSRange(s.startIndex..., in: s)).reversed() {
            // Matches are replaced from the last, so earlier ranges stay valid in `out`.
            guard let r = Range(m.range, in: s), let v = Double(s[r]), let o = Range(m.range, in: out) else { continue }
            out.replaceSubrange(o, with: String(format: "%.10g", v))
        }
        return out
    }

    /// The first differing line of two texts, for a readable failure.
    func diff(_ a: String, _ b: String) -> String {
        let x = a.components(separatedBy: "\n"), y = b.components(separatedBy: "\n")
        for i in 0..<max(x.count, y.count) {
            let l = i < x.count ? x[i] : "<end>", r = i < y.count ? y[i] : "<end>"
            if l != r { return "line \(i + 1):\n  golden: \(l)\n  actual: \(r)" }
        }
        return ""
    }

    // MARK: fixtures

    static func fixture(_ rel: String) -> String { repo + "/Tests/" + rel }
    static var tiny: String { fixture("EncoderTests/Fixtures/tiny") }
    static var merging: String { fixture("MergingTests/Fixtures") }
    static var minilm: String { repo + "/.assets/minilm" }
    static var tasks: String { repo + "/.assets/tasks" }

    /// The real MiniLM and task files (fetched by Scripts/fetch-assets, which Scripts/test runs).
    func requireAssets() throws {
        guard FileManager.default.fileExists(atPath: Self.minilm + "/tokenizer.json"),
              FileManager.default.fileExists(atPath: Self.tasks + "/sms_spam/test.jsonl") else {
            throw XCTSkip("MiniLM or task files not fetched: run Scripts/fetch-assets (Scripts/test does)")
        }
    }
}
