import Foundation
import XCTest
@testable import AlloyCLI

/// embed, classify, eval, compose, fusion, sweep and experts on the real MiniLM, the shipped
/// experts and the task files (small limits: these check the commands, not the numbers).
final class ModelCommandTests: CLITestCase {
    // Relative paths from the repository root, as Scripts/demo uses them: tables show expert
    // names, and a golden table must not depend on where the repository is.
    let adapters = "Adapters", minilm = ".assets/minilm", tasks = ".assets/tasks"
    var savedDirectory = ""

    override func setUpWithError() throws {
        try super.setUpWithError()
        savedDirectory = FileManager.default.currentDirectoryPath
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(Self.repo))
    }

    override func tearDownWithError() throws {
        FileManager.default.changeCurrentDirectoryPath(savedDirectory)
        try super.tearDownWithError()
    }

    func writeInput() throws -> String {
        let path = tmp + "/input.txt"
        try "hello there, see you at lunch\nWIN a FREE prize now!!! text STOP to claim\n".write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testEmbed() throws {
        try requireAssets()
        let input = try writeInput()
        // JSONL: one unit vector of the model's width per line.
        let lines = ok(["embed", "--model", minilm, "--input", input]).split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        for l in lines {
            let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: [Double]])
            let v = try XCTUnwrap(obj["embedding"])
            XCTAssertEqual(v.count, 384)
            XCTAssertEqual(v.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1, accuracy: 1e-4)
        }
        // --json: one array of {text, embedding}, the same vectors.
        struct Row: Decodable { let text: String; let embedding: [Double] }
        let rows = try JSONDecoder().decode([Row].self, from: Data(ok(["embed", "--model", minilm, "--input", input, "--json", "--batch-size", "1"]).utf8))
        XCTAssertEqual(rows.map(\.text), ["hello there, see you at lunch", "WIN a FREE prize now!!! text STOP to claim"])
        let first = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: [Double]])["embedding"] ?? []
        for (a, b) in zip(rows[0].embedding, first) { XCTAssertEqual(a, b, accuracy: 1e-5) }

        golden("embed-error-batch-size", ["embed", "--model", minilm, "--input", input, "--batch-size", "0"], fails: true)
        golden("embed-error-input", ["embed", "--model", minilm, "--input", tmp + "/missing.txt"], fails: true)
        golden("embed-error-adapter", ["embed", "--model", minilm, "--input", input, "--adapter", "@2"], fails: true)
    }

    func testClassify() throws {
        try requireAssets()
        let input = try writeInput()
        golden("classify", ["classify", "--model", minilm, "--adapter", adapters + "/sms_spam/lora", "--input", input])
        let json = ok(["classify", "--model", minilm, "--adapter", adapters + "/sms_spam/lora", "--input", input, "--json"])
        struct Row: Decodable { let label: String; let probabilities: [String: Double] }
        let rows = try json.split(separator: "\n").map { try JSONDecoder().decode(Row.self, from: Data($0.utf8)) }
        XCTAssertEqual(rows.map(\.label), ["ham", "spam"])
        for r in rows { XCTAssertEqual(r.probabilities.values.reduce(0, +), 1, accuracy: 1e-5) }
        golden("classify-error-no-head", ["classify", "--model", minilm, "--input", input], fails: true)
    }

    func testEval() throws {
        try requireAssets()
        let base = ["--model", minilm, "--tasks-dir", tasks, "--limit", "8"]
        golden("eval-head", ["eval", "--adapter", adapters + "/sms_spam/lora", "--tasks", "sms_spam"] + base)
        golden("eval-probe-json", ["eval", "--tasks", "sms_spam,amazon_sentiment", "--protocol", "probe", "--shots", "1,2", "--seeds", "2", "--json"] + base)
        golden("eval-zero-shot", ["eval", "--tasks", "sms_spam", "--protocol", "zero-shot"] + base)
        golden("eval-compose", ["eval", "--compose", adapters + "/sms_spam/lora@0.5," + adapters + "/trec_question/lora@0.5", "--tasks", "sms_spam",
                                "--experts-dir", adapters, "--plot", tmp + "/plot.svg"] + base)
        XCTAssertTrue(try String(contentsOfFile: tmp + "/plot.svg", encoding: .utf8).hasPrefix("<svg"))

        golden("eval-error-shots", ["eval", "--tasks", "sms_spam", "--protocol", "probe", "--shots", "0"] + base, fails: true)
        golden("eval-error-seeds", ["eval", "--tasks", "sms_spam", "--protocol", "probe", "--seeds", "0"] + base, fails: true)
        golden("eval-error-batch-size", ["eval", "--tasks", "sms_spam", "--batch-size", "0"] + base, fails: true)
        golden("eval-error-protocol", ["eval", "--tasks", "sms_spam", "--protocol", "oracle"] + base, fails: true)
        golden("eval-error-no-head", ["eval", "--tasks", "amazon_sentiment", "--experts-dir", tmp] + base, fails: true)
        golden("eval-error-task", ["eval", "--tasks", "no_such_task", "--protocol", "probe"] + base, fails: true)
    }

    func testCompose() throws {
        try requireAssets()
        let common = ["--model", minilm, "--experts", adapters + "/sms_spam/lora," + adapters + "/trec_question/lora", "--tasks-dir", tasks]
        golden("compose-learned", ["compose", "--task", "sms_spam", "--shots", "1", "--budget", "7", "--seed", "3"] + common)
        // (Retrieval embeds 32 test and 100 training inputs per expert: too slow for a debug build;
        // CompositionTests check it with fewer.)
        golden("compose-json", ["compose", "--task", "trec_question", "--method", "learned", "--shots", "1", "--budget", "7", "--json", "--out", tmp + "/r.yaml"] + common)
        XCTAssertTrue(try String(contentsOfFile: tmp + "/r.yaml", encoding: .utf8).contains("merge_method: task_arithmetic"))
        golden("compose-error-budget", ["compose", "--task", "sms_spam", "--budget", "0"] + common, fails: true)
        golden("compose-error-method", ["compose", "--task", "sms_spam", "--method", "oracle"] + common, fails: true)
        golden("compose-error-not-lora", ["compose", "--model", minilm, "--experts", adapters + "/sms_spam/sparse", "--task", "sms_spam",
                                          "--tasks-dir", tasks], fails: true)
    }

    func testFusionAndSweep() throws {
        try requireAssets()
        let table = ["--model", minilm, "--experts", adapters + "/sms_spam/lora," + adapters + "/trec_question/lora",
                     "--seen", "sms_spam,trec_question", "--held-out", "amazon_sentiment", "--tasks-dir", tasks,
                     "--limit", "8", "--shots", "2", "--seeds", "2"]
        golden("fusion", ["fusion", "--row", "half spam=" + adapters + "/sms_spam/lora@0.5", "--budget", "7", "--compose-shots", "1",
                          "--no-retrieval", "--out", tmp + "/fusion"] + table)
        for f in ["results.md", "results.json", "results.svg"] { XCTAssertTrue(FileManager.default.fileExists(atPath: tmp + "/fusion/" + f), f) }
        golden("fusion-json", ["fusion", "--no-learned", "--no-retrieval", "--json"] + table)
        golden("fusion-error-row", ["fusion", "--row", "no-equals-sign"] + table, fails: true)
        golden("fusion-error-limit", ["fusion", "--limit=-1"] + table.filter { $0 != "--limit" && $0 != "8" }, fails: true)

        // A recipe that merges MiniLM with itself: the swept variants equal the base.
        try """
            merge_method: task_arithmetic
            base_model: \(Self.minilm)
            parameters:
              lambda: 1.0
            models:
              - model: \(Self.minilm)
                parameters:
                  weight: 1.0
            """.write(toFile: tmp + "/self.yaml", atomically: true, encoding: .utf8)
        let sweepTable = ["--model", minilm, "--experts", adapters + "/sms_spam/lora", "--seen", "sms_spam", "--held-out", "amazon_sentiment",
                          "--tasks-dir", tasks, "--limit", "8", "--shots", "2", "--seeds", "1"]
        golden("sweep", ["sweep", tmp + "/self.yaml", "--param", "lambda", "--values", "0.5", "--out", tmp + "/sweep"] + sweepTable)
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp + "/sweep/sweep-task_arithmetic-lambda.svg"))
        golden("sweep-error-values", ["sweep", tmp + "/self.yaml", "--param", "lambda", "--values", "a,b"] + sweepTable, fails: true)
    }

    func testExperts() throws {
        golden("experts", ["experts", "--dir", adapters])
        golden("experts-json", ["experts", "--dir", adapters, "--json"])
        golden("experts-error-dir", ["experts", "--dir", tmp], fails: true)
        try "{\"labels\": 3}".write(toFile: tmp + "/card.json", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: tmp + "/bad", withIntermediateDirectories: true)
        try FileManager.default.moveItem(atPath: tmp + "/card.json", toPath: tmp + "/bad/card.json")
        golden("experts-error-card", ["experts", "--dir", tmp], fails: true)
    }

    /// The overview lists the subcommands in their groups; `--help` is a clean exit (status 0).
    func testOverview() throws {
        let r = alloy(["--help"])
        XCTAssertEqual(r.exitCode, 0)
        XCTAssertEqual(r.error, Alloy.helpMessage(columns: nil))
        compare("help", Alloy.helpMessage(columns: 100))
        golden("unknown-command", ["frobnicate"], fails: true)
    }

    /// `serve`'s option checks and a missing model (its success path runs the real process in
    /// ServingTests.ServeProcessTests: answers equal `embed`/`classify`, SIGTERM drains).
    func testServeErrors() throws {
        golden("serve-error-port", ["serve", "--model", minilm, "--port", "70000"], fails: true)
        golden("serve-error-batch", ["serve", "--model", minilm, "--max-batch-tokens", "0"], fails: true)
        golden("serve-error-model", ["serve", "--model", tmp + "/nowhere", "--store", tmp + "/store"], fails: true)
    }
}
