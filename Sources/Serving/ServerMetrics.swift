import Prometheus

/// The server's Prometheus metrics, in a registry of its own (several servers in one process,
/// as in tests, never share counters). Rendered in the text format by `GET /metrics`.
public final class ServerMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    static let durationBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(20),
        .milliseconds(50), .milliseconds(100), .milliseconds(200), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10),
    ]
    let queueTime: DurationHistogram
    let inferenceTime: DurationHistogram
    let batchSequences: ValueHistogram
    let batchTokens: ValueHistogram
    let adaptersLoaded: Counter
    let adaptersEvicted: Counter
    let adaptersResident: Gauge
    let adapterLoadTime: DurationHistogram
    let queueDepth: Gauge
    let inFlight: Gauge

    init() {
        queueTime = registry.makeDurationHistogram(name: "alloy_queue_duration_seconds", buckets: Self.durationBuckets,
                                                   help: "Time a sequence waited in the queue before its batch ran")
        inferenceTime = registry.makeDurationHistogram(name: "alloy_inference_duration_seconds", buckets: Self.durationBuckets,
                                                       help: "Time of one batch's forward pass and pooling")
        batchSequences = registry.makeValueHistogram(name: "alloy_batch_sequences", buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
                                                     help: "Sequences per batch")
        batchTokens = registry.makeValueHistogram(name: "alloy_batch_tokens", buckets: [16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384],
                                                  help: "Tokens per batch")
        adaptersLoaded = registry.makeCounter(name: "alloy_adapters_loaded_total", help: "Adapters and compositions loaded")
        adaptersEvicted = registry.makeCounter(name: "alloy_adapters_evicted_total", help: "Adapters evicted under --max-adapters")
        adaptersResident = registry.makeGauge(name: "alloy_adapters_resident", help: "Adapters and compositions in memory")
        adapterLoadTime = registry.makeDurationHistogram(name: "alloy_adapter_load_duration_seconds", buckets: Self.durationBuckets,
                                                         help: "Time to load an adapter or build a composition")
        queueDepth = registry.makeGauge(name: "alloy_queue_sequences", help: "Sequences waiting for a batch")
        inFlight = registry.makeGauge(name: "alloy_requests_in_flight", help: "Inference requests admitted and not yet answered")
    }

    /// Counts a finished request and its duration under its route and status.
    func request(route: String, status: Int, duration: Duration) {
        registry.makeCounter(name: "alloy_requests_total", labels: [("route", route), ("status", String(status))],
                             help: "HTTP requests by route and status").increment()
        registry.makeDurationHistogram(name: "alloy_request_duration_seconds", labels: [("route", route)],
                                       buckets: Self.durationBuckets, help: "HTTP request duration by route").record(duration)
    }

    /// The Prometheus text exposition.
    public func render() -> String { registry.emitToString() }
}
