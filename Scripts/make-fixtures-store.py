#!/usr/bin/env python3
"""Makes the checkpoint-store fixtures with transformers and PEFT, from the tiny BERT of
Tests/EncoderTests/Fixtures/tiny (run Scripts/make-fixtures-encoder.py first).

  finetuned/   BertForSequenceClassification (3 labels) whose encoder is the tiny base plus a
               seeded perturbation, saved with save_pretrained: names carry the `bert.` prefix,
               the pooler and classifier are present.
  peft_cls/    a PEFT LoRA (r 4, α 8, query/value, SEQ_CLS so the classifier is in
               modules_to_save) on the tiny base.
  unrelated/   a BertModel of the same shapes with fresh random weights (a wrong base).
Run: .venv/bin/python Scripts/make-fixtures-store.py
"""
import os
import torch
from safetensors.torch import save_file
from transformers import BertForSequenceClassification, BertModel, BertConfig
from peft import LoraConfig, get_peft_model, TaskType

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "Tests", "EncoderTests", "Fixtures", "tiny")
OUT = os.path.join(ROOT, "Tests", "StoreTests", "Fixtures")
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(7)

labels = ["negative", "neutral", "positive"]
ft = BertForSequenceClassification.from_pretrained(TINY, num_labels=3, id2label=dict(enumerate(labels)),
                                                   label2id={l: i for i, l in enumerate(labels)})
with torch.no_grad():
    for n, p in ft.bert.named_parameters():
        p.add_(torch.randn_like(p) * 0.002)
ft.eval()
ft.save_pretrained(os.path.join(OUT, "finetuned"), safe_serialization=True)

torch.manual_seed(8)
cls = BertForSequenceClassification.from_pretrained(TINY, num_labels=3)
m = get_peft_model(cls, LoraConfig(task_type=TaskType.SEQ_CLS, r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["query", "value"]))
with torch.no_grad():
    for n, p in m.named_parameters():
        if "lora_B" in n:
            p.copy_(torch.randn_like(p) * 0.1)
m.save_pretrained(os.path.join(OUT, "peft_cls"))

torch.manual_seed(9)
cfg = BertConfig.from_pretrained(TINY)
BertModel(cfg).save_pretrained(os.path.join(OUT, "unrelated"), safe_serialization=True)
print("wrote", OUT)
