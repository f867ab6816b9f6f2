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
from speak.text.segment_vocab import SegmentVocab
from speak.text.vocab import PAD_ID, CharVocab
from speak.tokenizer import SpeakTokenizer, SpeakTokenizerNet, TokenizerConfig
from speak.lm.boundaries.speak import SpeakOptions
from speak.lm.boundaries.speak_losses import membrane_loss, reset_loss, reset_targets_from_entropy
from speak.neuron.modes import ResetMode
from speak.train.entropy import NGramEntropy
from speak.train.forced import forced_loss, forced_membrane
from speak.train.standalone import STANDALONE  # noqa: F401  (re-exported: the fit-tokenizer default)

OBJECTIVES = ("membrane", "forced")


@dataclass
class MimicConfig:
    """Stage-1 settings; the defaults are the paper's final standalone configuration (App. C.2). A concept Stage 1
    shares with GTok training has GTok's name (``SpeakOptions``: ``mem_*``, ``entropy_ratio``; ``TokenizerConfig``:
    the net) and its default, written there once."""

    exemplar: str = "sentencepiece:8000"
    steps: int = 1500
    batch_size: int = 32
    seq_len: int = 256
    lr: float = 3e-3
    mem_alpha: float = SpeakOptions.mem_alpha  # L_mem's alpha (Eq. 14), fixed in Stage 1
    mem_beta: float = SpeakOptions.mem_beta  # L_mem's beta (Eq. 14), fixed in Stage 1
    mem_second_term: bool = SpeakOptions.mem_second_term
    # L_mem's spiking / silent sums weighted equally. Off in Stage 1 (its Table 7 numbers), on in GTok.
    mem_balanced: bool = False
    encoder: str = TokenizerConfig.encoder  # or char-mlp-2, char-ngram (TokenizerConfig)
    char_dim: int = TokenizerConfig.char_dim
    ngram_order: int = TokenizerConfig.ngram_order  # char-ngram only
    ngram_buckets: int = TokenizerConfig.ngram_buckets  # char-ngram only
    ngram_lookahead: int = TokenizerConfig.ngram_lookahead  # char-ngram only: n-grams ending up to k characters ahead
    tanh: bool = TokenizerConfig.tanh
    theta: float = TokenizerConfig.theta
    reset_mode: str = TokenizerConfig.reset_mode
    anchor: str = "start"
    entropy_ratio: float = SpeakOptions.entropy_ratio
    reset_weight: float = 1.0
    # "membrane": L_mem on the free-running neuron (Eq. 14, the paper's); "forced": the teacher-forced logistic
    # membrane loss of speak.train.forced (the standalone default)
    objective: str = "membrane"
    forced_scale: float = 4.0  # "forced": the logistic loss reads forced_scale (u_t - u_th)
    table_lr_mult: float = 10.0  # char-ngram: the learning rate of its tables, times lr (plain sums learn slowly)
    calibrate: bool | None = None  # shift Linear1's bias to the train lines' operating point (calibrate_bias);
    # None: for char-ngram only
    min_char_count: int = 1
    token_vocab: int = 8000  # ids of the token vocabulary built from the train lines (specials and bytes included)
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
    splits = split_corpus(text)
    train_lines, _ = _lines(splits.train)
    valid_lines, _ = _lines(splits.valid)
    tokenizer, metrics, exemplar = fit_tokenizer_lines(train_lines, valid_lines, cfg, exemplar=exemplar,
                                                       progress=progress)
    tokenizer.meta["train_chars"] = len(splits.train)
    return tokenizer, metrics, exemplar


def corpus_lines(text: str) -> tuple[list[str], list[str]]:
    """(train lines, valid lines) of a corpus: the non-trivial lines of its 90/5/5 train and valid splits."""
    splits = split_corpus(text)
    return _lines(splits.train)[0], _lines(splits.valid)[0]


def fit_tokenizer_lines(train_lines: list[str], valid_lines: list[str], cfg: MimicConfig, *,
                        exemplar: Exemplar | None = None, progress: Callable[[int, dict], None] | None = None
                        ) -> tuple[SpeakTokenizer, MimicMetrics, Exemplar]:
    """:func:`fit_tokenizer` on given train and valid lines (e.g. several corpora's train splits together)."""
    torch.manual_seed(cfg.seed)
    if cfg.anchor not in ("start", "end"):
        raise SpeakError(f"unknown anchor {cfg.anchor!r}; valid: start, end")
    if cfg.objective not in OBJECTIVES:
        raise SpeakError(f"unknown objective {cfg.objective!r}; valid: {', '.join(OBJECTIVES)}")
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
    if cfg.objective == "forced" and (tcfg.gamma != 1.0 or tcfg.delta != 1.0):
        raise SpeakError("objective 'forced' needs gamma = delta = 1")
    mode = ResetMode.parse(tcfg.reset_mode)
    tables = [p for n, p in net.named_parameters() if n.startswith("encoder.table")]
    others = [p for n, p in net.named_parameters() if not n.startswith("encoder.table")]
    opt = torch.optim.Adam([{"params": others}, {"params": tables, "lr": cfg.lr * cfg.table_lr_mult}], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(step / cfg.steps, 1.0))))
    net.train()
    for step in range(cfg.steps):
        ids_b, tgt_b, ent_b, valid_b = next(batches)  # [B, L] each
        out = net(ids_b)
        if cfg.objective == "forced":
            gold_b = tgt_b > 0.5  # [B, L]
            hard, theta = mode.resolve(out.mask, tcfg.theta, gold_b.shape)
            hard = hard if hard is not None else torch.zeros_like(gold_b)
            u = forced_membrane(out.current, gold_b, hard, theta=theta, u_th=tcfg.u_th, u_reset=tcfg.u_reset)
            l_mem = forced_loss(u, gold_b, valid_b, u_th=tcfg.u_th, scale=cfg.forced_scale)
            spikes_b = tgt_b  # the contextual boundaries are picked among the exemplar's (forced) boundaries
        else:
            l_mem = membrane_loss(out.u, out.current, tgt_b, alpha=cfg.mem_alpha, beta=cfg.mem_beta,
                                  u_th=tcfg.u_th, u_reset=tcfg.u_reset, gamma=tcfg.gamma, delta=tcfg.delta,
                                  valid=valid_b, second_term=cfg.mem_second_term, balanced=cfg.mem_balanced)
            spikes_b = out.s
        e_hat = reset_targets_from_entropy(ent_b, spikes_b, ratio=cfg.entropy_ratio, valid=valid_b)
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

    if cfg.calibrate or (cfg.calibrate is None and cfg.encoder == "char-ngram"):
        calibrate_bias(net, vocab, train_lines, gold, cfg.seed)
    tokenizer = SpeakTokenizer(net.eval(), vocab, meta={
        "trained_by": "speak fit-tokenizer (Stage-1 mimic, App. C.2)",
        "exemplar": cfg.exemplar, "mimic_config": asdict(cfg), "train_chars": sum(map(len, train_lines)),
        "created": time.strftime("%Y-%m-%d"),
    })
    tokenizer.segment_vocab = SegmentVocab.build(tokenizer, train_lines, max_size=cfg.token_vocab)
    metrics = evaluate_mimic(tokenizer, exemplar, valid_lines, cfg.anchor)
    tokenizer.meta["valid_metrics"] = asdict(metrics)
    return tokenizer, metrics, exemplar


def calibrate_bias(net: SpeakTokenizerNet, vocab: CharVocab, lines: list[str], gold: list[np.ndarray], seed: int,
                   sample: int = 2000, shifts: np.ndarray = np.linspace(-1.0, 1.0, 41)) -> float:
    """Move Linear1's bias to the shift that maximises min(spike accuracy, non-spike accuracy) on a sample of the
    train lines (ties: the smaller shift), and return the shift. Training with balanced L_mem leaves the operating
    point (how readily the neuron fires) slightly off; one scalar picks it on training data, never on valid."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(lines), min(sample, len(lines)), replace=False)
    sub, sub_gold = [lines[i] for i in pick], [gold[i] for i in pick]
    base = float(net.linear1.bias.detach()[0])
    best, best_score = 0.0, -1.0
    for shift in shifts:
        with torch.no_grad():
            net.linear1.bias.fill_(base + float(shift))
        m = boundary_metrics(SpeakTokenizer(net, vocab).spikes_many(sub), sub_gold)
        score = min(m.spike_acc, m.nonspike_acc)
        if score > best_score:
            best, best_score = float(shift), score
    with torch.no_grad():
        net.linear1.bias.fill_(base + best)
    return best


def evaluate_mimic(tokenizer: SpeakTokenizer, exemplar: Exemplar, lines: list[str],
                   anchor: str = "start") -> MimicMetrics:
    """Spike / non-spike accuracy, P/R/F1 and SF of `tokenizer` against `exemplar` (anchored) on `lines`."""
    pred = tokenizer.spikes_many(lines)
    gold = [anchor_boundaries(exemplar.segment_spikes(line), anchor) for line in lines]
    return boundary_metrics(pred, gold)
