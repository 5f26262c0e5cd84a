import XCTest
import Foundation
@testable import Encoder

/// Tokenizer families beyond WordPiece: exact ids against the `tokenizers` library (0.23), as
/// computed by Scripts/make-fixtures-tokenizers.py into Fixtures/tokenizers/expected.jsonl
/// (no tolerance: ids are equal or the test fails, naming the first differing line).
final class TokenizerFamilyTests: XCTestCase {
    static let dir = Fixture.path("tokenizers")
    static let mpnet = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../.assets/mpnet/tokenizer.json").standardized.path

    struct Expected { let tokenizer: String; let maxLength: Int?; let ids: [[Int32]] }

    static func corpus() throws -> [String] {
        try String(contentsOfFile: dir + "/corpus.jsonl", encoding: .utf8).split(separator: "\n").map { line in
            guard let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let text = obj["text"] as? String else {
                throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "corpus.jsonl line is not {\"text\": …}: \(line)"])
            }
            return text
        }
    }

    static func expected() throws -> [Expected] {
        try String(contentsOfFile: dir + "/expected.jsonl", encoding: .utf8).split(separator: "\n").map { line in
            guard let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let name = obj["tokenizer"] as? String, let ids = obj["ids"] as? [[Int]] else {
                throw NSError(domain: "expected.jsonl", code: 1)
            }
            return Expected(tokenizer: name, maxLength: obj["max_length"] as? Int, ids: ids.map { $0.map { Int32($0) } })
        }
    }

    /// Compares every expected block of `name` (untruncated and truncated) line by line.
    func check(_ name: String, path: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let tok = try TokenizerFile.load(path: path)
        let texts = try Self.corpus()
        let blocks = try Self.expected().filter { $0.tokenizer == name }
        XCTAssertGreaterThanOrEqual(blocks.count, 2, "expected.jsonl has no blocks for \(name)", file: file, line: line)
        for block in blocks {
            XCTAssertEqual(block.ids.count, texts.count, file: file, line: line)
            var mismatches = 0, first: String? = nil, others: [Int] = []
            for (i, (text, ref)) in zip(texts, block.ids).enumerated() {
                let ours = tok.encode(text, maxLength: block.maxLength ?? Int.max)
                if ours != ref {
                    mismatches += 1
                    if first == nil { first = "line \(i + 1) \(text.debugDescription):\n ours \(ours)\n ref  \(ref)" } else { others.append(i + 1) }
                }
            }
            XCTAssertEqual(mismatches, 0, "\(name) max_length \(block.maxLength.map(String.init) ?? "none"): \(mismatches) of \(texts.count) lines differ; first: \(first ?? ""); also lines \(others.prefix(20))",
                           file: file, line: line)
        }
    }

    func testRobertaByteLevelBPEMatchesTokenizers() throws { try check("roberta_bpe.json", path: Self.dir + "/roberta_bpe.json") }
    func testModernBERTStyleBPEMatchesTokenizers() throws { try check("modernbert_bpe.json", path: Self.dir + "/modernbert_bpe.json") }
    func testGPT2StyleBPEWithPrefixSpaceAndLowercaseMatchesTokenizers() throws { try check("gpt2_bpe.json", path: Self.dir + "/gpt2_bpe.json") }
    func testLlamaStyleSentencePieceBPEWithByteFallbackMatchesTokenizers() throws { try check("llama_bpe.json", path: Self.dir + "/llama_bpe.json") }
    func testMistralStyleMetaspaceFirstBPEMatchesTokenizers() throws { try check("mistral_bpe.json", path: Self.dir + "/mistral_bpe.json") }
    func testXLMRUnigramWithPrecompiledCharsmapMatchesTokenizers() throws { try check("xlmr_unigram.json", path: Self.dir + "/xlmr_unigram.json") }
    func testTransformers5XLMRLayoutMatchesTokenizers() throws { try check("xlmr5_unigram.json", path: Self.dir + "/xlmr5_unigram.json") }

    /// all-mpnet-base-v2: WordPiece + BertNormalizer + RobertaProcessing (`<s>`=0 … `</s>`=2).
    func testMPNetWordPieceWithRobertaProcessingMatchesTokenizers() throws {
        guard FileManager.default.fileExists(atPath: Self.mpnet) else {
            print("skipping: \(Self.mpnet) is missing (Scripts/fetch-assets downloads all-mpnet-base-v2)")
            throw XCTSkip("\(Self.mpnet) is missing")
        }
        try check("mpnet", path: Self.mpnet)
        let tok = try TokenizerFile.load(path: Self.mpnet)
        XCTAssertTrue(tok is WordPieceTokenizer)
        XCTAssertEqual(tok.encode("hello", maxLength: 2), [0, 2])
        XCTAssertEqual(tok.padId, 1)
    }

    func testLoaderPicksTheModelFromModelType() throws {
        XCTAssertTrue(try TokenizerFile.load(path: Fixture.path("minilm_tokenizer.json")) is WordPieceTokenizer)
        XCTAssertTrue(try TokenizerFile.load(path: Self.dir + "/roberta_bpe.json") is BPETokenizer)
        XCTAssertTrue(try TokenizerFile.load(path: Self.dir + "/xlmr_unigram.json") is UnigramTokenizer)
        let roberta = try TokenizerFile.load(path: Self.dir + "/roberta_bpe.json")
        XCTAssertEqual(roberta.padId, 1)
        for limit in [Int.min, -1, 0, 1, 2] { XCTAssertEqual(roberta.encode("hello world", maxLength: limit), [0, 2], "limit \(limit)") }
        XCTAssertEqual(roberta.encode("hello world", maxLength: 3).count, 3)
    }

    /// Canonically equivalent tokens are different tokens (the library compares bytes): ids
    /// from `tokenizers` for this vocabulary are [2], [3] and [3, 2, 0].
    func testCanonicallyEquivalentTokensStayDistinct() throws {
        let path = try tempDir() + "/tokenizer.json"
        let json = #"{"version":"1.0","added_tokens":[],"normalizer":null,"pre_tokenizer":null,"post_processor":null,"#
            + #""model":{"type":"BPE","dropout":null,"unk_token":null,"vocab":{"a":0,"\u0300":1,"\u00e0":2,"a\u0300":3},"merges":[["a","\u0300"]]}}"#
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        let tok = try TokenizerFile.load(path: path)
        XCTAssertEqual(tok.encode("\u{E0}", maxLength: 8), [2])
        XCTAssertEqual(tok.encode("a\u{300}", maxLength: 8), [3])
        XCTAssertEqual(tok.encode("a\u{300}\u{E0}a", maxLength: 8), [3, 2, 0])
    }

    // MARK: errors name the file and the field

    func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "alloy-tok-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    /// Writes `source` edited by `edit` (on its JSON object) and expects a load error
    /// mentioning the file and every string in `mentions`.
    func expectError(_ source: String, _ mentions: [String], file: StaticString = #filePath, line: UInt = #line,
                     _ edit: (inout [String: Any]) -> Void) throws {
        var obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: source))) as? [String: Any])
        edit(&obj)
        let path = try tempDir() + "/tokenizer.json"
        try JSONSerialization.data(withJSONObject: obj).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try TokenizerFile.load(path: path), file: file, line: line) { e in
            guard case EncoderError.unsupportedTokenizer(let p, let reason) = e else { return XCTFail("\(e)", file: file, line: line) }
            XCTAssertEqual(p, path, file: file, line: line)
            for m in mentions { XCTAssertTrue("\(e)".contains(m), "\(e) does not mention \(m)", file: file, line: line) }
            _ = reason
        }
    }

    func testUnsupportedContentIsAClearError() throws {
        let bpe = Self.dir + "/roberta_bpe.json", uni = Self.dir + "/xlmr_unigram.json"
        try expectError(bpe, ["model.type", "WordLevel"]) { o in
            var m = o["model"] as? [String: Any] ?? [:]; m["type"] = "WordLevel"; o["model"] = m
        }
        try expectError(bpe, ["normalizer", "BertPreNormalizer"]) { $0["normalizer"] = ["type": "BertPreNormalizer"] }
        try expectError(uni, ["normalizer.normalizers[1]", "NMT"]) { o in
            var n = o["normalizer"] as? [String: Any] ?? [:]
            var list = n["normalizers"] as? [Any] ?? []
            list[1] = ["type": "NMT"]; n["normalizers"] = list; o["normalizer"] = n
        }
        // A general regex could backtrack for ever on hostile text: only runs of one character are read.
        try expectError(uni, ["normalizer.normalizers[2].pattern.Regex", "(a+)+$"]) { o in
            var n = o["normalizer"] as? [String: Any] ?? [:]
            var list = n["normalizers"] as? [Any] ?? []
            list[2] = ["type": "Replace", "pattern": ["Regex": "(a+)+$"], "content": "x"]; n["normalizers"] = list; o["normalizer"] = n
        }
        try expectError(bpe, ["pre_tokenizer", "Digits"]) { $0["pre_tokenizer"] = ["type": "Digits", "individual_digits": true] }
        try expectError(bpe, ["model.dropout"]) { o in
            var m = o["model"] as? [String: Any] ?? [:]; m["dropout"] = 0.1; o["model"] = m
        }
        try expectError(uni, ["precompiled_charsmap", "base64"]) { o in
            var n = o["normalizer"] as? [String: Any] ?? [:]
            var list = n["normalizers"] as? [Any] ?? []
            list[0] = ["type": "Precompiled", "precompiled_charsmap": "not base64!"]; n["normalizers"] = list; o["normalizer"] = n
        }
        try expectError(uni, ["precompiled_charsmap", "trie size"]) { o in
            var n = o["normalizer"] as? [String: Any] ?? [:]
            var list = n["normalizers"] as? [Any] ?? []
            list[0] = ["type": "Precompiled", "precompiled_charsmap": Data([0xFF, 0xFF, 0, 0, 1, 2]).base64EncodedString()]
            n["normalizers"] = list; o["normalizer"] = n
        }
        try expectError(bpe, ["model.merges[0]"]) { o in
            var m = o["model"] as? [String: Any] ?? [:]; m["merges"] = ["zzz_not_a_token x"]; o["model"] = m
        }
        try expectError(bpe, ["post_processor", "single"]) { o in
            o["post_processor"] = ["type": "TemplateProcessing", "single": [["Sequence": ["id": "A", "type_id": 0]], ["Sequence": ["id": "B", "type_id": 1]]],
                                   "pair": [], "special_tokens": [:]]
        }
        try expectError(uni, ["model.unk_id"]) { o in
            var m = o["model"] as? [String: Any] ?? [:]; m["unk_id"] = 1 << 40; o["model"] = m
        }
        try expectError(uni, ["model.vocab[5]"]) { o in
            var m = o["model"] as? [String: Any] ?? [:]
            var v = m["vocab"] as? [Any] ?? []
            v[5] = [String(repeating: "x", count: 5000), -1.0]; m["vocab"] = v; o["model"] = m
        }
        XCTAssertThrowsError(try TokenizerFile.load(path: "/nonexistent/tokenizer.json")) { XCTAssertTrue("\($0)".contains("/nonexistent/tokenizer.json"), "\($0)") }
    }

    // MARK: cost

    /// A 1 MB word must not hang BPE (heap merges, O(n log n)) or Unigram (trie depth ≤ piece cap).
    func testPathologicalLongWordsStayFast() throws {
        var rng = SystemRandomNumberGenerator()
        let letters = Array("abcdefghijklmnopqrstuvwxyzäöü")
        let words = [String(repeating: "a", count: 1 << 20), String((0..<(1 << 19)).map { _ in letters[Int.random(in: 0..<letters.count, using: &rng)] })]
        for name in ["roberta_bpe.json", "xlmr_unigram.json"] {
            let tok = try TokenizerFile.load(path: Self.dir + "/" + name)
            for w in words {
                let start = Date()
                let ids = tok.encode(w, maxLength: Int.max)
                let s = Date().timeIntervalSince(start)
                print("\(name): \(w.utf8.count)-byte word → \(ids.count) ids in \(String(format: "%.2f", s)) s")
                XCTAssertLessThan(s, 60, "\(name) took \(s) s on a \(w.utf8.count)-byte word")
                XCTAssertGreaterThan(ids.count, 2)
            }
        }
    }

    /// Prints (does not assert) tokens per second of each tokenizer on the corpus.
    func testThroughputIsReported() throws {
        let texts = try Self.corpus()
        var paths = ["minilm (WordPiece)": Fixture.path("minilm_tokenizer.json")]
        for n in ["roberta_bpe.json", "modernbert_bpe.json", "gpt2_bpe.json", "xlmr_unigram.json", "xlmr5_unigram.json", "llama_bpe.json", "mistral_bpe.json"] { paths[n] = Self.dir + "/" + n }
        if FileManager.default.fileExists(atPath: Self.mpnet) { paths["mpnet (WordPiece)"] = Self.mpnet }
        for (name, path) in paths.sorted(by: { $0.key < $1.key }) {
            let tok = try TokenizerFile.load(path: path)
            var tokens = 0
            let start = Date()
            for _ in 0..<3 { for t in texts { tokens += tok.encode(t, maxLength: 512).count } }
            let s = Date().timeIntervalSince(start)
            print("tokenizer throughput \(name): \(tokens) tokens in \(String(format: "%.3f", s)) s = \(Int(Double(tokens) / max(s, 1e-9))) tokens/s")
        }
    }
}

/// WordPiece character offsets against the `tokenizers` library (Scripts/make-fixtures-offsets.py:
/// MiniLM's tokenizer and a cased variant, untruncated and truncated at 16, every corpus line):
/// the same ids, each text token the same character span, special tokens none. A line whose
/// offsets are not tracked (added tokens in the text) must hold an added token, and no more than
/// those lines may lack offsets.
final class TokenizerOffsetTests: XCTestCase {
    func testWordPieceOffsetsMatchTokenizers() throws {
        let minilm = try WordPieceTokenizer(path: Fixture.path("minilm_tokenizer.json"))
        // The cased variant the script makes: the normalizer without lowercase and accent stripping.
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Fixture.path("minilm_tokenizer.json")))) as? [String: Any])
        var normalizer = try XCTUnwrap(json["normalizer"] as? [String: Any])
        normalizer["lowercase"] = false
        normalizer["strip_accents"] = false
        json["normalizer"] = normalizer
        let casedPath = NSTemporaryDirectory() + "alloy-cased-\(UUID().uuidString).json"
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: casedPath))
        defer { try? FileManager.default.removeItem(atPath: casedPath) }
        let tokenizers = ["minilm": minilm, "minilm_cased": try WordPieceTokenizer(path: casedPath)]
        let lines = try String(contentsOfFile: Fixture.path("tokenizers/offsets.jsonl"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 4 * 320)
        var checked = 0, untracked: [String] = [], mismatches: [String] = []
        for line in lines {
            let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let tok = try XCTUnwrap(tokenizers[o["tokenizer"] as? String ?? ""])
            let text = try XCTUnwrap(o["text"] as? String)
            let ids = try XCTUnwrap(o["ids"] as? [Int]).map(Int32.init)
            let special = try XCTUnwrap(o["special"] as? [Int])
            let offsets = try XCTUnwrap(o["offsets"] as? [[Int]])
            let maxLength = o["max_length"] as? Int ?? Int.max
            guard let spans = tok.encodeWithOffsets(text, maxLength: maxLength) else {
                untracked.append(text)
                continue
            }
            let want = zip(ids, zip(special, offsets)).map { id, so in TokenSpan(id: id, range: so.0 == 1 ? nil : so.1[0]..<so.1[1]) }
            if spans != want { mismatches.append("\(text.debugDescription): ours \(spans.map { "\($0.id)@\($0.range.map { "\($0)" } ?? "-")" }) ref \(want.map { "\($0.id)@\($0.range.map { "\($0)" } ?? "-")" })") }
            checked += 1
        }
        XCTAssertEqual(mismatches.count, 0, "\(mismatches.count) lines differ; first: \(mismatches.first ?? "")")
        for text in untracked {
            XCTAssertTrue(["[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]"].contains { text.contains($0) }, "offsets dropped for \(text.debugDescription), which has no added token")
        }
        XCTAssertGreaterThan(checked, 4 * 300, "offsets were checked on \(checked) lines")
    }
}
