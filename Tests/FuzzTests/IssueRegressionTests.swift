import Foundation
import XCTest
import Tensors
@testable import Formats
import Encoder

/// One test per cause of issue 14 ("No input crashes Alloy") in the formats and loaders: each
/// input used to trap, and must now be refused with an error naming the file and field.
final class IssueRegressionTests: XCTestCase {
    func tempDir() throws -> String {
        let d = (NSTemporaryDirectory() as NSString).appendingPathComponent("alloy-issue14-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    func write(_ text: String, _ path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    // MARK: .alloy dims claiming 2^18 × 2^18

    /// A hand-built `.alloy` file (FORMAT.md layout) with one tensor whose chunk table is
    /// consistent with its shape.
    static func alloyBytes(dims: [UInt64], codec: UInt8, chunkElements: UInt64, chunks: [[UInt8]]) -> [UInt8] {
        func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        let meta = Array(#"{"kind":"base"}"#.utf8)
        let name = Array("w".utf8)
        var headerSize = 4 + meta.count + 4 + 2 + name.count + 1 + 1 + 8 * dims.count + 1 + 1 + 2 + 8 + 4
        headerSize += 16 * chunks.count
        let dataStart = AlloyContainer.align(32 + headerSize)
        var header = le(UInt32(meta.count)) + meta + le(UInt32(1)) + le(UInt16(name.count)) + name + [0, UInt8(dims.count)]
        for d in dims { header += le(d) }
        header += [codec, 0] + le(UInt16(0)) + le(chunkElements) + le(UInt32(chunks.count))
        var data: [UInt8] = []
        var offset = dataStart
        for c in chunks {
            let aligned = AlloyContainer.align(offset)
            data += [UInt8](repeating: 0, count: aligned - offset)
            offset = aligned
            header += le(UInt64(offset)) + le(UInt32(c.count)) + le(c.withUnsafeBytes { Deflate.crc32($0) })
            data += c
            offset += c.count
        }
        var out = AlloyContainer.magic + le(AlloyContainer.version) + le(UInt32(0)) + le(UInt64(header.count))
        out += le(header.withUnsafeBytes { Deflate.crc32($0) }) + le(UInt32(0)) + header
        out += [UInt8](repeating: 0, count: dataStart - out.count)
        return out + data
    }

    /// A float-codec chunk of constant planes: any number of elements in 24 bytes.
    static let constantFloatChunk: [UInt8] = (0..<4).flatMap { _ in [PlaneStream.constant, 1, 0, 0, 0, 0x3F] }

    func testAlloyHugeDimsInOneChunkAreRefused() throws {
        let dir = try tempDir(), path = dir + "/huge.alloy"
        let bytes = Self.alloyBytes(dims: [1 << 18, 1 << 18], codec: AlloyCodec.float.rawValue, chunkElements: 1 << 36, chunks: [Self.constantFloatChunk])
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try AlloyFile(path: path)) { e in
            guard case AlloyFormatError.malformedEntry(path, "w", let reason) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(reason.contains("chunk elements"), reason)
        }
    }

    func testAlloyHugeDimsWithConsistentChunkTableAreRefusedBeforeAllocating() throws {
        // 2^36 elements in 2^14 chunks of 2^22 (the largest chunk a reader accepts): the
        // header and payloads take about 1.4 MB, and the tensor would decode to 256 GiB.
        let dir = try tempDir(), path = dir + "/huge.alloy"
        let chunks = [[UInt8]](repeating: Self.constantFloatChunk, count: 1 << 14)
        let bytes = Self.alloyBytes(dims: [1 << 18, 1 << 18], codec: AlloyCodec.float.rawValue,
                                    chunkElements: UInt64(AlloyContainer.maxChunkElements), chunks: chunks)
        XCTAssertLessThan(bytes.count, 2 << 20)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try AlloyFile(path: path)) { e in
            guard case AlloyFormatError.malformedEntry(path, "w", let reason) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(reason.contains("\(1 << 38) decoded bytes"), reason)
        }
        // The same layout at a plausible size decodes (the check is not a blanket refusal).
        let small = Self.alloyBytes(dims: [4, 8], codec: AlloyCodec.float.rawValue, chunkElements: 32, chunks: [Self.constantFloatChunk])
        try Data(small).write(to: URL(fileURLWithPath: dir + "/small.alloy"))
        let t = try AlloyFile(path: dir + "/small.alloy").tensor("w")
        XCTAssertEqual(t.shape.dims, [4, 8])
        XCTAssertEqual(Set(try t.floats()).count, 1)
    }

    // MARK: PEFT tensors for a 1-D module

    func testPEFTForLayerNormIsRefused() throws {
        let dir = try tempDir()
        try write(#"{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["LayerNorm"]}"#, dir + "/adapter_config.json")
        let a = try Tensor([Float](repeating: 0.1, count: 2 * 32), shape: Shape([2, 32]))
        let b = try Tensor([Float](repeating: 0.1, count: 32 * 2), shape: Shape([32, 2]))
        try SafetensorsWriter.write([("base_model.model.bert.embeddings.LayerNorm.lora_A.weight", a),
                                     ("base_model.model.bert.embeddings.LayerNorm.lora_B.weight", b)], to: dir + "/adapter_model.safetensors")
        let model = try EncoderModel(directory: FuzzFixtures.tinyModel)
        XCTAssertEqual(model.weights["embeddings.LayerNorm.weight"]?.shape.rank, 1, "the fixture's LayerNorm is 1-D")
        XCTAssertThrowsError(try LoRAAdapter(peft: dir, for: model)) { e in
            guard case EncoderError.adapter(dir, let reason) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(reason.contains("embeddings.LayerNorm") && reason.contains("1-D"), reason)
        }
    }

    // MARK: max_seq_length = -2^63

    func testMinimumMaxSeqLengthIsRefusedAndTheTokenizerSaturates() throws {
        let dir = try tempDir()
        for f in ["config.json", "model.safetensors"] {
            try FileManager.default.createSymbolicLink(atPath: dir + "/" + f, withDestinationPath: FuzzFixtures.tinyModel + "/" + f)
        }
        try FileManager.default.copyItem(atPath: FuzzFixtures.seeds("tokenizer/tokenizer.json"), toPath: dir + "/tokenizer.json")
        try write(#"{"max_seq_length": -9223372036854775808, "do_lower_case": false}"#, dir + "/sentence_bert_config.json")
        XCTAssertThrowsError(try SentenceEncoder(directory: dir)) { e in
            guard case ConfigError.invalid(let p, let reason) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(p.hasSuffix("sentence_bert_config.json") && reason.contains("max_seq_length"), "\(p): \(reason)")
        }
        // The tokenizer itself never overflows, whatever limit it is given.
        let t = try WordPieceTokenizer(path: dir + "/tokenizer.json")
        for limit in [Int.min, -1, 0, 1, 2] { XCTAssertEqual(t.encode("the movie was great", maxLength: limit), [t.clsId, t.sepId], "limit \(limit)") }
        XCTAssertEqual(t.encode("the movie was great", maxLength: Int.max).count, 6)
        // A valid limit is read and capped by max_position_embeddings (64 in the fixture).
        try write(#"{"max_seq_length": 1000}"#, dir + "/sentence_bert_config.json")
        XCTAssertEqual(try SentenceEncoder(directory: dir).maxLength, 64)
    }

    /// Token ids must be non-negative (the model's embedding rows are indexed by them).
    func testNegativeTokenIdsAreRefused() throws {
        let dir = try tempDir()
        let text = try String(contentsOfFile: FuzzFixtures.seeds("tokenizer/tokenizer.json"), encoding: .utf8)
        try write(text.replacingOccurrences(of: "\"sport\": 29", with: "\"sport\": -7"), dir + "/tokenizer.json")
        XCTAssertThrowsError(try WordPieceTokenizer(path: dir + "/tokenizer.json")) { e in
            guard case EncoderError.unsupportedTokenizer(let p, let r) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(p.hasSuffix("tokenizer.json") && r.contains("sport") && r.contains("non-negative"), "\(p): \(r)")
        }
    }

    // MARK: pack --base with a .indices tensor of the wrong dtype

    func testSparseDeltaIndicesDtypeIsChecked() throws {
        let dir = try tempDir()
        let base = try Tensor((0..<16).map(Float.init), shape: Shape([16]))
        try SafetensorsWriter.write([("w", base)], to: dir + "/base.safetensors")
        let values = try Tensor([1, 2, 3, 4], shape: Shape([4]))
        for dtype in [DType.u8, .i8, .bool, .i16, .f32] {
            let indices = try [UInt8](repeating: 1, count: 4 * dtype.byteSize).withUnsafeBytes { try Tensor(dtype: dtype, shape: Shape([4]), bytes: $0) }
            try SafetensorsWriter.write([("w.indices", indices), ("w.values", values)], to: dir + "/delta.safetensors")
            XCTAssertThrowsError(try AlloyFile.packSparseDelta(SafetensorsFile(path: dir + "/delta.safetensors"), base: WeightSource(path: dir + "/base.safetensors"))) { e in
                guard case AlloyFormatError.malformedEntry(_, "w", let reason) = e else { return XCTFail("\(dtype): \(e)") }
                XCTAssertTrue(reason.contains("w.indices") && reason.contains("I32 or I64"), reason)
            }
        }
        // I32 indices at an odd offset in the file (unaligned) still pack.
        let idx = try [Int32](arrayLiteral: 0, 3, 15).withUnsafeBytes { try Tensor(dtype: .i32, shape: Shape([3]), bytes: $0) }
        let pad = try [UInt8](repeating: 0, count: 1).withUnsafeBytes { try Tensor(dtype: .u8, shape: Shape([1]), bytes: $0) }
        try SafetensorsWriter.write([("a", pad), ("w.indices", idx), ("w.values", try Tensor([5, 6, 7], shape: Shape([3])))], to: dir + "/delta.safetensors")
        let packed = try AlloyFile.packSparseDelta(SafetensorsFile(path: dir + "/delta.safetensors"), base: WeightSource(path: dir + "/base.safetensors"))
        try packed.write(to: dir + "/delta.alloy")
        let dense = try AlloyFile(path: dir + "/delta.alloy").tensor("w").floats()
        XCTAssertEqual(dense[0], 5); XCTAssertEqual(dense[3], 6); XCTAssertEqual(dense[15], 7)
        XCTAssertEqual(dense.filter { $0 != 0 }.count, 3)
    }

    // MARK: duplicate names in SafetensorsWriter

    func testDuplicateTensorNamesThrowNamingTheTensor() throws {
        let dir = try tempDir()
        let t = try Tensor([1, 2], shape: Shape([2]))
        XCTAssertThrowsError(try SafetensorsWriter.write([("classifier.weight", t), ("x", t), ("classifier.weight", t)], to: dir + "/h.safetensors")) { e in
            XCTAssertEqual(e as? SafetensorsError, .duplicateTensor(path: dir + "/h.safetensors", tensor: "classifier.weight"))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/h.safetensors"))
        XCTAssertThrowsError(try SafetensorsWriter.writeSharded([("a", t), ("a", t)], directory: dir, maxShardBytes: 4))
    }

    // MARK: card.json

    func testEveryShippedCardDecodes() throws {
        let adapters = FuzzFixtures.repo.appendingPathComponent("Adapters").path
        let tasks = try FileManager.default.contentsOfDirectory(atPath: adapters).filter { FileManager.default.fileExists(atPath: "\(adapters)/\($0)/card.json") }
        XCTAssertGreaterThanOrEqual(tasks.count, 5)
        for task in tasks {
            let card = try ExpertCard.load(path: "\(adapters)/\(task)/card.json")
            XCTAssertEqual(card.task, task)
            XCTAssertFalse(card.labels?.isEmpty ?? true, task)
            XCTAssertEqual(card.head?.pooling, "mean", task)
            XCTAssertNotNil(card.head?.maxLength, task)
            XCTAssertNotNil(card.lora?.accuracy?.test, task)
            XCTAssertNotNil(card.lora?.settings?.r, task)
            XCTAssertNotNil(card.sparse?.settings?.density, task)
            XCTAssertEqual(try ExpertCard.decode(try card.encoded(), path: "re-encoded"), card, task)
            XCTAssertEqual(try ClassificationHead.labels(near: "\(adapters)/\(task)/lora"), card.labels)
        }
    }

    func testCardErrorsNameTheFileAndField() throws {
        let dir = try tempDir(), path = dir + "/card.json"
        let cases: [(String, String?)] = [
            (#"{"labels": "positive"}"#, "labels"),
            (#"{"labels": ["a", 3]}"#, "labels[1]"),
            (#"{"labels": ["a", "a"]}"#, "labels[1]"),
            (#"{"head": {"max_length": -9223372036854775808}}"#, "head.max_length"),
            (#"{"head": {"max_length": "128"}}"#, "head.max_length"),
            (#"{"lora": {"accuracy": {"test": "high"}}}"#, "lora.accuracy.test"),
            (#"{"task": ["x"]}"#, "task"),
            (#"["not", "an", "object"]"#, nil),
            (#"{"task": "a", "task": "b"}"#, nil),
        ]
        for (text, field) in cases {
            try write(text, path)
            XCTAssertThrowsError(try ExpertCard.load(path: path), text) { e in
                guard let e = e as? ExpertCardError else { return XCTFail("\(text): \(e)") }
                XCTAssertEqual(e.path, path, text)
                XCTAssertEqual(e.field, field, "\(text): \(e)")
            }
            XCTAssertThrowsError(try ClassificationHead.labels(near: dir), text)
        }
        try write(#"{"task": "t", "labels": ["x", "y"], "unknown_field": {"kept": false}}"#, path)
        XCTAssertEqual(try ClassificationHead.labels(near: dir + "/lora"), ["x", "y"])
        try FileManager.default.removeItem(atPath: path)
        XCTAssertEqual(try ClassificationHead.labels(near: dir), [])
    }
}
