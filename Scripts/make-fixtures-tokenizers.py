#!/usr/bin/env python3
"""Makes the tokenizer-family fixtures with the reference libraries (offline, seeded).

Writes Tests/EncoderTests/Fixtures/tokenizers/:
  corpus.jsonl               the test lines: MiniLM's tokenizer_corpus.jsonl texts plus multilingual
                             lines (English, German, Spanish, Italian, Polish, Czech, CJK, emoji,
                             Arabic/Hebrew/Thai, control characters, odd whitespace, very long words).
  roberta_bpe.json           byte-level BPE (models.BPE + trainers.BpeTrainer, vocab 2000, trained on
                             the training text below) shaped like roberta-base's tokenizer.json: no
                             normalizer, ByteLevel(add_prefix_space=false), RobertaProcessing <s>…</s>,
                             merges in the "a b" string form.
  modernbert_bpe.json        the same vocabulary shaped like ModernBERT's: NFC normalizer, ByteLevel
                             (add_prefix_space=false), TemplateProcessing "[CLS] $A [SEP]",
                             ignore_merges, merges in the [a, b] array form.
  gpt2_bpe.json              the same vocabulary with Sequence[NFKD, StripAccents, Lowercase], ByteLevel
                             (add_prefix_space=true) and no post-processor.
  xlmr_unigram.json          a sentencepiece unigram model (vocab 2000, nmt_nfkc) assembled with the
                             tokenizers API in the layout transformers' XLMRobertaConverter/SpmConverter
                             writes (the converter itself needs a slow tokenizer object): specials
                             <s> <pad> </s> <unk> first, <mask> last, unk_id 3; normalizer
                             Sequence[Precompiled, Strip(right), Replace(" {2,}" → "▁")]; Metaspace
                             always; TemplateProcessing "<s> $A </s>").
  xlmr5_unigram.json         the same vocabulary as transformers 5's XLMRobertaTokenizer lays it out:
                             a Precompiled normalizer alone (a 5-rule custom charsmap, to stay small),
                             pre-tokenizer Sequence[WhitespaceSplit, Metaspace].
  llama_bpe.json             a sentencepiece BPE model (vocab 1500, identity normalization, byte_fallback)
                             in Llama-2's layout: BPE with unk <unk>, fuse_unk, byte_fallback (<0xNN>
                             pieces), normalizer Sequence[Prepend("▁"), Replace(" " → "▁")], no
                             pre-tokenizer, TemplateProcessing "<s> $A" (bos only).
  mistral_bpe.json           the same model in the later Metaspace layout: no normalizer,
                             Metaspace(prepend_scheme "first", split false), "<s> $A </s>".
  expected.jsonl             per tokenizer file (and "mpnet" for .assets/mpnet/tokenizer.json when
                             present), untruncated and truncated at 32:
                             {"tokenizer", "max_length" (null: untruncated), "ids": [[...]...]}
                             = tokenizers' Tokenizer.from_file(...).encode(text).ids per corpus line.
Also writes the fuzz seeds Tests/FuzzTests/Seeds/tokenizer_bpe/tokenizer.json,
Tests/FuzzTests/Seeds/tokenizer_unigram/tokenizer.json and tokenizer_spbpe/tokenizer.json (Mistral layout, byte_fallback) (tiny: vocab ~300 BPE, ~90 unigram pieces with a 5-rule charsmap).
Run: HF_HUB_OFFLINE=1 .venv/bin/python Scripts/make-fixtures-tokenizers.py
"""
import base64, json, os, random, tempfile
os.environ["HF_HUB_OFFLINE"] = "1"
import sentencepiece as spm
from tokenizers import Tokenizer, Regex, models, normalizers, pre_tokenizers, processors, decoders, trainers
from sentencepiece import sentencepiece_model_pb2 as sp_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "Tests", "EncoderTests", "Fixtures")
OUT = os.path.join(FIX, "tokenizers")
SEEDS = os.path.join(ROOT, "Tests", "FuzzTests", "Seeds")
os.makedirs(OUT, exist_ok=True)
rng = random.Random(13)

# 1. Corpus.
lines = [json.loads(l)["text"] for l in open(os.path.join(FIX, "tokenizer_corpus.jsonl"), encoding="utf-8")]
multilingual = [
    "The committee will publish its final report on Tuesday morning.", "I can't believe it's already December!",
    "Die Straßenbahn fährt um halb acht über die Brücke.", "Größere Übungen müssen wir später üben, oder?",
    "El niño comió jalapeños y piñas en la montaña.", "¿Dónde está la estación? ¡Qué día tan bonito!",
    "Il caffè è già pronto, però la città è ancora più bella di sera.", "Perché non andiamo all'università domani?",
    "Zażółć gęślą jaźń — pchnąć w tę łódź jeża.", "Łódź, Wrocław i Gdańsk leżą w Polsce.",
    "Příliš žluťoučký kůň úpěl ďábelské ódy.", "Čeština má háčky a čárky: ř, ů, ě.",
    "東京都は日本の首都です。", "我们今天去北京的长城。", "서울은 한국의 수도입니다.", "ＦＵＬＬＷＩＤＴＨ　ｔｅｘｔ　１２３",
    "emoji 👍🏽👨‍💻🧑‍🚀 🇵🇱🇨🇿 ✈️☕", "مرحبا بالعالم، كيف حالك؟", "שלום עולם, מה שלומך?", "สวัสดีครับ ยินดีต้อนรับ",
    "tab\there\x0bvertical\x0cformfeed", "nbsp\u00a0and\u2009thin\u202fnarrow\u3000ideo", "line\u2028sep\u2029para",
    "bell\x07 nul\x00 esc\x1b del\x7f c1\x85\x9f", "zero\u200bwidth\ufeffbom\u200ejoiner\u200c", "   many   spaces   ",
    "trailing spaces   ", "\n\nleading newlines", "mixed\r\n\r\nCRLF", "x" * 300, "ab" * 200 + " end",
    "ä" * 150, "日本" * 100, "🙂" * 80, "Pneumonoultramicroscopicsilicovolcanoconiosis", "Rindfleischetikettierungsüberwachungsaufgabenübertragungsgesetz",
    "dżdżownica źdźbło", "ﬀ ﬃ ǅ ǈ Å Ω K ™ ℃ № ㎏ ㍿", "e\u0301\u0301 a\u030a o\u0308\u0304", "Ａ\u0301 full+combining",
    "don't won't I'm we've they'll she'd it's", "'quoted' 's 't 're", "numbers 1234567890 ١٢٣ ४५६ ⅓", "a.b,c;d:e!f?g",
    "<s> literal </s> tags <unk>", "fill the <mask> here, [CLS] and [SEP] too <pad>", "path/to/file.txt C:\\Windows\\system32", "καλημέρα κόσμε", "Съешь же ещё этих мягких французских булок",
]
lines += multilingual
while len(lines) < 320:
    pick = rng.sample(multilingual[:20], 3)
    lines.append(" ".join(pick))
with open(os.path.join(OUT, "corpus.jsonl"), "w", encoding="utf-8") as f:
    for l in lines:
        f.write(json.dumps({"text": l}, ensure_ascii=False) + "\n")

# Training text: the corpus and shuffled multilingual sentences.
train = list(lines)
words = " ".join(multilingual[:24] + lines[:60]).split()
for _ in range(6000):
    train.append(" ".join(rng.choice(words) for _ in range(rng.randint(3, 14))))
tmp = tempfile.mkdtemp()
train_path = os.path.join(tmp, "train.txt")
with open(train_path, "w", encoding="utf-8") as f:
    for l in train:
        f.write(l.replace("\n", " ").replace("\r", " ").replace("\x00", " ") + "\n")

# 2. Byte-level BPE.
bpe = Tokenizer(models.BPE())
bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
bpe.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=2000, min_frequency=2, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
bpe.train_from_iterator(train, trainer)
bpe.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False)
base = json.loads(bpe.to_str())
vocab = base["model"]["vocab"]
merges = base["model"]["merges"]
merges_pairs = [m if isinstance(m, list) else m.split(" ") for m in merges]

def write(name, obj):
    path = os.path.join(OUT, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
    Tokenizer.from_file(path)  # the reference library must accept it
    return path

roberta = json.loads(json.dumps(base))
roberta["model"]["merges"] = [" ".join(p) for p in merges_pairs]
roberta["model"]["dropout"] = None
for a in roberta["added_tokens"]:
    if a["content"] == "<mask>":
        a["lstrip"] = True  # as roberta-base's <mask>
write("roberta_bpe.json", roberta)

modern = json.loads(json.dumps(base))
mvocab = {"[CLS]": 0, "[PAD]": 1, "[SEP]": 2, "[UNK]": 3, "[MASK]": 4}
for k, v in vocab.items():
    if v >= 5:
        mvocab[k] = v
modern["added_tokens"] = [dict(a, content=c) for a, c in zip(base["added_tokens"], ["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]"])]
modern["model"]["vocab"] = mvocab
modern["model"]["merges"] = merges_pairs
modern["model"]["ignore_merges"] = True
modern["normalizer"] = {"type": "NFC"}
modern["post_processor"] = {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
    "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
             {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
    "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [0], "tokens": ["[CLS]"]}, "[SEP]": {"id": "[SEP]", "ids": [2], "tokens": ["[SEP]"]}}}
write("modernbert_bpe.json", modern)

gpt2 = json.loads(json.dumps(base))
gpt2["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFKD"}, {"type": "StripAccents"}, {"type": "Lowercase"}]}
gpt2["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
gpt2["post_processor"] = None
write("gpt2_bpe.json", gpt2)

# 3. Unigram (sentencepiece, nmt_nfkc) in XLM-R's layout.
def train_spm(prefix, vocab_size, extra, source=None):
    spm.SentencePieceTrainer.train(input=source or train_path, model_prefix=prefix, model_type="unigram", vocab_size=vocab_size,
                                   character_coverage=0.9995, seed_sentencepiece_size=100000, hard_vocab_limit=False,
                                   num_threads=1, minloglevel=2, **extra)
    proto = sp_pb2.ModelProto()
    proto.ParseFromString(open(prefix + ".model", "rb").read())
    return proto

def xlmr_layout(proto, v5=False):
    charsmap = base64.b64encode(proto.normalizer_spec.precompiled_charsmap).decode()
    pieces = [["<s>", 0.0], ["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0]] + [[p.piece, p.score] for p in proto.pieces[3:]] + [["<mask>", 0.0]]
    tok = Tokenizer(models.Unigram([tuple(p) for p in pieces], unk_id=3, byte_fallback=False))
    tok.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    pre = normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap)
    if v5:
        tok.normalizer = pre
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
    else:
        tok.normalizer = normalizers.Sequence([pre, normalizers.Strip(left=False, right=True), normalizers.Replace(Regex(" {2,}"), "▁")])
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    obj = json.loads(tok.to_str())
    return obj

proto = train_spm(os.path.join(tmp, "uni"), 2000, {"normalization_rule_name": "nmt_nfkc"})
write("xlmr_unigram.json", xlmr_layout(proto))
# The transformers-5 layout reuses the vocabulary with a small custom charsmap (keeps the file small).
rules = os.path.join(tmp, "rules.tsv")
with open(rules, "w") as f:
    f.write("41\t61\n")          # A → a
    f.write("FB01\t66 69\n")     # ﬁ → fi
    f.write("3000\t20\n")        # ideographic space → space
    f.write("65 301\tE9\n")      # e + combining acute → é
    f.write("FF21\t41\n")        # fullwidth A → A (not a → only the first rule applies)
small_text = os.path.join(tmp, "small.txt")
with open(small_text, "w") as f:
    for l in train[:3000]:
        if l.isascii():
            f.write(l.lower() + "\n")
custom = train_spm(os.path.join(tmp, "custom"), 90, {"normalization_rule_tsv": rules}, source=small_text)
proto.normalizer_spec.precompiled_charsmap = custom.normalizer_spec.precompiled_charsmap
write("xlmr5_unigram.json", xlmr_layout(proto, v5=True))

# 4. SentencePiece BPE with byte fallback (Llama / Mistral layouts).
from transformers.convert_slow_tokenizer import SentencePieceExtractor
spm.SentencePieceTrainer.train(input=train_path, model_prefix=os.path.join(tmp, "spbpe"), model_type="bpe", vocab_size=1500,
                               character_coverage=0.98, byte_fallback=True, normalization_rule_name="identity",
                               add_dummy_prefix=True, num_threads=1, minloglevel=2)
ext = SentencePieceExtractor(os.path.join(tmp, "spbpe.model")).extract(models.BPE)
def sp_bpe(mistral):
    tok = Tokenizer(models.BPE(vocab=ext["vocab"], merges=ext["merges"], unk_token="<unk>", fuse_unk=True, byte_fallback=True, dropout=None))
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    if mistral:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
        tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 1), ("</s>", 2)])
    else:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return json.loads(tok.to_str())
write("llama_bpe.json", sp_bpe(False))
write("mistral_bpe.json", sp_bpe(True))

# 5. Expected ids.
files = ["roberta_bpe.json", "modernbert_bpe.json", "gpt2_bpe.json", "xlmr_unigram.json", "xlmr5_unigram.json", "llama_bpe.json", "mistral_bpe.json"]
mpnet = os.path.join(ROOT, ".assets", "mpnet", "tokenizer.json")
with open(os.path.join(OUT, "expected.jsonl"), "w", encoding="utf-8") as f:
    for name in files + (["mpnet"] if os.path.exists(mpnet) else []):
        tok = Tokenizer.from_file(mpnet if name == "mpnet" else os.path.join(OUT, name))
        tok.no_padding()
        for max_length in [None, 32]:
            if max_length is None:
                tok.no_truncation()
            else:
                tok.enable_truncation(max_length)
            ids = [tok.encode(l).ids for l in lines]
            f.write(json.dumps({"tokenizer": name, "max_length": max_length, "ids": ids}, separators=(",", ":")) + "\n")

# 6. Fuzz seeds: tiny versions of both families.
small = Tokenizer(models.BPE())
small.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
small.train_from_iterator(lines[:40], trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "<pad>", "</s>"], show_progress=False))
small.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
sobj = json.loads(small.to_str())
sobj["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFC"}]}
os.makedirs(os.path.join(SEEDS, "tokenizer_bpe"), exist_ok=True)
with open(os.path.join(SEEDS, "tokenizer_bpe", "tokenizer.json"), "w", encoding="utf-8") as f:
    json.dump(sobj, f, ensure_ascii=False, indent=1)
tiny = train_spm(os.path.join(tmp, "tiny"), 90, {"normalization_rule_tsv": rules}, source=small_text)
tobj = xlmr_layout(tiny)
os.makedirs(os.path.join(SEEDS, "tokenizer_unigram"), exist_ok=True)
with open(os.path.join(SEEDS, "tokenizer_unigram", "tokenizer.json"), "w", encoding="utf-8") as f:
    json.dump(tobj, f, ensure_ascii=False, indent=1)
Tokenizer.from_file(os.path.join(SEEDS, "tokenizer_unigram", "tokenizer.json"))
spm.SentencePieceTrainer.train(input=small_text, model_prefix=os.path.join(tmp, "tinybpe"), model_type="bpe", vocab_size=330,
                               byte_fallback=True, normalization_rule_name="identity", num_threads=1, minloglevel=2)
ext = SentencePieceExtractor(os.path.join(tmp, "tinybpe.model")).extract(models.BPE)
tok = Tokenizer(models.BPE(vocab=ext["vocab"], merges=ext["merges"], unk_token="<unk>", fuse_unk=True, byte_fallback=True, dropout=None))
tok.add_special_tokens(["<unk>", "<s>", "</s>"])
tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 1), ("</s>", 2)])
os.makedirs(os.path.join(SEEDS, "tokenizer_spbpe"), exist_ok=True)
with open(os.path.join(SEEDS, "tokenizer_spbpe", "tokenizer.json"), "w", encoding="utf-8") as f:
    json.dump(json.loads(tok.to_str()), f, ensure_ascii=False, indent=1)
print("wrote", OUT)
