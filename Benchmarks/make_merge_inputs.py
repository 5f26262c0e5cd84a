#!/usr/bin/env python3
"""Three MiniLM-sized experts for the merge benchmark: the base plus seeded deltas
(N(0, 1e-3) everywhere, with 2% larger entries), and one recipe per method with absolute
paths, for both mergekit-yaml and alloy merge. Usage: make_merge_inputs.py BASE_DIR OUT_DIR"""
import os, shutil, sys
import torch
import yaml
from safetensors.torch import load_file, save_file

base, out = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
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
            noise = torch.randn(v.shape, generator=g) * 1e-3
            spikes = (torch.rand(v.shape, generator=g) < 0.02) * torch.randn(v.shape, generator=g) * 1e-2
            ft[k] = (v + noise + spikes).contiguous()
        else:
            ft[k] = v
    save_file(ft, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
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
