#!/usr/bin/env python3
"""Interop fixtures for merges over checkpoints written by different transformers versions,
merged by mergekit 0.1.5 (Tests/MergingTests/Fixtures/interop/).

  base_pos/         the merging fixtures' base with the `embeddings.position_ids` int64 buffer
                    older transformers wrote (and MiniLM's checkpoint has).
  expert0_prefixed/ expert0 saved as a task model would: every name under `bert.`.
  expert1, expert2  the merging fixtures' experts as transformers 5 saves them (no position_ids).
  ties.yaml, out/   a TIES recipe over them and mergekit's output.
Needs Scripts/make-fixtures-merging.py's fixtures and mergekit's plan.py fix (see that script).
Run: .venv/bin/python Scripts/make-fixtures-merge-interop.py
"""
import os, shutil
import torch
import yaml
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "Tests", "MergingTests", "Fixtures")
OUT = os.path.join(FIX, "interop")
shutil.rmtree(OUT, ignore_errors=True)
os.makedirs(OUT)

from mergekit.config import MergeConfiguration
from mergekit.merge import MergeOptions, run_merge


def copy(src, dst, transform):
    os.makedirs(os.path.join(OUT, dst))
    shutil.copy(os.path.join(FIX, src, "config.json"), os.path.join(OUT, dst, "config.json"))
    tensors = transform(load_file(os.path.join(FIX, src, "model.safetensors")))
    save_file(tensors, os.path.join(OUT, dst, "model.safetensors"), metadata={"format": "pt"})


copy("base", "base_pos", lambda t: dict(t, **{"embeddings.position_ids": torch.arange(32, dtype=torch.int64)[None, :]}))
copy("expert0", "expert0_prefixed", lambda t: {"bert." + k: v for k, v in t.items()})
for e in ("expert1", "expert2"):
    copy(e, e, lambda t: t)

recipe = {"merge_method": "ties", "base_model": "base_pos",
          "models": [{"model": m, "parameters": {"weight": w, "density": d}}
                     for m, w, d in zip(["expert0_prefixed", "expert1", "expert2"], [1.0, 0.6, 0.8], [0.2, 0.5, 0.3])],
          "parameters": {"normalize": True}, "dtype": "float32"}
with open(os.path.join(OUT, "ties.yaml"), "w") as f:
    yaml.safe_dump(recipe, f, sort_keys=False)
absolute = yaml.safe_load(yaml.safe_dump(recipe))
absolute["base_model"] = os.path.join(OUT, absolute["base_model"])
for m in absolute["models"]:
    m["model"] = os.path.join(OUT, m["model"])
run_merge(MergeConfiguration.model_validate(absolute), os.path.join(OUT, "out"), MergeOptions(copy_tokenizer=False, lazy_unpickle=False))
out = load_file(os.path.join(OUT, "out", "model.safetensors"))
print("mergekit wrote", len(out), "tensors; position_ids:", {k: (v.dtype, tuple(v.shape)) for k, v in out.items() if "position_ids" in k})
