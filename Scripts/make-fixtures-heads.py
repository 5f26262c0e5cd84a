#!/usr/bin/env python3
"""Makes the fixtures of transformers' sequence-classification heads and sentence-transformers'
pooling and Dense modules, with the reference libraries.

  Tests/EncoderTests/Fixtures/heads/<family>/   a seeded random `*ForSequenceClassification`
        (hidden 32, 2 layers, vocab 300) saved by save_pretrained (transformers 5: no
        position_ids buffer), with id2label, and expected.json: the logits transformers computes
        for the id sequences in IDS (each run alone, no padding). Families: bert, roberta,
        xlm-roberta, distilbert, electra, mpnet, modernbert; `roberta-multilabel` has
        problem_type multi_label_classification.
  Tests/EncoderTests/Fixtures/heads/peft-bert, peft-roberta/   PEFT LoRA classifiers (SEQ_CLS:
        LoRA r=4 on query/value, the head in modules_to_save, randomised) over the bert and
        roberta classifiers, with PEFT's logits in expected.json.
  Tests/EncoderTests/Fixtures/heads/bert-base, bert-sst, bert-topic/   a BertModel base (with the
        position_ids buffer) and two BertForSequenceClassification experts fine-tuned from it
        (2 and 4 labels), with expected.json as above.
  Tests/EncoderTests/Fixtures/heads/st/<name>/  tiny sentence-transformers models over a seeded
        BertModel with a 200-piece WordPiece vocabulary: `max-dense` (max pooling, Dense 32→16
        tanh, Normalize), `cls-mean` (CLS and mean pooling concatenated, Dense 64→24 identity),
        with expected.json: sentence-transformers' embeddings of SENTENCES.
Run: .venv/bin/python Scripts/make-fixtures-heads.py
"""
import json, os, shutil
os.environ["HF_HUB_OFFLINE"] = "1"
import torch
import transformers as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "EncoderTests", "Fixtures", "heads")
shutil.rmtree(OUT, ignore_errors=True)
os.makedirs(OUT)

# Token ids: position 0 is the first (CLS/<s>) token; ids avoid every family's padding id (0, 1).
IDS = [[5, 17, 42, 99, 7], [5, 260, 3, 18, 77, 140, 33, 9, 6], [5] + [(i * 37) % 290 + 10 for i in range(30)] + [6]]
LABELS = ["negative", "neutral", "positive"]
COMMON = dict(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


def family_models():
    yield "bert", T.BertConfig(**COMMON, max_position_embeddings=64), T.BertForSequenceClassification
    yield "roberta", T.RobertaConfig(**COMMON, max_position_embeddings=66, pad_token_id=1), T.RobertaForSequenceClassification
    yield "roberta-multilabel", T.RobertaConfig(**COMMON, max_position_embeddings=66, pad_token_id=1,
                                                problem_type="multi_label_classification"), T.RobertaForSequenceClassification
    yield "xlm-roberta", T.XLMRobertaConfig(**COMMON, max_position_embeddings=66, pad_token_id=1), T.XLMRobertaForSequenceClassification
    yield "distilbert", T.DistilBertConfig(vocab_size=300, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                           max_position_embeddings=64), T.DistilBertForSequenceClassification
    yield "electra", T.ElectraConfig(vocab_size=300, embedding_size=24, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=64), T.ElectraForSequenceClassification
    yield "mpnet", T.MPNetConfig(**COMMON, max_position_embeddings=66, pad_token_id=1), T.MPNetForSequenceClassification
    yield "modernbert", T.ModernBertConfig(vocab_size=300, hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
                                           global_attn_every_n_layers=2, local_attention=8, max_position_embeddings=64,
                                           pad_token_id=0, classifier_pooling="cls"), T.ModernBertForSequenceClassification


for seed, (name, cfg, cls) in enumerate(family_models()):
    torch.manual_seed(100 + seed)
    cfg.id2label = dict(enumerate(LABELS))
    cfg.label2id = {l: i for i, l in enumerate(LABELS)}
    if name == "modernbert":
        cfg._attn_implementation = "eager"
    model = cls(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():   # beyond the init's tiny values, so every part matters
            p.add_(torch.randn_like(p) * 0.05)
        logits = [model(input_ids=torch.tensor([ids])).logits[0].tolist() for ids in IDS]
    d = os.path.join(OUT, name)
    model.save_pretrained(d, safe_serialization=True)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"model_max_length": 24 if name == "bert" else 1000000000000000019884624838656}, f)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"ids": IDS, "logits": logits, "labels": LABELS, "problem_type": cfg.problem_type}, f, indent=1)
    print(name, [round(x, 4) for x in logits[0]])

# PEFT LoRA classifiers (task_type SEQ_CLS: LoRA on query/value, the head in modules_to_save)
# over the bert and roberta classifiers above, with PEFT's logits.
from peft import LoraConfig, get_peft_model
for seed, family in enumerate(["bert", "roberta"]):
    torch.manual_seed(400 + seed)
    model = T.AutoModelForSequenceClassification.from_pretrained(os.path.join(OUT, family)).eval()
    peft = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["query", "value"]))
    with torch.no_grad():
        for n, p in peft.named_parameters():
            if "lora_B" in n or "modules_to_save" in n:
                p.add_(torch.randn_like(p) * 0.1)
        peft.eval()
        logits = [peft(input_ids=torch.tensor([ids])).logits[0].tolist() for ids in IDS]
    d = os.path.join(OUT, f"peft-{family}")
    peft.save_pretrained(d)
    with open(os.path.join(d, "adapter_config.json")) as f:
        ac = json.load(f)
    ac["base_model_name_or_path"] = f"../{family}"   # not this machine's absolute path
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(ac, f, indent=2, sort_keys=True)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"ids": IDS, "logits": logits, "labels": LABELS, "problem_type": None}, f, indent=1)
    print(f"peft-{family}", [round(x, 4) for x in logits[0]])

# Classification experts fine-tuned from one base (merges keep each expert's head; the store
# keeps an expert as its delta plus its head): bert-base (BertModel with pooler, position_ids
# buffer as older transformers wrote), bert-sst (2 labels) and bert-topic (4 labels) = base +
# small deltas + their own heads.
torch.manual_seed(300)
bcfg = T.BertConfig(**COMMON, max_position_embeddings=64)
base = T.BertModel(bcfg).eval()
with torch.no_grad():
    for p in base.parameters():
        p.add_(torch.randn_like(p) * 0.05)
d = os.path.join(OUT, "bert-base")
base.save_pretrained(d, safe_serialization=True)
from safetensors.torch import load_file, save_file
t = load_file(os.path.join(d, "model.safetensors"))
t["embeddings.position_ids"] = torch.arange(64, dtype=torch.int64)[None, :]
save_file(t, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
for name, labels in [("bert-sst", ["negative", "positive"]), ("bert-topic", ["world", "sports", "business", "science"])]:
    cfg = T.BertConfig(**COMMON, max_position_embeddings=64, id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    m = T.BertForSequenceClassification(cfg).eval()
    m.bert.load_state_dict(base.state_dict())
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.01)
        logits = [m(input_ids=torch.tensor([ids])).logits[0].tolist() for ids in IDS]
    d = os.path.join(OUT, name)
    m.save_pretrained(d, safe_serialization=True)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"ids": IDS, "logits": logits, "labels": labels, "problem_type": None}, f, indent=1)
    print(name, [round(x, 4) for x in logits[0]])

# sentence-transformers modules.
from sentence_transformers import SentenceTransformer, models
from tokenizers import Tokenizer, models as tm, normalizers, pre_tokenizers, processors

SENTENCES = ["the cat sat on the mat", "a dog barked", "hello world", "It rains, it pours!", "caterpillar and doggerel",
             "x", "the the the the the the the the the the the the the the"]
vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghijklmnopqrstuvwxyz,!.") + \
        ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"] + \
        ["the", "cat", "sat", "on", "mat", "dog", "bark", "##ed", "hello", "world", "it", "rain", "##s", "pour", "and", "##pillar"]
vocab = vocab + [f"w{i}" for i in range(200 - len(vocab))]
tok = Tokenizer(tm.WordPiece({v: i for i, v in enumerate(vocab)}, unk_token="[UNK]"))
tok.normalizer = normalizers.BertNormalizer(lowercase=True)
tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
tok.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))

for seed, (name, modes, dense_out, act) in enumerate([("max-dense", ["max"], 16, torch.nn.Tanh()),
                                                      ("cls-mean", ["cls", "mean"], 24, torch.nn.Identity())]):
    torch.manual_seed(200 + seed)
    d = os.path.join(OUT, "st", name)
    tmp = d + ".hf"
    bert = T.BertModel(T.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                    intermediate_size=64, max_position_embeddings=64), add_pooling_layer=False)
    bert.save_pretrained(tmp)
    fast = T.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                                     mask_token="[MASK]", model_max_length=64)
    fast.save_pretrained(tmp)
    word = models.Transformer(tmp, max_seq_length=20)
    pool = models.Pooling(32, pooling_mode_cls_token="cls" in modes, pooling_mode_mean_tokens="mean" in modes,
                          pooling_mode_max_tokens="max" in modes)
    dense = models.Dense(pool.get_sentence_embedding_dimension(), dense_out, bias=True, activation_function=act)
    with torch.no_grad():
        for p in dense.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    mods = [word, pool, dense] + ([models.Normalize()] if name == "max-dense" else [])
    st = SentenceTransformer(modules=mods, device="cpu")
    st.save(d)
    shutil.rmtree(tmp)
    emb = st.encode(SENTENCES, convert_to_numpy=True, batch_size=4)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"sentences": SENTENCES, "embeddings": emb.tolist()}, f)
    print(name, emb.shape)
