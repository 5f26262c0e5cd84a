#!/usr/bin/env python3
"""Trains Alloy's shipped experts on the MiniLM base with PyTorch + PEFT (CPU).

For each training task (Tasks/*.json with kind "train") it trains:
  (a) a LoRA expert: r=8, alpha=16 on query/value, the classification head via modules_to_save,
      saved as a PEFT folder in Adapters/<task>/lora/;
  (b) a diff-pruned expert (Guo et al. 2021, https://arxiv.org/abs/2012.07463): full fine-tune,
      keep the top 0.5% of |δ| over the encoder's weights, reset the rest to the base and re-tune
      with the mask fixed; saved as a sparse delta (flat I32 indices + F16 values per tensor) plus
      the head in Adapters/<task>/sparse/;
  (c) the full fine-tune's weights in .assets/experts-full/<task>/ (not committed: 90 MB each).
The model is MiniLM → mean pooling over the attention mask → dropout → Linear head, the head
convention Alloy's runtime uses. A linear probe on the frozen base's (normalised, mean-pooled)
embeddings gives the baseline each expert must beat. Every step is seeded; a task whose outputs
exist is skipped, so an interrupted run resumes where it stopped.

  train-experts.py [--tasks a,b] [--epochs-lora 3] [--time-only]
"""
import argparse, hashlib, json, math, os, random, shutil, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import AutoTokenizer, BertModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = os.path.join(ROOT, ".assets", "minilm")
TASKS = os.path.join(ROOT, ".assets", "tasks")
ADAPTERS = os.path.join(ROOT, "Adapters")
FULL = os.path.join(ROOT, ".assets", "experts-full")
MAX_LEN = 128
SEED = 1234
DENSITY = 0.005
RETUNE_LR, HEAD_LR = 5e-4, 1e-3


class MeanPoolClassifier(nn.Module):
    """MiniLM encoder, attention-masked mean pooling, dropout, linear head."""

    def __init__(self, num_labels):
        super().__init__()
        self.bert = BertModel.from_pretrained(BASE)
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Linear(self.bert.config.hidden_size, num_labels)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return self.classifier(self.dropout(pooled))


def load_split(task, split):
    with open(os.path.join(TASKS, task, f"{split}.jsonl")) as f:
        return [json.loads(l) for l in f]


def batches(tok, rows, labels, batch_size, shuffle, gen=None):
    order = list(range(len(rows)))
    if shuffle:
        order = torch.randperm(len(rows), generator=gen).tolist()
    for i in range(0, len(order), batch_size):
        chunk = [rows[j] for j in order[i:i + batch_size]]
        enc = tok([r["text"] for r in chunk], padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
        y = torch.tensor([labels.index(r["label"]) for r in chunk])
        yield enc, y


@torch.no_grad()
def accuracy(model, tok, rows, labels):
    model.eval()
    correct = 0
    for enc, y in batches(tok, rows, labels, 64, False):
        correct += (model(**enc).argmax(-1) == y).sum().item()
    return correct / len(rows)


def train(model, tok, rows, labels, epochs, lr, params, after_step=None, log=""):
    """AdamW (no weight decay) with linear warm-up over 10% and linear decay; `params` may be
    parameter groups with their own learning rates."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    steps = epochs * math.ceil(len(rows) / 32)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, steps // 10)) * max(0.0, (steps - s) / steps))
    gen = torch.Generator().manual_seed(SEED)
    step, t0 = 0, time.time()
    for epoch in range(epochs):
        model.train()
        for enc, y in batches(tok, rows, labels, 32, True, gen):
            loss = F.cross_entropy(model(**enc), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if after_step:
                after_step()
            step += 1
            if step % 20 == 0:
                print(f"  {log} epoch {epoch + 1}/{epochs} step {step}/{steps} loss {loss.item():.4f} ({time.time() - t0:.0f}s)", flush=True)
    return time.time() - t0


@torch.no_grad()
def embed(bert, tok, rows):
    bert.eval()
    out = []
    for i in range(0, len(rows), 64):
        enc = tok([r["text"] for r in rows[i:i + 64]], padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
        h = bert(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        out.append(F.normalize((h * m).sum(1) / m.sum(1), dim=-1))
    return torch.cat(out)


def linear_probe(tok, train_rows, test_rows, labels):
    """Logistic regression (L-BFGS, L2 1e-4) on frozen base embeddings: the baseline."""
    torch.manual_seed(SEED)
    bert = BertModel.from_pretrained(BASE)
    xtr, xte = embed(bert, tok, train_rows), embed(bert, tok, test_rows)
    ytr = torch.tensor([labels.index(r["label"]) for r in train_rows])
    yte = torch.tensor([labels.index(r["label"]) for r in test_rows])
    w = torch.zeros(xtr.shape[1], len(labels), requires_grad=True)
    b = torch.zeros(len(labels), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(xtr @ w + b, ytr) + 1e-4 * (w * w).sum()
        loss.backward()
        return loss
    opt.step(closure)
    return ((xte @ w + b).argmax(-1) == yte).float().mean().item()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


LORA_SETTINGS = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "target_modules": ["query", "value"], "lr": 1e-3, "batch_size": 32,
                 "optimizer": "AdamW (wd 0), linear warmup 10% + decay"}


def load_lora(folder, labels):
    """A shipped LoRA expert, loaded fresh from its PEFT folder."""
    from peft import PeftModel
    torch.manual_seed(SEED)
    return PeftModel.from_pretrained(MeanPoolClassifier(len(labels)), folder).eval()


def train_lora(task, labels, tok, tr, dev, te, epochs, out_dir):
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(SEED)
    model = MeanPoolClassifier(len(labels))
    cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1, target_modules=["query", "value"], modules_to_save=["classifier"])
    model = get_peft_model(model, cfg)
    secs = train(model, tok, tr, labels, epochs, 1e-3, [p for p in model.parameters() if p.requires_grad], log=f"{task} lora")
    result = {"dev": accuracy(model, tok, dev, labels), "test": accuracy(model, tok, te, labels), "train_seconds": round(secs, 1)}
    tmp = out_dir + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    # The base is referenced by content, not by a hub id.
    cfg_path = os.path.join(tmp, "adapter_config.json")
    c = json.load(open(cfg_path))
    c["base_model_name_or_path"] = "sentence-transformers/all-MiniLM-L6-v2"
    json.dump(c, open(cfg_path, "w"), indent=2, sort_keys=True)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.rename(tmp, out_dir)
    return result, dict(LORA_SETTINGS, epochs=epochs)


def train_sparse(task, labels, tok, tr, dev, te, epochs_full, epochs_retune, out_dir, full_dir):
    torch.manual_seed(SEED)
    model = MeanPoolClassifier(len(labels))
    base = {n: p.detach().clone() for n, p in model.bert.named_parameters()}
    if os.path.exists(os.path.join(full_dir, "card.json")):
        # Resume: the full fine-tune of an interrupted run is reused.
        from safetensors.torch import load_file
        model.bert.load_state_dict(load_file(os.path.join(full_dir, "model.safetensors")), strict=False)
        head = load_file(os.path.join(full_dir, "head.safetensors"))
        with torch.no_grad():
            model.classifier.weight.copy_(head["classifier.weight"]); model.classifier.bias.copy_(head["classifier.bias"])
        full_card = json.load(open(os.path.join(full_dir, "card.json")))
        full_result, secs1 = full_card["accuracy"], full_card.get("train_seconds", 0.0)
    else:
        secs1 = train(model, tok, tr, labels, epochs_full, 5e-5, list(model.parameters()), log=f"{task} full")
        full_result = {"dev": accuracy(model, tok, dev, labels), "test": accuracy(model, tok, te, labels)}
        # (c) keep the full fine-tune for measurements (not committed).
        tmp_full = full_dir + ".partial"
        shutil.rmtree(tmp_full, ignore_errors=True)
        os.makedirs(tmp_full)
        save_file({n: p.detach().contiguous() for n, p in model.bert.named_parameters()}, os.path.join(tmp_full, "model.safetensors"))
        save_file({"classifier.weight": model.classifier.weight.detach().contiguous(), "classifier.bias": model.classifier.bias.detach().contiguous()}, os.path.join(tmp_full, "head.safetensors"))
        json.dump({"task": task, "labels": labels, "accuracy": full_result, "train_seconds": round(secs1, 1)}, open(os.path.join(tmp_full, "card.json"), "w"), indent=2)
        shutil.rmtree(full_dir, ignore_errors=True)
        os.rename(tmp_full, full_dir)

    # Diff pruning: the top DENSITY of |δ| over all encoder weights, globally.
    deltas = {n: (p.detach() - base[n]) for n, p in model.bert.named_parameters()}
    flat = torch.cat([d.abs().flatten() for d in deltas.values()])
    k = max(1, int(DENSITY * flat.numel()))
    threshold = torch.topk(flat, k, sorted=True).values[-1]
    masks = {n: (d.abs() >= threshold) for n, d in deltas.items()}
    params = dict(model.bert.named_parameters())

    def project():
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(base[n] + (p - base[n]) * masks[n])
    project()
    # The kept entries must move far from where the full fine-tune left them, and the head must
    # re-fit features that are 99.5% the base's again: larger learning rates than fine-tuning.
    groups = [{"params": list(model.bert.parameters()), "lr": RETUNE_LR}, {"params": list(model.classifier.parameters()), "lr": HEAD_LR}]
    secs2 = train(model, tok, tr, labels, epochs_retune, RETUNE_LR, groups, after_step=project, log=f"{task} retune")

    # Store values as F16, and measure what is stored.
    tensors, touched, kept = {}, 0, 0
    with torch.no_grad():
        for n, p in params.items():
            idx = masks[n].flatten().nonzero().flatten()
            if idx.numel() == 0:
                continue
            vals = (p.detach() - base[n]).flatten()[idx].to(torch.float16)
            tensors[f"{n}.indices"] = idx.to(torch.int32).contiguous()
            tensors[f"{n}.values"] = vals.contiguous()
            p.copy_(base[n])
            p.view(-1)[idx] += vals.to(torch.float32)
            touched += 1
            kept += idx.numel()
    result = {"dev": accuracy(model, tok, dev, labels), "test": accuracy(model, tok, te, labels),
              "full_finetune": full_result, "train_seconds": round(secs1 + secs2, 1)}
    tmp = out_dir + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    total = sum(p.numel() for p in params.values())
    save_file(tensors, os.path.join(tmp, "delta.safetensors"),
              metadata={"format": "alloy-sparse-delta", "base_sha256": sha256(os.path.join(BASE, "model.safetensors")),
                        "density": f"{kept / total:.6f}", "index": "flat row-major int32", "values": "F16 delta"})
    save_file({"classifier.weight": model.classifier.weight.detach().contiguous(), "classifier.bias": model.classifier.bias.detach().contiguous()},
              os.path.join(tmp, "head.safetensors"))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.rename(tmp, out_dir)
    return result, {"density": DENSITY, "kept_entries": kept, "tensors_touched": touched, "full_lr": 5e-5, "full_epochs": epochs_full,
                    "retune_lr": RETUNE_LR, "retune_head_lr": HEAD_LR, "retune_epochs": epochs_retune, "batch_size": 32, "values": "F16"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", default="")
    ap.add_argument("--epochs-lora", type=int, default=3)
    ap.add_argument("--epochs-full", type=int, default=2)
    ap.add_argument("--epochs-retune", type=int, default=2)
    ap.add_argument("--time-only", action="store_true", help="time one LoRA epoch on the first task and stop")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 2)
    tok = AutoTokenizer.from_pretrained(BASE)
    cards = sorted(f for f in os.listdir(os.path.join(ROOT, "Tasks")) if f.endswith(".json"))
    tasks = [json.load(open(os.path.join(ROOT, "Tasks", f))) for f in cards]
    tasks = [t for t in tasks if t["kind"] == "train" and (not args.tasks or t["name"] in args.tasks.split(","))]
    for t in tasks:
        name, labels = t["name"], t["labels"]
        tr, dev, te = load_split(name, "train"), load_split(name, "dev"), load_split(name, "test")
        if args.time_only:
            torch.manual_seed(SEED)
            model = MeanPoolClassifier(len(labels))
            secs = train(model, tok, tr[:320], labels, 1, 5e-5, list(model.parameters()), log=f"{name} timing")
            print(f"{name}: 320 examples, full fine-tune, {secs:.1f}s → {320 / secs:.1f} ex/s")
            return
        out = os.path.join(ADAPTERS, name)
        os.makedirs(out, exist_ok=True)
        card_path = os.path.join(out, "card.json")
        card = json.load(open(card_path)) if os.path.exists(card_path) else {"task": name, "labels": labels, "base": "sentence-transformers/all-MiniLM-L6-v2", "base_sha256": sha256(os.path.join(BASE, "model.safetensors")), "head": {"pooling": "mean", "input": "mean of the last hidden states over the attention mask (not normalised)", "max_length": MAX_LEN}, "seed": SEED}
        def save_card():
            with open(card_path + ".tmp", "w") as f:
                json.dump(card, f, indent=2)
                f.write("\n")
            os.replace(card_path + ".tmp", card_path)
        if "probe_test_accuracy" not in card:
            card["probe_test_accuracy"] = linear_probe(tok, tr, te, labels)
            save_card()
        lora_dir = os.path.join(out, "lora")
        if not os.path.isdir(lora_dir):
            card["lora"] = dict(zip(("accuracy", "settings"), train_lora(name, labels, tok, tr, dev, te, args.epochs_lora, lora_dir)))
        elif "lora" not in card:
            m = load_lora(lora_dir, labels)
            card["lora"] = {"accuracy": {"dev": accuracy(m, tok, dev, labels), "test": accuracy(m, tok, te, labels)},
                            "settings": dict(LORA_SETTINGS, epochs=args.epochs_lora)}
        save_card()
        if not os.path.isdir(os.path.join(out, "sparse")):
            card["sparse"] = dict(zip(("accuracy", "settings"), train_sparse(name, labels, tok, tr, dev, te, args.epochs_full, args.epochs_retune, os.path.join(out, "sparse"), os.path.join(FULL, name))))
        save_card()
        print(f"{name}: probe {card['probe_test_accuracy']:.4f}  lora test {card['lora']['accuracy']['test']:.4f}  sparse test {card['sparse']['accuracy']['test']:.4f}", flush=True)


if __name__ == "__main__":
    main()
