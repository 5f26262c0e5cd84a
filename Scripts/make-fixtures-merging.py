#!/usr/bin/env python3
"""Merge fixtures from mergekit 0.1.5 (and PEFT for LoRA-space merges later).

Builds a small seeded BERT base (hidden 16, 2 layers, vocab 100) and three "experts" (base +
correlated random deltas with sparse large entries, so TIES' sign election and trimming
matter), then runs mergekit on each recipe in RECIPES and saves its output model.safetensors
under Tests/MergingTests/Fixtures/<name>/. Recipes are written next to them with relative
paths, so the Swift tests run the very same YAML.

mergekit 0.1.5 needs one fix to run on BERT (REFERENCE.md): in mergekit/plan.py a weight's
`aliases` tuple is concatenated to a list; this script applies the same fix at import time.
Run: .venv/bin/python Scripts/make-fixtures-merging.py
"""
import os, shutil
import torch
import yaml
from transformers import BertConfig, BertModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "MergingTests", "Fixtures")
os.makedirs(OUT, exist_ok=True)

import mergekit.plan as plan_mod
src = open(plan_mod.__file__).read()
if "[w_in.name] + (w_in.aliases or [])" in src:
    raise SystemExit("patch mergekit/plan.py first: [w_in.name] + list(w_in.aliases or [])")
from mergekit.config import MergeConfiguration
from mergekit.merge import MergeOptions, run_merge

torch.manual_seed(0)
cfg = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                 max_position_embeddings=32, type_vocab_size=2)
base = BertModel(cfg, add_pooling_layer=True)
models = {"base": base}
shared = {n: torch.randn_like(p) * 0.01 for n, p in base.named_parameters()}
for i in range(3):
    m = BertModel(cfg, add_pooling_layer=True)
    m.load_state_dict(base.state_dict())
    with torch.no_grad():
        for n, p in m.named_parameters():
            noise = torch.randn_like(p) * 0.01
            spikes = (torch.rand_like(p) < 0.05) * torch.randn_like(p) * 0.1
            p.add_(shared[n] * (1 if i != 2 else -1) + noise + spikes)
    models[f"expert{i}"] = m
for name, m in models.items():
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    m.save_pretrained(d, safe_serialization=True)

E = [f"expert{i}" for i in range(3)]
RECIPES = {
    "linear": {"merge_method": "linear", "models": [{"model": e, "parameters": {"weight": w}} for e, w in zip(E, [1.0, 0.5, 2.0])]},
    "linear_raw": {"merge_method": "linear", "models": [{"model": e, "parameters": {"weight": w}} for e, w in zip(E, [0.2, 0.3, 0.1])],
                   "parameters": {"normalize": False}},
    "task_arithmetic": {"merge_method": "task_arithmetic", "base_model": "base",
                        "models": [{"model": e, "parameters": {"weight": w}} for e, w in zip(E, [0.7, 0.3, -0.4])],
                        "parameters": {"lambda": 0.8}},
    "ties": {"merge_method": "ties", "base_model": "base",
             "models": [{"model": e, "parameters": {"weight": w, "density": d}} for e, w, d in zip(E, [1.0, 0.6, 0.8], [0.2, 0.5, 0.3])],
             "parameters": {"normalize": True, "int8_mask": True}},
    "ties_gradient": {"merge_method": "ties", "base_model": "base",
                      "models": [{"model": "expert0", "parameters": {"weight": 1.0, "density": [0.1, 0.9]}},
                                 {"model": "expert1", "parameters": {"weight": [{"filter": "attention", "value": 0.3}, {"value": 1.0}], "density": [0.5, 0.2, 0.7]}},
                                 {"model": "expert2", "parameters": {"weight": 0.5, "density": 0.4}}],
                      "parameters": {"lambda": 0.9}},
    "breadcrumbs": {"merge_method": "breadcrumbs", "base_model": "base",
                    "models": [{"model": e, "parameters": {"weight": 1.0, "density": 0.5, "gamma": 0.05}} for e in E]},
    "breadcrumbs_ties": {"merge_method": "breadcrumbs_ties", "base_model": "base",
                         "models": [{"model": e, "parameters": {"weight": w, "density": 0.6, "gamma": 0.02}} for e, w in zip(E, [1.0, 0.5, 0.7])],
                         "parameters": {"normalize": True}},
    "slerp": {"merge_method": "slerp", "base_model": "base",
              "models": [{"model": "base"}, {"model": "expert0"}],
              "parameters": {"t": [0.0, 0.3, 0.8]}},
    "model_stock": {"merge_method": "model_stock", "base_model": "base", "models": [{"model": e} for e in E]},
    "dare_ties_dense": {"merge_method": "dare_ties", "base_model": "base",
                        "models": [{"model": e, "parameters": {"weight": 1.0, "density": 1.0}} for e in E]},
}
for name, recipe in RECIPES.items():
    recipe = dict(recipe, dtype="float32")
    with open(os.path.join(OUT, f"{name}.yaml"), "w") as f:
        yaml.safe_dump(recipe, f, sort_keys=False)
    # mergekit gets absolute paths (it looks relative names up on the hub); the YAML keeps
    # paths relative to its own folder.
    absolute = yaml.safe_load(yaml.safe_dump(recipe))
    for key in ("base_model",):
        if key in absolute:
            absolute[key] = os.path.join(OUT, absolute[key])
    for m in absolute["models"]:
        m["model"] = os.path.join(OUT, m["model"])
    out = os.path.join(OUT, "out", name)
    shutil.rmtree(out, ignore_errors=True)
    run_merge(MergeConfiguration.model_validate(absolute), out, MergeOptions(copy_tokenizer=False, lazy_unpickle=False))
    print("merged", name)
