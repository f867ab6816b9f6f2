"""The RTok pipeline (paper section 4, App. C.2): SPEAK tokens fed to a pretrained encoder (XLM-R) and fine-tuned.

1. Embeddings for the SPEAK segment vocabulary: a ZeTT-style hypernetwork when one is given (:class:`Hypernetwork`,
   a callable ``tokens -> [N, D]``; **no hypernetwork weights are shipped**), else FVT (:func:`fvt_embeddings`:
   each new token = the mean of the old embeddings of the old tokenizer's pieces of its text).
2. The model reads them through ``inputs_embeds`` (:class:`TokenEmbedder`), so its own vocabulary is untouched.
3. LoRA (``peft``) fine-tuning for XNLI-style sequence-pair classification (accuracy) and UNER-style BIO tagging
   (first token of each word labelled, word starts forced to be token boundaries, span F1 via ``seqeval``).

Real loaders :func:`load_xnli` / :func:`load_uner` go through Hugging Face ``datasets`` (offline -> SpeakError).
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import torch
from torch import Tensor, nn

from speak.errors import SpeakError
from speak.text.segment_vocab import BOS, EOS, MASK, PAD, UNK

IGNORE = -100
XNLI_LABELS = ("entailment", "neutral", "contradiction")


# ---------------------------------------------------------------------------------------------- embeddings
@runtime_checkable
class Hypernetwork(Protocol):
    """ZeTT-style embedding predictor: token strings -> embeddings [N, D] in the target model's space.

    Minixhofer et al. (2024) train one per model; SPEAK uses theirs for XLM-R. This project ships none: pass your
    own callable (e.g. a loaded ZeTT hypernetwork wrapped to this signature), or FVT is used.
    """

    def __call__(self, tokens: Sequence[str]) -> Tensor: ...


class OldTokenizer:
    """Adapter over the pretrained model's tokenizer: ``encode(text) -> ids`` (no specials) and its special ids.

    Accepts a transformers tokenizer or a ``sentencepiece.SentencePieceProcessor``.
    """

    def __init__(self, tok: Any, specials: dict[str, int | None] | None = None):
        self.tok = tok
        if hasattr(tok, "EncodeAsIds"):  # sentencepiece
            self._encode = lambda s: list(tok.EncodeAsIds(s))
            get = lambda i: i if i is not None and i >= 0 else None  # noqa: E731
            found = {BOS: get(tok.bos_id()), EOS: get(tok.eos_id()), PAD: get(tok.pad_id()), UNK: get(tok.unk_id()),
                     MASK: None}
        elif hasattr(tok, "encode"):
            self._encode = lambda s: list(tok.encode(s, add_special_tokens=False))
            found = {BOS: tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id,
                     EOS: tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id,
                     PAD: tok.pad_token_id, UNK: tok.unk_token_id, MASK: tok.mask_token_id}
        else:
            raise SpeakError(f"unsupported old tokenizer {type(tok).__name__}: need transformers or sentencepiece")
        found.update(specials or {})
        self.specials = found

    def encode(self, text: str) -> list[int]:
        return self._encode(text)


def fvt_embeddings(new_vocab_tokens: Sequence[str], old_tokenizer: Any, old_embedding_matrix: Tensor,
                   specials: dict[str, int | None] | None = None) -> Tensor:
    """Fast Vocabulary Transfer: row i = mean of the old embeddings of ``old_tokenizer``'s pieces of token i's text.

    Special tokens (``<s> <pad> </s> <unk> <mask>``) take their counterparts' rows; a missing counterpart, or a text
    the old tokenizer maps to nothing, takes the mean of all old rows. Old ids outside the matrix are dropped.
    """
    old = old_tokenizer if isinstance(old_tokenizer, OldTokenizer) else OldTokenizer(old_tokenizer, specials)
    emb = old_embedding_matrix.detach().float()  # [V_old, D]
    mean = emb.mean(0)
    rows = []
    for tok in new_vocab_tokens:
        if tok in old.specials:
            idx = old.specials[tok]
            rows.append(emb[idx] if idx is not None and 0 <= idx < emb.shape[0] else mean)
            continue
        ids = [i for i in old.encode(tok) if 0 <= i < emb.shape[0]]
        rows.append(emb[ids].mean(0) if ids else mean)
    return torch.stack(rows).to(old_embedding_matrix.dtype)  # [V_new, D]


def transfer_embeddings(new_vocab_tokens: Sequence[str], old_tokenizer: Any, old_embedding_matrix: Tensor,
                        hypernetwork: Hypernetwork | None = None) -> Tensor:
    """The hypernetwork's embeddings when one is given, else FVT."""
    if hypernetwork is None:
        return fvt_embeddings(new_vocab_tokens, old_tokenizer, old_embedding_matrix)
    out = hypernetwork(list(new_vocab_tokens))
    if out.shape != (len(new_vocab_tokens), old_embedding_matrix.shape[1]):
        raise SpeakError(f"hypernetwork returned shape {tuple(out.shape)}, expected "
                         f"({len(new_vocab_tokens)}, {old_embedding_matrix.shape[1]})")
    return out.to(old_embedding_matrix.dtype)


class TokenEmbedder(nn.Module):
    """SPEAK ids [B, L] -> ``inputs_embeds`` [B, L, D] for the pretrained model (frozen unless ``trainable``)."""

    def __init__(self, weight: Tensor, trainable: bool = False):
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(weight.detach().clone(), freeze=not trainable)

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.embedding(input_ids)


# ---------------------------------------------------------------------------------------------- data
@dataclass
class NLIExample:
    premise: str
    hypothesis: str
    label: int


@dataclass
class TaggedExample:
    tokens: list[str]
    tags: list[str]


def _import_datasets():
    try:
        import datasets  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise SpeakError("loading XNLI / UNER needs the `datasets` package: pip install datasets") from exc
    return datasets


def _load(name: str, config: str, split: str, what: str):
    ds_mod = _import_datasets()
    try:
        return ds_mod.load_dataset(name, config, split=split)
    except Exception as exc:  # network, offline mode, missing config: all user-facing
        raise SpeakError(f"{what} could not be loaded through Hugging Face datasets ({type(exc).__name__}: {exc}). "
                         "It needs network access or a populated HF cache (HF_DATASETS_CACHE).") from exc


def xnli_examples(records) -> list[NLIExample]:
    """XNLI records (premise, hypothesis, label 0/1/2) -> examples; label -1 (unlabelled) rows are skipped."""
    out = []
    for r in records:
        label = int(r["label"])
        if label in (0, 1, 2):
            out.append(NLIExample(str(r["premise"]), str(r["hypothesis"]), label))
    return out


def load_xnli(lang: str, split: str = "train", max_examples: int | None = None) -> list[NLIExample]:
    """XNLI for ``lang`` (``facebook/xnli``; splits train / validation / test)."""
    ds = _load("facebook/xnli", lang, split, f"xnli:{lang}:{split}")
    if max_examples is not None:
        ds = ds.select(range(min(max_examples, len(ds))))
    return xnli_examples(ds)


def uner_examples(records, tag_names: Sequence[str] | None) -> list[TaggedExample]:
    """UNER records (tokens, ner_tags as ids or strings) -> examples with string BIO tags."""
    out = []
    for r in records:
        tags = [tag_names[t] if tag_names is not None and isinstance(t, int) else str(t) for t in r["ner_tags"]]
        if len(tags) != len(r["tokens"]):
            raise SpeakError("UNER record with different numbers of tokens and tags")
        out.append(TaggedExample(list(r["tokens"]), tags))
    return out


def load_uner(config: str, split: str = "train", max_examples: int | None = None) -> list[TaggedExample]:
    """Universal NER (``universalner/universal_ner``), e.g. config ``en_ewt``, split train / validation / test."""
    ds = _load("universalner/universal_ner", config, split, f"uner:{config}:{split}")
    names = None
    try:
        names = list(ds.features["ner_tags"].feature.names)
    except (AttributeError, KeyError, TypeError):
        pass
    if max_examples is not None:
        ds = ds.select(range(min(max_examples, len(ds))))
    return uner_examples(ds, names)


# ---------------------------------------------------------------------------------------------- metrics
def accuracy(pred: Sequence[int], gold: Sequence[int]) -> float:
    if len(pred) != len(gold):
        raise ValueError("prediction and gold lengths differ")
    return sum(int(p == g) for p, g in zip(pred, gold)) / max(len(gold), 1)


def span_f1(pred_tags: list[list[str]], gold_tags: list[list[str]]) -> dict[str, float]:
    """Entity-span precision / recall / F1 (seqeval, conlleval-style BIO)."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    return {"precision": float(precision_score(gold_tags, pred_tags, zero_division=0)),
            "recall": float(recall_score(gold_tags, pred_tags, zero_division=0)),
            "f1": float(f1_score(gold_tags, pred_tags, zero_division=0))}


# ---------------------------------------------------------------------------------------------- encoding
def encode_nli(tok, examples: Sequence[NLIExample], max_length: int) -> dict[str, Tensor]:
    enc = tok([e.premise for e in examples], [e.hypothesis for e in examples], padding=True, truncation=True,
              max_length=max_length, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
            "labels": torch.tensor([e.label for e in examples], dtype=torch.long)}


def encode_tagged(tok, examples: Sequence[TaggedExample], label_ids: dict[str, int], max_length: int):
    """Ids with ``<s> ... </s>``, labels on the first token of each word (others -100), and each row's word ids."""
    rows, labels, words = [], [], []
    for ex in examples:
        ids, wids, _ = tok.encode_words(ex.tokens)
        ids, wids = ids[: max_length - 2], wids[: max_length - 2]
        lab, seen = [], set()
        for w in wids:
            if w is not None and w not in seen:
                seen.add(w)
                lab.append(label_ids[ex.tags[w]])
            else:
                lab.append(IGNORE)
        rows.append([tok.bos_token_id, *ids, tok.eos_token_id])
        labels.append([IGNORE, *lab, IGNORE])
        words.append([None, *wids, None])
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    lab_t = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, (r, lab) in enumerate(zip(rows, labels)):
        input_ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
        lab_t[i, : len(lab)] = torch.tensor(lab)
    return {"input_ids": input_ids, "attention_mask": mask, "labels": lab_t}, words


def word_predictions(logits: Tensor, labels: Tensor, examples: Sequence[TaggedExample],
                     id_to_label: Sequence[str]) -> list[list[str]]:
    """Per-word predicted tags from the labelled (first-of-word) positions; words cut by truncation get 'O'."""
    pred = logits.argmax(-1)  # [B, L]
    out = []
    for i, ex in enumerate(examples):
        tags = [id_to_label[int(p)] for p, g in zip(pred[i], labels[i]) if int(g) != IGNORE]
        out.append(tags + ["O"] * (len(ex.tokens) - len(tags)))
    return out


# ---------------------------------------------------------------------------------------------- fine-tuning
@dataclass
class FinetuneConfig:
    steps: int = 200
    batch_size: int = 16
    lr: float = 5e-4
    max_length: int = 128
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["query", "value"])
    train_embeddings: bool = False
    eval_batch_size: int = 64
    seed: int = 0


@dataclass
class FinetuneResult:
    task: str
    metrics: dict[str, float]
    losses: list[float]
    config: dict[str, Any]
    avg_tokens: float  # mean tokens per evaluated example (specials excluded), the paper's "Len."


def attach_lora(model: nn.Module, task: str, cfg: FinetuneConfig) -> nn.Module:
    """Wrap ``model`` with a LoRA adapter (peft); the classification head stays trainable."""
    from peft import LoraConfig, TaskType, get_peft_model

    task_type = {"xnli": TaskType.SEQ_CLS, "uner": TaskType.TOKEN_CLS}[task]
    lcfg = LoraConfig(task_type=task_type, r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.target_modules))
    return get_peft_model(model, lcfg)


def _forward(model, embedder, batch):
    return model(inputs_embeds=embedder(batch["input_ids"]), attention_mask=batch["attention_mask"],
                 labels=batch["labels"])


def _train(model, embedder, batches: Callable[[int], dict], cfg: FinetuneConfig) -> list[float]:
    params = [p for p in list(model.parameters()) + list(embedder.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    warm = max(1, cfg.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s / max(cfg.steps, 1), 1.0))))
    model.train()
    losses = []
    for step in range(cfg.steps):
        out = _forward(model, embedder, batches(step))
        if not torch.isfinite(out.loss):
            raise SpeakError(f"non-finite loss at step {step}; try a lower learning rate")
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(float(out.loss.detach()))
    model.eval()
    return losses


def _sampler(n: int, cfg: FinetuneConfig):
    rng = random.Random(cfg.seed)
    order: list[int] = []

    def take() -> list[int]:
        nonlocal order
        picked = []
        while len(picked) < min(cfg.batch_size, n):
            if not order:
                order = list(range(n))
                rng.shuffle(order)
            picked.append(order.pop())
        return picked

    return take


def finetune_nli(model, tok, embedder: TokenEmbedder, train: Sequence[NLIExample], evaluation: Sequence[NLIExample],
                 cfg: FinetuneConfig) -> FinetuneResult:
    """LoRA fine-tuning of a sequence classifier on premise/hypothesis pairs; accuracy on ``evaluation``."""
    if not train or not evaluation:
        raise SpeakError("fine-tuning needs non-empty train and evaluation sets")
    torch.manual_seed(cfg.seed)
    take = _sampler(len(train), cfg)
    losses = _train(model, embedder, lambda s: encode_nli(tok, [train[i] for i in take()], cfg.max_length), cfg)
    preds, n_tok = evaluate_nli(model, tok, embedder, evaluation, cfg)
    acc = accuracy(preds, [e.label for e in evaluation])
    return FinetuneResult("xnli", {"accuracy": acc}, losses, asdict(cfg), n_tok)


@torch.no_grad()
def evaluate_nli(model, tok, embedder, examples: Sequence[NLIExample], cfg: FinetuneConfig) -> tuple[list[int], float]:
    model.eval()
    preds, total = [], 0
    for a in range(0, len(examples), cfg.eval_batch_size):
        batch = encode_nli(tok, examples[a : a + cfg.eval_batch_size], cfg.max_length)
        total += int(batch["attention_mask"].sum()) - 4 * batch["input_ids"].shape[0]
        logits = _forward(model, embedder, batch).logits  # [B, 3]
        preds.extend(int(x) for x in logits.argmax(-1))
    return preds, total / max(len(examples), 1)


def label_set(examples: Sequence[TaggedExample]) -> list[str]:
    """'O' first, then the other tags sorted (B-X before I-X)."""
    tags = sorted({t for ex in examples for t in ex.tags} - {"O"}, key=lambda t: (t[2:], t[:1]))
    return ["O", *tags]


def finetune_tagging(model, tok, embedder: TokenEmbedder, train: Sequence[TaggedExample],
                     evaluation: Sequence[TaggedExample], labels: Sequence[str], cfg: FinetuneConfig) -> FinetuneResult:
    """LoRA fine-tuning of a token classifier (first token of each word labelled); span F1 on ``evaluation``."""
    if not train or not evaluation:
        raise SpeakError("fine-tuning needs non-empty train and evaluation sets")
    label_ids = {t: i for i, t in enumerate(labels)}
    unknown = {t for ex in [*train, *evaluation] for t in ex.tags} - set(label_ids)
    if unknown:
        raise SpeakError(f"tags not in the label set: {sorted(unknown)}")
    torch.manual_seed(cfg.seed)
    take = _sampler(len(train), cfg)
    losses = _train(model, embedder,
                    lambda s: encode_tagged(tok, [train[i] for i in take()], label_ids, cfg.max_length)[0], cfg)
    pred_tags, n_tok = evaluate_tagging(model, tok, embedder, evaluation, labels, cfg)
    metrics = span_f1(pred_tags, [ex.tags for ex in evaluation])
    return FinetuneResult("uner", metrics, losses, asdict(cfg), n_tok)


@torch.no_grad()
def evaluate_tagging(model, tok, embedder, examples: Sequence[TaggedExample], labels: Sequence[str],
                     cfg: FinetuneConfig) -> tuple[list[list[str]], float]:
    model.eval()
    label_ids = {t: i for i, t in enumerate(labels)}
    out, total = [], 0
    for a in range(0, len(examples), cfg.eval_batch_size):
        chunk = examples[a : a + cfg.eval_batch_size]
        batch, _ = encode_tagged(tok, chunk, {**label_ids, **{t: 0 for ex in chunk for t in ex.tags
                                                               if t not in label_ids}}, cfg.max_length)
        total += int(batch["attention_mask"].sum()) - 2 * batch["input_ids"].shape[0]
        logits = _forward(model, embedder, batch).logits  # [B, L, C]
        out.extend(word_predictions(logits, batch["labels"], chunk, labels))
    return out, total / max(len(examples), 1)


# ---------------------------------------------------------------------------------------------- end to end
def prepare_model(task: str, model_dir: str, num_labels: int, tok, *, old_tokenizer: Any = None,
                  hypernetwork: Hypernetwork | None = None, cfg: FinetuneConfig | None = None,
                  id2label: Sequence[str] | None = None):
    """Load the pretrained model (safetensors only), build the SPEAK embedding table, attach LoRA.

    ``old_tokenizer`` defaults to the model directory's own tokenizer (``AutoTokenizer``).
    """
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

    cfg = cfg or FinetuneConfig()
    auto = {"xnli": AutoModelForSequenceClassification, "uner": AutoModelForTokenClassification}.get(task)
    if auto is None:
        raise SpeakError(f"unknown task {task!r}; valid: xnli, uner")
    extra = {}
    if id2label is not None:
        extra = {"id2label": dict(enumerate(id2label)), "label2id": {t: i for i, t in enumerate(id2label)}}
    try:
        model = auto.from_pretrained(model_dir, num_labels=num_labels, use_safetensors=True, **extra)
        if old_tokenizer is None:
            old_tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError) as err:
        raise SpeakError(f"could not load the pretrained model from {model_dir}: {err}") from None
    old_emb = model.get_input_embeddings().weight
    tokens = [tok.convert_ids_to_tokens(i) for i in range(len(tok))]
    weight = transfer_embeddings(tokens, old_tokenizer, old_emb, hypernetwork)
    embedder = TokenEmbedder(weight, trainable=cfg.train_embeddings)
    return attach_lora(model, task, cfg), embedder
