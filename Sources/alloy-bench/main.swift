import CKernels
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
///   alloy-bench gemm [--reps N]
///       the packed linear kernel on one core, per instruction-set path, vs OpenBLAS.
///   alloy-bench kernels [--reps N]
///       attention, GELU and LayerNorm on one core, per instruction-set path.
///   alloy-bench forward MODEL_DIR SENTENCES.txt [--reps N]
///       the encoder's forward pass per instruction-set path (AVX2 and up), in one process.
///
/// Every result records the kernels' instruction-set path (`isa`: ALLOY_ISA=portable|avx2|avx512
/// lowers it for a run).

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
    var encoded = try AlloyFile.pack(src)
    var encodeTimes: [Double] = []
    for _ in 0..<reps { encodeTimes.append(try seconds { encoded = try AlloyFile.pack(src) }) }
    let tmp = NSTemporaryDirectory() + "alloy-bench-\(getpid()).alloy"
    try encoded.write(to: tmp)
    let stored = encoded.size
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    let file = try AlloyFile(path: tmp)
    var decodeTimes: [Double] = []
    for _ in 0..<reps {
        decodeTimes.append(try seconds { for e in file.tensors { _ = try file.tensor(e.name) } })
    }
    let best = { (xs: [Double]) in xs.min() ?? .nan }
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
        guard let w = model.weights[path + ".weight"] else { continue }
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
    let size = max(1, option("--batch", default: 32))
    let batches = stride(from: 0, to: order.count, by: size).map { Array(order[$0..<min(order.count, $0 + size)]).map { ids[$0] } }
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
        let r = zip(runs[a, default: []], runs[b, default: []]).map { $0 / $1 - 1 }.sorted()
        return r.count % 2 == 1 ? r[r.count / 2] : (r[r.count / 2 - 1] + r[r.count / 2]) / 2
    }
    let (base, tUnmerged, tMerged, tSingle, tMixed) = (best["base", default: .nan], best["unmerged", default: .nan], best["merged", default: .nan], best["single", default: .nan], best["mixed8", default: .nan])
    // Hot swap: replacing the active LoRA of an AdapterSet (the base stays loaded).
    var swapSet = AdapterSet()
    let swaps = 10_000
    let tSwap = seconds { for i in 0..<swaps { swapSet.loras = [(eight[i % 8], 1)] } } / Double(swaps)
    let result: [String: Any] = [
        "sequences": texts.count, "tokens": tokens, "threads": Parallel.threadCount, "isa": Kernels.isa.description,
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

/// Seconds of CPU time the calling thread spent in `body`: on a machine shared with other
/// work, the time slices other processes take do not count (their cache and memory traffic
/// still do).
func cpuSeconds(_ body: () throws -> Void) rethrows -> Double {
    var a = timespec(), b = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a)
    try body()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b)
    return Double(b.tv_sec - a.tv_sec) + Double(b.tv_nsec - a.tv_nsec) / 1e9
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.isEmpty ? .nan : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// The CPU's model name, from /proc/cpuinfo.
func cpuModel() -> String {
    let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    return info.split(separator: "\n").first { $0.hasPrefix("model name") }
        .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" } ?? "unknown"
}

/// The fp32 peak of one core per kernel path the CPU supports (12 independent FMA chains,
/// thread CPU time, best of 5).
func corePeaks() -> [String: Double] {
    var peaks: [String: Double] = [:]
    for isa in Kernels.ISA.allCases where isa.isSupported {
        var sink: Float = 1, best = 0.0
        for _ in 0..<5 {
            var flops = 0.0
            let t = cpuSeconds { flops = alloy_fma_flops_isa(20_000_000, isa.rawValue, &sink) }
            best = max(best, flops / t / 1e9)
        }
        peaks[isa.description] = best
    }
    return peaks
}

/// The packed linear kernel on one core, every path the CPU supports, against OpenBLAS
/// (single-threaded) on the encoder's shapes: MiniLM (hidden 384, intermediate 1536) and a
/// 110M BERT (768, 3072), 1050 rows. Runs are interleaved rep by rep; times are thread CPU time;
/// GFLOP/s from medians (and bests), ratios as medians of the per-rep ratios; the int8 and bf16
/// kernels (`--precision`, activation quantisation or rounding included) beside them.
func benchGEMM() throws {
    let reps = option("--reps", default: 15)
    var rng = SplitMix(seed: 3)
    let isas = Kernels.ISA.allCases.filter(\.isSupported)
    let (model, peaks) = (cpuModel(), corePeaks())
    var rows: [[String: Any]] = []
    for (m, n, k) in [(1050, 384, 384), (1050, 1536, 384), (1050, 384, 1536), (1050, 768, 768), (1050, 3072, 768), (1050, 768, 3072)] {
        let x = (0..<(m * k)).map { _ in Float(rng.next() >> 40) / Float(1 << 24) - 0.5 }
        let w = (0..<(n * k)).map { _ in Float(rng.next() >> 40) / Float(1 << 24) - 0.5 }
        var y = [Float](repeating: 0, count: m * n)
        let packed = PackedWeights(w, n: n, k: k)
        let int8 = Int8PackedWeights(w, n: n, k: k), bf16 = BF16PackedWeights(w, n: n, k: k)
        var times: [String: [Double]] = [:]
        for _ in 0..<reps {
            times["int8", default: []].append(cpuSeconds { int8.linear(x: x, ldx: k, bias: nil, y: &y, ldy: n, m: m) })
            times["bf16", default: []].append(cpuSeconds { bf16.linear(x: x, ldx: k, bias: nil, y: &y, ldy: n, m: m) })
            for isa in isas {
                times[isa.description, default: []].append(cpuSeconds { packed.linear(x: x, ldx: k, bias: nil, y: &y, ldy: n, m: m, isa: isa) })
            }
            times["openblas", default: []].append(cpuSeconds {
                GEMM.sgemm(transB: true, m: m, n: n, k: k, a: x, lda: k, b: w, ldb: k, c: &y, ldc: n)
            })
        }
        let flop = 2.0 * Double(m * n * k)
        var row: [String: Any] = ["m": m, "n": n, "k": k]
        for (name, ts) in times {
            row[name + "_GFLOPs"] = flop / median(ts) / 1e9
            row[name + "_best_GFLOPs"] = flop / (ts.min() ?? .nan) / 1e9
        }
        for p in ["int8", "bf16"] { row[p + "_vs_best_f32"] = median(zip(times[Kernels.isa.description] ?? [], times[p] ?? []).map { $0 / $1 }) }
        for isa in isas {
            let name = isa.description, ts = times[name] ?? []
            row[name + "_vs_openblas"] = median(zip(times["openblas"] ?? [], ts).map { $0 / $1 })
            if let peak = peaks[name] { row[name + "_of_peak"] = flop / median(ts) / 1e9 / peak }
            if isa > .avx2 { row[name + "_vs_avx2"] = median(zip(times["avx2"] ?? [], ts).map { $0 / $1 }) }
        }
        rows.append(row)
    }
    let result: [String: Any] = [
        "cpu": model, "isa_chosen": Kernels.isa.description, "isa_supported": Kernels.supportedISA.description,
        "threads": 1, "reps": reps, "clock": "thread CPU time", "core_peak_GFLOPs": peaks, "shapes": rows,
        "int8_vnni": Int8PackedWeights.accelerated, "bf16_avx512": BF16PackedWeights.accelerated,
    ]
    let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

/// The attention, GELU and LayerNorm kernels on one core, every path the CPU supports, on
/// MiniLM's and a 110M BERT's shapes (a 192-row block for GELU and LayerNorm, as the encoder
/// hands its cores). Interleaved rep by rep, thread CPU time, medians; ratios to AVX2 as medians
/// of per-rep ratios.
func benchKernels() throws {
    let reps = option("--reps", default: 15)
    var rng = SplitMix(seed: 5)
    func uniform() -> Float { Float(rng.next() >> 40) / Float(1 << 24) - 0.5 }
    let isas = Kernels.ISA.allCases.filter(\.isSupported)
    var rows: [[String: Any]] = []
    func measure(_ name: String, _ body: (Kernels.ISA) -> Void) {
        var times: [Kernels.ISA: [Double]] = [:]
        for _ in 0..<reps { for isa in isas { times[isa, default: []].append(cpuSeconds { body(isa) }) } }
        var row: [String: Any] = ["kernel": name]
        for isa in isas {
            let ts = times[isa] ?? []
            row[isa.description + "_us"] = median(ts) * 1e6
            if isa > .avx2 { row[isa.description + "_vs_avx2"] = median(zip(times[.avx2] ?? [], ts).map { $0 / $1 }) }
        }
        rows.append(row)
    }
    for (d, heads) in [(32, 12), (64, 12)] {
        for L in [16, 64, 128] {
            let H = d * heads, stride = 3 * H
            let qkv = (0..<(L * stride)).map { _ in 2 * uniform() }
            var ctx = [Float](repeating: 0, count: L * stride)
            measure("attention d\(d) heads\(heads) L\(L) (all heads)") { isa in
                qkv.withUnsafeBufferPointer { p in ctx.withUnsafeMutableBufferPointer { c in
                    guard let q = p.baseAddress, let o = c.baseAddress else { return }
                    for h in 0..<heads {
                        Kernels.attentionHead(q: q + h * d, k: q + H + h * d, v: q + 2 * H + h * d, context: o + h * d,
                                              length: L, headDim: d, stride: stride, scale: 1 / Float(d).squareRoot(), isa: isa)
                    }
                } }
            }
        }
    }
    for n in [1536, 3072] {
        let x0 = (0..<(192 * n)).map { _ in 6 * uniform() }
        var x = x0
        measure("gelu 192x\(n)") { isa in
            x.withUnsafeMutableBufferPointer { p in if let b = p.baseAddress { Kernels.gelu(b, count: p.count, isa: isa) } }
        }
    }
    for w in [384, 768] {
        let x0 = (0..<(192 * w)).map { _ in 3 + uniform() }, res = (0..<(192 * w)).map { _ in uniform() }
        let gamma = (0..<w).map { _ in 1 + uniform() }, beta = (0..<w).map { _ in uniform() }
        var x = x0
        measure("layerNorm+residual 192x\(w)") { isa in
            x.withUnsafeMutableBufferPointer { p in res.withUnsafeBufferPointer { r in
                if let b = p.baseAddress { Kernels.layerNorm(b, rows: 192, width: w, residual: r.baseAddress, gamma: gamma, beta: beta, eps: 1e-12, isa: isa) }
            } }
        }
    }
    let result: [String: Any] = [
        "cpu": cpuModel(), "isa_chosen": Kernels.isa.description, "isa_supported": Kernels.supportedISA.description,
        "threads": 1, "reps": reps, "clock": "thread CPU time", "kernels": rows,
    ]
    let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

/// The encoder's forward pass (base model, batches of 32 sequences of similar length, as
/// `alloy embed` forms them) on each kernel path the CPU supports from avx2 up, switched in
/// process (`Kernels.useISA`) and interleaved rep by rep. Reports wall and process-CPU
/// sequences per second (medians over reps) and, per path, the median of the per-rep ratios
/// to AVX2 (wall and CPU), so drifts of a shared machine's load cancel.
func benchForward(_ dir: String, _ sentences: String) throws {
    let reps = option("--reps", default: 5)
    let enc = try SentenceEncoder(directory: dir)
    let texts = try String(contentsOfFile: sentences, encoding: .utf8).split(separator: "\n").map(String.init)
    let ids = enc.tokenize(texts)
    let order = ids.indices.sorted { ids[$0].count < ids[$1].count }
    let size = max(1, option("--batch", default: 32))
    let batches = stride(from: 0, to: order.count, by: size).map { Array(order[$0..<min(order.count, $0 + size)]).map { ids[$0] } }
    let model = enc.model
    let isas = Kernels.ISA.allCases.filter { $0.isSupported && $0 >= .avx2 }
    let initial = Kernels.isa
    func processCPU() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }
    for b in batches.prefix(2) { _ = model.hiddenStates(b) }  // packs the weights, warms up
    var wall: [Kernels.ISA: [Double]] = [:], cpu: [Kernels.ISA: [Double]] = [:]
    for _ in 0..<reps {
        for isa in isas {
            Kernels.useISA(isa)
            let c0 = processCPU()
            let t = seconds { for b in batches { _ = model.hiddenStates(b) } }
            cpu[isa, default: []].append(processCPU() - c0)
            wall[isa, default: []].append(t)
        }
    }
    Kernels.useISA(initial)
    var result: [String: Any] = [
        "cpu": cpuModel(), "sequences": texts.count, "tokens": ids.reduce(0) { $0 + $1.count },
        "threads": Parallel.threadCount, "reps": reps, "batch": size, "isa_supported": Kernels.supportedISA.description,
    ]
    for isa in isas {
        let name = isa.description
        result[name + "_seq_per_s_wall"] = Double(texts.count) / median(wall[isa] ?? [])
        result[name + "_seq_per_cpu_s"] = Double(texts.count) / median(cpu[isa] ?? [])
        if isa > .avx2 {
            result[name + "_vs_avx2_wall"] = median(zip(wall[.avx2] ?? [], wall[isa] ?? []).map { $0 / $1 })
            result[name + "_vs_avx2_cpu"] = median(zip(cpu[.avx2] ?? [], cpu[isa] ?? []).map { $0 / $1 })
        }
    }
    let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

GEMM.quietThreads()
let args = CommandLine.arguments
let usage = """
    usage: alloy-bench container FILE.safetensors [--reps N]
           alloy-bench runtime MODEL_DIR SENTENCES.txt [--reps N]
           alloy-bench gemm [--reps N]
           alloy-bench kernels [--reps N]
           alloy-bench forward MODEL_DIR SENTENCES.txt [--reps N] [--batch N]

    """
let needs = ["container": 3, "runtime": 4, "gemm": 2, "kernels": 2, "forward": 4]
guard args.count >= 2, let need = needs[args[1]], args.count >= need else {
    FileHandle.standardError.write(Data(usage.utf8))
    exit(2)
}
do {
    switch args[1] {
    case "container": try benchContainer(args[2])
    case "runtime": try benchRuntime(args[2], args[3])
    case "kernels": try benchKernels()
    case "forward": try benchForward(args[2], args[3])
    default: try benchGEMM()
    }
} catch {
    FileHandle.standardError.write(Data("alloy-bench: \(error)\n".utf8))
    exit(1)
}
