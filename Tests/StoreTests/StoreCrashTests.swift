import XCTest
import Foundation
@testable import Store
import Formats
import Tensors

/// Every store-writing command of the `alloy` executable killed with SIGKILL at random
/// moments (issue 14): after each kill the store passes `verify` with no incomplete folder
/// in `cache/`, and commands that read the base (an import of a fine-tune, an hf export, a
/// merge of store entries) succeed on it.
final class StoreCrashTests: XCTestCase {
    var alloy = ""

    override func setUpWithError() throws {
        let candidates = ["debug", "release"].map { Fixture.repo + "/.build/\($0)/alloy" }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("no alloy executable in .build/debug or .build/release; run `swift build --build-tests` first (Scripts/test does)")
        }
        alloy = found
    }

    func launch(_ args: [String], store: String, stderr: String? = nil) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: alloy)
        p.arguments = args + ["--store", store]
        p.standardOutput = FileHandle.nullDevice
        if let stderr, FileManager.default.createFile(atPath: stderr, contents: nil), let h = FileHandle(forWritingAtPath: stderr) {
            p.standardError = h
        } else {
            p.standardError = FileHandle.nullDevice
        }
        try p.run()
        return p
    }

    /// Runs to the end; returns the exit status, the seconds it took and what it wrote on
    /// standard error.
    @discardableResult
    func run(_ args: [String], store: String) throws -> (status: Int32, seconds: Double, stderr: String) {
        let t0 = Date()
        let errPath = NSTemporaryDirectory() + "alloy-crash-stderr-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: errPath) }
        let p = try launch(args, store: store, stderr: errPath)
        p.waitUntilExit()
        let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return (p.terminationStatus, Date().timeIntervalSince(t0), err)
    }

    // MARK: synthetic models

    /// A BERT of hidden 128, 4 layers, FFN 512, vocab 4000 (1.3 M parameters, 5.4 MB F32),
    /// seeded; `noise` > 0 gives a fine-tune of the seed-0 base (base + noise·N(0,1)-ish, with a
    /// 3-class classifier).
    struct Bert {
        static let hidden = 128, layers = 4, ffn = 512, vocab = 4000, positions = 128

        static func shapes() -> [(String, [Int])] {
            let h = hidden
            var s: [(String, [Int])] = [("embeddings.word_embeddings.weight", [vocab, h]), ("embeddings.position_embeddings.weight", [positions, h]),
                                        ("embeddings.token_type_embeddings.weight", [2, h]),
                                        ("embeddings.LayerNorm.weight", [h]), ("embeddings.LayerNorm.bias", [h])]
            for i in 0..<layers {
                let p = "encoder.layer.\(i)."
                for m in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] {
                    s += [(p + m + ".weight", [h, h]), (p + m + ".bias", [h])]
                }
                s += [(p + "intermediate.dense.weight", [ffn, h]), (p + "intermediate.dense.bias", [ffn]),
                      (p + "output.dense.weight", [h, ffn]), (p + "output.dense.bias", [h])]
                for n in ["attention.output.LayerNorm", "output.LayerNorm"] { s += [(p + n + ".weight", [h]), (p + n + ".bias", [h])] }
            }
            s += [("pooler.dense.weight", [h, h]), ("pooler.dense.bias", [h])]
            return s
        }

        static func values(_ count: Int, _ rng: inout SplitMix, scale: Float) -> [Float] {
            (0..<count).map { _ in (Float(rng.next() >> 40) / Float(1 << 24) - 0.5) * 2 * scale }
        }

        static func config(classes: Int) -> [UInt8] {
            var c = "{\"model_type\": \"bert\", \"architectures\": [\"\(classes > 0 ? "BertForSequenceClassification" : "BertModel")\"], "
            c += "\"hidden_size\": \(hidden), \"num_hidden_layers\": \(layers), \"num_attention_heads\": 4, \"intermediate_size\": \(ffn), "
            c += "\"vocab_size\": \(vocab), \"max_position_embeddings\": \(positions), \"type_vocab_size\": 2, \"hidden_act\": \"gelu\", "
            c += "\"layer_norm_eps\": 1e-12, \"pad_token_id\": 0}"
            return Array(c.utf8)
        }

        /// Writes a model folder: the base of `seed`, or (noise > 0) a fine-tune of the seed-0
        /// base with a classifier, its tensors named with `prefix` (`bert.` as transformers saves them).
        static func write(_ dir: String, seed: UInt64, noise: Float = 0, prefix: String = "") throws {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            var rng = SplitMix(seed: noise > 0 ? 0 : seed)
            var tuned = SplitMix(seed: 1000 + seed)
            var tensors: [(String, Tensor)] = []
            for (n, shape) in shapes() {
                var v = values(shape.reduce(1, *), &rng, scale: 0.05)
                if noise > 0 { let d = values(v.count, &tuned, scale: noise); for i in v.indices { v[i] += d[i] } }
                tensors.append((prefix + n, try Tensor(v, shape: Shape(shape))))
            }
            if noise > 0 {
                tensors.append(("classifier.weight", try Tensor(values(3 * hidden, &tuned, scale: 0.1), shape: Shape([3, hidden]))))
                tensors.append(("classifier.bias", try Tensor(values(3, &tuned, scale: 0.1), shape: Shape([3]))))
            }
            try SafetensorsWriter.write(tensors, to: dir + "/model.safetensors")
            try Data(config(classes: noise > 0 ? 3 : 0)).write(to: URL(fileURLWithPath: dir + "/config.json"))
        }

        /// A PEFT LoRA folder (r = 8 on query and value of every layer), seeded.
        static func writeLoRA(_ dir: String, seed: UInt64) throws {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            var rng = SplitMix(seed: 2000 + seed)
            var tensors: [(String, Tensor)] = []
            for i in 0..<layers {
                for m in ["query", "value"] {
                    let p = "base_model.model.encoder.layer.\(i).attention.self.\(m)"
                    tensors.append((p + ".lora_A.weight", try Tensor(values(8 * hidden, &rng, scale: 0.05), shape: Shape([8, hidden]))))
                    tensors.append((p + ".lora_B.weight", try Tensor(values(hidden * 8, &rng, scale: 0.05), shape: Shape([hidden, 8]))))
                }
            }
            try SafetensorsWriter.write(tensors, to: dir + "/adapter_model.safetensors")
            let cfg = "{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16, \"target_modules\": [\"query\", \"value\"], \"bias\": \"none\"}"
            try Data(cfg.utf8).write(to: URL(fileURLWithPath: dir + "/adapter_config.json"))
        }

        /// A `.alloy` delta over the base with content hash `baseHash`: every layer's
        /// intermediate weight, with a `kind` of sparse (1% kept) or task-vector (dense).
        static func deltaAlloy(seed: UInt64, baseHash: String, sparse: Bool) throws -> AlloyWriter.Encoded {
            var rng = SplitMix(seed: 3000 + seed)
            let inputs = try (0..<layers).map { i -> AlloyWriter.Input in
                var v = values(ffn * hidden, &rng, scale: 0.01)
                if sparse { for k in v.indices where rng.next() % 100 != 0 { v[k] = 0 } }
                return .init(name: "encoder.layer.\(i).intermediate.dense.weight", tensor: try Tensor(v, shape: Shape([ffn, hidden])),
                             codec: sparse ? .sparse : .float)
            }
            return try AlloyWriter.encode(inputs, metadata: [("kind", .string(sparse ? "sparse" : "task-vector")), ("base_sha256", .string(baseHash))])
        }

        /// An expert folder: `delta.alloy` (sparse) and `head.safetensors` (a classifier).
        static func writeExpert(_ dir: String, seed: UInt64, baseHash: String) throws {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try deltaAlloy(seed: seed, baseHash: baseHash, sparse: true).write(to: dir + "/delta.alloy")
            var rng = SplitMix(seed: 4000 + seed)
            try SafetensorsWriter.write([("classifier.weight", try Tensor(values(3 * hidden, &rng, scale: 0.1), shape: Shape([3, hidden]))),
                                         ("classifier.bias", try Tensor(values(3, &rng, scale: 0.1), shape: Shape([3])))],
                                        to: dir + "/head.safetensors")
        }
    }

    // MARK: the test

    struct Tally {
        var trials = 0, killed = 0, finished = 0, present = 0, verifyOK = 0, checksOK = 0, checks = 0, incompleteCaches = 0
    }

    /// 9 commands, 42 seeded trials (4 each, 10 for gc). Each trial kills the command after a delay drawn
    /// uniformly from [0, 1.1 × its uninterrupted duration] (measured once per command), then
    /// checks the store in process (`verify`: no problem, no incomplete cache folder), with
    /// `alloy verify`, and with the later commands that read the base.
    func testEveryStoreCommandKilledAtRandomMomentsLeavesAUsableStore() throws {
        let started = Date()
        let top = NSTemporaryDirectory() + "alloy-crash-all-\(UInt32.random(in: 0...UInt32.max))"
        let src = top + "/src"
        defer { try? FileManager.default.removeItem(atPath: top) }
        // The seeded store: a base, a fine-tune (task vector) and a LoRA, imported in process.
        // Each command gets a copy of it, so that verify re-reads a small store.
        let template = top + "/template"
        var root = template
        var store = try Store(root: template)
        try Bert.write(src + "/base", seed: 0)
        try Bert.write(src + "/ft-check", seed: 99, noise: 0.002)
        try Bert.writeLoRA(src + "/lora-seed", seed: 0)
        _ = try store.importSource(src + "/base", options: ImportOptions(name: "base"))
        let baseHash = try store.resolve("base").entry.contentSHA256
        var o = ImportOptions(name: "ft0"); o.base = "base"
        _ = try store.importSource(src + "/ft-check", options: o)
        o = ImportOptions(name: "lora0"); o.base = "base"
        _ = try store.importSource(src + "/lora-seed", options: o)
        let checkRecipe = src + "/check.yaml"
        try Data("merge_method: task_arithmetic\nbase_model: base\nmodels:\n- model: ft0\n  parameters:\n    weight: 0.5\n- model: lora0\n  parameters:\n    weight: 0.5\ndtype: float32\n".utf8)
            .write(to: URL(fileURLWithPath: checkRecipe))

        /// The trial's command, after any in-process preparation; `k` is the trial index.
        typealias Command = (name: String, prepare: (Int) throws -> [String], entry: ((Int) -> String)?)
        let commands: [Command] = [
            ("import base", { k in try Bert.write(src + "/base-\(k)", seed: UInt64(100 + k)); return ["import", src + "/base-\(k)", "--name", "b\(k)"] }, { "b\($0)" }),
            ("import fine-tune", { k in try Bert.write(src + "/ft-\(k)", seed: UInt64(k), noise: 0.002, prefix: "bert."); return ["import", src + "/ft-\(k)", "--base", "base", "--name", "ft-\(k)"] }, { "ft-\($0)" }),
            ("import --sparsify", { k in try Bert.write(src + "/sp-\(k)", seed: UInt64(200 + k), noise: 0.002)
                return ["import", src + "/sp-\(k)", "--base", "base", "--name", "sp-\(k)", "--sparsify", "magnitude", "--density", "0.05"] }, { "sp-\($0)" }),
            ("import LoRA", { k in try Bert.writeLoRA(src + "/lora-\(k)", seed: UInt64(1 + k)); return ["import", src + "/lora-\(k)", "--base", "base", "--name", "lora-\(k)"] }, { "lora-\($0)" }),
            ("import expert folder", { k in try Bert.writeExpert(src + "/ex-\(k)", seed: UInt64(k), baseHash: baseHash); return ["import", src + "/ex-\(k)", "--name", "ex-\(k)"] }, { "ex-\($0)" }),
            ("import .alloy", { k in
                try Bert.deltaAlloy(seed: UInt64(500 + k), baseHash: baseHash, sparse: false).write(to: src + "/tv-\(k).alloy")
                return ["import", src + "/tv-\(k).alloy", "--name", "tv-\(k)"] }, { "tv-\($0)" }),
            ("merge --into-store", { k in
                let r = src + "/merge-\(k).yaml"
                try Data("merge_method: task_arithmetic\nbase_model: base\nmodels:\n- model: ft0\n  parameters:\n    weight: \(0.1 + 0.01 * Double(k))\n- model: lora0\n  parameters:\n    weight: 0.5\ndtype: float32\n".utf8)
                    .write(to: URL(fileURLWithPath: r))
                return ["merge", r, "--into-store", "m-\(k)"] }, { "m-\($0)" }),
            ("rm", { k in
                var o = ImportOptions(name: "gone-\(k)"); o.base = "base"
                try Bert.writeLoRA(src + "/gone-\(k)", seed: UInt64(50 + k))
                _ = try store.importSource(src + "/gone-\(k)", options: o)
                return ["rm", "gone-\(k)"] }, nil),
            ("gc", { k in
                // Something for gc to delete: cache folders of the base, a delta and a LoRA, and an unreferenced blob.
                _ = try store.checkout(try store.resolve("base"))
                _ = try store.materialize(try store.resolve("ft0"))
                _ = try store.checkout(try store.resolve("lora0"))
                var o = ImportOptions(name: "junk-\(k)"); o.base = "base"
                try Bert.writeLoRA(src + "/junk-\(k)", seed: UInt64(70 + k))
                _ = try store.importSource(src + "/junk-\(k)", options: o)
                _ = try store.remove("junk-\(k)")
                return ["gc"] }, nil),
        ]
        // 4 trials per command, 10 for gc (the command of issue 14: with gc's old
        // non-atomic delete, 6 of 20 gc trials left an incomplete folder in cache/).
        func trials(_ name: String) -> Int { name == "gc" ? 10 : 4 }
        var rng = SplitMix(seed: 14)
        var tallies: [String: Tally] = [:]
        var checkSeconds = 0.0, prepareSeconds = 0.0, verifySeconds = 0.0
        _ = try store.gc()
        for (c, command) in commands.enumerated() {
            root = top + "/store-\(c)"
            do { try FileManager.default.copyItem(atPath: template, toPath: root) } catch { return XCTFail("cannot copy the seeded store: \(error)") }
            store = try Store(root: root)
            // One uninterrupted run times the command (and shows that it works).
            let warm = try run(try command.prepare(1000 + c), store: root)
            XCTAssertEqual(warm.status, 0, "\(command.name) fails even without a kill: \(warm.stderr)")
            var t = Tally()
            for k in 0..<trials(command.name) {
                let trial = c * 10 + k
                let p0 = Date()
                let args = try command.prepare(k)
                prepareSeconds += Date().timeIntervalSince(p0)
                let p = try launch(args, store: root)
                let delay = Double(rng.next() % 1000) / 1000 * warm.seconds * 1.1
                usleep(useconds_t(delay * 1e6))
                kill(p.processIdentifier, SIGKILL)
                p.waitUntilExit()
                t.trials += 1
                if p.terminationReason == .uncaughtSignal { t.killed += 1 } else { t.finished += 1 }
                let context = "\(command.name), trial \(k) (killed after \(String(format: "%.3f", delay)) s of \(String(format: "%.3f", warm.seconds)) s)"
                // The store as the library sees it.
                let v0 = Date()
                let report = try store.verify()
                verifySeconds += Date().timeIntervalSince(v0)
                if report.ok { t.verifyOK += 1 }
                XCTAssertTrue(report.ok, "\(context): \(report.problems)")
                XCTAssertTrue(report.incompleteCaches.isEmpty, "\(context): \(report.incompleteCaches)")
                t.incompleteCaches += report.incompleteCaches.count
                if let entry = command.entry, let item = try? store.resolve(entry(k)) {
                    t.present += 1
                    for role in item.blobs.keys { XCTAssertNoThrow(try store.open(item, role: role), "\(context): \(role)") }
                }
                // Later commands on that store: alloy verify, an import that reads the base,
                // an hf export of a LoRA (reads its checkout), a merge of store entries (reads
                // the base's and the deltas' cache folders). All four after rm and gc (gc is
                // what issue 14 caught); one per trial, in turn, after the others (to stay
                // within ~2 minutes), so that each command's 4 trials see all four.
                let c0 = Date()
                let out = top + "/out-\(trial)"
                defer { try? FileManager.default.removeItem(atPath: out) }
                let checks: [[String]] = [
                    ["verify"],
                    ["import", src + "/ft-check", "--base", "base", "--name", "check-\(trial)"],
                    ["export", "lora0", "--format", "hf", "--out", out + "/export"],
                    ["merge", checkRecipe, "--out", out + "/merge"],
                ]
                let all = command.name == "gc" || command.name == "rm"
                for args in all ? checks : [checks[k % checks.count]] {
                    let r = try run(args, store: root)
                    t.checks += 1
                    if r.status == 0 { t.checksOK += 1 }
                    XCTAssertEqual(r.status, 0, "\(context): `alloy \(args.joined(separator: " "))` failed afterwards: \(r.stderr)")
                }
                checkSeconds += Date().timeIntervalSince(c0)
            }
            tallies[command.name] = t
        }
        let total = tallies.values.reduce(0) { $0 + $1.trials }
        XCTAssertGreaterThanOrEqual(total, 40)
        XCTAssertGreaterThan(tallies.values.reduce(0) { $0 + $1.killed }, total / 2, "most kills should land while the command runs")
        var lines = ["crash test (all store-writing commands): \(total) SIGKILLs in \(String(format: "%.1f", Date().timeIntervalSince(started))) s (preparing sources \(String(format: "%.1f", prepareSeconds)) s, in-process verify \(String(format: "%.1f", verifySeconds)) s, later-command checks \(String(format: "%.1f", checkSeconds)) s)"]
        for command in commands {
            guard let t = tallies[command.name] else { continue }
            lines.append("  \(command.name): \(t.trials) trials, killed mid-run \(t.killed), finished first \(t.finished), entry present after \(t.present), verify ok \(t.verifyOK)/\(t.trials), incomplete cache folders \(t.incompleteCaches), later commands ok \(t.checksOK)/\(t.checks)")
        }
        print(lines.joined(separator: "\n"))
        _ = try store.gc()
        let final = try store.verify()
        XCTAssertTrue(final.ok && final.leftovers.isEmpty && final.incompleteCaches.isEmpty, "\(final)")
    }
}
