#!/usr/bin/env python3
"""Three synthetic experts for the merge benchmark: the base plus seeded deltas, F32
safetensors with the base's config.json, and one recipe per method with absolute paths, for
both mergekit-yaml and alloy merge. Experts already written are kept (made once).

Deltas: by default (MiniLM) N(0, 1e-3) everywhere plus spikes N(0, 1e-2) on 2% of entries;
with --relative (all-mpnet-base-v2, whose tensors' scales differ more) N(0, (0.01·σ)²) plus
spikes N(0, (0.1·σ)²) on 2% of entries, σ the base tensor's standard deviation. Integer
tensors (position_ids) are copied. Speed does not depend on what the deltas encode.

Usage: make_merge_inputs.py BASE_DIR OUT_DIR [--relative]"""
import os, shutil, sys
import torch
import yaml
from safetensors.torch import load_file, save_file

base, out = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
relative = "--relative" in sys.argv[3:]
os.makedirs(out, exist_ok=True)
weights = load_file(os.path.join(base, "model.safetensors"))
for i in range(3):
    d = os.path.join(out, f"expert{i}")
    if os.path.exists(os.path.join(d, "model.safetensors")):
        continue
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(100 + i)
    ft = {}
    for k, v in weights.items():
        if v.is_floating_point():
            sd = float(v.float().std()) if relative and v.numel() > 1 else 0.1
            dense, spike = (0.01 * sd, 0.1 * sd) if relative else (1e-3, 1e-2)
            noise = torch.randn(v.shape, generator=g) * dense
            spikes = (torch.rand(v.shape, generator=g) < 0.02) * torch.randn(v.shape, generator=g) * spike
            ft[k] = (v + noise + spikes).contiguous()
        else:
            ft[k] = v
    save_file(ft, os.path.join(d, "model.safetensors.tmp"), metadata={"format": "pt"})
    os.replace(os.path.join(d, "model.safetensors.tmp"), os.path.join(d, "model.safetensors"))
    shutil.copy(os.path.join(base, "config.json"), d)
methods = {
    "ties": {"weight": 1.0, "density": 0.2},
    "dare_ties": {"weight": 1.0, "density": 0.3},
    "task_arithmetic": {"weight": 0.5},
    "linear": {"weight": 1.0},
}
for m, params in methods.items():
    recipe = {"merge_method": m, "models": [{"model": os.path.join(out, f"expert{i}"), "parameters": params} for i in range(3)], "dtype": "float32"}
    if m != "linear":
        recipe["base_model"] = os.path.abspath(base)
    yaml.safe_dump(recipe, open(os.path.join(out, f"{m}.yaml"), "w"), sort_keys=False)
print("inputs ready")
