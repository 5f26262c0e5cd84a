import Foundation
import Formats

/// A labelled task split: JSONL lines of `{"text": …, "label": …}`.
public struct TaskData: Sendable {
    public let name: String
    public let texts: [String]
    public let labels: [String]

    /// Reads `path`. Empty lines, lines that are not `{"text","label"}` objects, and labels
    /// outside `allowed` (when given) are errors naming the file and line.
    public init(path: String, name: String? = nil, allowed: [String]? = nil) throws {
        self.name = name ?? ((path as NSString).deletingLastPathComponent as NSString).lastPathComponent
        guard let data = FileManager.default.contents(atPath: path) else { throw TaskError(path: path, line: nil, reason: "cannot read the file") }
        var texts: [String] = [], labels: [String] = []
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        for (i, line) in lines.enumerated() {
            if i == lines.count - 1 && line.isEmpty { break }
            guard !line.trimmingCharacters(in: .whitespaces).isEmpty else { throw TaskError(path: path, line: i + 1, reason: "empty line") }
            guard let obj = try? JSONValue.parse(String(line)),
                  case .string(let text)? = obj["text"], case .string(let label)? = obj["label"] else {
                throw TaskError(path: path, line: i + 1, reason: "expected a JSON object with string fields \"text\" and \"label\"")
            }
            if let allowed, !allowed.contains(label) {
                throw TaskError(path: path, line: i + 1, reason: "unknown label \"\(label)\" (the head knows \(allowed.joined(separator: ", ")))")
            }
            texts.append(text)
            labels.append(label)
        }
        guard !texts.isEmpty else { throw TaskError(path: path, line: nil, reason: "no examples") }
        self.texts = texts
        self.labels = labels
    }

    public init(name: String, texts: [String], labels: [String]) {
        self.name = name
        self.texts = texts
        self.labels = labels
    }

    public var labelSet: [String] { Array(Set(labels)).sorted() }
}

public struct TaskError: Error, CustomStringConvertible {
    public let path: String
    public let line: Int?
    public let reason: String
    public init(path: String, line: Int?, reason: String) { self.path = path; self.line = line; self.reason = reason }
    public var description: String { line.map { "\(path):\($0): \(reason)" } ?? "\(path): \(reason)" }
}
