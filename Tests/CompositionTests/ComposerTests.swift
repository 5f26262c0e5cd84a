import XCTest
import Foundation
@testable import Composition
import Encoder
import Evaluation

/// Composition on the real base and shipped experts (MiniLM and task files come from
/// Scripts/fetch-assets; skipped with a reason when absent). Small budgets: these check the
/// machinery, the results table in docs/RESULTS.md measures it.
final class ComposerTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized.path

    func bench() throws -> Workbench {
        let minilm = Self.repo + "/.assets/minilm", tasks = Self.repo + "/.assets/tasks"
        guard FileManager.default.fileExists(atPath: minilm + "/tokenizer.json"), FileManager.default.fileExists(atPath: tasks + "/sms_spam/test.jsonl") else {
            throw XCTSkip("MiniLM or task files not fetched: run Scripts/fetch-assets (Scripts/test does)")
        }
        let encoder = try SentenceEncoder(directory: minilm)
        let experts = try ["sms_spam", "trec_question"].map { t -> Expert in
            let dir = Self.repo + "/Adapters/\(t)/lora"
            return Expert(name: t, task: t, adapter: try LoRAAdapter(peft: dir, for: encoder.model, labels: ClassificationHead.labels(near: dir)))
        }
        let b = Workbench(encoder: encoder, tasksDir: tasks, experts: experts)
        b.limit = 40
        b.zeroShotFile = Self.repo + "/Tasks/zero-shot.json"
        return b
    }

    func testRetrievalPicksTheTasksOwnExpert() throws {
        let b = try bench()
        XCTAssertEqual(try Composer.retrieve(b, task: "sms_spam", queries: 16, perExpert: 16).first?.expert, "sms_spam")
        XCTAssertEqual(try Composer.retrieve(b, task: "trec_question", queries: 16, perExpert: 16).first?.expert, "trec_question")
    }

    /// CMA-ES never returns worse than its start (the base, weights 0): the best point is kept.
    func testLearnedCompositionImprovesOnTheBaseObjective() throws {
        let b = try bench()
        let l = try Composer.learn(b, task: "trec_question", shots: 3, budget: 13, l1: 0.05, seed: 1)
        XCTAssertEqual(l.evaluations, 13)
        XCTAssertEqual(l.examples, 18)
        let train = try b.data("trec_question", split: "train")
        let idx = ProbeEvaluation.sample(train, shots: 3, seed: 1000 + 1)
        let base = Composer.headLoss(b.expert(for: "trec_question")!.head!, b.embed(idx.map { train.texts[$0] }, Variant(name: "base")), idx.map { train.labels[$0] })
        XCTAssertLessThanOrEqual(l.loss, base + 1e-9)
        XCTAssertTrue(l.weights.allSatisfy { (-1.5...1.5).contains($0) })
        let recipe = Composer.recipe(base: "minilm", experts: ["sms_spam", "trec_question"], weights: l.weights, comment: "test")
        XCTAssertTrue(recipe.contains("merge_method: task_arithmetic") && recipe.hasPrefix("# test\n"))
    }

    func testPrototypeLossPrefersSeparatedClasses() {
        let separated: [[Float]] = [[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], mixed: [[Float]] = [[1, 0], [0, 1], [0.9, 0.1], [0.1, 0.9]]
        let labels = ["a", "a", "b", "b"]
        XCTAssertLessThan(Composer.prototypeLoss(separated, labels), Composer.prototypeLoss(mixed, labels))
    }

    func testFusionTableHasEveryRowAndColumn() throws {
        let b = try bench()
        b.seeds = 2; b.shots = 3; b.limit = 12; b.retrievalQueries = 8; b.retrievalKeysPerExpert = 8
        var set = AdapterSet(); set.loras = [(b.experts[0].adapter, 1)]
        let table = try FusionTable.run(b, seen: ["sms_spam"], heldOut: ["tweet_sentiment"],
                                        variants: [("base", "base", Variant(name: "base")), ("sms_spam", "expert", Variant(name: "sms_spam", adapters: set))],
                                        learned: true, retrieval: true, composeShots: 1, budget: 7, l1: 0.05, settings: [:])
        XCTAssertEqual(table.rows.map(\.name), ["base", "sms_spam", "learned composition", "retrieval (ELM, top-1)"])
        for r in table.rows { XCTAssertEqual(r.scores.map(\.task), ["sms_spam", "tweet_sentiment"]); XCTAssertNotNil(r.heldOutAverage) }
        XCTAssertEqual(table.rows[1].scores[0].proto, .head)
        XCTAssertEqual(table.rows[1].scores[1].proto, .probe)
        XCTAssertEqual(table.rows[3].details["sms_spam"]?.hasPrefix("sms_spam "), true, "retrieval reuses the expert row")
        XCTAssertEqual(table.markdown().split(separator: "\n").count, 2 + 4)
        b.limit = 40
        XCTAssertTrue(table.svg().hasPrefix("<svg"))
        let zs = try b.evaluate(Variant(name: "base"), task: "tweet_sentiment", proto: .zeroShot)
        XCTAssertGreaterThan(zs.accuracy, 0.5, "label descriptions beat chance on tweet sentiment")
    }

    /// Zero shots or seeds are refused with an error naming the task, not a trap on an empty
    /// training set (issue 14).
    func testEmptyProbeAndCompositionSettingsAreErrors() throws {
        let b = try bench()
        b.shots = 0
        XCTAssertThrowsError(try b.evaluate(Variant(name: "base"), task: "sms_spam", proto: .probe)) { XCTAssertTrue("\($0)".hasPrefix("sms_spam: the probe needs")) }
        b.shots = 2; b.seeds = 0
        XCTAssertThrowsError(try b.evaluate(Variant(name: "base"), task: "sms_spam", proto: .probe))
        XCTAssertThrowsError(try Composer.learn(b, task: "sms_spam", shots: 0, budget: 5))
        XCTAssertThrowsError(try Composer.learn(b, task: "sms_spam", shots: 1, budget: 0))
    }
}
