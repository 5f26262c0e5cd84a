import ArgumentParser
import Foundation
import Tensors
import Serving
import Store

/// `alloy serve`: parse, hand over to `Serving.AlloyServer`, exit when it has drained.
extension LogFormat: ExpressibleByArgument {}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the base and its experts over HTTP (TEI- and OpenAI-compatible routes), adapters chosen per request.")

    @Option(help: "Base model: an HF folder with tokenizer.json, or a base in the store.")
    var model: String
    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "Address to bind.")
    var host = "127.0.0.1"
    @Option(help: "Port to bind (0: any free port).")
    var port = 8080
    @Option(help: "Adapters to load before accepting requests: REF,REF,…")
    var preload: String?
    @Option(help: "Most tokens in one forward pass.")
    var maxBatchTokens = 2048
    @Option(help: "Most inference requests held at once; more are answered 429.")
    var maxConcurrentRequests = 512
    @Option(help: "Adapters kept in memory; the least recently used is evicted beyond.")
    var maxAdapters = 128
    @Option(help: "Most inputs in one request; more are answered 413.")
    var maxClientBatchSize = 32
    @Flag(help: "Adapters by store ref only: refuse paths on disk in requests (when the port is reachable by others).")
    var storeOnly = false
    @Option(help: "Arithmetic of the linear layers: f32, bf16 or int8 (dynamic quantisation).")
    var precision: Precision = .f32
    @Option(help: "Log lines: text, or json (one object per line: timestamp, level, message, method, path, route, status, duration_ms).")
    var logFormat: LogFormat = .text

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0…65535") }
        for (name, v) in [("--max-batch-tokens", maxBatchTokens), ("--max-concurrent-requests", maxConcurrentRequests),
                          ("--max-adapters", maxAdapters), ("--max-client-batch-size", maxClientBatchSize)] where v < 1 {
            throw ValidationError("\(name) must be at least 1")
        }
    }

    func run() throws {
        var o = ServeOptions(model: model)
        o.storeRoot = storeOptions.root
        o.host = host
        o.port = port
        o.preload = (preload ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        o.maxBatchTokens = maxBatchTokens
        o.maxConcurrentRequests = maxConcurrentRequests
        o.maxAdapters = maxAdapters
        o.maxClientBatchSize = maxClientBatchSize
        o.allowPaths = !storeOnly
        o.precision = precision
        o.logFormat = logFormat
        AlloyServer.bootstrapLogging(format: logFormat)
        try AlloyServer(options: o).runBlocking()
    }
}
