#!/usr/bin/env python3
"""Loads every shipped LoRA expert fresh from its PEFT folder (Adapters/<task>/lora) and
checks that its test accuracy equals the one recorded in Adapters/<task>/card.json.
Run: .venv/bin/python Scripts/check-experts.py   (exit 1 on any mismatch)"""
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import importlib.util
spec = importlib.util.spec_from_file_location("train", os.path.join(os.path.dirname(os.path.abspath(__file__)), "train-experts.py"))
train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train)
from transformers import AutoTokenizer

tok = AutoTokenizer.from_pretrained(train.BASE)
bad = 0
for task in sorted(os.listdir(train.ADAPTERS)):
    card_path = os.path.join(train.ADAPTERS, task, "card.json")
    if not os.path.exists(card_path) or "lora" not in json.load(open(card_path)):
        continue
    card = json.load(open(card_path))
    model = train.load_lora(os.path.join(train.ADAPTERS, task, "lora"), card["labels"])
    acc = train.accuracy(model, tok, train.load_split(task, "test"), card["labels"])
    want = card["lora"]["accuracy"]["test"]
    ok = abs(acc - want) < 1e-9
    bad += not ok
    print(f"{task:18} PEFT reload test accuracy {acc:.4f}  card {want:.4f}  {'ok' if ok else 'MISMATCH'}")
sys.exit(1 if bad else 0)
