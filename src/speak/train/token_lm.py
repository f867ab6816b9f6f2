"""Token-level language models (SpikeGPT, SpikeLM, a plain Transformer) over a tokenization (SPEAK tokens, characters,
SentencePiece), trained with the generic :class:`speak.train.trainer.Trainer` (checkpoints, exact resume, progress,
DDP under torchrun) and scored in **bits per character** so that tokenizations compare.

Pipeline (``run``):

1. Load the corpus and split it (90/5/5, ``speak.train.runs.load_splits``).
2. Segment each split with the tokenizer (``TextSegmenter``): ``speak`` = the SPEAK tokenizer (default model, or
   ``speak:DIR``) scanned line by line, each newline its own segment; ``chars`` = one segment per character;
   ``sentencepiece[:N]`` = a SentencePiece Unigram of N pieces (default 8000) trained on the train split, saved in the run.
3. Build a frequency-ranked segment vocabulary on the **train split** (``speak.text.segment_vocab``): every
   character seen plus the most frequent segments up to ``model.vocab_size`` ids; a segment that is not an entry
   falls back to its greedy longest-prefix pieces, ending in single characters, and an unseen character becomes
   ``<unk>`` (one id per character). So every text is encodable and each id knows how many characters it covers.
4. Encode each split once: ``ids`` = ``<s>`` then the pieces' ids, ``lengths`` = characters per id (0 for ``<s>``),
   so ``lengths.sum() == len(split)``.
5. Train on random windows of ``seq_len + 1`` **token** ids (``TokenStream``, the resumable ``CharStream`` over token
   ids, plus each target's character count) with the cross-entropy over tokens (``token_objective``).
6. Evaluate: the test split's tokens in DTP-style windows (each token scored once with up to ``context`` tokens of
   left context); then firing rate and energy with the run-time hooks on a test batch; write ``OUT/metrics.json``
   atomically and the final model to ``OUT/model`` (``speak.lm.spiking.io.save_model``) for ``speak generate --run``.

**Bits per character** (comparable across tokenizers)::

    bpc = (sum over the scored test tokens of -ln p(token | context)) / (characters those tokens cover) / ln 2

With every window scored (``test_windows: 0``) the scored tokens are all tokens of the test split after ``<s>``, so
the denominator is exactly ``len(test_text)``. A model that is uniform over V ids gives ``log2(V) * tokens / chars``.
This is the cross-entropy of the text under the model's *one* tokenization of it (an upper bound on the text's code
length under that model, the usual convention for token-level LMs). Characters unseen in the train split are
``<unk>`` ids (one per character) for every tokenizer alike.

Run folder: ``config.yaml`` / ``config.json`` (the TrainConfig), ``lm.json`` (model type, tokenizer spec and
reference, vocabulary file), ``segment_vocab.json``, ``tokenizer.model`` (SentencePiece only), ``train_log.csv``
(its ``chars_per_s`` column counts *tokens* per second: the trainer counts batch positions), ``eval_log.csv``,
``checkpoints/``, ``model/`` (config.json + model.safetensors), ``metrics.json``.

Sizes: ``--preset`` picks the training protocol (``speak.train.config.PRESETS``) and a model size from
``MODEL_PRESETS``; ``--set model.KEY=VALUE`` overrides ``d_model``, ``n_layers``, ``n_heads``, ``d_ff``,
``vocab_size`` (segment vocabulary size, all ids included) or any field of the chosen model's config
(``time_steps``, ``spike_inputs``, ``positions``, ...). ``seq_len`` counts **tokens** here.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speak.atomic import atomic_write_json, read_json
from speak.errors import SpeakError
from speak.presets import TOKEN_LM_PRESETS
from speak.units import LN2
from speak.train.data import Batch, CharStream, eval_windows

MODEL_TYPES = ("spikegpt", "spikelm", "transformer")
LM_FILE = "lm.json"
VOCAB_FILE = "segment_vocab.json"
SP_FILE = "tokenizer.model"
MODEL_DIR = "model"
LM_FORMAT = "speak.TokenLMRun"

# Model size per training preset (same width / depth for the three model types; SpikeGPT has no heads).
MODEL_PRESETS = TOKEN_LM_PRESETS  # model sizes by name (speak.presets)
DEFAULT_SENTENCEPIECE = 8000


# ---------------------------------------------------------------------------------------------- tokenizations
def parse_tokenizer(spec: str) -> tuple[str, str]:
    """``speak`` | ``speak:DIR`` | ``chars`` | ``sentencepiece`` | ``sentencepiece:N`` -> (kind, argument)."""
    kind, _, arg = str(spec).partition(":")
    kind = kind.strip().lower()
    if kind == "speak":
        return "speak", arg
    if kind in ("chars", "char") and not arg:
        return "chars", ""
    if kind == "sentencepiece":
        if not arg:
            return "sentencepiece", str(DEFAULT_SENTENCEPIECE)
        if arg.isdigit() and int(arg) > 0:
            return "sentencepiece", arg
    raise SpeakError(f"unknown tokenizer {spec!r}; expected speak, speak:DIR, chars, sentencepiece or sentencepiece:N")


class TextSegmenter:
    """Cuts a text into segments (``"".join(segments(text)) == text``) with one of the tokenizations."""

    def __init__(self, spec: str, impl: Any = None) -> None:
        self.spec = spec
        self.kind, self.arg = parse_tokenizer(spec)
        self.impl = impl  # SpeakTokenizer | SentencePieceExemplar | None

    @classmethod
    def build(cls, spec: str, train_text: str, *, run_dir: Path | None = None) -> "TextSegmenter":
        """Load the SPEAK tokenizer / train SentencePiece on ``train_text`` (or reload it from ``run_dir``)."""
        kind, arg = parse_tokenizer(spec)
        if kind == "speak":
            from speak.tokenizer import SpeakTokenizer

            return cls(spec, SpeakTokenizer.from_pretrained(arg) if arg else SpeakTokenizer.default())
        if kind == "sentencepiece":
            from speak.text.exemplar import SentencePieceExemplar, load_exemplar

            saved = run_dir / SP_FILE if run_dir is not None else None
            if saved is not None and saved.is_file():
                return cls(spec, SentencePieceExemplar.load(saved))
            return cls(spec, load_exemplar(f"sentencepiece:{arg}:unigram", texts=train_text))
        return cls(spec)

    def save(self, run_dir: Path) -> None:
        if self.kind == "sentencepiece":
            self.impl.save(run_dir / SP_FILE)

    def reference(self) -> dict[str, Any]:
        """What ``lm.json`` records to rebuild this tokenizer."""
        ref: dict[str, Any] = {"spec": self.spec, "kind": self.kind}
        if self.kind == "speak":
            ref["tokenizer_dir"] = self.arg or "default"
        if self.kind == "sentencepiece":
            ref["model_file"] = SP_FILE
        return ref

    @classmethod
    def from_reference(cls, ref: dict[str, Any], run_dir: Path) -> "TextSegmenter":
        spec = ref.get("spec")
        if not isinstance(spec, str):
            raise SpeakError(f"{run_dir / LM_FILE}: missing tokenizer spec")
        kind, _ = parse_tokenizer(spec)
        if kind == "sentencepiece" and not (run_dir / SP_FILE).is_file():
            raise SpeakError(f"{run_dir}: missing {SP_FILE} (the run's SentencePiece model)")
        return cls.build(spec, "", run_dir=run_dir)

    def segments(self, text: str) -> list[str]:
        if not text:
            return []
        if self.kind == "chars":
            return list(text)
        if self.kind == "sentencepiece":
            return self.impl.tokenize(text)
        # speak: the tokenizer's file convention is one line at a time; each newline is a segment of its own
        lines = text.split("\n")
        out: list[str] = []
        for i, toks in enumerate(self.impl.tokenize_batch(lines)):
            if i:
                out.append("\n")
            out.extend(toks)
        return out


# ---------------------------------------------------------------------------------------------- vocabulary / encoding
def build_vocab(train_segments: list[str], max_size: int):
    """Frequency-ranked segment vocabulary of the train split (every character + the most frequent segments)."""
    from speak.text.segment_vocab import SegmentVocab

    return SegmentVocab.from_segments(train_segments, max_size=max_size)


@dataclass
class EncodedSplit:
    """One split as ids: ``ids[0]`` is ``<s>`` (0 characters); ``lengths[i]`` = characters covered by ``ids[i]``."""

    ids: np.ndarray  # [N] int64
    lengths: np.ndarray  # [N] int64
    n_chars: int
    n_segments: int  # tokenizer segments (before the vocabulary's fallback splits)

    @property
    def n_tokens(self) -> int:
        """Ids after ``<s>``."""
        return int(self.ids.size) - 1


def encode_segments(vocab, segments: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(ids, lengths) of ``segments`` under ``vocab`` (fallback pieces for non-entries), ``<s>`` first."""
    ids = [vocab.bos_id]
    lengths = [0]
    split = vocab.split
    for seg in segments:
        for pid, k in split(seg):
            ids.append(pid)
            lengths.append(k)
    return np.asarray(ids, dtype=np.int64), np.asarray(lengths, dtype=np.int64)


def encode_text(vocab, segmenter: TextSegmenter, text: str) -> EncodedSplit:
    segs = segmenter.segments(text)
    ids, lengths = encode_segments(vocab, segs)
    return EncodedSplit(ids=ids, lengths=lengths, n_chars=len(text), n_segments=len(segs))


def decode_ids(vocab, ids: list[int]) -> str:
    """Text of ``ids`` (specials decode to nothing; ``<unk>`` to U+FFFD)."""
    out = []
    for i in ids:
        if i == vocab.unk_id:
            out.append("\ufffd")
        elif 3 < i < vocab.mask_id:
            out.append(vocab.tokens[i])
    return "".join(out)


# ---------------------------------------------------------------------------------------------- data stream
@dataclass
class TokenBatch(Batch):
    """A Batch over token ids (``chars`` holds token ids [B, T + 1]) with ``lengths`` [B, T + 1]: characters per id."""

    lengths: Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "TokenBatch":
        base = super().to(device, non_blocking=non_blocking)
        lengths = None if self.lengths is None else self.lengths.to(device, non_blocking=non_blocking)
        return TokenBatch(chars=base.chars, offsets=base.offsets, boundary_targets=base.boundary_targets,
                          lengths=lengths)


class TokenStream(CharStream):
    """Random windows of ``seq_len + 1`` token ids with their offsets (in ids) and character counts; resumable
    exactly like :class:`CharStream` (same generator, same state)."""

    def __init__(self, split: EncodedSplit, batch_size: int, seq_len: int, **kw: Any) -> None:
        super().__init__(split.ids, batch_size, seq_len, **kw)
        self.lengths = np.ascontiguousarray(split.lengths, dtype=np.int64)

    def batch_at(self, offsets: np.ndarray) -> TokenBatch:
        base = super().batch_at(offsets)
        index = np.asarray(offsets, dtype=np.int64)[:, None] + self._span[None, :]  # [B, T + 1]
        return TokenBatch(chars=base.chars, offsets=base.offsets, lengths=torch.from_numpy(self.lengths[index]))


def token_objective(model: nn.Module, batch: Batch, *, step: int = 0) -> tuple[Tensor, dict[str, float]]:
    """Mean cross-entropy over the batch's target tokens; metrics: lm_loss (nats/token), bpc (bits per character of
    the targets), sf (characters per target token)."""
    ids = batch.chars  # [B, T + 1]
    logits = model(ids[:, :-1])  # [B, T, V]
    V = logits.shape[-1]
    ce = F.cross_entropy(logits.float().reshape(-1, V), ids[:, 1:].reshape(-1), reduction="none")  # [B * T]
    loss = ce.mean()
    metrics = {"lm_loss": float(loss.detach())}
    lengths = getattr(batch, "lengths", None)
    if lengths is not None:
        chars = float(lengths[:, 1:].sum())  # characters covered by the targets
        metrics["bpc"] = float(ce.detach().double().sum()) / max(chars, 1.0) / LN2
        metrics["sf"] = chars / ce.numel()
    return loss, metrics


# ---------------------------------------------------------------------------------------------- evaluation
def _select(windows: list, max_windows: int | None) -> list:
    if not max_windows or max_windows >= len(windows):
        return windows
    idx = np.unique(np.linspace(0, len(windows) - 1, max_windows).round().astype(np.int64))
    return [windows[i] for i in idx]


@torch.no_grad()
def evaluate_token_bpc(
    model: nn.Module,
    split: EncodedSplit,
    *,
    scored: int,
    context: int,
    batch_size: int = 8,
    max_windows: int | None = None,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Windowed token cross-entropy turned into bits per character (module doc). Returns bpc, nats, chars, tokens,
    windows, nats_per_token."""
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    windows = _select(list(eval_windows(split.ids, scored=scored, context=context)), max_windows)
    nats, chars, tokens = 0.0, 0, 0
    try:
        for i in range(0, len(windows), batch_size):
            chunk = windows[i : i + batch_size]
            x = torch.from_numpy(np.stack([w.ids for w in chunk])).to(device)  # [b, W]
            logits = model(x[:, :-1])  # [b, W - 1, V]
            V = logits.shape[-1]
            ce = F.cross_entropy(logits.float().reshape(-1, V), x[:, 1:].reshape(-1), reduction="none")
            ce = ce.view(x.shape[0], -1)  # [b, W - 1]
            for j, w in enumerate(chunk):
                n = w.n_scored
                nats += float(ce[j, -n:].double().sum())
                end = w.start + w.ids.size  # targets are ids[end - n : end] of the split
                chars += int(split.lengths[end - n : end].sum())
                tokens += n
    finally:
        model.train(was_training)
    return {
        "bpc": nats / max(chars, 1) / LN2,
        "nats": nats,
        "chars": float(chars),
        "tokens": float(tokens),
        "windows": float(len(windows)),
        "nats_per_token": nats / max(tokens, 1),
    }


@torch.no_grad()
def energy_metrics(
    model: nn.Module, split: EncodedSplit, *, seq_len: int, batch_size: int, segmenter: TextSegmenter | None = None,
    text: str | None = None, constants: str = "45nm-fp32",
) -> dict[str, Any]:
    """Firing rate and energy per character with the run-time hooks (``speak.lm.energy``) on one test batch of
    ``batch_size`` windows of ``seq_len`` tokens (the split's start); plus the SPEAK tokenizer's scan per character
    when the tokenization is ``speak`` (priced over ``text``, the test split)."""
    from speak.lm.energy import measure_energy, tokenizer_scan_energy

    device = next(model.parameters()).device
    n = split.ids.size
    T = min(seq_len, n - 1)
    starts = [min(k * T, n - T) for k in range(batch_size)]
    starts = sorted(set(starts))
    ids = torch.from_numpy(np.stack([split.ids[s : s + T] for s in starts])).to(device)  # [b, T]
    chars = int(sum(split.lengths[s : s + T].sum() for s in starts))
    from speak.lm.spiking.neurons import BinarySpike, ElasticBiSpike, LIFNeuron

    counts: dict[str, list[int]] = {}  # neuron layer -> [non-zero outputs, outputs]

    def hook(name: str):
        def fn(_mod, _args, out):
            s = out[0] if isinstance(out, tuple) else out  # LIF with return_state -> (spikes, membrane)
            c = counts.setdefault(name, [0, 0])
            c[0] += int((s != 0).sum())
            c[1] += s.numel()

        return fn

    hooks = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
             if isinstance(m, (LIFNeuron, ElasticBiSpike, BinarySpike))]
    was_training = model.training
    model.eval()
    try:
        rep = measure_energy(model, ids, constants)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    if counts:  # spiking neuron layers: pooled output spikes / output slots
        fr = sum(c[0] for c in counts.values()) / max(sum(c[1] for c in counts.values()), 1)
        layers = {n: c[0] / max(c[1], 1) for n, c in counts.items()}
    else:  # no neuron modules: spike-input Linear layers seen by the energy hooks (nan -> 0: nothing spikes)
        fr = rep.mean_firing_rate
        layers = {l.name: l.firing_rate for l in rep.layers if l.kind in ("linear", "conv") and l.input_numel}
    out: dict[str, Any] = {
        "firing_rate": float(fr) if math.isfinite(fr) else 0.0,
        "lm_energy_pj_per_char": rep.total_pj / max(chars, 1),
        "lm_energy_pj_per_token": rep.pj_per_token,
        "macs_per_token": rep.total_macs / ids.numel(),
        "acs_per_token": rep.total_acs / ids.numel(),
        "energy_constants": constants,
        "energy_batch_shape": list(ids.shape),
        "firing_rate_per_layer": layers,
    }
    scan = 0.0
    if segmenter is not None and segmenter.kind == "speak" and text:
        n_spikes = sum(len(t) for t in segmenter.impl.tokenize_batch(text.split("\n")))  # token closings
        srep = tokenizer_scan_energy(len(text), n_spikes=n_spikes, constants=constants)
        scan = srep.total_pj / max(len(text), 1)
    out["tokenizer_energy_pj_per_char"] = scan
    out["energy_pj_per_char"] = out["lm_energy_pj_per_char"] + scan
    return out


# ---------------------------------------------------------------------------------------------- models
def model_kwargs(cfg, model_type: str) -> tuple[dict[str, Any], int]:
    """(model config kwargs without vocab_size, segment vocabulary size) from the preset and ``cfg.model``."""
    from speak.lm.spiking.io import model_registry

    if model_type not in MODEL_TYPES:
        raise SpeakError(f"unknown model {model_type!r}; expected hourglass, {', '.join(MODEL_TYPES)}")
    base = dict(MODEL_PRESETS.get(cfg.preset, MODEL_PRESETS["cpu-small"]))
    base.update(cfg.model)
    vocab_size = int(base.pop("vocab_size"))
    _, cfg_cls = model_registry()[model_type]
    names = {f.name for f in dataclasses.fields(cfg_cls)} - {"vocab_size"}
    kw: dict[str, Any] = {}
    for key, value in base.items():
        if key == "n_heads" and model_type == "spikegpt":
            continue  # RWKV has no heads
        if key not in names:
            raise SpeakError(
                f"unknown model config key 'model.{key}' for {model_type} (known: vocab_size, {', '.join(sorted(names))})"
            )
        kw[key] = value
    if "max_len" in names:
        kw["max_len"] = max(int(kw.get("max_len", 0)), cfg.seq_len)
    if "n_heads" in kw and kw["d_model"] % kw["n_heads"]:
        raise SpeakError(f"model d_model ({kw['d_model']}) must be divisible by n_heads ({kw['n_heads']})")
    if vocab_size < 6:
        raise SpeakError(f"model.vocab_size must be >= 6, got {vocab_size}")
    return kw, vocab_size


def build_lm(model_type: str, kwargs: dict[str, Any], vocab_size: int) -> nn.Module:
    from speak.lm.spiking.io import build_model

    try:
        return build_model(model_type, {**kwargs, "vocab_size": vocab_size})
    except TypeError as err:
        raise SpeakError(f"invalid {model_type} config: {err}") from None


# ---------------------------------------------------------------------------------------------- the run
def _read_lm_file(run_dir: Path) -> dict[str, Any]:
    path = run_dir / LM_FILE
    info = read_json(path, missing=f"{run_dir}: not a token-LM run folder (no {LM_FILE})")
    if not isinstance(info, dict) or info.get("format") != LM_FORMAT:
        raise SpeakError(f"{path}: not a {LM_FORMAT} file")
    return info


def run(cfg, *, model: str, tokenizer: str = "speak", resume: bool = False) -> dict[str, Any]:
    """What ``speak train --model M --tokenizer TOK`` does (module doc). Returns the metrics (rank 0) or {}."""
    from speak.text.segment_vocab import SegmentVocab
    from speak.train import trainer as T
    from speak.train.runs import METRICS_FILE, load_splits

    kwargs, vocab_size = model_kwargs(cfg, model)
    parse_tokenizer(tokenizer)
    dist_info = T.init_distributed(cfg.device)
    out_dir = Path(cfg.out)
    say = dist_info.is_main and not cfg.quiet
    t_prep = time.perf_counter()
    splits = load_splits(cfg.corpus, cfg.clean)
    resumed_files = resume and (out_dir / LM_FILE).is_file() and (out_dir / VOCAB_FILE).is_file()
    if resumed_files:
        info = _read_lm_file(out_dir)
        if info.get("model") != model or info.get("tokenizer", {}).get("spec") != tokenizer:
            raise SpeakError(
                f"cannot resume {out_dir}: it trains {info.get('model')} on {info.get('tokenizer', {}).get('spec')}, "
                f"this run asks for {model} on {tokenizer}"
            )
        segmenter = TextSegmenter.from_reference(info["tokenizer"], out_dir)
        vocab = SegmentVocab.load(out_dir / VOCAB_FILE)
        train_segs = segmenter.segments(splits.train)
    else:
        segmenter = TextSegmenter.build(tokenizer, splits.train)
        train_segs = segmenter.segments(splits.train)
        size = vocab_size
        if segmenter.kind == "sentencepiece" and "vocab_size" not in cfg.model:
            size = int(segmenter.arg) + 5 + len(set(splits.train))  # every piece the model can emit
        vocab = build_vocab(train_segs, size)
    train = EncodedSplit(*encode_segments(vocab, train_segs), n_chars=len(splits.train), n_segments=len(train_segs))
    del train_segs
    valid = encode_text(vocab, segmenter, splits.valid)
    test = encode_text(vocab, segmenter, splits.test)
    for name, sp in (("valid", valid), ("test", test)):
        if sp.ids.size < 2:
            raise SpeakError(f"the {name} split has {sp.n_chars} characters; the corpus is too small to evaluate")
    prep_seconds = time.perf_counter() - t_prep
    if say:
        print(
            f"{model} on {tokenizer}: vocabulary {len(vocab)} ids, train {train.n_tokens:,} tokens "
            f"({train.n_chars / max(train.n_tokens, 1):.2f} chars/token), prepared in {prep_seconds:.1f}s",
            file=sys.stderr, flush=True,
        )
    stream = TokenStream(train, cfg.batch_size, cfg.seq_len, seed=cfg.seed, rank=dist_info.rank,
                         world_size=dist_info.world_size)
    T.seed_everything(cfg.seed)
    lm = build_lm(model, kwargs, len(vocab))
    from speak.train.checkpoint import find_checkpoint

    existing = find_checkpoint(out_dir / T.CHECKPOINT_DIR)
    if existing is not None and not resume:
        raise SpeakError(f"{out_dir} already holds a checkpoint ({existing}); pass --resume to continue it or choose "
                         f"another --out")
    if dist_info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        from speak.train.config import dump_yaml
        from speak.atomic import atomic_write_text

        atomic_write_text(out_dir / "config.yaml", dump_yaml(cfg))
        atomic_write_json(out_dir / "config.json", cfg.to_dict())
        if not resumed_files:
            segmenter.save(out_dir)
            vocab.save(out_dir / VOCAB_FILE)
        atomic_write_json(out_dir / LM_FILE, {
            "format": LM_FORMAT, "version": 1, "model": model, "model_config": {**kwargs, "vocab_size": len(vocab)},
            "tokenizer": segmenter.reference(), "vocab_file": VOCAB_FILE, "model_dir": MODEL_DIR,
        })

    def valid_fn(m: nn.Module) -> dict[str, float]:
        r = evaluate_token_bpc(m, valid, scored=cfg.scored, context=cfg.context, batch_size=cfg.eval_batch_size,
                               max_windows=cfg.eval_windows or None)
        return {"bpc": r["bpc"], "sf": r["chars"] / max(r["tokens"], 1.0)}

    t0 = time.perf_counter()
    trainer = T.Trainer(lm, token_objective, stream, valid_fn, cfg, dist_info=dist_info)
    summary = trainer.fit(resume=resume)
    train_seconds = time.perf_counter() - t0
    if not dist_info.is_main:
        _finish(dist_info)
        return {}
    try:
        metrics = token_lm_metrics(trainer, cfg, model=model, segmenter=segmenter, vocab=vocab, train=train, test=test,
                                test_text=splits.test, summary=summary)
    finally:
        _finish(dist_info)
    metrics["train_seconds"] = train_seconds
    metrics["prepare_seconds"] = prep_seconds
    from speak.lm.spiking.io import save_model

    save_model(trainer.model, out_dir / MODEL_DIR, metadata={"run": LM_FORMAT, "tokenizer": tokenizer,
                                                             "steps": metrics["steps"]})
    atomic_write_json(out_dir / METRICS_FILE, metrics)
    return metrics


def _finish(dist_info) -> None:
    if dist_info.enabled:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()


def token_lm_metrics(trainer, cfg, *, model: str, segmenter: TextSegmenter, vocab, train: EncodedSplit,
                  test: EncodedSplit, test_text: str, summary: dict[str, Any]) -> dict[str, Any]:
    """metrics.json: test bpc, firing rate, energy per character, params, throughput and the run's identity."""
    lm = trainer.model
    ev = evaluate_token_bpc(lm, test, scored=cfg.scored, context=cfg.context, batch_size=cfg.eval_batch_size,
                            max_windows=cfg.test_windows or None)
    en = energy_metrics(lm, test, seq_len=cfg.seq_len, batch_size=cfg.eval_batch_size, segmenter=segmenter,
                        text=test_text)
    times = trainer.step_times[1:] or trainer.step_times
    step_s = statistics.median(times) if times else float("nan")
    tokens_per_step = cfg.batch_size * cfg.seq_len * trainer.dist.world_size
    hist = trainer.history
    train_sf = float(np.mean([h["sf"] for h in hist])) if hist else train.n_chars / max(train.n_tokens, 1)
    tokens_per_s = tokens_per_step / step_s if step_s and math.isfinite(step_s) else None
    last = summary.get("last") or {}
    evl = summary.get("eval") or {}
    return {
        "bpc": ev["bpc"],
        "firing_rate": en["firing_rate"],
        "energy_pj_per_char": en["energy_pj_per_char"],
        "model": model,
        "tokenizer": segmenter.spec,
        "steps": int(summary["step"]),
        "params": int(sum(p.numel() for p in lm.parameters())),
        "tokens_per_s": tokens_per_s,
        "chars_per_s": tokens_per_s * train_sf if tokens_per_s else None,
        "sf": test.n_chars / max(test.n_tokens, 1),
        "vocab_size": len(vocab),
        "segments_per_token": test.n_segments / max(test.n_tokens, 1),
        "test_nats_per_token": ev["nats_per_token"],
        "test_chars": int(ev["chars"]),
        "test_tokens": int(ev["tokens"]),
        "test_windows": int(ev["windows"]),
        "eval_scored": cfg.scored,
        "eval_context": cfg.context,
        **{k: v for k, v in en.items() if k not in ("firing_rate", "energy_pj_per_char")},
        "ms_per_step": 1e3 * step_s if math.isfinite(step_s) else None,
        "batch_size": cfg.batch_size,
        "seq_len_tokens": cfg.seq_len,
        "train_sf": train_sf,
        "final_train_loss": last.get("loss"),
        "final_train_bpc": last.get("bpc"),
        "valid_bpc": evl.get("valid_bpc"),
        "best_valid_bpc": (summary.get("best") or {}).get("valid_bpc"),
        "corpus": cfg.corpus,
        "preset": cfg.preset,
        "seed": cfg.seed,
        "resumed_at": summary.get("resumed_at"),
        "world_size": trainer.dist.world_size,
        "device": str(next(lm.parameters()).device),
        "torch": torch.__version__,
    }


# ---------------------------------------------------------------------------------------------- reading a run back
def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / LM_FILE).is_file()


def load_run(run_dir: str | Path):
    """(model in eval mode, segment vocabulary, segmenter, lm.json info) of a finished run folder."""
    from speak.text.segment_vocab import SegmentVocab
    from speak.lm.spiking.io import load_model

    run_dir = Path(run_dir)
    info = _read_lm_file(run_dir)
    mdir = run_dir / str(info.get("model_dir", MODEL_DIR))
    if not (mdir / "config.json").is_file():
        raise SpeakError(f"{run_dir}: no trained model yet ({mdir.name}/ is missing; the run has not finished)")
    model, _ = load_model(mdir)
    vocab = SegmentVocab.load(run_dir / str(info.get("vocab_file", VOCAB_FILE)))
    if model.config.vocab_size != len(vocab):
        raise SpeakError(f"{run_dir}: the model has {model.config.vocab_size} ids, the vocabulary {len(vocab)}")
    segmenter = TextSegmenter.from_reference(info.get("tokenizer") or {}, run_dir)
    return model, vocab, segmenter, info


def generate_from_run(run_dir: str | Path, prompt: str = "", max_tokens: int = 100, temperature: float = 1.0,
                      top_k: int = 0, seed: int = 0) -> str:
    """Prompt + sampled continuation of a run's model: the prompt is segmented with the run's tokenizer and mapped
    through its vocabulary (after ``<s>``); the new ids are decoded to text."""
    from speak.lm.spiking.generate import generate

    model, vocab, segmenter, _ = load_run(run_dir)
    ids, _ = encode_segments(vocab, segmenter.segments(prompt))  # [<s>, ...]
    max_len = getattr(model.config, "max_len", None)
    if max_len is not None:
        ids = ids[-max_len:]
    out = generate(model, torch.from_numpy(ids)[None], max_tokens, temperature, top_k, seed)  # [1, n + new]
    return prompt + decode_ids(vocab, out[0, ids.size :].tolist())
