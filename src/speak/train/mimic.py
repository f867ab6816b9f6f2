"""Stage-1 mimic training of a standalone SPEAK tokenizer (paper App. C.2; issue: standalone tokenizer).

The tokenizer learns to reproduce an exemplar segmentation (SentencePiece Unigram, HF tokenizers, ...) with the
membrane-potential loss L_mem (Eq. 14, alpha 1.2 and beta 0.6 fixed), while its contextual-boundary head C learns
L_reset (Eq. 12) against the top-20% entropy tokens of its own segmentation. With no neural LM in this stage, a
character trigram model supplies the predictive entropy (speak.train.entropy.NGramEntropy).

Every text line is one sequence (the neuron starts at u_reset), in training and at inference alike.

Where the targets sit (`anchor`, a choice the paper leaves open): a spike closes its token (SPEC section 2), but a
causal tokenizer cannot know at the "e" of "the" that a space follows. The boundary between two exemplar pieces
becomes observable at the first character of the next piece, so by default (`anchor="start"`) the target spike sits
there: the exemplar's " the| beginning" becomes SPEAK's "the |beginning" (same number of tokens, same SF). With
`anchor="end"` the targets are the pieces' last characters, literally; a causal per-character tokenizer then
recalls far fewer of them (about 44% against 80%+ on the embedded corpus).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from speak.errors import SpeakError
from speak.text.corpora import split_corpus
from speak.text.exemplar import Exemplar, load_exemplar
from speak.text.segment import anchor_boundaries, shortening_factor
from speak.text.vocab import PAD_ID, CharVocab
from speak.tokenizer import SpeakTokenizer, SpeakTokenizerNet, TokenizerConfig
from speak.lm.boundaries.speak_losses import membrane_loss, reset_loss, reset_targets_from_entropy
from speak.train.entropy import NGramEntropy


@dataclass
class MimicConfig:
    """Stage-1 settings; the defaults are the paper's final standalone configuration (App. C.2)."""

    exemplar: str = "sentencepiece:8000"
    steps: int = 1500
    batch_size: int = 32
    seq_len: int = 256
    lr: float = 3e-3
    alpha: float = 1.2
    beta: float = 0.6
    second_term: bool = True
    balanced: bool = False  # L_mem's spiking / silent sums weighted equally (speak.lm.boundaries.speak_losses)
    encoder: str = "char-mlp"  # or char-mlp-2, char-ngram (TokenizerConfig)
    char_dim: int = 128
    ngram_order: int = 3  # char-ngram only
    ngram_buckets: int = 16384  # char-ngram only
    ngram_lookahead: int = 0  # char-ngram only: also n-grams ending up to k characters after t
    tanh: bool = True
    theta: float = 0.8
    reset_mode: str = "entropy-aware"
    anchor: str = "start"
    entropy_ratio: float = 0.2
    reset_weight: float = 1.0
    min_char_count: int = 1
    seed: int = 0


@dataclass
class MimicMetrics:
    """Agreement with the exemplar on held-out lines (each line's forced final boundary excluded)."""

    spike_acc: float  # fraction of exemplar boundaries where SPEAK spikes (Table 7 "Spike Acc")
    nonspike_acc: float  # fraction of exemplar non-boundaries where SPEAK is silent (Table 7 "Non-spike Acc")
    precision: float
    recall: float
    f1: float
    sf: float  # SPEAK's shortening factor (characters / tokens)
    exemplar_sf: float
    chars: int


def _lines(text: str, min_len: int = 2) -> tuple[list[str], np.ndarray]:
    """Non-trivial lines of `text` and their start offsets in it."""
    lines, starts, pos = [], [], 0
    for line in text.split("\n"):
        if len(line) >= min_len:
            lines.append(line)
            starts.append(pos)
        pos += len(line) + 1
    return lines, np.asarray(starts, dtype=np.int64)


def boundary_metrics(pred: list[np.ndarray], gold: list[np.ndarray]) -> MimicMetrics:
    """Compare predicted and exemplar spikes per line; the final position (always a boundary) is not scored."""
    p = np.concatenate([x[:-1] for x in pred]) if pred else np.zeros(0, bool)
    g = np.concatenate([x[:-1] for x in gold]) if gold else np.zeros(0, bool)
    tp, fp, fn = int((p & g).sum()), int((p & ~g).sum()), int((~p & g).sum())
    tn = int((~p & ~g).sum())
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    n_chars = sum(len(x) for x in pred)
    return MimicMetrics(
        spike_acc=recall, nonspike_acc=tn / max(tn + fp, 1), precision=precision, recall=recall,
        f1=2 * precision * recall / max(precision + recall, 1e-12),
        sf=shortening_factor(n_chars, int(p.sum()) + len(pred)),
        exemplar_sf=shortening_factor(n_chars, int(g.sum()) + len(gold)), chars=n_chars)


class _LineBatches:
    """Random batches of whole lines (truncated to seq_len) with their exemplar spikes and trigram entropies."""

    def __init__(self, lines, ids, gold, entropy, seq_len, batch_size, seed):
        self.lines, self.ids, self.gold, self.entropy = lines, ids, gold, entropy
        self.L, self.B = seq_len, batch_size
        self.rng = np.random.default_rng(seed)

    def __next__(self):
        pick = self.rng.integers(0, len(self.lines), self.B)
        ids = np.full((self.B, self.L), PAD_ID, dtype=np.int64)
        tgt = np.zeros((self.B, self.L), dtype=np.float32)
        ent = np.zeros((self.B, self.L), dtype=np.float32)
        valid = np.zeros((self.B, self.L), dtype=bool)
        for row, i in enumerate(pick):
            n = min(len(self.ids[i]), self.L)
            ids[row, :n], tgt[row, :n], ent[row, :n] = self.ids[i][:n], self.gold[i][:n], self.entropy[i][:n]
            valid[row, :n] = True
        return tuple(torch.from_numpy(a) for a in (ids, tgt, ent, valid))


def fit_tokenizer(text: str, cfg: MimicConfig, *, exemplar: Exemplar | None = None,
                  progress: Callable[[int, dict], None] | None = None) -> tuple[SpeakTokenizer, MimicMetrics, Exemplar]:
    """Train a standalone SPEAK tokenizer to mimic `cfg.exemplar` on the train split of `text`.

    Returns the tokenizer, its metrics on the valid split, and the exemplar used. `progress(step, stats)` is
    called after every step (for progress bars).
    """
    torch.manual_seed(cfg.seed)
    splits = split_corpus(text)
    train_lines, _ = _lines(splits.train)
    valid_lines, _ = _lines(splits.valid)
    if cfg.anchor not in ("start", "end"):
        raise SpeakError(f"unknown anchor {cfg.anchor!r}; valid: start, end")
    if len(train_lines) < 2 or not valid_lines:
        raise SpeakError("corpus too small to fit a tokenizer: it needs several lines in its train and valid parts")
    if exemplar is None:
        exemplar = load_exemplar(cfg.exemplar, texts=train_lines)
    vocab = CharVocab.build(train_lines, min_count=cfg.min_char_count)
    ids = [vocab.encode_array(line) for line in train_lines]
    gold = [anchor_boundaries(exemplar.segment_spikes(line), cfg.anchor) for line in train_lines]
    ngram = NGramEntropy(len(vocab)).fit(np.concatenate([np.append(x, PAD_ID) for x in ids]))
    entropy = [ngram.entropy_next(x) for x in ids]
    batches = _LineBatches(train_lines, ids, [g.astype(np.float32) for g in gold], entropy, cfg.seq_len,
                           cfg.batch_size, cfg.seed)

    tcfg = TokenizerConfig(vocab_size=len(vocab), encoder=cfg.encoder, char_dim=cfg.char_dim, tanh=cfg.tanh,
                           theta=cfg.theta, reset_mode=cfg.reset_mode, ngram_order=cfg.ngram_order,
                           ngram_buckets=cfg.ngram_buckets, ngram_lookahead=cfg.ngram_lookahead)
    net = SpeakTokenizerNet(tcfg)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(step / cfg.steps, 1.0))))
    net.train()
    for step in range(cfg.steps):
        ids_b, tgt_b, ent_b, valid_b = next(batches)  # [B, L] each
        out = net(ids_b)
        l_mem = membrane_loss(out.u, out.current, tgt_b, alpha=cfg.alpha, beta=cfg.beta, u_th=tcfg.u_th,
                              u_reset=tcfg.u_reset, gamma=tcfg.gamma, delta=tcfg.delta, valid=valid_b,
                              second_term=cfg.second_term, balanced=cfg.balanced)
        e_hat = reset_targets_from_entropy(ent_b, out.s, ratio=cfg.entropy_ratio, valid=valid_b)
        l_reset = reset_loss(out.mask_logits, e_hat, valid=valid_b)
        loss = l_mem + cfg.reset_weight * l_reset
        if not torch.isfinite(loss):
            raise SpeakError(f"non-finite loss at step {step}; try a lower learning rate")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        if progress is not None:
            with torch.no_grad():
                rate = float(out.s[valid_b].mean())
            progress(step, {"l_mem": l_mem.item(), "l_reset": l_reset.item(), "spike_rate": rate})

    tokenizer = SpeakTokenizer(net.eval(), vocab, meta={
        "trained_by": "speak fit-tokenizer (Stage-1 mimic, App. C.2)",
        "exemplar": cfg.exemplar, "mimic_config": asdict(cfg), "train_chars": len(splits.train),
        "created": time.strftime("%Y-%m-%d"),
    })
    metrics = evaluate_mimic(tokenizer, exemplar, valid_lines, cfg.anchor)
    tokenizer.meta["valid_metrics"] = asdict(metrics)
    return tokenizer, metrics, exemplar


def evaluate_mimic(tokenizer: SpeakTokenizer, exemplar: Exemplar, lines: list[str],
                   anchor: str = "start") -> MimicMetrics:
    """Spike / non-spike accuracy, P/R/F1 and SF of `tokenizer` against `exemplar` (anchored) on `lines`."""
    pred = tokenizer.spikes_many(lines)
    gold = [anchor_boundaries(exemplar.segment_spikes(line), anchor) for line in lines]
    return boundary_metrics(pred, gold)
