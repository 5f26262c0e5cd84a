#!/usr/bin/env python3
"""LoRA-space merge fixtures from PEFT's add_weighted_adapter.

Three r=4 LoRA adapters (query/value, random B) on the tiny encoder of the runtime fixtures,
saved as PEFT folders; for each combination type the merged adapter's A and B per module,
saved as Tests/MergingTests/Fixtures/lora/<type>.safetensors (`<module>.lora_A/B`). Weights
[1.0, 0.5, -0.7]; ties density 0.5; svd rank 4.
Run: .venv/bin/python Scripts/make-fixtures-lora-merge.py"""
import copy, os, shutil
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import BertModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "Tests", "EncoderTests", "Fixtures", "tiny")
OUT = os.path.join(ROOT, "Tests", "MergingTests", "Fixtures", "lora")
shutil.rmtree(OUT, ignore_errors=True)
os.makedirs(OUT)
base = BertModel.from_pretrained(TINY)
model = None
for i, alpha in enumerate([8, 4, 16]):
    torch.manual_seed(10 + i)
    cfg = LoraConfig(r=4, lora_alpha=alpha, target_modules=["query", "value"], lora_dropout=0.0)
    if model is None:
        model = get_peft_model(copy.deepcopy(base), cfg, adapter_name=f"a{i}")
    else:
        model.add_adapter(f"a{i}", cfg)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if f"lora_B.a{i}" in n:
                p.copy_(torch.randn_like(p) * 0.1)
    model.save_pretrained(os.path.join(OUT, "adapters"), selected_adapters=[f"a{i}"])
weights = [1.0, 0.5, -0.7]
for ctype, kw in [("linear", {}), ("ties", {"density": 0.5}), ("cat", {}), ("svd", {"svd_rank": 4})]:
    name = f"m_{ctype}"
    model.add_weighted_adapter([f"a{i}" for i in range(3)], weights, name, combination_type=ctype, **kw)
    out = {}
    for n, p in model.named_parameters():
        if f".{name}." in n and ("lora_A" in n or "lora_B" in n):
            module = n.replace("base_model.model.", "").split(".lora_")[0]
            out[f"{module}.lora_{'A' if 'lora_A' in n else 'B'}"] = p.detach().contiguous()
    cfg = model.peft_config[name]
    save_file(out, os.path.join(OUT, f"{ctype}.safetensors"), metadata={"r": str(cfg.r), "lora_alpha": str(cfg.lora_alpha)})
    print(ctype, "r", cfg.r, "alpha", cfg.lora_alpha, len(out))
