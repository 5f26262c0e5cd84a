import Foundation
import Formats
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// How `alloy serve` writes its log lines.
public enum LogFormat: String, Sendable, CaseIterable {
    /// One human-readable line per event (swift-log's stream handler).
    case text
    /// One JSON object per line (for log shippers: Loki, Elasticsearch, CloudWatch).
    case json
}

/// A log handler that writes each event as one JSON object on one line:
/// `{"timestamp", "level", "label", "message", …metadata}` — metadata keys at the top level
/// (a key that would shadow one of the four is written as `metadata.KEY`), integer, floating
/// and boolean values as JSON numbers and booleans, nested dictionaries and arrays as JSON.
/// Each line goes out in one `write(2)`, so lines from concurrent requests never interleave.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let write: @Sendable (String) -> Void

    /// A handler for `label` writing through `write` (default: standard error).
    public init(label: String, write: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError) {
        self.label = label
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let own = event.metadata { merged.merge(own) { _, new in new } }
        write(Self.line(timestamp: Date(), level: event.level, label: label, message: event.message.description, metadata: merged))
    }

    /// The event's line, newline-terminated; metadata in key order, so lines are deterministic.
    public static func line(timestamp: Date, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata) -> String {
        var s = "{\"timestamp\":"
        JSONValue.writeString(Self.timestamp(timestamp), into: &s)
        s += ",\"level\":"
        JSONValue.writeString(level.rawValue, into: &s)
        s += ",\"label\":"
        JSONValue.writeString(label, into: &s)
        s += ",\"message\":"
        JSONValue.writeString(message, into: &s)
        let reserved: Set<String> = ["timestamp", "level", "label", "message"]
        for key in metadata.keys.sorted() {
            s += ","
            JSONValue.writeString(reserved.contains(key) ? "metadata.\(key)" : key, into: &s)
            s += ":"
            value(metadata[key]!, into: &s)  // a key of the dictionary being walked
        }
        return s + "}\n"
    }

    static func value(_ v: Logger.Metadata.Value, into s: inout String) {
        switch v {
        case let .string(str): JSONValue.writeString(str, into: &s)
        case let .stringConvertible(c):
            switch c {
            case let b as Bool: s += b ? "true" : "false"
            case let i as any BinaryInteger: s += "\(i)"
            case let d as Double where d.isFinite: s += "\(d)"
            case let f as Float where f.isFinite: s += "\(f)"
            default: JSONValue.writeString(c.description, into: &s)
            }
        case let .array(items):
            s += "["
            for (i, item) in items.enumerated() {
                if i > 0 { s += "," }
                value(item, into: &s)
            }
            s += "]"
        case let .dictionary(d):
            s += "{"
            for (i, key) in d.keys.sorted().enumerated() {
                if i > 0 { s += "," }
                JSONValue.writeString(key, into: &s)
                s += ":"
                value(d[key]!, into: &s)  // a key of the dictionary being walked
            }
            s += "}"
        }
    }

    /// RFC 3339 in UTC with milliseconds: `2026-11-30T11:30:05.123Z`.
    static func timestamp(_ date: Date) -> String {
        let t = date.timeIntervalSince1970
        var seconds = time_t(t.rounded(.down))
        let ms = min(999, Int(((t - t.rounded(.down)) * 1000).rounded(.down)))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                      Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), ms)
    }

    /// Writes `line` to standard error in one call (retried on a short write or EINTR).
    @Sendable public static func standardError(_ line: String) {
        var bytes = Array(line.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress! + offset, $0.count - offset) }
            if n > 0 { offset += n } else if n < 0, errno == EINTR { continue } else { return }
        }
    }
}
