#!/usr/bin/env python3
"""The serving benchmark: `alloy serve` against (a) sentence-transformers + PEFT behind FastAPI
and uvicorn, switching adapters per request (what users write today), and (b) infinity-emb for
the base alone. One run, the servers up side by side and measured interleaved, cell by cell.

Load: a small asyncio HTTP/1.1 client (keep-alive, one connection per concurrent worker), one
sentence per request, closed loop at concurrency 1, 8 and 32 for DURATION seconds after a
warm-up; then an open loop at half of Alloy's saturating throughput (p99 against p50); then
the cost of an adapter's first request when it loads from the store.
Prints one JSON object per measurement.

Usage:
  serve_peers.py ALLOY_BIN MODEL_DIR SENTENCES ADAPTER_DIR[,…] [--duration S] [--only alloy]
  serve_peers.py --peer-st MODEL_DIR PORT ADAPTER_DIR[,…]      (the FastAPI peer itself)
"""
import asyncio, json, os, random, shutil, signal, statistics, subprocess, sys, tempfile, time
import urllib.request


# --------------------------------------------------------------------------- peer (a) server
def run_peer_st(model_dir, port, adapters):
    """sentence-transformers + PEFT adapters behind FastAPI, `set_adapter` per request."""
    import torch, uvicorn
    from fastapi import FastAPI, Request
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(2)
    model = SentenceTransformer(model_dir, device="cpu")
    names = []
    for i, path in enumerate(adapters):
        name = f"a{i}"
        model.load_adapter(path, adapter_name=name)
        names.append((path, name))
    by_path = dict(names)
    app = FastAPI()

    @app.post("/embed")
    async def embed(request: Request):
        body = await request.json()
        inputs = body["inputs"]
        inputs = [inputs] if isinstance(inputs, str) else inputs
        adapter = body.get("adapter_id")
        if adapter is None:
            model.disable_adapters()
        else:
            model.enable_adapters()
            model.set_adapter(by_path[adapter])
        with torch.inference_mode():
            v = model.encode(inputs, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
        return v.tolist()

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# --------------------------------------------------------------------------- load client
class Conn:
    def __init__(self, port):
        self.port, self.r, self.w = port, None, None

    async def request(self, path, body):
        if self.w is None:
            self.r, self.w = await asyncio.open_connection("127.0.0.1", self.port)
        data = json.dumps(body).encode()
        self.w.write(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                     % (path.encode(), len(data)) + data)
        await self.w.drain()
        head = await self.r.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = None
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
            if k.strip().lower() == b"transfer-encoding" and b"chunked" in v.lower():
                chunked = True
        if chunked:
            out = b""
            while True:
                n = int((await self.r.readuntil(b"\r\n")).strip(), 16)
                out += await self.r.readexactly(n + 2)
                if n == 0:
                    break
        else:
            await self.r.readexactly(length or 0)
        return status

    def close(self):
        if self.w:
            self.w.close()


def body_for(kind, text, adapter):
    if kind == "openai":
        b = {"input": [text], "model": adapter or "base"}
        return "/embeddings", b
    b = {"inputs": [text]}
    if adapter:
        b["adapter_id"] = adapter
    return "/embed", b


async def closed_loop(port, kind, texts, adapters, concurrency, duration, warmup):
    lat, errors = [], 0
    stop_at = time.perf_counter() + warmup + duration
    start_measure = time.perf_counter() + warmup
    rng = random.Random(concurrency)

    async def worker(w):
        nonlocal errors
        c = Conn(port)
        i = w
        try:
            while time.perf_counter() < stop_at:
                path, b = body_for(kind, texts[i % len(texts)], adapters[rng.randrange(len(adapters))] if adapters else None)
                t0 = time.perf_counter()
                s = await c.request(path, b)
                t1 = time.perf_counter()
                if s != 200:
                    errors += 1
                elif t0 >= start_measure and t1 <= stop_at:
                    lat.append(t1 - t0)
                i += concurrency
        finally:
            c.close()

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return lat, errors


async def open_loop(port, kind, texts, adapters, rate, duration, even=False):
    """Requests at `rate`/s over a pool of connections: Poisson arrivals (exponential gaps,
    seeded), or with `even` evenly spaced ones (a constant rate, as wrk2 -R sends)."""
    rng = random.Random(7)
    lat, errors, tasks = [], 0, []
    pool = [Conn(port) for _ in range(128)]
    free = asyncio.Queue()
    for c in pool:
        free.put_nowait(c)

    async def one(text, adapter):
        nonlocal errors
        c = await free.get()
        path, b = body_for(kind, text, adapter)
        t0 = time.perf_counter()
        s = await c.request(path, b)
        lat.append(time.perf_counter() - t0)
        if s != 200:
            errors += 1
        free.put_nowait(c)

    end = time.perf_counter() + duration
    t = time.perf_counter()
    i = 0
    while t < end:
        t += 1 / rate if even else rng.expovariate(rate)
        await asyncio.sleep(max(0, t - time.perf_counter()))
        tasks.append(asyncio.create_task(one(texts[i % len(texts)], adapters[rng.randrange(len(adapters))] if adapters else None)))
        i += 1
    await asyncio.gather(*tasks)
    for c in pool:
        c.close()
    return lat, errors


async def warm(port, kind, texts, adapters):
    queue = list(enumerate(texts))

    async def worker():
        c = Conn(port)
        while queue:
            i, t = queue.pop()
            path, b = body_for(kind, t, adapters[i % len(adapters)] if adapters else None)
            await c.request(path, b)
        c.close()

    await asyncio.gather(*(worker() for _ in range(8)))


def summary(lat, duration):
    if not lat:
        return {"seq_per_s": 0, "p50_ms": None, "p99_ms": None, "n": 0}
    s = sorted(lat)
    return {"seq_per_s": round(len(s) / duration, 1), "p50_ms": round(1e3 * s[len(s) // 2], 2),
            "p99_ms": round(1e3 * s[min(len(s) - 1, int(len(s) * 0.99))], 2), "n": len(s)}


def scrape(port):
    """Sums and counts of the server's queue and inference histograms (GET /metrics)."""
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        for name in ("alloy_queue_duration_seconds", "alloy_inference_duration_seconds", "alloy_batch_sequences"):
            for part in ("_sum", "_count"):
                if line.startswith(name + part + " "):
                    out[name + part] = float(line.split()[-1])
    return out


def split(before, after):
    """Mean queue wait per sequence, mean forward pass per batch and mean batch size between
    two scrapes."""
    d = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    per = lambda name, scale: round(scale * d[name + "_sum"] / d[name + "_count"], 2) if d.get(name + "_count") else None
    return {"queue_ms_mean": per("alloy_queue_duration_seconds", 1e3), "inference_ms_mean_per_batch": per("alloy_inference_duration_seconds", 1e3),
            "batch_sequences_mean": per("alloy_batch_sequences", 1)}


# --------------------------------------------------------------------------- servers
def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_ready(port, proc, timeout=300):
    import urllib.request
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server on {port} exited with {proc.returncode}")
        for path in ("/health", "/docs"):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2)
                return
            except Exception:
                pass
        time.sleep(0.5)
    raise SystemExit(f"server on {port} not ready after {timeout}s")


def strip_heads(adapters, into):
    """PEFT folders without modules_to_save (a bare SentenceTransformer has no classifier)."""
    out = []
    for i, a in enumerate(adapters):
        d = os.path.join(into, f"peer{i}")
        os.makedirs(d, exist_ok=True)
        cfg = json.load(open(os.path.join(a, "adapter_config.json")))
        cfg["modules_to_save"] = None
        json.dump(cfg, open(os.path.join(d, "adapter_config.json"), "w"))
        from safetensors.torch import load_file, save_file
        t = load_file(os.path.join(a, "adapter_model.safetensors"))
        # Trained on BertForSequenceClassification (…model.bert.encoder…); a SentenceTransformer
        # wraps the bare BertModel (…model.encoder…).
        save_file({k.replace("base_model.model.bert.", "base_model.model."): v for k, v in t.items() if "lora_" in k},
                  os.path.join(d, "adapter_model.safetensors"))
        out.append(d)
    return out


def first_load(alloy, model, adapters, tmp, env):
    """An adapter's first request (load from the store) against its next ones, per adapter."""
    store = os.path.join(tmp, "first-load-store")
    run = lambda *a: subprocess.run([alloy, *a, "--store", store], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("import", model, "--name", "base")
    for i, a in enumerate(adapters):
        run("import", a, "--name", f"expert{i}", "--base", "base")
    # Adapters load from the store's blobs in memory (no checkout folder is written), so both
    # runs read the same bytes; the second shows the spread between runs.
    for what in ("first server run after the import", "second server run"):
        first_load_once(alloy, adapters, store, env, what)


def first_load_once(alloy, adapters, store, env, what):
    port = free_port()
    p = subprocess.Popen([alloy, "serve", "--model", "base", "--store", store, "--port", str(port)], env=env, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, p)

        async def measure():
            c = Conn(port)
            out = []
            await c.request("/embed", {"inputs": ["warm up the base"]})
            for i in range(len(adapters)):
                t0 = time.perf_counter(); s = await c.request("/embed", {"inputs": ["a first request"], "adapter_id": f"expert{i}"})
                first = time.perf_counter() - t0
                warm = []
                for _ in range(9):
                    t0 = time.perf_counter(); await c.request("/embed", {"inputs": ["a first request"], "adapter_id": f"expert{i}"})
                    warm.append(time.perf_counter() - t0)
                out.append((s, first, statistics.median(warm)))
            c.close()
            return out

        rows = asyncio.run(measure())
        extra = [1e3 * (f - w) for _, f, w in rows]
        # The server's own time for each load (from the store's blobs to a usable adapter).
        listed = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/adapters"))
        load_ms = {a["id"]: a["load_ms"] for a in listed}
        print(json.dumps({"server": "alloy", "workload": f"first request of an adapter from the store: {what}",
                          "statuses": [s for s, _, _ in rows], "added_ms_median": round(statistics.median(extra), 2),
                          "added_ms_max": round(max(extra), 2), "added_ms": [round(x, 2) for x in extra],
                          "server_load_ms": [load_ms.get(f"expert{i}") for i in range(len(adapters))], "warm_ms_median": round(1e3 * statistics.median(w for _, _, w in rows), 2)}), flush=True)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)


def main():
    if sys.argv[1] == "--peer-st":
        return run_peer_st(sys.argv[2], int(sys.argv[3]), sys.argv[4].split(","))
    args = sys.argv[1:]
    duration = float(args[args.index("--duration") + 1]) if "--duration" in args else 10.0
    only = args[args.index("--only") + 1] if "--only" in args else None
    # PARTS=closed,open,first (default all): the closed-loop cells, the open loops at half of
    # saturation (SATURATION=seq/s gives it when the closed loops are skipped; OPEN_RUNS runs of
    # each arrival process), the first loads.
    parts = set(os.environ.get("PARTS", "closed,open,first").split(","))
    alloy, model, sentences, adapters = args[0], args[1], args[2], args[3].split(",")
    texts = [l for l in open(sentences).read().split("\n") if l]
    tmp = tempfile.mkdtemp(prefix="alloy-serve-bench-")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="2", LOG_LEVEL="warning")
    procs = {}
    ports = {}
    try:
        ports["alloy"] = free_port()
        procs["alloy"] = subprocess.Popen([alloy, "serve", "--model", model, "--port", str(ports["alloy"]), "--preload", ",".join(adapters),
                                           "--store", os.path.join(tmp, "store")], env=env, stderr=subprocess.DEVNULL)
        peer_names = {}
        if only != "alloy":
            peer_adapters = strip_heads(adapters, tmp)
            peer_names = dict(zip(adapters, peer_adapters))
            ports["st"] = free_port()
            procs["st"] = subprocess.Popen([sys.executable, __file__, "--peer-st", model, str(ports["st"]), ",".join(peer_adapters)],
                                           env=env, stderr=open(os.path.join(tmp, "st.log"), "w"))
            inf = os.environ.get("INFINITY_BIN")
            if inf:
                ports["infinity"] = free_port()
                procs["infinity"] = subprocess.Popen([inf, "v2", "--model-id", model, "--port", str(ports["infinity"]), "--engine", "torch",
                                                      "--device", "cpu", "--batch-size", "32", "--no-bettertransformer"],
                                                     env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "infinity.log"), "w"))
        for k, p in procs.items():
            wait_ready(ports[k], p)
        # Warm every server on every sentence (PyTorch builds kernels per new input shape, and
        # per adapter; the first pass is many times slower than the next), 8 at a time.
        for server, kind, ads in [("alloy", "tei", adapters), ("st", "tei", [peer_names.get(a) for a in adapters]),
                                  ("infinity", "openai", [])]:
            if server in procs:
                asyncio.run(warm(ports[server], kind, texts, [a for a in ads if a]))
        cells = []
        for c in (1, 8, 32):
            cells += [("alloy", "tei", [adapters[0]], c, "1 adapter"), ("st", "tei", [peer_names.get(adapters[0])], c, "1 adapter"),
                      ("alloy", "tei", adapters, c, f"{len(adapters)} adapters mixed"),
                      ("st", "tei", [peer_names.get(a) for a in adapters], c, f"{len(adapters)} adapters mixed"),
                      ("alloy", "tei", [], c, "base"), ("infinity", "openai", [], c, "base")]
        best = {}
        for server, kind, ads, c, label in cells:
            if server not in procs or "closed" not in parts:
                continue
            lat, err = asyncio.run(closed_loop(ports[server], kind, texts, [a for a in ads if a], c, duration, min(2.0, duration / 4)))
            row = {"server": server, "workload": label, "concurrency": c, "errors": err, **summary(lat, duration)}
            print(json.dumps(row), flush=True)
            best[(server, label)] = max(best.get((server, label), 0), row["seq_per_s"])
        # The peers are done: stopped, so that their idle threads do not share the cores with
        # what follows, which measures Alloy alone.
        for name in [k for k in procs if k != "alloy"]:
            stop(procs.pop(name))
        # Half of saturating load, open loop, Alloy with the mixed adapters.
        sat = best.get(("alloy", f"{len(adapters)} adapters mixed"), 0) or float(os.environ.get("SATURATION", 0))
        if sat > 0 and "open" in parts:
            # OPEN_RUNS (default 3) runs of each arrival process, alternating: on two shared cores
            # one run's p99 moves with the machine.
            for even in [False, True] * int(os.environ.get("OPEN_RUNS", "3")):
                arrivals = "constant rate (evenly spaced)" if even else "Poisson arrivals"
                before = scrape(ports["alloy"])
                lat, err = asyncio.run(open_loop(ports["alloy"], "tei", texts, adapters, sat / 2, duration, even=even))
                print(json.dumps({"server": "alloy", "workload": f"open loop at {sat / 2:.0f}/s (half of saturation), {arrivals}", "errors": err,
                                  **summary(lat, duration), **split(before, scrape(ports["alloy"]))}), flush=True)
        if "first" in parts:
            first_load(alloy, model, adapters, tmp, env)
    finally:
        for p in procs.values():
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()


if __name__ == "__main__":
    main()
