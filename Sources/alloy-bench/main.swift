import Foundation
import Encoder
import Formats
import Tensors

/// Alloy's benchmark driver. Each subcommand measures one thing and prints one JSON object;
/// Scripts/bench-* run it next to the peers (Python) in the same run and tabulate ratios.
///
///   alloy-bench container FILE.safetensors [--reps N]
///       pack (encode only, in memory) and decode of every tensor, lossless automatic codecs.
///   alloy-bench runtime MODEL_DIR SENTENCES.txt [--reps N]
///       encoder throughput: base; LoRA r=8 on query/value unmerged vs merged into the weights;
///       a batch mixing 8 different LoRA adapters vs one adapter; adapter hot-swap time.

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let t = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9
}

func option(_ name: String, default d: Int) -> Int {
    let args = CommandLine.arguments
    if let i = args.firstIndex(of: name), i + 1 < args.count, let v = Int(args[i + 1]) { return v }
    return d
}

func benchContainer(_ path: String) throws {
    let reps = option("--reps", default: 5)
    let src = try WeightSource(path: path)
    let raw = src.entries.reduce(0) { $0 + $1.info.dataRange.count }
    // Touch the input once so timings are of warm, mapped memory.
    for n in src.names { _ = try src.tensor(n).rawBytes.reduce(0, { $0 &+ Int($1) }) }
    var encoded: AlloyWriter.Encoded? = nil
    var encodeTimes: [Double] = []
    for _ in 0..<reps { encoded = nil; encodeTimes.append(try seconds { encoded = try AlloyFile.pack(src) }) }
    let tmp = NSTemporaryDirectory() + "alloy-bench-\(getpid()).alloy"
    try encoded!.write(to: tmp)
    let stored = encoded!.size
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    let file = try AlloyFile(path: tmp)
    var decodeTimes: [Double] = []
    for _ in 0..<reps {
        decodeTimes.append(try seconds { for e in file.tensors { _ = try file.tensor(e.name) } })
    }
    let best = { (xs: [Double]) in xs.min()! }
    let result: [String: Any] = [
        "tool": "alloy", "codec": "auto (float/sparse/raw)", "raw_bytes": raw, "stored_bytes": stored,
        "ratio": Double(raw) / Double(stored),
        "compress_MBps": Double(raw) / best(encodeTimes) / 1e6, "decompress_MBps": Double(raw) / best(decodeTimes) / 1e6,
        "threads": Parallel.threadCount, "reps": reps,
    ]
    let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

/// A random LoRA (r=8, α=16) on every layer's query and value, seeded.
func randomLoRA(_ model: EncoderModel, seed: UInt64) throws -> LoRAAdapter {
    var state = seed
    func next() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000 * 0.05
    }
    var layers: [String: LoRAWeights] = [:]
    for l in 0..<model.layers {
        for which in [Architecture.Linear.query, .value] {
            let h = model.hidden
            let a = try Tensor((0..<(8 * h)).map { _ in next() }, shape: Shape([8, h]))
            let b = try Tensor((0..<(h * 8)).map { _ in next() }, shape: Shape([h, 8]))
            layers[model.architecture.path(which, layer: l)] = LoRAWeights(a: a, b: b, scale: 2)
        }
    }
    return LoRAAdapter(name: "random-\(seed)", layers: layers, head: nil)
}

/// The adapter merged into copies of the weights it touches: W + scale·B·A.
func merged(_ lora: LoRAAdapter, _ model: EncoderModel) throws -> AdapterSet {
    var set = AdapterSet()
    for (path, lw) in lora.layers {
        let w = model.weights[path + ".weight"]!
        let out = try Tensor(dtype: .f32, shape: w.shape, bytes: w.rawBytes)
        lw.add(into: out.buffer.mutableBase.assumingMemoryBound(to: Float.self))
        set.patched[path + ".weight"] = out
    }
    return set
}

func benchRuntime(_ dir: String, _ sentences: String) throws {
    let reps = option("--reps", default: 3)
    let enc = try SentenceEncoder(directory: dir)
    let texts = try String(contentsOfFile: sentences, encoding: .utf8).split(separator: "\n").map(String.init)
    let ids = enc.tokenize(texts)
    let tokens = ids.reduce(0) { $0 + $1.count }
    // Batches of 32 sequences of similar length, as `alloy embed` forms them.
    let order = ids.indices.sorted { ids[$0].count < ids[$1].count }
    let batches = stride(from: 0, to: order.count, by: 32).map { Array(order[$0..<min(order.count, $0 + 32)]).map { ids[$0] } }
    let model = enc.model
    let lora = try randomLoRA(model, seed: 1)
    var unmergedSet = AdapterSet(); unmergedSet.loras = [(lora, 1)]
    let mergedSet = try merged(lora, model)
    let eight = try (1...8).map { try randomLoRA(model, seed: UInt64($0)) }
    // Configurations run interleaved, rep by rep, so machine noise hits all alike; best of reps.
    let configs: [(String, ([[Int32]]) -> Void)] = [
        ("base", { _ = model.hiddenStates($0) }),
        ("unmerged", { _ = model.hiddenStates($0, adapters: unmergedSet) }),
        ("merged", { _ = model.hiddenStates($0, adapters: mergedSet) }),
        ("single", { b in _ = model.hiddenStates(b, perSequence: b.indices.map { _ in (eight[0], 1) }) }),
        ("mixed8", { b in _ = model.hiddenStates(b, perSequence: b.indices.map { (eight[$0 % 8], 1) }) }),
    ]
    var best = [String: Double](), runs = [String: [Double]]()
    for _ in 0..<reps {
        for (name, body) in configs {
            let t = seconds { for b in batches { body(b) } }
            best[name] = min(best[name] ?? .infinity, t)
            runs[name, default: []].append(t)
        }
    }
    // Paired: the ratio of adjacent runs within each rep, median over reps — drifts of the
    // machine's speed between reps cancel; `base` vs `merged` (identical work) shows the floor.
    func pairedMedian(_ a: String, _ b: String) -> Double {
        let r = zip(runs[a]!, runs[b]!).map { $0 / $1 - 1 }.sorted()
        return r.count % 2 == 1 ? r[r.count / 2] : (r[r.count / 2 - 1] + r[r.count / 2]) / 2
    }
    let (base, tUnmerged, tMerged, tSingle, tMixed) = (best["base"]!, best["unmerged"]!, best["merged"]!, best["single"]!, best["mixed8"]!)
    // Hot swap: replacing the active LoRA of an AdapterSet (the base stays loaded).
    var swapSet = AdapterSet()
    let swaps = 10_000
    let tSwap = seconds { for i in 0..<swaps { swapSet.loras = [(eight[i % 8], 1)] } } / Double(swaps)
    let result: [String: Any] = [
        "sequences": texts.count, "tokens": tokens, "threads": Parallel.threadCount,
        "base_seq_per_s": Double(texts.count) / base,
        "lora_unmerged_seq_per_s": Double(texts.count) / tUnmerged, "lora_merged_seq_per_s": Double(texts.count) / tMerged,
        "lora_overhead_vs_merged": tUnmerged / tMerged - 1,
        "lora_overhead_vs_merged_paired_median": pairedMedian("unmerged", "merged"),
        "merged_vs_base_paired_median": pairedMedian("merged", "base"),
        "single_adapter_seq_per_s": Double(texts.count) / tSingle, "mixed8_seq_per_s": Double(texts.count) / tMixed,
        "mixed8_vs_single": tSingle / tMixed, "hot_swap_ms": tSwap * 1000,
    ]
    let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

func benchGEMM() throws {
    let reps = option("--reps", default: 30)
    var rng = SplitMix(seed: 3)
    var rows: [[String: Any]] = []
    for (m, n, k) in [(1050, 384, 384), (1050, 1536, 384), (1050, 384, 1536)] {
        let x = (0..<(m * k)).map { _ in Float(rng.next() >> 40) / Float(1 << 24) - 0.5 }
        let w = (0..<(n * k)).map { _ in Float(rng.next() >> 40) / Float(1 << 24) - 0.5 }
        var y = [Float](repeating: 0, count: m * n)
        let packed = PackedWeights(w, n: n, k: k)
        var tPacked = Double.infinity, tBLAS = Double.infinity
        for _ in 0..<reps {
            tPacked = min(tPacked, seconds { packed.linear(x: x, ldx: k, bias: nil, y: &y, ldy: n, m: m) })
            tBLAS = min(tBLAS, seconds { GEMM.sgemm(transB: true, m: m, n: n, k: k, a: x, lda: k, b: w, ldb: k, c: &y, ldc: n) })
        }
        let flop = 2.0 * Double(m * n * k)
        rows.append(["m": m, "n": n, "k": k, "packed_GFLOPs": flop / tPacked / 1e9, "openblas_GFLOPs": flop / tBLAS / 1e9,
                     "packed_vs_openblas": tBLAS / tPacked])
    }
    let data = try JSONSerialization.data(withJSONObject: ["threads": 1, "reps": reps, "shapes": rows], options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

let args = CommandLine.arguments
let usage = """
    usage: alloy-bench container FILE.safetensors [--reps N]
           alloy-bench runtime MODEL_DIR SENTENCES.txt [--reps N]
           alloy-bench gemm [--reps N]

    """
let needs = ["container": 3, "runtime": 4, "gemm": 2]
guard args.count >= 2, let need = needs[args[1]], args.count >= need else {
    FileHandle.standardError.write(Data(usage.utf8))
    exit(2)
}
do {
    switch args[1] {
    case "container": try benchContainer(args[2])
    case "runtime": try benchRuntime(args[2], args[3])
    default: try benchGEMM()
    }
} catch {
    FileHandle.standardError.write(Data("alloy-bench: \(error)\n".utf8))
    exit(1)
}
