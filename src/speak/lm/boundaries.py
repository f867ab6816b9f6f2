"""Boundary sources for the hourglass LM, behind one interface (ARCHITECTURE.md, "the seam").

Every source is an ``nn.Module`` with ``forward(chars [B, L], features [B, L, D]) -> BoundaryOutput`` where
``features`` are the hourglass pre-layer outputs (causal), and ``hard[b, t] = 1`` means t closes its group.
Every source is causal: ``hard[:, t]`` depends on characters <= t only.

Registry (``BOUNDARY_SOURCES``, name -> class; build with :func:`make_boundary_source`):

- ``none``: vanilla Transformer, no shortening. ``hard`` is all ones (each character its own group, SF = 1);
  the hourglass runs every layer at character level and never pools.
- ``fixed``: a boundary every ``fixed_k`` characters (t closes when (t + 1) % k == 0).
- ``whitespace``: a boundary at each whitespace character (the space is the last character of its token). Which
  vocabulary ids are whitespace comes from a boolean lookup table built once from ``alphabet`` (id -> character
  string, carried by ``HourglassConfig.alphabet``), using ``str.isspace``.
- ``dtp-entropy`` / ``dtp-unigram``: DTP's boundary predictor MLP (d -> 4d -> GELU -> 1) on the pre-layer features;
  ``hard = 1(sigmoid(logit) > threshold)``, no gradient through ``hard`` (the predictor learns from its BCE loss,
  computed in ``speak.train.objective`` on the LOGITS: no double sigmoid).
- ``dtp-gumbel``: the same predictor; training: relaxed Bernoulli (logistic noise, temperature 0.5) with a
  straight-through hard sample; evaluation: NO noise, ``hard = 1(sigmoid(logit) > 0.5)`` (deterministic; the public
  code samples noise at evaluation). Trained by the LM loss (through the straight-through path) + Binomial prior.
- ``magnet``: ``dtp-gumbel`` with one predictor and one Binomial prior per script (``speak.lm.scripts``); the script of
  each position is exposed as ``script_ids``. Predictors exist only for the scripts the alphabet contains (+ common).
- ``speak``: the SPEAK tokenizer net (``speak.tokenizer.SpeakTokenizerNet``) fed the pre-layer features as its
  ContextEncoder (GTok setting); ``hard`` = its spikes ``s`` (which carry the neuron's surrogate gradient).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from speak.errors import SpeakError
from speak.lm.scripts import COMMON, SCRIPT_INDEX, SCRIPTS, script_table, sequence_scripts

if TYPE_CHECKING:  # pragma: no cover
    from speak.tokenizer import TokenizerOutput

__all__ = [
    "BOUNDARY_SOURCES",
    "DEFAULT_SCRIPT_PRIORS",
    "BoundaryConfig",
    "BoundaryOutput",
    "BoundarySource",
    "make_boundary_source",
]

# MAGNET-style priors (expected boundary rate per character). Latin 0.2, Cyrillic 0.1, Devanagari 0.08 as in the
# spec; the others follow the same UTF-8-width pattern (2-byte scripts like Cyrillic: 0.1; 3-byte like Devanagari:
# 0.08); non-letters before any letter and letters of unlisted scripts use DTP's 0.2.
DEFAULT_SCRIPT_PRIORS: dict[str, float] = {
    "common": 0.2,
    "latin": 0.2,
    "cyrillic": 0.1,
    "hebrew": 0.1,
    "arabic": 0.1,
    "devanagari": 0.08,
    "han": 0.08,
    "other": 0.2,
}


# The ranges of L_mem's alpha and beta the paper searched (App. C.1): alpha in [0.8, 1.4], beta in [0.3, 0.8].
MEM_SCALE_GRID = ((0.8, 1.4), (0.3, 0.8))
# What speak's encoder_bce head may learn (BoundaryConfig.encoder_bce_targets)
ENCODER_BCE_TARGETS = ("proxy", "entropy", "proxy+entropy")


@dataclass
class BoundaryOutput:
    hard: Tensor  # [B, L] float in {0,1}; 1 = position t closes its group (may carry straight-through grads)
    logits: Tensor | None = None  # [B, L] boundary-predictor logits (dtp-*, magnet); None for rule-based sources
    tokenizer: "TokenizerOutput | None" = None  # the 'speak' source: current, u, s, v, mask_logits, mask
    script_ids: Tensor | None = None  # [B, L] magnet's script per position


@dataclass
class BoundaryConfig:
    """Which boundary source the hourglass uses, and its options (only the chosen source's options matter)."""

    name: str = "none"
    fixed_k: int = 4  # fixed: group length
    prior: float = 0.2  # dtp-gumbel: Binomial prior (expected boundary rate)
    temperature: float = 0.5  # dtp-gumbel / magnet: relaxed-Bernoulli temperature
    threshold: float = 0.5  # dtp-* / magnet: hard = 1(sigmoid(logit) > threshold)
    script_priors: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SCRIPT_PRIORS))  # magnet
    speak: dict[str, Any] = field(default_factory=dict)  # speak: TokenizerConfig keyword arguments
    loss_weight: float = 1.0  # weight of the source's auxiliary loss(es) in the objective
    # speak: the training algorithm's options (paper Sec. 3.2-3.3, App. B/C.1; SPEC section 2)
    mem_alpha: float = 1.2  # L_mem's alpha (Eq. 14), initial value when learnable
    mem_beta: float = 0.6  # L_mem's beta (Eq. 14)
    learn_mem_scales: bool = True  # GTok: alpha and beta are learned with the model (App. C.1)
    # Not in the paper: keep learned alpha, beta inside the paper's own search grid (MEM_SCALE_GRID). Unbounded,
    # L_mem lowers its own firing target (alpha 1.2 -> 0.35 in 2000 cpu-small steps; docs/decisions.md).
    bound_mem_scales: bool = False
    mem_second_term: bool = True  # False = "w/o L_mem 2nd term" (Table 5)
    # L_mem's two sums each normalised by their own count (speak.train.spiking_losses). One plain mean lets the
    # silent majority pull uncertain positions below threshold: measured, SF 5.24 -> 4.28, BPC 2.828 -> 2.762
    # (en-bible, cpu-small, 300 steps, seed 0; DTP-Unigram 2.780 at SF 4.45). docs/decisions.md.
    mem_balanced: bool = True
    entropy_ratio: float = 0.2  # top share of tokens by entropy that are high-entropy (App. A.2)
    entropy_mode: str = "first"  # token entropy: of its first character ("first") or the mean ("mean")
    # Stop the boundary losses' gradients at the shared pre-layers. None = the source's default: True for speak, whose
    # L_mem sends the shared encoder a gradient ~80x the LM's (norm 37 vs 0.46 at cpu-small init: the error of every
    # later position sums through the integrate-and-fire scan), so the encoder would learn L_mem's features instead
    # of the LM's; measured: SPEAK trailed DTP-Unigram by 0.2 BPC at 300 steps that way. False for the others.
    detach_features: bool | None = None
    # Not in the paper: when the features are not detached, the boundary losses' gradient into the shared pre-layers
    # is multiplied by this (1 = unchanged). At 0.01 (about the LM's gradient norm at init, 1/80 above) and 0.03 SPEAK
    # got no better (docs/decisions.md); DTP-Unigram does lose without its BCE's gradient there.
    feature_grad_scale: float = 1.0
    # Not in the paper: speak only. Weight of a per-position BCE that trains the shared pre-layers to predict the
    # proxy's boundaries through a head of its own (DTP-Unigram's loss on SPEAK's targets); the tokenizer's heads
    # and spikes do not use that head. 0 = off (the paper). docs/decisions.md, "An encoder BCE for SPEAK".
    encoder_bce: float = 0.0
    # What that head learns: "proxy" (s_hat, the tokenizer's own targets), "entropy" (DTP-Entropy's entropy-spike
    # targets from the LM's own logits, so the pre-layers get DTP-Entropy's training signal; not in the paper), or
    # "proxy+entropy" (one output each, the two BCEs summed).
    encoder_bce_targets: str = "proxy"

    @property
    def encoder_bce_kinds(self) -> tuple[str, ...]:
        """The target kinds of encoder_bce's head, one output each ("proxy+entropy" -> ("proxy", "entropy"))."""
        return tuple(self.encoder_bce_targets.split("+"))

    def validate(self) -> None:
        if self.name not in BOUNDARY_SOURCES:
            raise SpeakError(
                f"unknown boundary source {self.name!r}; valid: {', '.join(sorted(BOUNDARY_SOURCES))}"
            )
        if self.fixed_k <= 0:
            raise SpeakError(f"boundary.fixed_k must be positive, got {self.fixed_k}")
        if not 0.0 < self.prior < 1.0:
            raise SpeakError(f"boundary.prior must be in (0, 1), got {self.prior}")
        if self.temperature <= 0.0:
            raise SpeakError(f"boundary.temperature must be positive, got {self.temperature}")
        if not 0.0 < self.threshold < 1.0:
            raise SpeakError(f"boundary.threshold must be in (0, 1), got {self.threshold}")
        unknown = sorted(set(self.script_priors) - set(SCRIPTS))
        if unknown:
            raise SpeakError(f"boundary.script_priors has unknown scripts {unknown}; valid: {', '.join(SCRIPTS)}")
        bad = {k: v for k, v in self.script_priors.items() if not 0.0 < v < 1.0}
        if bad:
            raise SpeakError(f"boundary.script_priors must be in (0, 1), got {bad}")
        if self.feature_grad_scale < 0.0:
            raise SpeakError(f"boundary.feature_grad_scale must be >= 0, got {self.feature_grad_scale}")
        if self.encoder_bce < 0.0:
            raise SpeakError(f"boundary.encoder_bce must be >= 0, got {self.encoder_bce}")
        if self.encoder_bce_targets not in ENCODER_BCE_TARGETS:
            raise SpeakError(f"boundary.encoder_bce_targets must be one of {', '.join(ENCODER_BCE_TARGETS)}, "
                             f"got {self.encoder_bce_targets!r}")
        if self.loss_weight < 0.0:
            raise SpeakError(f"boundary.loss_weight must be >= 0, got {self.loss_weight}")
        if not 0.0 <= self.entropy_ratio <= 1.0:
            raise SpeakError(f"boundary.entropy_ratio must be in [0, 1], got {self.entropy_ratio}")
        if self.entropy_mode not in ("first", "mean"):
            raise SpeakError(f"boundary.entropy_mode must be 'first' or 'mean', got {self.entropy_mode!r}")


BOUNDARY_SOURCES: dict[str, type["BoundarySource"]] = {}


def register(name: str):
    def deco(cls: type[BoundarySource]) -> type[BoundarySource]:
        cls.name = name
        BOUNDARY_SOURCES[name] = cls
        return cls

    return deco


def make_boundary_source(
    cfg: BoundaryConfig, d_model: int, vocab_size: int, alphabet: Sequence[str] | None = None
) -> "BoundarySource":
    """Build the source named by ``cfg.name``. ``alphabet`` (id -> character) is needed by whitespace and magnet."""
    cfg.validate()
    return BOUNDARY_SOURCES[cfg.name](cfg, d_model, vocab_size, alphabet)


class BoundarySource(nn.Module):
    """Base class. ``shortens`` False means the hourglass does not pool (vanilla)."""

    name: ClassVar[str] = ""
    shortens: ClassVar[bool] = True

    def __init__(self, cfg: BoundaryConfig, d_model: int, vocab_size: int, alphabet: Sequence[str] | None):
        super().__init__()
        self.cfg = cfg

    def forward(self, chars: Tensor, features: Tensor) -> BoundaryOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def tokenizer_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters that count as the tokenizer's (``count_parameters``)."""
        return self.parameters()

    def unused_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters that exist but never take part in inference (excluded from every count)."""
        return iter(())

    def _features(self, features: Tensor) -> Tensor:
        detach = self.cfg.detach_features if self.cfg.detach_features is not None else self.name == "speak"
        scale = self.cfg.feature_grad_scale
        if detach or scale == 0.0:
            return features.detach()
        if scale == 1.0:
            return features
        return features.detach() + scale * (features - features.detach())  # same values, gradient x scale


def _need_alphabet(name: str, alphabet: Sequence[str] | None, vocab_size: int) -> Sequence[str]:
    if alphabet is None:
        raise SpeakError(f"boundary source {name!r} needs the vocabulary's alphabet (HourglassConfig.alphabet)")
    if len(alphabet) != vocab_size:
        raise SpeakError(f"alphabet has {len(alphabet)} entries but vocab_size is {vocab_size}")
    return alphabet


@register("none")
class NoBoundaries(BoundarySource):
    shortens = False

    def forward(self, chars: Tensor, features: Tensor) -> BoundaryOutput:
        return BoundaryOutput(hard=torch.ones(chars.shape, dtype=features.dtype, device=chars.device))  # [B, L]


@register("fixed")
class FixedBoundaries(BoundarySource):
    def forward(self, chars: Tensor, features: Tensor) -> BoundaryOutput:
        L = chars.shape[1]
        t = torch.arange(L, device=chars.device)  # [L]
        hard = ((t + 1) % self.cfg.fixed_k == 0).to(features.dtype)  # [L]
        return BoundaryOutput(hard=hard.unsqueeze(0).expand(chars.shape[0], L).contiguous())  # [B, L]


@register("whitespace")
class WhitespaceBoundaries(BoundarySource):
    def __init__(self, cfg, d_model, vocab_size, alphabet):
        super().__init__(cfg, d_model, vocab_size, alphabet)
        alphabet = _need_alphabet("whitespace", alphabet, vocab_size)
        table = torch.tensor([len(ch) == 1 and ch.isspace() for ch in alphabet], dtype=torch.bool)  # [V]
        self.register_buffer("is_space", table, persistent=False)

    def forward(self, chars: Tensor, features: Tensor) -> BoundaryOutput:
        return BoundaryOutput(hard=self.is_space[chars].to(features.dtype))  # [B, L]


class BoundaryPredictor(nn.Module):
    """DTP's boundary predictor: Linear(d, 4d) -> GELU -> Linear(4d, K); returns logits [B, L] (K = 1) or [B, L, K]."""

    def __init__(self, d_model: int, mult: int = 4, outputs: int = 1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, mult * d_model), nn.GELU(), nn.Linear(mult * d_model, outputs))

    def forward(self, features: Tensor) -> Tensor:
        logits = self.net(features)  # [B, L, D] -> [B, L, K]
        return logits.squeeze(-1) if logits.shape[-1] == 1 else logits


def _logit(p: float) -> float:
    return float(torch.logit(torch.tensor(p, dtype=torch.float64)))


class _StraightThrough(torch.autograd.Function):
    """Value of ``hard`` exactly (no float round-off from ``hard + soft - soft``), gradient of ``soft``."""

    @staticmethod
    def forward(ctx, soft: Tensor, hard: Tensor) -> Tensor:  # type: ignore[override]
        return hard.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad, None


def straight_through(soft: Tensor, hard: Tensor) -> Tensor:
    """Forward: ``hard`` (exact {0, 1}); backward: identity to ``soft``."""
    return _StraightThrough.apply(soft, hard.detach())


def gumbel_sigmoid_hard(logits: Tensor, temperature: float, training: bool, threshold: float = 0.5) -> Tensor:
    """Relaxed-Bernoulli straight-through sample in training; deterministic ``1(p > threshold)`` at evaluation.

    Training: ``soft = sigmoid((logits + log u - log(1 - u)) / T)``, ``hard = 1(soft > threshold)``, returned with
    the value of hard and the gradient of soft (straight-through). Evaluation: no noise, no gradient.
    """
    if not training:
        return (logits > _logit(threshold)).to(logits.dtype).detach()  # [B, L]
    u = torch.rand_like(logits).clamp(1e-6, 1.0 - 1e-6)  # [B, L]
    soft = torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / temperature)  # [B, L]
    hard = (soft > threshold).to(logits.dtype)  # [B, L]
    return straight_through(soft, hard)


class _PredictorSource(BoundarySource):
    def __init__(self, cfg, d_model, vocab_size, alphabet):
        super().__init__(cfg, d_model, vocab_size, alphabet)
        self.predictor = BoundaryPredictor(d_model)


@register("dtp-entropy")
class DTPEntropy(_PredictorSource):
    def forward(self, chars: Tensor, features: Tensor) -> BoundaryOutput:
        logits = self.predictor(self._features(features))  # [B, L]
        hard = (logits.detach() > _logit(self.cfg.threshold)).to(logits.dtype)  # [B, L]; no grad
        return BoundaryOutput(hard=hard, logits=logits)


@register("dtp-unigram")
class DTPUnigram(DTPEntropy):
    pass


@register("dtp-gumbel")
class DTPGumbel(_PredictorSource):
    def forward(self, chars: Tensor, features: Tensor) -> BoundaryOutput:
        logits = self.predictor(self._features(features))  # [B, L]
        hard = gumbel_sigmoid_hard(logits, self.cfg.temperature, self.training, self.cfg.threshold)  # [B, L]
        return BoundaryOutput(hard=hard, logits=logits)


@register("magnet")
class Magnet(BoundarySource):
    def __init__(self, cfg, d_model, vocab_size, alphabet):
        super().__init__(cfg, d_model, vocab_size, alphabet)
        alphabet = _need_alphabet("magnet", alphabet, vocab_size)
        table = script_table(alphabet)  # [V]; -1 = inherits
        present = sorted({COMMON} | {int(i) for i in table.tolist() if i >= 0})
        missing = [SCRIPTS[i] for i in present if SCRIPTS[i] not in cfg.script_priors]
        if missing:
            raise SpeakError(f"boundary.script_priors lacks a prior for scripts {missing} found in the alphabet")
        self.register_buffer("script_of_id", table, persistent=False)
        self.scripts: tuple[str, ...] = tuple(SCRIPTS[i] for i in present)
        self.predictors = nn.ModuleDict({name: BoundaryPredictor(d_model) for name in self.scripts})
        priors = torch.tensor([cfg.script_priors.get(name, 0.2) for name in SCRIPTS], dtype=torch.float32)
        self.register_buffer("priors", priors, persistent=False)  # [n_scripts]; indexed by script id

    def forward(self, chars: Tensor, features: Tensor) -> BoundaryOutput:
        feats = self._features(features)  # [B, L, D]
        script_ids = sequence_scripts(chars, self.script_of_id)  # [B, L]
        logits = feats.new_zeros(chars.shape)  # [B, L]
        for name, predictor in self.predictors.items():  # a loop over scripts (a handful), not groups
            sel = script_ids == SCRIPT_INDEX[name]  # [B, L]
            if bool(sel.any()):
                logits = logits.masked_scatter(sel, predictor(feats[sel]).to(logits.dtype))  # [N] into [B, L]
        hard = gumbel_sigmoid_hard(logits, self.cfg.temperature, self.training, self.cfg.threshold)  # [B, L]
        return BoundaryOutput(hard=hard, logits=logits, script_ids=script_ids)


@register("speak")
class SpeakBoundaries(BoundarySource):
    """The SPEAK tokenizer on the hourglass pre-layer features (GTok). Its hard boundaries are the spikes ``s``."""

    def __init__(self, cfg, d_model, vocab_size, alphabet):
        super().__init__(cfg, d_model, vocab_size, alphabet)
        try:
            from speak.tokenizer import SpeakTokenizerNet, TokenizerConfig
        except ImportError as exc:  # the tokenizer room is not there (yet)
            raise SpeakError(f"boundary source 'speak' needs speak.tokenizer.SpeakTokenizerNet: {exc}") from exc
        # GTok defaults (SPEC section 3): the pre-layer features are the ContextEncoder, Linear1 is DTP's MLP.
        opts = {"encoder": "features", "linear1": "mlp", **cfg.speak}
        opts["vocab_size"] = vocab_size
        if opts["encoder"] == "features":
            opts["feature_dim"] = d_model
        try:
            tok_cfg = TokenizerConfig(**opts)
        except TypeError as exc:  # unknown keyword
            raise SpeakError(f"bad boundary.speak options {sorted(cfg.speak)}: {exc}") from exc
        if tok_cfg.encoder == "char-ngram" and tok_cfg.ngram_lookahead > 0:
            raise SpeakError("boundary.speak: ngram_lookahead reads future characters, which the LM must not see")
        self.net = SpeakTokenizerNet(tok_cfg)
        scales = torch.tensor([cfg.mem_alpha, cfg.mem_beta])  # L_mem's (alpha, beta), Eq. 14
        if cfg.learn_mem_scales:
            self.mem_scales = nn.Parameter(scales)
        else:
            self.register_buffer("mem_scales", scales)
        # encoder_bce's own head on the attached features; None when off (the paper's model)
        self.encoder_head = (BoundaryPredictor(d_model, outputs=len(cfg.encoder_bce_kinds))
                             if cfg.encoder_bce > 0.0 else None)

    def alpha_beta(self) -> tuple[Tensor, Tensor]:
        """L_mem's (alpha, beta) (Eq. 14); clamped to MEM_SCALE_GRID when ``bound_mem_scales`` (no gradient outside)."""
        alpha, beta = self.mem_scales[0], self.mem_scales[1]
        if self.cfg.bound_mem_scales:
            (a_lo, a_hi), (b_lo, b_hi) = MEM_SCALE_GRID
            alpha, beta = alpha.clamp(a_lo, a_hi), beta.clamp(b_lo, b_hi)
        return alpha, beta

    def forward(self, chars: Tensor, features: Tensor) -> BoundaryOutput:
        if self.net.cfg.encoder == "features":  # GTok: the shared pre-layers are the ContextEncoder
            out = self.net(chars, features=self._features(features))
        else:  # its own per-character encoder (standalone setting inside the hourglass)
            out = self.net(chars)
        # The LM pools over the spikes but sends no gradient through them: "the objective loss optimizes the language
        # model via backpropagation and the token boundary predictor through proxy supervision" (paper Fig. 2D).
        # Letting L_LM reach the currents through the surrogate drives the spike rate to 1 (more groups always help
        # the LM), which we measured: the rate ran from 0.07 to 0.97 in 50 cpu-small steps and L_mem diverged.
        # encoder_bce's head is a training aid: it runs in training only, so inference costs what the paper's does
        logits = self.encoder_head(features) if self.encoder_head is not None and self.training else None  # [B, L(, K)]
        return BoundaryOutput(hard=out.s.detach().to(features.dtype), logits=logits, tokenizer=out)  # [B, L]

    def _encoder_params(self) -> set[int]:
        if self.net.cfg.encoder != "features":
            return set()  # its own encoder runs and counts as the tokenizer's
        enc = getattr(self.net, "encoder", None)
        return {id(p) for p in enc.parameters()} if isinstance(enc, nn.Module) else set()

    def tokenizer_parameters(self) -> Iterator[nn.Parameter]:
        skip = {id(p) for p in self.unused_parameters()}
        return (p for p in self.parameters() if id(p) not in skip)

    def unused_parameters(self) -> Iterator[nn.Parameter]:
        skip = self._encoder_params()  # its own encoder is replaced by the shared pre-layers
        if self.encoder_head is not None:  # encoder_bce's head trains the pre-layers; inference never runs it
            skip |= {id(p) for p in self.encoder_head.parameters()}
        return (p for p in self.parameters() if id(p) in skip)
