import XCTest
import Synchronization
import Foundation
@testable import Store
import Encoder
import Formats
import Tensors

enum Fixture {
    static let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static func path(_ rel: String) -> String { here.appendingPathComponent("Fixtures").appendingPathComponent(rel).path }
    /// The tiny BERT, its PEFT adapters and PEFT's outputs (Scripts/make-fixtures-encoder.py).
    static func tiny(_ rel: String = "") -> String { here.appendingPathComponent("../EncoderTests/Fixtures/tiny").appendingPathComponent(rel).standardized.path }
    static let repo = here.appendingPathComponent("../..").standardized.path
}

func temporaryStore(_ name: String = #function) throws -> Store {
    let dir = NSTemporaryDirectory() + "alloy-store-\(name.filter(\.isLetter))-\(UInt32.random(in: 0...UInt32.max))"
    return try Store(root: dir)
}

final class StoreRoundTripTests: XCTestCase {
    /// Fixture: transformers' BertForSequenceClassification (bert.* names, pooler, classifier),
    /// Scripts/make-fixtures-store.py. Lossless import + hf export must give every tensor back bit for bit.
    func testFineTunedModelRoundTripsBitExactly() throws {
        let s = try temporaryStore()
        _ = try s.importSource(Fixture.tiny(), options: ImportOptions(name: "tiny"))
        var o = ImportOptions(name: "ft"); o.base = "tiny"
        let r = try s.importSource(Fixture.path("finetuned"), options: o)
        XCTAssertEqual(r.item.entry.kind, .taskVector)
        XCTAssertNotNil(r.item.blobs["head"], "classifier is not in the base: stored as a head")
        let out = s.root + "/export-ft"
        try s.export(try s.resolve("ft"), format: .hf, to: out)
        let original = try SafetensorsFile(path: Fixture.path("finetuned/model.safetensors"))
        let exported = try SafetensorsFile(path: out + "/model.safetensors")
        XCTAssertEqual(Set(exported.names), Set(original.names))
        for n in original.names {
            XCTAssertTrue(try exported.tensor(n).bitwiseEquals(original.tensor(n)), "\(n) differs after the round trip")
        }
        XCTAssertEqual(FileManager.default.contents(atPath: out + "/config.json"), FileManager.default.contents(atPath: Fixture.path("finetuned/config.json")))
        // The stored τ is the plain difference (what merges use).
        let tv = try s.open(try s.resolve("ft"), role: "weights")
        let base = try SafetensorsFile(path: Fixture.tiny("model.safetensors"))
        let tau = try tv.tensor("encoder.layer.1.output.dense.weight").floats()
        let ft = try original.tensor("bert.encoder.layer.1.output.dense.weight").floats(), b = try base.tensor("encoder.layer.1.output.dense.weight").floats()
        for i in tau.indices { XCTAssertEqual(tau[i], ft[i] - b[i]) }
    }

    /// A transformers classifier fine-tuned from a stored base (Scripts/make-fixtures-heads.py):
    /// stored as its delta plus its whole head (BERT's pooler included), used from the store
    /// (delta applied to the base + the stored head) it gives transformers' logits (1e-4), and
    /// exported it is the original checkpoint bit for bit.
    func testTransformersClassifierIsItsDeltaPlusItsHead() throws {
        let heads = Fixture.here.appendingPathComponent("../EncoderTests/Fixtures/heads").standardized.path
        let s = try temporaryStore()
        _ = try s.importSource(heads + "/bert-base", options: ImportOptions(name: "base"))
        var o = ImportOptions(name: "sst"); o.base = "base"
        let item = try s.importSource(heads + "/bert-sst", options: o).item
        XCTAssertEqual(item.entry.kind, .taskVector)
        let head = try s.open(item, role: "head")
        XCTAssertEqual(Set(head.names), ["classifier.weight", "classifier.bias", "bert.pooler.dense.weight", "bert.pooler.dense.bias"])

        let model = try EncoderModel(directory: try s.materialize(try s.resolve("base")))
        let checkout = try s.materialize(item)
        var adapters = AdapterSet()
        _ = try adapters.add(path: checkout, scale: 1, model: model)
        let h = try ClassificationHead.load(path: checkout, model: model)
        XCTAssertEqual(h.labels, ["negative", "positive"])
        struct Expected: Decodable { let ids: [[Int32]]; let logits: [[Float]] }
        let want = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: heads + "/bert-sst/expected.json")))
        var worst: Float = 0
        for (ids, logits) in zip(want.ids, want.logits) {
            let got = h.logits(h.pooling.pool(model.hiddenStates([ids], adapters: adapters), sequence: 0))
            for (a, b) in zip(got, logits) { worst = max(worst, abs(a - b)) }
        }
        XCTAssertLessThanOrEqual(worst, 1e-4)

        let out = s.root + "/export-sst"
        try s.export(item, format: .hf, to: out)
        let original = try SafetensorsFile(path: heads + "/bert-sst/model.safetensors")
        let exported = try SafetensorsFile(path: out + "/model.safetensors")
        XCTAssertEqual(Set(exported.names), Set(original.names))
        for n in original.names { XCTAssertTrue(try exported.tensor(n).bitwiseEquals(original.tensor(n)), n) }
    }

    /// A PEFT folder imported then exported is the same folder (tensors bit-exact, config
    /// byte-exact; an adapter_model.bin comes back as adapter_model.safetensors), and the runtime
    /// gives PEFT's own outputs with it (1e-5, fixture from PEFT).
    func testPEFTFolderRoundTripsAndGivesPEFTOutputs() throws {
        let s = try temporaryStore()
        _ = try s.importSource(Fixture.tiny(), options: ImportOptions(name: "tiny"))
        for (name, dir) in [("lora", Fixture.tiny("lora")), ("lora-bin", Fixture.tiny("lora-bin")), ("cls", Fixture.path("peft_cls"))] {
            var o = ImportOptions(name: name); o.base = "tiny"
            XCTAssertEqual(try s.importSource(dir, options: o).item.entry.kind, .lora)
            let out = s.root + "/export-\(name)"
            try s.export(try s.resolve(name), format: .peft, to: out)
            XCTAssertEqual(FileManager.default.contents(atPath: out + "/adapter_config.json"), FileManager.default.contents(atPath: dir + "/adapter_config.json"))
            let a = try SafetensorsFile(path: out + "/adapter_model.safetensors"), b = try PEFTAdapter.weights(in: dir)
            XCTAssertEqual(Set(a.names), Set(b.tensors.map(\.name)))
            for n in b.tensors.map(\.name) { XCTAssertTrue(try a.tensor(n).bitwiseEquals(b.tensor(n)), n) }
        }
        let model = try EncoderModel(directory: try s.checkout(try s.resolve("tiny")))
        let outputs = try SafetensorsFile(path: Fixture.tiny("outputs.safetensors"))
        let ids = try outputs.tensor("input_ids"), mask = try outputs.tensor("attention_mask")
        let (bn, l) = (ids.shape.dims[0], ids.shape.dims[1])
        let idv = Array(ids.rawBytes.bindMemory(to: Int64.self)), mv = Array(mask.rawBytes.bindMemory(to: Int64.self))
        let batch = (0..<bn).map { q in (0..<l).filter { mv[q * l + $0] == 1 }.map { Int32(idv[q * l + $0]) } }
        var set = AdapterSet()
        set.loras = [(try LoRAAdapter(peft: s.root + "/export-lora", for: model), 1)]
        let h = model.hiddenStates(batch, adapters: set)
        let ref = try outputs.tensor("lora").floats(), w = model.hidden
        var err: Float = 0
        for q in 0..<h.count { for j in 0..<(h.offsets[q + 1] - h.offsets[q]) { for c in 0..<w {
            err = max(err, abs(h.values[(h.offsets[q] + j) * w + c] - ref[(q * l + j) * w + c]))
        } } }
        XCTAssertLessThan(err, 1e-5)
    }

    /// `--kind task-vector`: a safetensors file of τ is stored as it is and applies as one.
    func testTaskVectorFileImport() throws {
        let s = try temporaryStore()
        _ = try s.importSource(Fixture.tiny(), options: ImportOptions(name: "tiny"))
        let base = try SafetensorsFile(path: Fixture.tiny("model.safetensors"))
        let w = try base.tensor("encoder.layer.0.output.dense.weight")
        let tau = try Tensor((0..<w.elementCount).map { Float($0 % 7) * 1e-3 }, shape: w.shape)
        let path = s.root + "/tau.safetensors"
        try SafetensorsWriter.write([("encoder.layer.0.output.dense.weight", tau)], to: path)
        var o = ImportOptions(name: "tau"); o.base = "tiny"; o.kind = .taskVector
        let item = try s.importSource(path, options: o).item
        XCTAssertEqual(item.entry.kind, .taskVector)
        let d = try s.denseDelta(item)
        XCTAssertEqual(d.map(\.name), ["encoder.layer.0.output.dense.weight"])
        XCTAssertEqual(d[0].values, try tau.floats())
        let bad = s.root + "/bad.safetensors"
        try SafetensorsWriter.write([("encoder.layer.0.output.dense.weight", try Tensor([1, 2], shape: Shape([2])))], to: bad)
        o.name = "bad"
        XCTAssertThrowsError(try s.importSource(bad, options: o)) { e in
            XCTAssertEqual(e as? StoreError, .shapeMismatch(source: bad, tensor: "encoder.layer.0.output.dense.weight", expected: w.shape.dims, found: [2]))
        }
    }

    func testSameContentIsStoredOnce() throws {
        let s = try temporaryStore()
        _ = try s.importSource(Fixture.tiny(), options: ImportOptions(name: "tiny"))
        let blobs = s.blobFiles().count
        let again = try s.importSource(Fixture.tiny(), options: ImportOptions(name: "tiny-again"))
        XCTAssertTrue(again.existed)
        XCTAssertEqual(again.item.names, ["tiny", "tiny-again"])
        XCTAssertEqual(s.blobFiles().count, blobs)
        XCTAssertEqual(try s.list().count, 1)
        // A name already used by other content is refused.
        var o = ImportOptions(name: "tiny"); o.base = "tiny"
        XCTAssertThrowsError(try s.importSource(Fixture.tiny("lora"), options: o)) { e in
            XCTAssertEqual(e as? StoreError, .nameTaken(name: "tiny", existing: "base \(again.item.entry.shortDigest)"))
        }
    }

    func testInspectStatisticsAndCompare() throws {
        let s = try temporaryStore()
        _ = try s.importSource(Fixture.tiny(), options: ImportOptions(name: "tiny"))
        for (n, d) in [("a", Fixture.tiny("lora")), ("b", Fixture.tiny("rslora"))] {
            var o = ImportOptions(name: n); o.base = "tiny"; _ = try s.importSource(d, options: o)
        }
        let a = try s.resolve("a")
        let stats = try s.statistics(a)
        XCTAssertEqual(stats.groups.map(\.name), ["layer 00", "layer 01", "pooler"], "the fixture targets query/key/value/dense, pooler.dense included")
        XCTAssertGreaterThan(stats.norm, 0)
        let same = try s.compare(a, a)
        XCTAssertEqual(same.cosine, 1, accuracy: 1e-9)
        XCTAssertEqual(same.signConflict, 0)
        let ab = try s.compare(a, try s.resolve("b"))
        XCTAssertLessThan(abs(ab.cosine), 0.5, "independent random adapters are nearly orthogonal")
        XCTAssertEqual(ab.signConflict, 0.5, accuracy: 0.05, "independent signs disagree half the time")
    }
}

extension StoreRoundTripTests {
    /// A merge result is stored as a `merged` task vector with its parents and recipe; a
    /// materialised folder of it equals the merged model bit for bit.
    func testMergedEntryKeepsLineage() throws {
        let s = try temporaryStore()
        let base = try s.importSource(Fixture.tiny(), options: ImportOptions(name: "tiny")).item
        var o = ImportOptions(name: "lora"); o.base = "tiny"
        let lora = try s.importSource(Fixture.tiny("lora"), options: o).item
        let merged = try s.importMerged(Fixture.path("finetuned"), name: "m", base: base, parents: [(lora, 0.5)],
                                        method: "linear", recipe: "merge_method: linear").item
        XCTAssertEqual(merged.entry.kind, .merged)
        XCTAssertEqual(merged.parents.map(\.name), ["tiny", "lora"])
        XCTAssertEqual(merged.parents.map(\.weight), [nil, 0.5])
        if case .string(let r)? = merged.entry.meta["recipe"] { XCTAssertEqual(r, "merge_method: linear") } else { XCTFail("no recipe") }
        let dir = try s.materialize(merged)
        let a = try SafetensorsFile(path: dir + "/model.safetensors"), b = try SafetensorsFile(path: Fixture.path("finetuned/model.safetensors"))
        for n in b.names { XCTAssertTrue(try a.tensor(n).bitwiseEquals(b.tensor(n)), n) }
        // Removing a parent keeps the merge and its lineage (by name).
        _ = try s.remove("lora")
        XCTAssertEqual(try s.resolve("m").parents.map(\.name), ["tiny", "lora (removed)"])
        XCTAssertTrue(try s.verify().ok)
    }
}

final class StoreSafetyTests: XCTestCase {
    func testWrongBaseAndShapeMismatchAreRefused() throws {
        let s = try temporaryStore()
        _ = try s.importSource(Fixture.tiny(), options: ImportOptions(name: "tiny"))
        _ = try s.importSource(Fixture.path("unrelated"), options: ImportOptions(name: "other"))
        // A fine-tuned model of another base: its weights are nowhere near the base's.
        var o = ImportOptions(name: "x"); o.base = "tiny"
        XCTAssertThrowsError(try s.importSource(Fixture.path("unrelated"), options: o)) { e in
            XCTAssertTrue("\(e)".contains("another base"), "\(e)")
        }
        // A delta recording its base's hash is refused on another base unless forced.
        var ft = ImportOptions(name: "ft"); ft.base = "tiny"
        _ = try s.importSource(Fixture.path("finetuned"), options: ft)
        let deltaFile = s.blobPath(try s.resolve("ft").blobs["weights"]!.sha256)
        var wrong = ImportOptions(name: "ft-on-other"); wrong.base = "other"
        XCTAssertThrowsError(try s.importSource(deltaFile, options: wrong)) { e in
            guard case .wrongBase(let src, _, _)? = e as? StoreError else { return XCTFail("\(e)") }
            XCTAssertEqual(src, deltaFile)
        }
        wrong.force = true
        XCTAssertNoThrow(try s.importSource(deltaFile, options: wrong))
        // A LoRA made for MiniLM (hidden 384) on the tiny base (hidden 32): names the tensor.
        var l = ImportOptions(name: "big-lora"); l.base = "tiny"
        XCTAssertThrowsError(try s.importSource(Fixture.repo + "/Adapters/bbc_topic/lora", options: l)) { e in
            guard case .shapeMismatch(_, let t, _, _)? = e as? StoreError else { return XCTFail("\(e)") }
            XCTAssertTrue(t.contains("encoder.layer.0.attention.self"), t)
        }
        XCTAssertTrue(try s.verify().ok)
    }

    func testCorruptAndMissingBlobsAreNamed() throws {
        let s = try temporaryStore()
        _ = try s.importSource(Fixture.tiny(), options: ImportOptions(name: "tiny"))
        var o = ImportOptions(name: "ft"); o.base = "tiny"
        _ = try s.importSource(Fixture.path("finetuned"), options: o)
        XCTAssertTrue(try s.verify().ok)
        let item = try s.resolve("ft")
        let path = s.blobPath(item.blobs["weights"]!.sha256)
        // Flip one byte in the last chunk's payload (a tensor's data).
        var bytes = Array(FileManager.default.contents(atPath: path)!)
        let f = try AlloyFile(path: path)
        let target = f.tensors.max { $0.chunks.last!.offset < $1.chunks.last!.offset }!
        bytes[target.chunks.last!.offset + 3] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let report = try s.verify()
        XCTAssertFalse(report.ok)
        XCTAssertTrue(report.problems.contains { $0.hasPrefix("ft: weights blob") }, "\(report.problems)")
        XCTAssertThrowsError(try s.export(item, format: .hf, to: s.root + "/out")) { e in
            XCTAssertTrue("\(e)".contains("entry \"ft\"") && "\(e)".contains(target.name), "\(e)")
        }
        try FileManager.default.removeItem(atPath: path)
        XCTAssertTrue(try s.verify().problems.contains { $0.contains("ft: weights blob") && $0.contains("missing") })
        XCTAssertThrowsError(try s.export(item, format: .hf, to: s.root + "/out")) { e in
            guard case .missingBlob(let ref, let role, _)? = e as? StoreError else { return XCTFail("\(e)") }
            XCTAssertEqual(ref, "ft"); XCTAssertEqual(role, "weights")
        }
    }

    func testRemoveRefusesABaseInUseAndGCFreesBlobs() throws {
        let s = try temporaryStore()
        _ = try s.importSource(Fixture.tiny(), options: ImportOptions(name: "tiny"))
        var o = ImportOptions(name: "lora"); o.base = "tiny"
        _ = try s.importSource(Fixture.tiny("lora"), options: o)
        XCTAssertThrowsError(try s.remove("tiny")) { e in XCTAssertEqual(e as? StoreError, .inUse(ref: "tiny", dependents: ["lora"])) }
        let before = s.blobFiles().count
        _ = try s.remove("lora")
        XCTAssertTrue(try s.verify().leftovers.count == before - 2, "the LoRA's weights and files blobs are unreferenced")
        let freed = try s.gc()
        XCTAssertGreaterThanOrEqual(freed.files + freed.folders, 2)
        let after = try s.verify()
        XCTAssertTrue(after.ok && after.leftovers.isEmpty)
        XCTAssertEqual(try s.list().map(\.ref), ["tiny"])
    }
}

/// The cache protocol (docs/STORE.md, "Cache"): folders published by rename with a
/// completeness marker, removed by rename, rebuilt when incomplete.
final class StoreCacheTests: XCTestCase {
    func storeWithFineTune() throws -> Store {
        let s = try temporaryStore()
        _ = try s.importSource(Fixture.tiny(), options: ImportOptions(name: "tiny"))
        var o = ImportOptions(name: "ft"); o.base = "tiny"
        _ = try s.importSource(Fixture.path("finetuned"), options: o)
        return s
    }

    /// What a killed old-style `gc` left (issue 14): the base's folder without its weights.
    /// verify reports it as an incomplete cache (not damage), and the next import that reads
    /// the base rebuilds it.
    func testHalfDeletedCheckoutIsReportedAndRebuilt() throws {
        let s = try storeWithFineTune()
        let base = try s.resolve("tiny")
        let dir = try s.checkout(base)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/" + CheckoutCache.markerName))
        try FileManager.default.removeItem(atPath: dir + "/model.safetensors")
        let report = try s.verify()
        XCTAssertTrue(report.ok, "\(report.problems)")
        XCTAssertEqual(report.incompleteCaches.count, 1)
        XCTAssertTrue(report.incompleteCaches[0].contains("model.safetensors is missing"), report.incompleteCaches[0])
        var o = ImportOptions(name: "ft-again"); o.base = "tiny"
        XCTAssertTrue(try s.importSource(Fixture.path("finetuned"), options: o).existed)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/model.safetensors"))
        let after = try s.verify()
        XCTAssertTrue(after.ok && after.incompleteCaches.isEmpty && after.leftovers.isEmpty, "\(after)")
        XCTAssertEqual(after.caches, 1)
    }

    /// A folder without a marker (an older alloy, or anything unexpected) is not trusted.
    func testFolderWithoutMarkerIsRebuilt() throws {
        let s = try storeWithFineTune()
        let base = try s.resolve("tiny")
        let dir = s.cacheDir + "/" + base.entry.digest
        try? FileManager.default.removeItem(atPath: dir)   // the fine-tune's import checked the base out
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        XCTAssertTrue(try s.verify().incompleteCaches.contains { $0.contains("no completeness marker") })
        XCTAssertEqual(try s.checkout(base), dir)
        let w = try SafetensorsFile(path: dir + "/model.safetensors")
        XCTAssertEqual(Set(w.names), Set(try SafetensorsFile(path: Fixture.tiny("model.safetensors")).names))
        XCTAssertTrue(try s.verify().incompleteCaches.isEmpty)
    }

    /// A file changed in place (same size) is damage only verify's re-hash sees: a problem,
    /// fixed by gc and a rebuild.
    func testModifiedCacheFileIsAProblemUntilGC() throws {
        let s = try storeWithFineTune()
        let dir = try s.materialize(try s.resolve("ft"))
        XCTAssertTrue(dir.hasSuffix("-hf"))
        let path = dir + "/model.safetensors"
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 1] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let report = try s.verify()
        XCTAssertFalse(report.ok)
        XCTAssertTrue(report.problems.contains { $0.contains("model.safetensors hashes to") }, "\(report.problems)")
        let freed = try s.gc()
        XCTAssertGreaterThanOrEqual(freed.folders, 1)
        XCTAssertTrue(try s.verify().ok)
        XCTAssertEqual(try s.materialize(try s.resolve("ft")), dir)
        let a = try SafetensorsFile(path: path), b = try SafetensorsFile(path: Fixture.path("finetuned/model.safetensors"))
        for n in b.names { XCTAssertTrue(try a.tensor(n).bitwiseEquals(b.tensor(n)), n) }
    }

    /// gc moves cache folders out by rename and deletes leftovers of dead processes in tmp/,
    /// keeping those of running ones (pid 1 is always running).
    func testGCRemovesLeftoversButNotThoseOfLiveProcesses() throws {
        let s = try storeWithFineTune()
        _ = try s.checkout(try s.resolve("tiny"))
        let dead = s.tmpDir + "/trash-999999999-1", live = s.tmpDir + "/build-1-2"
        for d in [dead, live] {
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
            try Data([1, 2, 3]).write(to: URL(fileURLWithPath: d + "/model.safetensors"))
        }
        let before = try s.verify()
        XCTAssertTrue(before.ok)
        XCTAssertTrue(before.leftovers.contains { $0.contains(dead) && $0.contains("interrupted") }, "\(before.leftovers)")
        XCTAssertTrue(before.leftovers.contains { $0.contains(live) && $0.contains("running") }, "\(before.leftovers)")
        _ = try s.gc()
        XCTAssertFalse(FileManager.default.fileExists(atPath: dead))
        XCTAssertTrue(FileManager.default.fileExists(atPath: live))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: s.cacheDir), [])
    }

    /// Four threads checking out one entry at once (each builds; the first rename wins, the
    /// others see a complete folder under cache.lock): one folder, complete, nothing left in tmp/.
    func testConcurrentCheckoutsPublishOneCompleteFolder() throws {
        let s = try storeWithFineTune()
        _ = try s.gc()
        let base = try s.resolve("tiny")
        let paths = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            if let p = try? s.checkout(base) { paths.withLock { $0.append(p) } }
        }
        let got = paths.withLock { $0 }
        XCTAssertEqual(got.count, 4)
        XCTAssertEqual(Set(got), [s.cacheDir + "/" + base.entry.digest])
        XCTAssertEqual(s.cache.state(got[0], digest: base.entry.digest, deep: true), .complete)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: s.tmpDir), [])
        XCTAssertTrue(try s.verify().leftovers.isEmpty)
    }

    /// The library never prints: a busy lock is announced through the callback.
    func testWithLockReportsWaitingThroughTheCallback() throws {
        let s = try temporaryStore()
        let held = try FileSystem.Lock(path: s.root + "/lock", exclusive: true, onWait: { _ in XCTFail("the lock was free") })
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.2) { held.unlock() }
        var waited: [String] = []
        let value = try s.withLock(exclusive: true, onWait: { waited.append($0) }) { 42 }
        XCTAssertEqual(value, 42)
        XCTAssertEqual(waited, [s.root + "/lock"])
        // Free now: no call.
        _ = try s.withLock(exclusive: false, onWait: { _ in XCTFail("the lock was free") }) { 0 }
    }
}
