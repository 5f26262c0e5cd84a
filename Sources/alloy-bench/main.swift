import Foundation
import Formats
import Tensors

/// Alloy's benchmark driver. Each subcommand measures one thing and prints one JSON object;
/// Scripts/bench-* run it next to the peers (Python) in the same run and tabulate ratios.
///
///   alloy-bench container FILE.safetensors [--reps N]
///       pack (encode only, in memory) and decode of every tensor, lossless automatic codecs.

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

let args = CommandLine.arguments
guard args.count >= 3 else {
    FileHandle.standardError.write(Data("usage: alloy-bench container FILE.safetensors [--reps N]\n".utf8))
    exit(2)
}
do {
    switch args[1] {
    case "container": try benchContainer(args[2])
    default:
        FileHandle.standardError.write(Data("alloy-bench: unknown benchmark \(args[1])\n".utf8))
        exit(2)
    }
} catch {
    FileHandle.standardError.write(Data("alloy-bench: \(error)\n".utf8))
    exit(1)
}
