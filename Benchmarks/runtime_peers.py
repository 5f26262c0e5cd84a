#!/usr/bin/env python3
"""The runtime benchmark: `alloy embed` (whole process) against ONNX Runtime and PyTorch eager,
2 threads, batch 32, on the same sentences (mean pooling + L2 normalisation, truncation at 256,
batches of similar length padded to the longest, as sentence-transformers does).

The peers' times are only their inference loop (tokenisation included, model loading and
Python start-up excluded) — a handicap for Alloy, whose figure is the whole process.
The three run interleaved, rep by rep (PyTorch, ONNX Runtime, Alloy), so the VM's drifts in
speed hit all alike; each reports its best and median rep, and Alloy the median over reps of
its time ratio to each peer in the same rep. Prints one JSON object per tool, Alloy first.

Usage: runtime_peers.py MODEL_DIR SENTENCES REPS ALLOY_COMMAND...
"""
import json, os, statistics, subprocess, sys, time
import numpy as np
import torch
from transformers import AutoTokenizer, BertModel

base, sentences, reps, alloy_cmd = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
texts = [l for l in open(sentences).read().split("\n") if l]
tok = AutoTokenizer.from_pretrained(base)
order = sorted(range(len(texts)), key=lambda i: len(tok(texts[i], truncation=True, max_length=256)["input_ids"]))
batches = [[texts[i] for i in order[s:s + 32]] for s in range(0, len(order), 32)]
torch.set_num_threads(2)


class Wrapped(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask):
        return self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


model = Wrapped(BertModel.from_pretrained(base).eval())


def pool(h, mask):
    m = mask[..., None].astype(np.float32)
    e = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def run_torch():
    out = []
    with torch.inference_mode():
        for b in batches:
            enc = tok(b, padding=True, truncation=True, max_length=256, return_tensors="pt")
            out.append(pool(model(enc["input_ids"], enc["attention_mask"]).numpy(), enc["attention_mask"].numpy()))
    return out


import onnxruntime as ort
path = os.path.join(os.path.dirname(os.path.abspath(sentences)), "minilm.onnx")
if not os.path.exists(path):
    ids = torch.ones(2, 16, dtype=torch.long)
    torch.onnx.export(model, (ids, ids), path, input_names=["input_ids", "attention_mask"], output_names=["h"],
                      dynamic_axes={"input_ids": {0: "b", 1: "t"}, "attention_mask": {0: "b", 1: "t"}, "h": {0: "b", 1: "t"}},
                      opset_version=17, dynamo=False)
so = ort.SessionOptions()
so.intra_op_num_threads = 2
so.inter_op_num_threads = 1
sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def run_ort():
    out = []
    for b in batches:
        enc = tok(b, padding=True, truncation=True, max_length=256, return_tensors="np")
        h = sess.run(None, {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)})[0]
        out.append(pool(h, enc["attention_mask"]))
    return out


def run_alloy():
    subprocess.run(alloy_cmd, stdout=subprocess.DEVNULL, check=True, env=dict(os.environ, ALLOY_THREADS="2"))


tools = [("alloy embed (whole process)", run_alloy), (f"PyTorch {torch.__version__} eager", run_torch),
         (f"ONNX Runtime {ort.__version__}", run_ort)]
for _, fn in tools:
    fn()  # warm-up
times = {name: [] for name, _ in tools}
for rep in range(reps):
    for name, fn in tools[1:] + tools[:1]:
        t = time.perf_counter(); fn(); times[name].append(time.perf_counter() - t)
    print(f"rep {rep + 1}/{reps}: " + ", ".join(f"{n.split()[0]} {ts[-1]:.2f}s" for n, ts in times.items()), file=sys.stderr, flush=True)
alloy = times[tools[0][0]]
for name, ts in times.items():
    row = {"tool": name, "seq_per_s": len(texts) / min(ts), "seconds": min(ts), "median_seconds": statistics.median(ts), "reps": reps}
    if name == tools[0][0]:
        row["paired_speedup_median"] = {n: statistics.median([p / a for a, p in zip(alloy, t)]) for n, t in times.items() if n != name}
    print(json.dumps(row), flush=True)
