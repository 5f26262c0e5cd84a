import AsyncHTTPClient
import Encoder
import Foundation
import NIOCore
import XCTest

/// The built `alloy` executable: `alloy serve` drains its requests in flight on SIGTERM and
/// exits 0; `/embed` and `/predict` print what `alloy embed` and `alloy classify --json` print.
final class ServeProcessTests: XCTestCase {
    var alloy = ""
    var dir = ""

    override func setUpWithError() throws {
        let candidates = ["debug", "release"].map { ServingFixture.repo + "/.build/\($0)/alloy" }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("no alloy executable in .build/debug or .build/release; run `swift build --build-tests` first (Scripts/test does)")
        }
        alloy = found
        dir = try ServingFixture.tempDir(name)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// Starts `alloy serve` on an ephemeral port, its log in a file (a pipe nobody reads would
    /// fill up); the process, its port (read from the log) and the log's path.
    func serve(_ args: [String]) throws -> (Process, Int, String) {
        let logPath = dir + "/serve.log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: alloy)
        p.arguments = ["serve", "--port", "0"] + args
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(60)
        var text = ""
        while Date() < deadline, p.isRunning {
            text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            if let r = text.range(of: "listening on http://127.0.0.1:") {
                let digits = text[r.upperBound...].prefix { $0.isNumber }
                if let port = Int(digits), text[r.upperBound...].dropFirst(digits.count).first != nil { return (p, port, logPath) }
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        p.terminate()
        struct NoPort: Error, CustomStringConvertible { let description: String }
        throw NoPort(description: "alloy serve did not report its port: \(text)")
    }

    func run(_ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: alloy)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "alloy \(args.joined(separator: " "))")
        return String(decoding: data, as: UTF8.self)
    }

    static func post(_ client: HTTPClient, _ port: Int, _ path: String, _ object: Any) async throws -> (Int, Any?) {
        var req = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        req.method = .POST
        req.headers.add(name: "content-type", value: "application/json")
        req.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: object)))
        let res = try await client.execute(req, timeout: .seconds(120))
        let buf = try await res.body.collect(upTo: 64 << 20)
        return (Int(res.status.code), try? JSONSerialization.jsonObject(with: Data(buffer: buf), options: [.fragmentsAllowed]))
    }

    func testAnswersEqualTheCLIAndSIGTERMDrainsRequestsInFlight() async throws {
        let base = try ServingFixture.base(in: dir)
        let lora = try ServingFixture.lora(in: dir, k: 1, factor: 2.5)
        let texts = ServingFixture.sentences(6, seed: 7)
        let input = dir + "/texts.txt"
        try (texts.joined(separator: "\n") + "\n").write(toFile: input, atomically: true, encoding: .utf8)
        // What the CLI prints.
        func jsonl(_ s: String) -> [Any] { s.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } }
        let cliBase = vectors(jsonl(try run(["embed", "--model", base, "--input", input])).map { ($0 as? [String: Any])?["embedding"] ?? [] })
        let cliLoRA = vectors(jsonl(try run(["embed", "--model", base, "--adapter", lora, "--input", input])).map { ($0 as? [String: Any])?["embedding"] ?? [] })
        let cliClassify = jsonl(try run(["classify", "--model", base, "--adapter", lora, "--input", input, "--json"])).compactMap { ($0 as? [String: Any])?["probabilities"] as? [String: Any] }
        XCTAssertEqual(cliBase.count, texts.count)
        XCTAssertEqual(cliClassify.count, texts.count)

        let (p, port, logPath) = try serve(["--model", base, "--max-batch-tokens", "64", "--max-client-batch-size", "512"])
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        // A second client for /metrics: the first one's 8 connections per host are all busy.
        let monitor = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            let (s1, b) = try await Self.post(client, port, "/embed", ["inputs": texts])
            XCTAssertEqual(s1, 200)
            XCTAssertLessThanOrEqual(maxDifference(vectors(b), cliBase), 2e-6)
            let (s2, l) = try await Self.post(client, port, "/embed", ["inputs": texts, "adapter_id": lora])
            XCTAssertEqual(s2, 200)
            XCTAssertLessThanOrEqual(maxDifference(vectors(l), cliLoRA), 2e-6)
            let (s3, pr) = try await Self.post(client, port, "/predict", ["inputs": texts, "adapter_id": lora])
            XCTAssertEqual(s3, 200)
            let answers = pr as? [[[String: Any]]] ?? []
            XCTAssertEqual(answers.count, texts.count)
            for (a, want) in zip(answers, cliClassify) {
                for e in a {
                    guard let label = e["label"] as? String, let score = (e["score"] as? NSNumber)?.doubleValue, let w = (want[label] as? NSNumber)?.doubleValue else { XCTFail("\(e) \(want)"); continue }
                    XCTAssertEqual(score, w, accuracy: 1e-6)
                }
            }

            // Drain: 8 requests of 256 long inputs each (2048 batches at 64 tokens), SIGTERM once
            // all 8 are in flight; every one is answered in full, then the process exits 0.
            let long = ServingFixture.sentences(256, seed: 8, maxWords: 60).map { $0 + " " + $0 }
            let inFlight = try await withThrowingTaskGroup(of: (Int, Int, Date).self) { g in
                for _ in 0..<8 {
                    g.addTask { let (s, v) = try await Self.post(client, port, "/embed", ["inputs": long]); return (s, (v as? [Any])?.count ?? -1, Date()) }
                }
                // Wait until the server holds all 8, then SIGTERM.
                var seen = false
                for _ in 0..<400 where !seen {
                    var req = HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics")
                    req.method = .GET
                    if let res = try? await monitor.execute(req, timeout: .seconds(10)), let body = try? await res.body.collect(upTo: 1 << 20) {
                        seen = String(buffer: body).contains("alloy_requests_in_flight 8.0")
                    }
                    if !seen { try await Task.sleep(for: .milliseconds(5)) }
                }
                XCTAssertTrue(seen, "the 8 requests were never in flight together")
                let signalled = Date()
                kill(p.processIdentifier, SIGTERM)
                var out: [(Int, Int, Date)] = []
                for try await r in g { out.append(r) }
                return out.map { ($0.0, $0.1, $0.2) } + [(0, 0, signalled)]
            }
            let signalled = inFlight.last?.2 ?? Date()
            let answered = inFlight.dropLast()
            XCTAssertEqual(answered.map(\.0), Array(repeating: 200, count: 8))
            XCTAssertEqual(answered.map(\.1), Array(repeating: 256, count: 8))
            XCTAssertTrue(answered.contains { $0.2 > signalled }, "no request was still in flight at SIGTERM")
            let deadline = Date().addingTimeInterval(60)
            while p.isRunning, Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
            XCTAssertFalse(p.isRunning, "alloy serve did not exit after SIGTERM")
            XCTAssertEqual(p.terminationStatus, 0)
            XCTAssertEqual(p.terminationReason, .exit)
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            XCTAssertTrue(log.contains("POST /embed 200"), "one log line per request: \(log.suffix(500))")
        } catch {
            p.terminate()
            try await client.shutdown()
            try await monitor.shutdown()
            throw error
        }
        try await client.shutdown()
        try await monitor.shutdown()
    }
}
