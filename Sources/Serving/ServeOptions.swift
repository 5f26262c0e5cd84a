import Tensors

/// Settings of `alloy serve`.
public struct ServeOptions: Sendable {
    /// Base model: an HF folder with tokenizer.json, or a base in the store.
    public var model: String
    /// Store folder refs are looked up in (nil: paths only).
    public var storeRoot: String?
    public var host: String = "127.0.0.1"
    /// 0 asks the system for an ephemeral port (tests).
    public var port: Int = 8080
    /// Adapters loaded before the server accepts requests.
    public var preload: [String] = []
    /// Most tokens in one forward pass (a longer single input still runs, alone).
    public var maxBatchTokens: Int = 2048
    /// Most inference requests held at once (queued or running); more are answered 429.
    public var maxConcurrentRequests: Int = 512
    /// Adapters (and compositions) kept in memory; the least recently used is evicted beyond.
    public var maxAdapters: Int = 128
    /// Most inputs in one request (TEI's max_client_batch_size); more are answered 413.
    public var maxClientBatchSize: Int = 32
    /// Largest request body, in bytes.
    public var maxBodyBytes: Int = 4 << 20
    /// Whether an adapter id may be a path on disk (otherwise store refs only).
    public var allowPaths: Bool = true
    /// Arithmetic of the encoder's linear layers.
    public var precision: Precision = .f32
    /// Log lines as text or as JSON objects (the per-request line's fields become keys).
    public var logFormat: LogFormat = .text

    public init(model: String) { self.model = model }
}
