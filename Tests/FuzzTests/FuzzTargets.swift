import Foundation
import Tensors
import Formats
@testable import Encoder
import Evaluation
import Merging

/// Paths of the committed fixtures the fuzz seeds come from.
enum FuzzFixtures {
    static let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    static let repo = tests.deletingLastPathComponent()
    static func path(_ rel: String) -> String { tests.appendingPathComponent(rel).path }
    static func seeds(_ rel: String) -> String { path("FuzzTests/Seeds/" + rel) }
    static func regressions(_ rel: String) -> String { path("FuzzTests/Regressions/" + rel) }
    static let tinyModel = path("EncoderTests/Fixtures/tiny")

    static func bytes(_ path: String) -> [UInt8] { (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))) ?? [] }
    static func file(_ name: String, _ path: String, _ style: MutationStyle) -> FuzzFile { FuzzFile(name: name, bytes: bytes(path), style: style) }
    static func link(_ name: String, _ path: String) -> FuzzFile { FuzzFile(name: name, bytes: [], style: .fixed, link: path) }
}

/// The tiny BERT of EncoderTests/Fixtures/tiny, loaded once.
enum TinyModel {
    nonisolated(unsafe) static var cached: EncoderModel?
    static func get() throws -> EncoderModel {
        if let m = cached { return m }
        let m = try EncoderModel(directory: FuzzFixtures.tinyModel)
        cached = m
        return m
    }
}

enum FuzzTargets {
    static func p(_ dir: String, _ name: String) -> String { (dir as NSString).appendingPathComponent(name) }

    /// Reads every tensor of a safetensors-backed source, touching its bytes.
    static func touch(_ t: Tensor) {
        _ = t.rawBytes.reduce(0 as UInt8) { $0 &+ $1 }
        if t.dtype.isFloatingPoint { _ = try? t.converted(to: .f32) }
    }

    static var safetensors: FuzzTarget {
        let seeds = ["FormatsTests/Fixtures/safetensors/all_dtypes.safetensors", "FormatsTests/Fixtures/safetensors/no_metadata.safetensors",
                     "FormatsTests/Fixtures/safetensors/empty.safetensors", "StoreTests/Fixtures/peft_cls/adapter_model.safetensors"]
            .map { FuzzInput(name: $0, files: [FuzzFixtures.file("model.safetensors", FuzzFixtures.path($0), .safetensors)]) }
        return FuzzTarget(name: "safetensors", seeds: seeds) { dir in
            let f = try SafetensorsFile(path: p(dir, "model.safetensors"))
            for n in f.names { touch(try f.tensor(n)) }
            let w = try WeightSource(path: dir)
            for n in w.names { touch(try w.tensor(n)) }
        }
    }

    /// A sharded model: index JSON plus two shards, written by `writeSharded`.
    static var shardedSeed: FuzzInput {
        let dir = (FuzzConfig.workRoot as NSString).appendingPathComponent("seed-sharded")
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let a = (try? Tensor([1, 2, 3, 4], shape: Shape([2, 2]))).map { [("a.weight", $0)] } ?? []
        let b = (try? Tensor([5, 6, 7], shape: Shape([3]))).map { [("b.bias", $0)] } ?? []
        let names = (try? SafetensorsWriter.writeSharded(a + b, directory: dir, maxShardBytes: 16)) ?? []
        return FuzzInput(name: "sharded", files: names.map { n in
            FuzzFixtures.file(n, p(dir, n), n.hasSuffix(".json") ? .json : .safetensors)
        })
    }

    static var shardedIndex: FuzzTarget {
        FuzzTarget(name: "safetensors_index", seeds: [shardedSeed]) { dir in
            let w = try WeightSource(path: dir)
            for n in w.names { touch(try w.tensor(n)) }
        }
    }

    /// `pytorch_model.bin` (torch.save zip + restricted unpickler): byte mutations of a
    /// two-tensor `nn.Linear` state dict (Scripts/make-fixtures-torch.py).
    static var torchCheckpoint: FuzzTarget {
        let seed = FuzzInput(name: "torch_linear", files: [FuzzFixtures.file("pytorch_model.bin", FuzzFixtures.seeds("torch/pytorch_model.bin"), .binary)])
        return FuzzTarget(name: "torch_checkpoint", seeds: [seed]) { dir in
            let w = try WeightSource(path: dir)
            for n in w.names { touch(try w.tensor(n)) }
        }
    }

    /// The pickle stream alone: the `data.pkl` of several valid checkpoints mutated as bytes (the
    /// others' pickles as splice donors), then wrapped with the seed's storages into a stored zip,
    /// so every mutant reaches the unpickler instead of failing in the zip's offsets.
    static var torchPickle: FuzzTarget {
        let fixtures = ["FuzzTests/Seeds/torch/pytorch_model.bin", "FormatsTests/Fixtures/torch/strided.bin", "FormatsTests/Fixtures/torch/tied.bin",
                        "FormatsTests/Fixtures/torch/nested.bin", "FormatsTests/Fixtures/torch/sharded/pytorch_model-00002-of-00002.bin"]
        let seeds = fixtures.compactMap { rel -> FuzzInput? in
            let path = FuzzFixtures.path(rel)
            guard let m = try? MappedFile(path: path), let z = try? ZipArchive(bytes: m.bytes, path: path) else { return nil }
            var files: [FuzzFile] = []
            for e in z.entries {
                guard let slash = e.name.firstIndex(of: "/") else { continue }
                let inner = String(e.name[e.name.index(after: slash)...])
                guard inner == "data.pkl" || inner.hasPrefix("data/") else { continue }
                files.append(FuzzFile(name: inner, bytes: Array(m.bytes[e.dataRange]), style: inner == "data.pkl" ? .binary : .fixed))
            }
            return FuzzInput(name: rel, files: files)
        }
        return FuzzTarget(name: "torch_pickle", seeds: seeds) { dir in
            var entries = [(name: "archive/data.pkl", bytes: FuzzFixtures.bytes(p(dir, "data.pkl")))]
            let keys = ((try? FileManager.default.contentsOfDirectory(atPath: p(dir, "data"))) ?? []).sorted()
            entries += keys.map { (name: "archive/data/\($0)", bytes: FuzzFixtures.bytes(p(dir, "data/" + $0))) }
            try FuzzRun.writeBytes(StoredZip.make(entries), to: p(dir, "pytorch_model.bin"))
            let w = try WeightSource(path: p(dir, "pytorch_model.bin"))
            for n in w.names { touch(try w.tensor(n)) }
        }
    }

    /// The hand-assembled hostile pickles of FormatsTests/Fixtures/torch/hostile (GLOBAL
    /// os.system, REDUCE eval, deep nesting, a huge memo index, a storage outside the archive,
    /// negative and overflowing sizes, …) and their byte mutants. Every seed is an error
    /// (TorchCheckpointTests checks which); here a mutant may only fail, never crash or hang.
    static var torchHostile: FuzzTarget {
        let dir = FuzzFixtures.path("FormatsTests/Fixtures/torch/hostile")
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".bin") }.sorted()
        let seeds = names.map { FuzzInput(name: $0, files: [FuzzFixtures.file("pytorch_model.bin", p(dir, $0), .binary)]) }
        return FuzzTarget(name: "torch_hostile", seeds: seeds) { dir in
            guard let w = try? WeightSource(path: dir) else { return }
            for n in w.names { touch(try w.tensor(n)) }
        }
    }

    /// Small `.alloy` files, one per codec, written by `AlloyWriter`.
    static var alloySeeds: [FuzzInput] {
        var rng = SplitMix(seed: 7)
        func floats(_ n: Int, zeros: Double = 0) -> [Float] {
            (0..<n).map { _ in Double(rng.next() % 1000) / 1000 < zeros ? 0 : Float(Int(rng.next() % 2001) - 1000) / 997 }
        }
        func t(_ v: [Float], _ dims: [Int], _ dtype: DType = .f32) -> Tensor? {
            (try? Tensor(v, shape: Shape(dims))).flatMap { try? $0.converted(to: dtype) }
        }
        func enc(_ name: String, _ inputs: [(String, Tensor?, AlloyCodec)]) -> FuzzInput? {
            let ins = inputs.compactMap { i in i.1.map { AlloyWriter.Input(name: i.0, tensor: $0, codec: i.2) } }
            guard let e = try? AlloyWriter.encode(ins, metadata: [("kind", .string("base")), ("note", .array([.integer(1), .number(0.5)]))]) else { return nil }
            return FuzzInput(name: name, files: [FuzzFile(name: "model.alloy", bytes: e.bytes, style: .alloy)])
        }
        let ids = try? Tensor(dtype: .i64, shape: Shape([5]), bytes: [Int64](arrayLiteral: 0, 5, -3, 99, 1 << 40).withUnsafeBytes { UnsafeRawBufferPointer($0) })
        return [
            enc("float", [("w", t(floats(96), [8, 12]), .float), ("b", t(floats(8), [8]), .raw)]),
            enc("sparse", [("d", t(floats(300, zeros: 0.9), [300]), .sparse), ("h", t(floats(40, zeros: 0.8), [40], .f16), .sparse)]),
            enc("lossy", [("q", t(floats(64), [4, 16]), .int8Row), ("h", t(floats(32), [32]), .f16), ("g", t(floats(32), [2, 16]), .bf16)]),
            enc("mixed", [("ids", ids, .raw), ("x", t(floats(20), [20], .f64), .float), ("y", t(floats(24), [2, 3, 4], .bf16), .float),
                          ("e", t([], [0, 3]), .float)]),
        ].compactMap { $0 }
    }

    static var alloy: FuzzTarget {
        FuzzTarget(name: "alloy", seeds: alloySeeds) { dir in
            let f = try AlloyFile(path: p(dir, "model.alloy"))
            for n in f.names { touch(try f.tensor(n)) }
            try f.verify()
            try f.unpack(to: p(dir, "unpacked.safetensors"))
        }
    }

    /// `pack --base`: a diff-pruned delta (`.indices` + `.values`) against a small base.
    static var sparseDeltaSeeds: [FuzzInput] {
        func tensor(_ dtype: DType, _ dims: [Int], _ bytes: [UInt8]) -> Tensor? {
            try? bytes.withUnsafeBytes { try Tensor(dtype: dtype, shape: Shape(dims), bytes: $0) }
        }
        func le<T: FixedWidthInteger>(_ v: [T]) -> [UInt8] { v.flatMap { x in withUnsafeBytes(of: x.littleEndian) { Array($0) } } }
        guard let w = try? Tensor((0..<16).map { Float($0) / 8 }, shape: Shape([4, 4])), let b = try? Tensor([0, 1, 2, 3], shape: Shape([4])),
              let wi = tensor(.i64, [3], le([Int64(0), 5, 15])), let wv = try? Tensor([0.5, -1, 2], shape: Shape([3])),
              let bi = tensor(.i32, [2], le([Int32(1), 3])), let bv = try? Tensor([0.25, 4], shape: Shape([2])).converted(to: .f16)
        else { return [] }
        let base = SafetensorsWriter.serialize([("w", w), ("b", b)])
        let delta = SafetensorsWriter.serialize([("w.indices", wi), ("w.values", wv), ("b.indices", bi), ("b.values", bv)])
        return [FuzzInput(name: "delta", files: [FuzzFile(name: "delta.safetensors", bytes: delta, style: .safetensors),
                                                 FuzzFile(name: "base.safetensors", bytes: base, style: .safetensors)])]
    }

    static var sparseDelta: FuzzTarget {
        FuzzTarget(name: "sparse_delta", seeds: sparseDeltaSeeds) { dir in
            let e = try AlloyFile.packSparseDelta(SafetensorsFile(path: p(dir, "delta.safetensors")), base: WeightSource(path: p(dir, "base.safetensors")))
            try e.write(to: p(dir, "delta.alloy"))
            try AlloyFile(path: p(dir, "delta.alloy")).verify()
        }
    }

    static var peft: FuzzTarget {
        let seeds = ["StoreTests/Fixtures/peft_cls", "EncoderTests/Fixtures/tiny/lora", "EncoderTests/Fixtures/tiny/rslora"].map { d in
            FuzzInput(name: d, files: [FuzzFixtures.file("adapter_config.json", FuzzFixtures.path(d + "/adapter_config.json"), .json),
                                       FuzzFixtures.file("adapter_model.safetensors", FuzzFixtures.path(d + "/adapter_model.safetensors"), .safetensors)])
        }
        return FuzzTarget(name: "peft", seeds: seeds) { dir in
            _ = try PEFTAdapter(directory: dir)
            let lora = try LoRAAdapter(peft: dir, for: try TinyModel.get(), labels: [])
            if let h = lora.head { _ = h.probabilities([Float](repeating: 0.5, count: h.weight.shape.dims[1])) }
        }
    }

    static var hfConfig: FuzzTarget {
        let seed = FuzzInput(name: "tiny", files: [FuzzFixtures.file("config.json", FuzzFixtures.tinyModel + "/config.json", .json),
                                                   FuzzFixtures.link("model.safetensors", FuzzFixtures.tinyModel + "/model.safetensors")])
        return FuzzTarget(name: "hf_config", seeds: [seed]) { dir in
            _ = try HFConfig.load(path: p(dir, "config.json"))
            _ = try EncoderModel(directory: dir)
        }
    }

    /// Every tokenizer family through the one loader: WordPiece (the tiny BERT's), byte-level
    /// BPE, SentencePiece BPE with byte fallback, and Unigram with a Precompiled charsmap (small
    /// seeds from make-fixtures-tokenizers.py).
    static var tokenizer: FuzzTarget {
        let seeds = [("tiny", "tokenizer/tokenizer.json"), ("bpe", "tokenizer_bpe/tokenizer.json"), ("unigram", "tokenizer_unigram/tokenizer.json"),
                     ("spbpe", "tokenizer_spbpe/tokenizer.json")].map {
            FuzzInput(name: $0.0, files: [FuzzFixtures.file("tokenizer.json", FuzzFixtures.seeds($0.1), .json)])
        }
        return FuzzTarget(name: "tokenizer", seeds: seeds) { dir in
            let t = try TokenizerFile.load(path: p(dir, "tokenizer.json"))
            for (text, limit) in [("The movie was unbelievable, fun!", 16), ("é 中文 hello\u{0}\t world", Int.min), ("a", -1), ("", 0),
                                  ("playing played", 2), ("x", Int.max), (String(repeating: "un", count: 300), 3),
                                  ("<s> A\u{FB01}\u{3000}x </s> [CLS] 'll 😀", 64), (String(repeating: "ab", count: 5000), 8)] {
                let ids = t.encode(text, maxLength: limit)
                // Offsets, where tracked: the same ids, spans inside the text, in order (a
                // violation traps, which the harness reports with the input).
                if let spans = t.encodeWithOffsets(text, maxLength: limit) {
                    let count = text.unicodeScalars.count, ranges = spans.compactMap(\.range)
                    precondition(spans.map(\.id) == ids && ranges.allSatisfy { $0.lowerBound >= 0 && $0.upperBound <= count }
                                 && zip(ranges, ranges.dropFirst()).allSatisfy { $0.lowerBound <= $1.lowerBound },
                                 "offsets of \(text.debugDescription) at \(limit) disagree with the ids or leave the text")
                }
            }
        }
    }

    static var sentenceTransformers: FuzzTarget {
        let st = "sentence_transformers/"
        let seed = FuzzInput(name: "tiny-st", files: [
            FuzzFixtures.file("modules.json", FuzzFixtures.seeds(st + "modules.json"), .json),
            FuzzFixtures.file("1_Pooling/config.json", FuzzFixtures.seeds(st + "1_Pooling/config.json"), .json),
            FuzzFixtures.file("sentence_bert_config.json", FuzzFixtures.seeds(st + "sentence_bert_config.json"), .json),
            FuzzFixtures.file("tokenizer.json", FuzzFixtures.seeds("tokenizer/tokenizer.json"), .json),
            FuzzFixtures.link("config.json", FuzzFixtures.tinyModel + "/config.json"),
            FuzzFixtures.link("model.safetensors", FuzzFixtures.tinyModel + "/model.safetensors"),
        ])
        return FuzzTarget(name: "sentence_transformers", seeds: [seed]) { dir in
            let e = try SentenceEncoder(directory: dir)
            _ = e.encode(["the movie was great", "hello world"], maxLength: nil)
            _ = e.tokenize(["unbelievable"], maxLength: Int.min)
        }
    }

    static var recipe: FuzzTarget {
        let dir = FuzzFixtures.path("MergingTests/Fixtures")
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
        let seeds = names.map { FuzzInput(name: $0, files: [FuzzFixtures.file("recipe.yaml", p(dir, $0), .yaml)]) }
        return FuzzTarget(name: "recipe", seeds: seeds) { dir in
            let r = try Recipe(path: p(dir, "recipe.yaml"))
            if let name = r.method.parameters.first?.name { _ = try r.overriding(name, with: 0.5) }
        }
    }

    static var taskData: FuzzTarget {
        let seed = FuzzInput(name: "test.jsonl", files: [FuzzFixtures.file("test.jsonl", FuzzFixtures.seeds("task_jsonl/test.jsonl"), .json)])
        return FuzzTarget(name: "task_jsonl", seeds: [seed]) { dir in
            let d = try TaskData(path: p(dir, "test.jsonl"))
            _ = d.labelSet
            _ = try TaskData(path: p(dir, "test.jsonl"), allowed: ["positive", "negative", "neutral"])
        }
    }

    static var card: FuzzTarget {
        let seeds = ["bbc_topic", "sms_spam"].map { t in
            FuzzInput(name: t, files: [FuzzFile(name: "card.json", bytes: FuzzFixtures.bytes(FuzzFixtures.repo.appendingPathComponent("Adapters/\(t)/card.json").path), style: .json)])
        }
        return FuzzTarget(name: "card", seeds: seeds) { dir in
            let c = try ExpertCard.load(path: p(dir, "card.json"))
            _ = try ExpertCard.decode(try c.encoded(), path: "re-encoded")
            _ = try ClassificationHead.labels(near: dir)
            _ = try ClassificationHead.maxLength(near: dir)
        }
    }

    /// A classification head folder: head.safetensors and its card.
    static var head: FuzzTarget {
        var files: [FuzzFile] = []
        if let w = try? Tensor((0..<64).map { Float($0 % 7) / 7 - 0.5 }, shape: Shape([2, 32])), let b = try? Tensor([0.1, -0.1], shape: Shape([2])) {
            files.append(FuzzFile(name: "head.safetensors", bytes: SafetensorsWriter.serialize([("classifier.weight", w), ("classifier.bias", b)]), style: .safetensors))
        }
        files.append(FuzzFile(name: "card.json", bytes: Array(#"{"task": "t", "labels": ["negative", "positive"], "head": {"pooling": "mean", "max_length": 16}}"#.utf8), style: .json))
        return FuzzTarget(name: "head", seeds: [FuzzInput(name: "head", files: files)]) { dir in
            let h = try ClassificationHead.load(path: dir, model: try TinyModel.get())
            _ = h.probabilities([Float](repeating: 0.25, count: h.weight.shape.dims[1]))
        }
    }

    /// `--adapter PATH`: a sparse delta, a task vector and a `.alloy` delta for the tiny model,
    /// added to an adapter set and run through the model once.
    static var adapterSetSeeds: [FuzzInput] {
        func le<T: FixedWidthInteger>(_ v: [T]) -> [UInt8] { v.flatMap { x in withUnsafeBytes(of: x.littleEndian) { Array($0) } } }
        guard let idx = try? le([Int64(0), 33, 1023]).withUnsafeBytes({ try Tensor(dtype: .i64, shape: Shape([3]), bytes: $0) }),
              let val = try? Tensor([0.5, -0.25, 1], shape: Shape([3])),
              let bias = try? Tensor([Float](repeating: 0.01, count: 32), shape: Shape([32])) else { return [] }
        let q = "encoder.layer.0.attention.self.query.weight"
        let delta = SafetensorsWriter.serialize([(q + ".indices", idx), (q + ".values", val)])
        let tv = SafetensorsWriter.serialize([("encoder.layer.1.output.dense.bias", bias)])
        var seeds = [FuzzInput(name: "sparse", files: [FuzzFile(name: "delta.safetensors", bytes: delta, style: .safetensors)]),
                     FuzzInput(name: "task-vector", files: [FuzzFile(name: "tv.safetensors", bytes: tv, style: .safetensors)])]
        let tmp = (FuzzConfig.workRoot as NSString).appendingPathComponent("seed-adapter")
        try? FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        let dp = (tmp as NSString).appendingPathComponent("delta.safetensors")
        if (try? FuzzRun.writeBytes(delta, to: dp)) != nil,
           let packed = try? AlloyFile.packSparseDelta(SafetensorsFile(path: dp), base: WeightSource(path: FuzzFixtures.tinyModel)) {
            seeds.append(FuzzInput(name: "alloy-delta", files: [FuzzFile(name: "delta.alloy", bytes: packed.bytes, style: .alloy)]))
        }
        return seeds
    }

    static var adapterSet: FuzzTarget {
        FuzzTarget(name: "adapter_set", seeds: adapterSetSeeds) { dir in
            let model = try TinyModel.get()
            for f in ["delta.safetensors", "tv.safetensors", "delta.alloy"] where FileManager.default.fileExists(atPath: p(dir, f)) {
                var set = AdapterSet()
                try set.add(path: p(dir, f), scale: 0.5, model: model)
                _ = model.hiddenStates([[2, 5, 7, 3]], adapters: set)
            }
        }
    }

    /// Packed-weight cache files (`.alloypack`) of the tiny model at f32 and int8, as written by
    /// `PackedWeightCache`; a mutant is opened against the model's layers and every weight it
    /// yields is multiplied by, reading all of its parts.
    static var packedWeights: FuzzTarget {
        let seeds: [FuzzInput] = [Precision.f32, .int8].compactMap { precision in
            guard let model = try? TinyModel.get(), let hash = try? model.contentHash() else { return nil }
            let dir = (FuzzConfig.workRoot as NSString).appendingPathComponent("seed-packed")
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let path = p(dir, "\(precision).alloypack")
            let cache = PackedWeightCache(directory: dir, minimumBytes: 0)
            guard (try? cache.write(path, key: .init(contentHash: hash, precision: precision, isa: Kernels.isa), layers: model.baseLinears())) != nil else { return nil }
            return FuzzInput(name: "\(precision)", files: [FuzzFixtures.file("weights.alloypack", path, .binary)])
        }
        return FuzzTarget(name: "packed_weights", seeds: seeds) { dir in
            let model = try TinyModel.get()
            let layers = model.baseLinears()
            var opened: [String: PackedLinear]?
            var failure: (any Error)?
            for precision in [Precision.f32, .int8] {
                let key = PackedWeightCache.Key(contentHash: try model.contentHash(), precision: precision, isa: Kernels.isa)
                do { opened = try PackedWeightCache(directory: dir).open(p(dir, "weights.alloypack"), key: key, layers: layers); break } catch { failure = error }
            }
            guard let weights = opened else { throw failure! }   // one of the two precisions failed with an error
            for (_, w) in weights {
                let x = [Float](repeating: 0.5, count: w.k)
                var y = [Float](repeating: 0, count: w.n)
                x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                    w.linear(x: xp.baseAddress!, ldx: w.k, bias: nil, y: yp.baseAddress!, ldy: w.n, m: 1)
                } }
            }
        }
    }

    static var all: [FuzzTarget] {
        [safetensors, shardedIndex, alloy, sparseDelta, peft, hfConfig, tokenizer, sentenceTransformers, recipe, taskData, card, head, adapterSet,
         torchCheckpoint, torchPickle, torchHostile, packedWeights]
    }
}
