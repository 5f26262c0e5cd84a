#!/usr/bin/env python3
"""Checks store exports with the reference libraries: imports the committed fixtures into a
fresh store with the `alloy` binary, exports them, and loads the exports in transformers / PEFT.

  - finetuned (BertForSequenceClassification) → import as task vector → export hf:
    transformers loads it; logits equal the original's exactly.
  - peft_cls (PEFT LoRA, SEQ_CLS) → import → export peft: PEFT loads it; logits equal.
  - peft_cls → export hf (LoRA merged, head attached): transformers loads it; logits match
    PEFT's merged model within 1e-5.
Run: swift build && .venv/bin/python Scripts/check-store-export.py
"""
import os, subprocess, tempfile, torch
from transformers import BertForSequenceClassification
from peft import PeftModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "Tests", "StoreTests", "Fixtures")
TINY = os.path.join(ROOT, "Tests", "EncoderTests", "Fixtures", "tiny")
ALLOY = os.path.join(ROOT, ".build", "debug", "alloy")
store = tempfile.mkdtemp(prefix="alloy-check-")
out = tempfile.mkdtemp(prefix="alloy-export-")


def alloy(*args):
    subprocess.run([ALLOY, *args, "--store", store], check=True, stdout=subprocess.DEVNULL)


alloy("import", TINY, "--name", "tiny")
alloy("import", os.path.join(FIX, "finetuned"), "--name", "ft", "--base", "tiny")
alloy("import", os.path.join(FIX, "peft_cls"), "--name", "cls", "--base", "tiny")
alloy("export", "ft", "--out", os.path.join(out, "ft"), "--format", "hf")
alloy("export", "cls", "--out", os.path.join(out, "cls-peft"), "--format", "peft")
alloy("export", "cls", "--out", os.path.join(out, "cls-hf"), "--format", "hf")

ids = torch.tensor([[101, 5, 17, 300, 42, 999, 7, 102], [101, 64, 2, 102, 0, 0, 0, 0]])
mask = (ids != 0).long()


def logits(m):
    with torch.no_grad():
        return m.eval()(input_ids=ids, attention_mask=mask).logits


a = logits(BertForSequenceClassification.from_pretrained(os.path.join(FIX, "finetuned")))
b = logits(BertForSequenceClassification.from_pretrained(os.path.join(out, "ft")))
print("hf export of a task vector: max |Δlogits| =", (a - b).abs().max().item())
assert torch.equal(a, b)

torch.manual_seed(0)
ref = PeftModel.from_pretrained(BertForSequenceClassification.from_pretrained(TINY, num_labels=3), os.path.join(FIX, "peft_cls"))
torch.manual_seed(0)
exp = PeftModel.from_pretrained(BertForSequenceClassification.from_pretrained(TINY, num_labels=3), os.path.join(out, "cls-peft"))
la, lb = logits(ref), logits(exp)
print("peft export: max |Δlogits| =", (la - lb).abs().max().item())
assert torch.equal(la, lb)
merged = logits(BertForSequenceClassification.from_pretrained(os.path.join(out, "cls-hf")))
print("hf export of a LoRA (merged) vs PEFT: max |Δlogits| =", (la - merged).abs().max().item())
assert (la - merged).abs().max().item() < 1e-5
print("all exports load in transformers/PEFT and give the same outputs")
