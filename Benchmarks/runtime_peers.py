#!/usr/bin/env python3
"""The runtime benchmark: `alloy embed` against PyTorch eager and ONNX Runtime (f32, f32 through
onnxruntime.transformers' optimiser, dynamic int8), 2 threads, batch 32, on the same sentences.

Every tool computes what sentence-transformers computes for the model: tokenise with the model's
tokenizer.json, truncate at its max_seq_length (sentence_bert_config.json: 256 for MiniLM, 384 for
all-mpnet-base-v2), mean pooling over the attention mask, L2 normalisation. Every tool sorts the
sequences by token count, runs batches of 32 padded to their longest, and restores input order
(Alloy does this inside `alloy embed`).

Two figures per tool, both taken in every rep, tools interleaved rep by rep (order rotated each
rep) so drifts of a shared machine's speed hit all alike:
  * whole process: wall time from spawning the process to its exit — Python start-up, imports,
    model/session load, tokenisation, the pass, pooling (peers run this file with --worker);
    `alloy embed` with its start-up, model mmap and JSONL output. Peak RSS of that process too.
  * inference loop: the peers' pass in this long-lived process after a warm-up (tokenisation,
    padding, forward, pooling, re-ordering; model load excluded). Alloy's is `alloy-bench forward
    --reps 1` (its forward pass in process after a warm-up, batches as `alloy embed` forms them;
    tokenisation excluded, ~1% of the pass) when ALLOY_BENCH is given, else left out.
Medians over reps; ratios are medians of per-rep ratios (tool's time ÷ Alloy's in the same rep).

Peers' configuration (issue 16): the ONNX graph is exported with eager attention
(attn_implementation="eager", torch.onnx.export with dynamo=False, opset 17; ORT runs the eager
graph faster than the SDPA one), run with ORT_ENABLE_ALL, intra-op 2 / inter-op 1 threads.
"ORT optimised" is the same graph after onnxruntime.transformers.optimizer (model_type "bert",
the model's heads and hidden size): on MiniLM it fuses Attention, EmbedLayerNormalization,
SkipLayerNormalization and BiasGelu; on MPNet only SkipLayerNormalization and BiasGelu (its
relative-position bias defeats the Attention fusion). optimum[onnxruntime] is not used: pip
install --dry-run showed it would replace transformers 5.23 by 4.57.6 and tokenizers 0.23 by 0.22. "ORT int8" is quantize_dynamic (QInt8 weights, per channel, u8 activations
quantized per batch) of the optimised graph's linear layers (MatMul with constant weights, fused
Attention); its min and mean cosine to the f32 ORT model are reported. On MPNet that is
poor (min ≈ 0.87 on a few sentences), almost all from the FFN output projections, whose input
(GELU's output) has outliers: INT8_SKIP_FFN_OUT=1 keeps those 12 in f32 (min ≈ 0.98). PyTorch runs the model as
transformers loads it by default (SDPA attention), torch.set_num_threads(2), inter-op 1.
Correctness: each tool's min cosine to the PyTorch embeddings over all sentences (≥ 0.9999 for
f32 tools); the PyTorch peer is itself checked against sentence-transformers' encode() when it
imports.

Usage: runtime_peers.py MODEL_DIR SENTENCES REPS WORK_DIR ALLOY [ALLOY_BENCH]
  (ALLOY: the alloy binary or "-" to leave Alloy out; prints one JSON line per tool, Alloy first)
       runtime_peers.py --worker TOOL MODEL_DIR SENTENCES ONNX_PATH   (one whole-process run)
"""
import json, os, statistics, subprocess, sys, time

T0 = time.perf_counter()
THREADS = 2
BATCH = 32
# The tokenizers library's batch encoding runs on a rayon pool sized to all cores by default.
os.environ.setdefault("RAYON_NUM_THREADS", str(THREADS))


def model_info(base):
    cfg = json.load(open(os.path.join(base, "config.json")))
    st = os.path.join(base, "sentence_bert_config.json")
    max_len = json.load(open(st)).get("max_seq_length", 512) if os.path.exists(st) else 512
    return cfg, max_len


def batches_of(ids, pad_id):
    """Sorted by token count, batches of BATCH padded to their longest: [(indices, ids, mask)]."""
    import numpy as np
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = []
    for s in range(0, len(order), BATCH):
        idx = order[s:s + BATCH]
        t = max(len(ids[i]) for i in idx)
        a = np.full((len(idx), t), pad_id, dtype=np.int64)
        m = np.zeros((len(idx), t), dtype=np.int64)
        for r, i in enumerate(idx):
            a[r, :len(ids[i])] = ids[i]
            m[r, :len(ids[i])] = 1
        out.append((idx, a, m))
    return out


def pool(h, mask):
    """sentence-transformers' mean pooling (sum over the mask ÷ clamp(count, 1e-9)) + Normalize."""
    import numpy as np
    m = mask[..., None].astype(np.float32)
    e = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def embed_all(texts, tokenize, forward, pad_id):
    import numpy as np
    ids = tokenize(texts)
    out = [None] * len(texts)
    for idx, a, m in batches_of(ids, pad_id):
        e = pool(forward(a, m), m)
        for r, i in enumerate(idx):
            out[i] = e[r]
    return np.stack(out)


def pad_token_id(base, tokenizer):
    sp = json.load(open(os.path.join(base, "special_tokens_map.json")))
    pad = sp.get("pad_token", "[PAD]")
    return tokenizer.token_to_id(pad["content"] if isinstance(pad, dict) else pad)


def make_torch(base):
    import torch
    from transformers import AutoModel, AutoTokenizer
    torch.set_num_threads(THREADS)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    _, max_len = model_info(base)
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModel.from_pretrained(base).eval()

    def forward(a, m):
        with torch.inference_mode():
            return model(input_ids=torch.from_numpy(a), attention_mask=torch.from_numpy(m)).last_hidden_state.numpy()

    def tokenize(texts):
        return tok(texts, truncation=True, max_length=max_len)["input_ids"]
    return lambda texts: embed_all(texts, tokenize, forward, tok.pad_token_id), model


def make_ort(base, path):
    import onnxruntime as ort
    from tokenizers import Tokenizer
    _, max_len = model_info(base)
    tk = Tokenizer.from_file(os.path.join(base, "tokenizer.json"))
    tk.no_padding()
    tk.enable_truncation(max_len)
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def forward(a, m):
        return sess.run(None, {"input_ids": a, "attention_mask": m})[0]

    def tokenize(texts):
        return [e.ids for e in tk.encode_batch(texts)]
    return lambda texts: embed_all(texts, tokenize, forward, pad_token_id(base, tk))


def read_texts(path):
    return [l for l in open(path, encoding="utf-8").read().split("\n") if l]


def worker(tool, base, sentences, onnx_path):
    """One whole-process run: load, embed every sentence once, exit. Prints its phases as JSON."""
    t_import = time.perf_counter()
    texts = read_texts(sentences)
    fn = make_torch(base)[0] if tool == "torch" else make_ort(base, onnx_path)
    t_load = time.perf_counter()
    e = fn(texts)
    t_end = time.perf_counter()
    assert e.shape[0] == len(texts)
    print(json.dumps({"start_to_load_s": t_load - T0, "loop_s": t_end - t_load}), flush=True)


def prepare_onnx(base, work, model):
    """Eager-attention export, the optimiser's graph and its int8 quantisation, made once."""
    import torch
    from transformers import AutoModel
    cfg, _ = model_info(base)
    os.makedirs(work, exist_ok=True)
    f32 = os.path.join(work, "eager.onnx")
    opt = os.path.join(work, "eager-opt.onnx")
    skip_ffn_out = os.environ.get("INT8_SKIP_FFN_OUT") == "1"
    q8 = os.path.join(work, "eager-opt-int8-linear" + ("-but-ffn-out" if skip_ffn_out else "") + ".onnx")
    info = {}
    if not os.path.exists(f32):
        m = AutoModel.from_pretrained(base, attn_implementation="eager").eval()

        class Wrapped(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids, attention_mask):
                return self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        ids = torch.ones(2, 16, dtype=torch.long)
        torch.onnx.export(Wrapped(m), (ids, ids), f32 + ".tmp", input_names=["input_ids", "attention_mask"], output_names=["h"],
                          dynamic_axes={"input_ids": {0: "b", 1: "t"}, "attention_mask": {0: "b", 1: "t"}, "h": {0: "b", 1: "t"}},
                          opset_version=17, dynamo=False)
        os.replace(f32 + ".tmp", f32)
    stats = os.path.join(work, "eager-opt.json")
    if not os.path.exists(opt):
        from onnxruntime.transformers import optimizer
        o = optimizer.optimize_model(f32, model_type="bert", num_heads=cfg["num_attention_heads"], hidden_size=cfg["hidden_size"])
        fused = {k: v for k, v in o.get_fused_operator_statistics().items() if v}
        o.save_model_to_file(opt + ".tmp")
        os.replace(opt + ".tmp", opt)
        json.dump(fused, open(stats, "w"))
    info["optimizer_fused"] = json.load(open(stats)) if os.path.exists(stats) else {}
    if not os.path.exists(q8):
        from onnxruntime.quantization import QuantType, quantize_dynamic
        import onnx
        # Linear layers only (MatMul with a constant weight, and the fused Attention's QKV
        # projection), as Alloy's int8 path: by default quantize_dynamic also quantizes
        # activation × activation MatMuls (MPNet's unfused attention scores and context); that
        # changes MPNet's min cos to f32 little (0.871 with them, 0.870 without, 8 sentences).
        # The optimiser's contrib ops defeat ONNX shape inference; their outputs are f32.
        # INT8_SKIP_FFN_OUT=1 keeps every layer's FFN output projection (3072 → 768 on MPNet) in
        # f32: its input, GELU's output, has outliers that per-tensor u8 activations cannot hold
        # (quantizing only those 12 MatMuls gives MPNet min cos 0.90; only the FFN input 0.991,
        # only Q/K/V 0.998, only the attention output 0.9997, on 8 sentences).
        g = onnx.load(opt, load_external_data=False)
        skip = [n.name for n in g.graph.node if n.op_type == "MatMul" and "/output/dense/" in n.name and "/attention/" not in n.name] if skip_ffn_out else []
        quantize_dynamic(opt, q8 + ".tmp", weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Attention"], nodes_to_exclude=skip,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True})
        os.replace(q8 + ".tmp", q8)
    return f32, opt, q8, info


def whole_process(cmd, env, capture=False):
    """Wall time from spawn to exit, the process's peak RSS in MiB (GNU time's %M: a fork of this
    big process would count its pre-exec pages in wait4's ru_maxrss) and its stdout if capture."""
    import tempfile
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile() as rss:
        t = time.perf_counter()
        p = subprocess.Popen(["/usr/bin/time", "-q", "-f", "%M", "-o", rss.name] + cmd,
                             stdout=subprocess.PIPE if capture else subprocess.DEVNULL, stderr=err, env=env)
        out = p.stdout.read() if capture else b""
        p.wait()
        wall = time.perf_counter() - t
        if p.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{cmd[0]} exited {p.returncode}: {err.read().decode(errors='replace').strip()[-400:]}")
        kb = open(rss.name).read().split()
    return wall, int(kb[-1]) / 1024 if kb else float("nan"), out


def main():
    import numpy as np
    base, sentences, reps, work, alloy = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    alloy_bench = sys.argv[6] if len(sys.argv) > 6 and sys.argv[6] != "-" else None
    texts = read_texts(sentences)
    model = os.path.basename(os.path.normpath(base))
    f32, opt, q8, info = prepare_onnx(base, work, model)
    import onnxruntime as ort
    import torch
    torch_fn, _ = make_torch(base)
    env = dict(os.environ, ALLOY_THREADS=str(THREADS), OMP_NUM_THREADS=str(THREADS), RAYON_NUM_THREADS=str(THREADS),
               TOKENIZERS_PARALLELISM="true")
    me = os.path.abspath(__file__)
    tools = []  # (name, whole-process command, in-process fn)
    if alloy != "-":
        tools.append(("alloy embed", [alloy, "embed", "--model", base, "--input", sentences], None))
        if os.environ.get("ALLOY_PRECISIONS", "int8 bf16").strip():
            for p in os.environ.get("ALLOY_PRECISIONS", "int8 bf16").split():   # reduced precision, whole process only
                tools.append((f"alloy embed --precision {p}", [alloy, "embed", "--model", base, "--input", sentences, "--precision", p], None))
    tools.append((f"PyTorch {torch.__version__.split('+')[0]} eager (sdpa)", [sys.executable, me, "--worker", "torch", base, sentences, "-"], torch_fn))
    q8_label = "ORT {} dynamic int8" + (" (FFN out f32)" if "but-ffn-out" in q8 else " (QInt8/channel)")
    for label, path in [("ORT {} f32 (eager export)", f32), ("ORT {} f32 + transformers optimizer", opt), (q8_label, q8)]:
        tools.append((label.format(ort.__version__), [sys.executable, me, "--worker", "ort", base, sentences, path], make_ort(base, path)))
    # Warm-up and correctness: every peer once in process, Alloy once as a whole process.
    ref = torch_fn(texts)
    emb = {}
    errors = {}
    for name, cmd, fn in tools:
        if fn is not None:
            emb[name] = fn(texts)
            continue
        try:
            _, _, out = whole_process(cmd, env, capture=True)
            emb[name] = np.array([json.loads(l)["embedding"] for l in out.decode().splitlines() if l.startswith("{")], dtype=np.float32)
        except Exception as e:  # e.g. an architecture this build of Alloy does not support
            errors[name] = str(e)
            print(f"{name}: {e}", file=sys.stderr, flush=True)
    st_cos = None
    try:
        from sentence_transformers import SentenceTransformer
        st = SentenceTransformer(base, device="cpu")
        s = st.encode(texts, batch_size=BATCH, convert_to_numpy=True, normalize_embeddings=False)
        st_cos = float(np.min(np.sum(s * ref, 1) / np.linalg.norm(s, axis=1)))
        del st
    except Exception as e:
        print(f"sentence-transformers check skipped: {e}", file=sys.stderr, flush=True)
    q8_name, f32_name = tools[-1][0], tools[-3][0]
    tools = [t for t in tools if t[0] not in errors]
    whole = {n: [] for n, _, _ in tools}
    loop = {n: [] for n, _, _ in tools}
    rss = {n: [] for n, _, _ in tools}
    load = {n: [] for n, _, _ in tools}
    alloy_loop_note = None
    for rep in range(reps):
        k = rep % len(tools)
        for name, cmd, fn in tools[k:] + tools[:k]:
            w, r, out = whole_process(cmd, env, capture=fn is not None)
            whole[name].append(w)
            rss[name].append(r)
            if fn is not None:
                load[name].append(json.loads(out.decode().strip().splitlines()[-1])["start_to_load_s"])
                t = time.perf_counter()
                fn(texts)
                loop[name].append(time.perf_counter() - t)
            elif alloy_bench and name == "alloy embed":
                try:
                    _, _, out = whole_process([alloy_bench, "forward", base, sentences, "--reps", "1"], env, capture=True)
                except RuntimeError as e:  # e.g. a model this build of Alloy does not support
                    print(f"alloy-bench forward: {e}", file=sys.stderr, flush=True)
                    alloy_bench, alloy_loop_note = None, f"alloy-bench forward failed: {str(e)[-200:]}"
                    continue
                res = json.loads(out.decode().strip().splitlines()[-1])
                key = f"{res.get('isa_supported', '')}_seq_per_s_wall"
                if key not in res:
                    key = max((k2 for k2 in res if k2.endswith("_seq_per_s_wall")), key=lambda k2: res[k2])
                loop[name].append(res["sequences"] / res[key])
                alloy_loop_note = f"alloy-bench forward --reps 1 ({key.split('_')[0]} path, after its warm-up, tokenisation excluded)"
        print(f"rep {rep + 1}/{reps}: " + ", ".join(f"{n.split()[0]} {whole[n][-1]:.2f}s/{loop[n][-1] if loop[n] else float('nan'):.2f}s"
                                                     for n, _, _ in tools), file=sys.stderr, flush=True)
    first = tools[0][0]

    def paired(a, b):
        return statistics.median([y / x for x, y in zip(a, b)]) if a and b else None
    for name, msg in errors.items():
        print(json.dumps({"tool": name, "error": msg[:300]}), flush=True)
    for name, _, _ in tools:
        row = {"tool": name, "model": model, "sequences": len(texts), "reps": reps, "threads": THREADS,
               "whole_median_s": statistics.median(whole[name]), "whole_best_s": min(whole[name]),
               "peak_rss_MiB": statistics.median(rss[name]), "whole_s": whole[name]}
        if load[name]:
            row["whole_start_to_loaded_median_s"] = statistics.median(load[name])
        if loop[name]:
            row.update({"loop_median_s": statistics.median(loop[name]), "loop_best_s": min(loop[name]),
                        "loop_seq_per_s": len(texts) / statistics.median(loop[name]), "loop_s": loop[name]})
        if name in emb and len(emb[name]) == len(texts):
            e = emb[name]
            row["min_cos_vs_torch"] = float(np.min(np.sum(e * ref, 1) / np.linalg.norm(e, axis=1)))
        if name.startswith("alloy embed --precision") and "alloy embed" in emb and name in emb:
            a, b = emb["alloy embed"], emb[name]
            c = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
            row["min_cos_vs_alloy_f32"], row["mean_cos_vs_alloy_f32"] = float(np.min(c)), float(np.mean(c))
        if name == q8_name:
            row["min_cos_vs_ort_f32"] = float(np.min(np.sum(emb[q8_name] * emb[f32_name], 1)))
            row["mean_cos_vs_ort_f32"] = float(np.mean(np.sum(emb[q8_name] * emb[f32_name], 1)))
        if name.startswith("PyTorch") and st_cos is not None:
            row["min_cos_vs_sentence_transformers"] = st_cos
        if "optimizer" in name:
            row["fused"] = info.get("optimizer_fused", {})
        if name.startswith("alloy embed --precision"):
            row["vs_alloy_whole_paired_median"] = paired(whole[first], whole[name])
        elif name == first and first == "alloy embed":
            row["loop_note"] = alloy_loop_note or "no alloy-bench given: in-process loop not measured"
        elif first == "alloy embed":
            row["vs_alloy_whole_paired_median"] = paired(whole[first], whole[name])
            row["vs_alloy_loop_paired_median"] = paired(loop[first], loop[name])
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        main()
