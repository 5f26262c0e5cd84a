import Encoder
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Store
import Synchronization
import UnixSignals

/// `alloy serve`: one base in memory, its experts loaded on first use, adapters chosen per
/// request. Routes follow TEI (`/embed`, `/predict`, `/tokenize`, `/info`, `/health`) and
/// OpenAI (`/v1/embeddings`, `/v1/models`), plus `/adapters` and Prometheus `/metrics`.
public final class AlloyServer: Sendable {
    public static let version = "0.1.0"
    public let options: ServeOptions
    public let encoder: SentenceEncoder
    public let metrics: ServerMetrics
    /// The name the base answers to (`model` of `/v1/embeddings`, `/v1/models`): `--model` as given.
    public let baseName: String
    let registry: AdapterRegistry
    let batcher: Batcher
    let logger: Logger
    let admitted = Mutex(0)
    let tokens: [Int32: String]
    let started = Int(Date().timeIntervalSince1970)

    /// Loads the base (a folder, or a base in the store) and starts the inference thread.
    public init(options: ServeOptions, logger: Logger = Logger(label: "alloy.serve")) throws {
        self.options = options
        self.logger = logger
        let dir = try Self.resolveBase(options.model, storeRoot: options.storeRoot)
        let encoder = try SentenceEncoder(directory: dir, precision: options.precision, packCache: .user())
        let metrics = ServerMetrics()
        self.encoder = encoder
        self.metrics = metrics
        baseName = options.model
        registry = AdapterRegistry(encoder: encoder, storeRoot: options.storeRoot, allowPaths: options.allowPaths,
                                   capacity: options.maxAdapters, metrics: metrics)
        batcher = Batcher(encoder: encoder, maxBatchTokens: options.maxBatchTokens, metrics: metrics)
        tokens = Dictionary(encoder.tokenizer.vocab.map { ($0.value, $0.key) }, uniquingKeysWith: { a, _ in a })
        try warmUp()
        batcher.start()
    }

    static func resolveBase(_ ref: String, storeRoot: String?) throws -> String {
        if FileManager.default.fileExists(atPath: ref) { return ref }
        guard let root = storeRoot, FileManager.default.fileExists(atPath: (root as NSString).appendingPathComponent("catalog.sqlite")) else {
            throw ServingError.unknownModel(ref: ref, reason: "no such model folder, and no store to look it up in")
        }
        let s = try Store(root: root, create: false)
        return try s.checkout(try s.resolve(ref))
    }

    /// Loads the `--preload` adapters.
    public func preload() async throws {
        for id in options.preload { _ = try await registry.adapter(id) }
    }

    /// Runs until one of `gracefulShutdownSignals` (then stops accepting, finishes the requests
    /// in flight and returns) or cancellation.
    public func run(gracefulShutdownSignals: [UnixSignal] = [.sigterm, .sigint],
                    onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        try await preload()
        let logger = self.logger, host = options.host
        try await serviceGroup(gracefulShutdownSignals: gracefulShutdownSignals, onRunning: { port in
            logger.info("alloy serve listening on http://\(host):\(port)")
            await onRunning(port)
        }).run()
        logger.info("alloy serve stopped")
    }

    /// The server as a service group (tests trigger its graceful shutdown themselves).
    /// `onRunning` receives the bound port.
    public func serviceGroup(gracefulShutdownSignals: [UnixSignal] = [],
                             onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> ServiceGroup {
        let app = Application(
            router: router(),
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "alloy/\(Self.version)"),
            services: [BatcherService(batcher: batcher)],
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
        return ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: gracefulShutdownSignals, logger: logger))
    }

    // MARK: routes

    typealias Handler = @Sendable (Request, BasicRequestContext) async throws -> Response

    func router() -> Router<BasicRequestContext> {
        let r = Router()
        r.add(middleware: JSONErrorMiddleware())
        r.post("/embed", use: route("embed", inference: true) { s, req in try await s.embed(req) })
        r.post("/predict", use: route("predict", inference: true) { s, req in try await s.predict(req) })
        r.post("/v1/embeddings", use: route("openai_embeddings", inference: true) { s, req in try await s.openAIEmbeddings(req) })
        r.post("/tokenize", use: route("tokenize", inference: false) { s, req in try await s.tokenize(req) })
        r.get("/v1/models", use: route("models", inference: false) { s, _ in await s.models() })
        r.get("/adapters", use: route("adapters", inference: false) { s, _ in await s.listAdapters() })
        r.post("/adapters", use: route("load_adapter", inference: false) { s, req in try await s.loadAdapter(req) })
        r.delete("/adapters/**", use: route("unload_adapter", inference: false) { s, req in try await s.unloadAdapter(req) })
        r.get("/health", use: route("health", inference: false) { _, _ in Self.json(#"{"status":"ok"}"#) })
        r.get("/info", use: route("info", inference: false) { s, _ in s.info() })
        r.get("/metrics", use: route("metrics", inference: false) { s, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(string: s.metrics.render())))
        })
        return r
    }

    /// Wraps a handler: admission (inference routes), errors as `{"error", "error_type"}`,
    /// metrics and one log line per request.
    func route(_ name: String, inference: Bool, _ body: @escaping @Sendable (AlloyServer, Request) async throws -> Response) -> Handler {
        { [self] req, _ in
            let start = ContinuousClock.now
            var response: Response
            do {
                if inference { try admit() }
                do {
                    response = try await body(self, req)
                } catch {
                    if inference { release() }
                    throw error
                }
                if inference { release() }
            } catch let e as ServingError {
                response = Self.error(e)
            } catch let e as HTTPError where e.status == .contentTooLarge {
                response = Self.error(.bodyTooLarge(limit: options.maxBodyBytes))
            } catch is NIOTooManyBytesError {
                response = Self.error(.bodyTooLarge(limit: options.maxBodyBytes))
            } catch {
                response = Self.json(#"{"error":\#(JSONOut.string("internal error: \(error)")),"error_type":"Backend"}"#, status: 500)
            }
            let took = ContinuousClock.now - start
            metrics.request(route: name, status: response.status.code, duration: took)
            let ms = Double(took.components.seconds) * 1e3 + Double(took.components.attoseconds) * 1e-15
            switch options.logFormat {
            case .text:
                logger.info("\(req.method) \(req.uri.path) \(response.status.code) \(String(format: "%.2f", ms))ms")
            case .json:
                logger.info("request", metadata: [
                    "method": "\(req.method)", "path": "\(req.uri.path)", "route": "\(name)",
                    "status": .stringConvertible(Int(response.status.code)), "duration_ms": .stringConvertible((ms * 100).rounded() / 100),
                ])
            }
            return response
        }
    }

    func admit() throws {
        let ok = admitted.withLock { n -> Bool in
            guard n < options.maxConcurrentRequests else { return false }
            n += 1
            return true
        }
        guard ok else { throw ServingError.overloaded(limit: options.maxConcurrentRequests) }
        metrics.inFlight.increment(by: 1)
    }

    func release() {
        admitted.withLock { $0 -= 1 }
        metrics.inFlight.decrement(by: 1)
    }

    static func json(_ text: String, status: Int = 200) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func error(_ e: ServingError) -> Response {
        json(#"{"error":\#(JSONOut.string(e.description)),"error_type":\#(JSONOut.string(e.errorType))}"#, status: e.status)
    }

    func readJSON(_ req: Request) async throws -> JSONBody {
        var req = req
        let buffer = try await req.collectBody(upTo: options.maxBodyBytes)
        return try JSONBody(Array(buffer.readableBytesView))
    }

    /// What a request's `adapter_id`, `adapters` or `model` names.
    func target(adapterID: String?, adapters: [(id: String, weight: Float)]?) async throws -> (group: BatchGroup, head: ClassificationHead?, name: String) {
        if adapterID != nil, adapters != nil {
            throw ServingError.invalidField(field: "adapters", reason: "give either adapter_id or adapters, not both")
        }
        if let adapters {
            let a = try await registry.composition(adapters)
            return (a.group, a.head, a.id)
        }
        guard let id = adapterID, id != baseName else { return (.shared(nil), nil, baseName) }
        let a = try await registry.adapter(id)
        return (a.group, a.head, a.id)
    }

    /// Token ids for `texts` (with special tokens) under `limit`, as `SentenceEncoder.tokenize`
    /// makes them; without `truncate`, a longer input is refused.
    func tokenIDs(_ texts: [String], field: String, limit: Int? = nil, truncate: Bool) throws -> [[Int32]] {
        guard texts.count <= options.maxClientBatchSize else {
            throw ServingError.tooManyInputs(count: texts.count, limit: options.maxClientBatchSize)
        }
        let max = min(limit ?? encoder.maxLength, encoder.model.maxTokens)
        return try texts.enumerated().map { i, t in
            if truncate { return encoder.tokenizer.encode(t, maxLength: max) }
            let ids = encoder.tokenizer.encode(t, maxLength: max + 1)
            guard ids.count <= max else { throw ServingError.tooManyTokens(index: i, count: ids.count, limit: max) }
            return ids
        }
    }

    // MARK: handlers

    func embed(_ req: Request) async throws -> Response {
        let body = try await readJSON(req)
        let (texts, _) = try body.texts("inputs")
        let normalize = try body.bool("normalize", default: true)
        let truncate = try body.bool("truncate", default: true)
        let t = try await target(adapterID: body.string("adapter_id"), adapters: body.weightedAdapters("adapters"))
        let ids = try tokenIDs(texts, field: "inputs", truncate: truncate)
        let vectors = try await batcher.embed(ids, group: t.group, output: .sentence(normalize: normalize))
        return Self.json(JSONOut.vectors(vectors))
    }

    func predict(_ req: Request) async throws -> Response {
        let body = try await readJSON(req)
        let (texts, single) = try body.texts("inputs")
        let raw = try body.bool("raw_scores", default: false)
        let truncate = try body.bool("truncate", default: true)
        let t = try await target(adapterID: body.string("adapter_id"), adapters: nil)
        guard let head = t.head else { throw ServingError.noHead(adapter: t.name == baseName ? "the base \(baseName)" : "adapter \"\(t.name)\"") }
        let ids = try tokenIDs(texts, field: "inputs", limit: head.maxLength, truncate: truncate)
        let pooled = try await batcher.embed(ids, group: t.group, output: .pooled(head.pooling))
        let answers = pooled.map { v -> String in
            let scores = raw ? head.logits(v) : head.probabilities(v)
            let order = scores.indices.sorted { (scores[$0], -$0) > (scores[$1], -$1) }
            return "[" + order.map { #"{"label":\#(JSONOut.string(head.labels[$0])),"score":\#(scores[$0].description)}"# }.joined(separator: ",") + "]"
        }
        return Self.json(single ? answers[0] : "[" + answers.joined(separator: ",") + "]")
    }

    func openAIEmbeddings(_ req: Request) async throws -> Response {
        let body = try await readJSON(req)
        let (texts, _) = try body.texts("input")
        let model = try body.string("model")
        let format = try body.string("encoding_format") ?? "float"
        guard format == "float" || format == "base64" else {
            throw ServingError.invalidField(field: "encoding_format", reason: "\"\(format)\"; expected \"float\" or \"base64\"")
        }
        let t = try await target(adapterID: model, adapters: nil)
        let ids = try tokenIDs(texts, field: "input", truncate: true)
        let vectors = try await batcher.embed(ids, group: t.group, output: .sentence(normalize: true))
        var s = #"{"object":"list","data":["#
        for (i, v) in vectors.enumerated() {
            if i > 0 { s += "," }
            s += #"{"object":"embedding","index":\#(i),"embedding":"#
            if format == "base64" {
                s += "\"" + v.withUnsafeBytes { Data($0).base64EncodedString() } + "\""
            } else {
                JSONOut.vector(v, into: &s)
            }
            s += "}"
        }
        let n = ids.reduce(0) { $0 + $1.count }
        s += #"],"model":\#(JSONOut.string(model ?? baseName)),"usage":{"prompt_tokens":\#(n),"total_tokens":\#(n)}}"#
        return Self.json(s)
    }

    /// TEI's `/tokenize`: per input, its tokens as `{id, text, special, start, stop}`. A text
    /// token's `text` is the input's characters it came from and `start`/`stop` their
    /// character offsets (Unicode scalars, as TEI); a special token has its vocabulary string
    /// and null offsets. Where the tokenizer tracks no offsets (BPE, Unigram, a text holding
    /// added tokens), `text` is the vocabulary string and the offsets are null.
    func tokenize(_ req: Request) async throws -> Response {
        let body = try await readJSON(req)
        let (texts, _) = try body.texts("inputs")
        let special = try body.bool("add_special_tokens", default: true)
        let all = try tokenIDs(texts, field: "inputs", truncate: true)
        let max = min(encoder.maxLength, encoder.model.maxTokens)
        let lists = zip(texts, all).map { text, ids -> String in
            let spans = encoder.tokenizer.encodeWithOffsets(text, maxLength: max).flatMap { $0.map(\.id) == ids ? $0 : nil }
            let scalars = spans == nil ? [] : Array(text.unicodeScalars)
            var items: [String] = []
            for (k, id) in ids.enumerated() {
                let isSpecial = spans.map { $0[k].range == nil } ?? (k == 0 || k == ids.count - 1)
                if isSpecial && !special { continue }
                var item = #"{"id":\#(id),"text":"#
                if let range = spans?[k].range {
                    item += JSONOut.string(String(String.UnicodeScalarView(scalars[range])))
                    item += #","special":false,"start":\#(range.lowerBound),"stop":\#(range.upperBound)}"#
                } else {
                    item += JSONOut.string(tokens[id] ?? "") + #","special":\#(isSpecial),"start":null,"stop":null}"#
                }
                items.append(item)
            }
            return "[" + items.joined(separator: ",") + "]"
        }
        return Self.json("[" + lists.joined(separator: ",") + "]")
    }

    func models() async -> Response {
        var data: [[String: Any]] = [["id": baseName, "object": "model", "created": started, "owned_by": "alloy", "root": baseName]]
        for a in await registry.list() {
            data.append(["id": a.id, "object": "model", "created": started, "owned_by": "alloy", "root": a.id, "parent": baseName])
        }
        return Self.json(JSONOut.object(["object": "list", "data": data]))
    }

    static func describe(_ a: LoadedAdapter) -> [String: Any] {
        var o: [String: Any] = ["id": a.id, "kind": a.kind, "path": a.path, "load_ms": (a.loadSeconds * 1e5).rounded() / 100]
        if let h = a.head { o["labels"] = h.labels }
        return o
    }

    func listAdapters() async -> Response {
        Self.json(JSONOut.object(await registry.list().map(Self.describe)))
    }

    func loadAdapter(_ req: Request) async throws -> Response {
        let body = try await readJSON(req)
        guard let id = try body.string("id") else { throw ServingError.invalidField(field: "id", reason: "missing; expected a store ref or a path") }
        return Self.json(JSONOut.object(Self.describe(try await registry.adapter(id))))
    }

    func unloadAdapter(_ req: Request) async throws -> Response {
        let raw = String(req.uri.path.dropFirst("/adapters/".count))
        let id = raw.removingPercentEncoding ?? raw
        guard await registry.remove(id) else { throw ServingError.unknownAdapter(id: id, reason: "not loaded") }
        return Self.json(JSONOut.object(["id": id, "unloaded": true]))
    }

    func info() -> Response {
        let o: [String: Any] = [
            "model_id": baseName, "model_type": "embedding", "version": Self.version,
            "families": [encoder.model.architecture.name],
            "hidden_size": encoder.model.hidden, "pooling": encoder.pooling.description, "normalize": encoder.normalize,
            "max_input_length": min(encoder.maxLength, encoder.model.maxTokens),
            "max_batch_tokens": options.maxBatchTokens, "max_concurrent_requests": options.maxConcurrentRequests,
            "max_client_batch_size": options.maxClientBatchSize, "max_adapters": options.maxAdapters,
            "adapter_kinds": ["lora", "sparse", "task-vector", "fine-tuned", "composition"],
        ]
        return Self.json(JSONOut.object(o))
    }
}

/// Drains the batcher after the HTTP server has finished its requests (services shut down in
/// reverse order, the server first).
struct BatcherService: Service {
    let batcher: Batcher
    func run() async throws {
        try? await gracefulShutdown()
        await batcher.drainAndStop()
    }
}

extension AlloyServer {
    /// Runs the server from a synchronous `main` (the CLI), blocking the calling thread until
    /// SIGTERM or SIGINT has drained it; rethrows what stopped it otherwise.
    public func runBlocking() throws {
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        Task {
            do { try await self.run() } catch { outcome.error.withLock { $0 = error } }
            done.signal()
        }
        done.wait()
        if let e = outcome.error.withLock({ $0 }) { throw e }
    }

    /// Log lines (one per request) to standard error, at `LOG_LEVEL` (default info), as text or
    /// one JSON object per line. Called by the executable, never by the library itself.
    public static func bootstrapLogging(format: LogFormat = .text) {
        // swift-log allows one bootstrap per process (a second traps); commands run in-process
        // in tests may ask again.
        guard loggingBootstrapped.withLock({ done in defer { done = true }; return !done }) else { return }
        let level = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { label in
            switch format {
            case .text:
                var h = StreamLogHandler.standardError(label: label)
                h.logLevel = level
                return h
            case .json:
                var h = JSONLogHandler(label: label)
                h.logLevel = level
                return h
            }
        }
    }
}

private let loggingBootstrapped = Mutex(false)

/// What stopped a server run from a synchronous caller.
private final class Outcome: Sendable {
    let error = Mutex<(any Error)?>(nil)
}

/// Answers what no route handles (unknown path, wrong method) as the routes answer errors:
/// `{"error", "error_type"}` with the status Hummingbird chose.
struct JSONErrorMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as HTTPError {
            if e.status == .notFound { return AlloyServer.error(.noRoute(method: "\(request.method)", path: request.uri.path)) }
            let message = "\(request.method) \(request.uri.path): \(e.body ?? e.status.reasonPhrase)"
            return AlloyServer.json(#"{"error":\#(JSONOut.string(message)),"error_type":"Validation"}"#, status: e.status.code)
        }
    }
}
