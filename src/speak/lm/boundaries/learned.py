"""What learned boundary sources share: DTP's boundary predictor MLP, the relaxed-Bernoulli straight-through sample,
and :class:`LearnedSource` (the options and training-only parts common to every source with parameters).

:class:`LearnedSource` gives each learned source two training options:

- ``detach_features``: stop the source's losses at the shared pre-layers (its features are detached);
- ``encoder_bce`` (not in the paper): a head of its own on the ATTACHED pre-layer features, trained by a BCE
  against the batch's boundary targets (``"proxy"``: the exemplar or SPEAK's proxy, whichever the source trains
  on), DTP-Entropy's entropy-spike targets from the LM's own logits (``"entropy"``), or both (one output each,
  ``"proxy+entropy"``), weighted by ``encoder_bce``. The pre-layers learn to predict boundaries; the source's own
  boundaries do not use the head, and it runs in training only, so inference costs what it costs without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from speak.errors import SpeakError
from speak.lm.boundaries.base import BoundaryOutput, BoundarySource, SourceOptions, Targets
from speak.lm.boundaries.losses import boundary_bce, entropy_spike_targets, predictive_entropy

__all__ = [
    "ENCODER_BCE_TARGETS",
    "BoundaryPredictor",
    "LearnedOptions",
    "LearnedSource",
    "gumbel_sigmoid_hard",
    "logit",
    "straight_through",
]

# What the encoder-BCE head may learn (LearnedOptions.encoder_bce_targets)
ENCODER_BCE_TARGETS = ("proxy", "entropy", "proxy+entropy")


@dataclass
class LearnedOptions(SourceOptions):
    loss_weight: float = 1.0  # weight of the source's auxiliary loss(es) in the objective
    # Stop the source's losses' gradients at the shared pre-layers (each source sets its default)
    detach_features: bool = False
    encoder_bce: float = 0.0  # weight of the encoder-BCE head's loss (0 = no head: the paper's models)
    encoder_bce_targets: str = "proxy"  # proxy | entropy | proxy+entropy (module docstring)

    @property
    def encoder_bce_kinds(self) -> tuple[str, ...]:
        """The encoder-BCE head's target kinds, one output each ("proxy+entropy" -> ("proxy", "entropy"))."""
        return tuple(self.encoder_bce_targets.split("+"))

    def validate(self) -> None:
        if self.loss_weight < 0.0:
            raise SpeakError(f"boundary.loss_weight must be >= 0, got {self.loss_weight}")
        if self.encoder_bce < 0.0:
            raise SpeakError(f"boundary.encoder_bce must be >= 0, got {self.encoder_bce}")
        if self.encoder_bce_targets not in ENCODER_BCE_TARGETS:
            raise SpeakError(f"boundary.encoder_bce_targets must be one of {', '.join(ENCODER_BCE_TARGETS)}, "
                             f"got {self.encoder_bce_targets!r}")


class BoundaryPredictor(nn.Module):
    """DTP's boundary predictor: Linear(d, 4d) -> GELU -> Linear(4d, K); returns logits [B, L] (K = 1) or [B, L, K]."""

    def __init__(self, d_model: int, mult: int = 4, outputs: int = 1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, mult * d_model), nn.GELU(), nn.Linear(mult * d_model, outputs))

    def forward(self, features: Tensor) -> Tensor:
        logits = self.net(features)  # [B, L, D] -> [B, L, K]
        return logits.squeeze(-1) if logits.shape[-1] == 1 else logits


def logit(p: float) -> float:
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


EVAL_SAMPLING = ("mode", "dither")


def dither_boundaries(probs: Tensor) -> Tensor:
    """Deterministic boundaries at the predicted rate: t closes a group when the running sum of p crosses an integer,
    ``hard_t = floor(P_t) - floor(P_{t-1})``, ``P_t = sum_{s <= t} p_s`` ([B, L] -> [B, L]; causal, no noise).

    Over any prefix the count differs from the expected count ``sum p`` by less than one, as a Bernoulli sample
    matches it in expectation (the public DTP/MAGNET code samples noise at evaluation); no randomness at evaluation.
    """
    total = torch.floor(torch.cumsum(probs.detach().double(), dim=1))  # [B, L]
    prev = torch.cat([torch.zeros_like(total[:, :1]), total[:, :-1]], dim=1)  # [B, L]
    return (total > prev).to(probs.dtype)  # [B, L]


def gumbel_sigmoid_hard(logits: Tensor, temperature: float, training: bool, threshold: float = 0.5,
                        eval_sampling: str = "mode") -> Tensor:
    """Relaxed-Bernoulli straight-through sample in training; deterministic at evaluation.

    Training: ``soft = sigmoid((logits + log u - log(1 - u)) / T)``, ``hard = 1(soft > threshold)``, returned with
    the value of hard and the gradient of soft (straight-through). Evaluation: no noise, no gradient;
    ``1(p > threshold)`` (``eval_sampling="mode"``) or :func:`dither_boundaries` of p (``"dither"``).
    """
    if not training:
        if eval_sampling == "dither":
            return dither_boundaries(torch.sigmoid(logits.detach().float())).to(logits.dtype)  # [B, L]
        return (logits > logit(threshold)).to(logits.dtype).detach()  # [B, L]
    u = torch.rand_like(logits).clamp(1e-6, 1.0 - 1e-6)  # [B, L]
    soft = torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / temperature)  # [B, L]
    hard = (soft > threshold).to(logits.dtype)  # [B, L]
    return straight_through(soft, hard)


class LearnedSource(BoundarySource):
    """A source with parameters. Subclasses call :meth:`add_encoder_head` last in ``__init__`` and return
    ``self.head_logits(features)`` as ``BoundaryOutput.head_logits``; :meth:`source_losses` gives their own losses."""

    Options: ClassVar[type[LearnedOptions]] = LearnedOptions
    opts: LearnedOptions

    def add_encoder_head(self, d_model: int) -> None:
        """The encoder-BCE head (None when ``encoder_bce`` is 0). Built last: parameter order = initialisation order."""
        o = self.opts
        self.encoder_head = BoundaryPredictor(d_model, outputs=len(o.encoder_bce_kinds)) if o.encoder_bce > 0 else None
        if self.encoder_head is not None and "proxy" in o.encoder_bce_kinds and self.needs is Targets.NONE:
            raise SpeakError(f"boundary source {self.name!r} has no boundary targets for encoder_bce_targets "
                             f"{o.encoder_bce_targets!r}; use 'entropy'")

    def features(self, features: Tensor) -> Tensor:
        """The pre-layer features the source's own parts see (detached when ``detach_features``)."""
        return features.detach() if self.opts.detach_features else features

    def head_logits(self, features: Tensor) -> Tensor | None:
        """The encoder-BCE head on the attached features [B, L, D] -> [B, L(, K)]; training only."""
        return self.encoder_head(features) if self.encoder_head is not None and self.training else None

    def source_losses(self, out: BoundaryOutput, lm_logits: Tensor, targets: Tensor | None,
                      valid: Tensor) -> dict[str, Tensor]:
        return {}

    def aux_losses(self, out: BoundaryOutput, lm_logits: Tensor, targets: Tensor | None,
                   valid: Tensor) -> dict[str, Tensor]:
        losses = self.source_losses(out, lm_logits, targets, valid)
        if out.head_logits is not None:
            losses["encoder_bce"] = self.opts.encoder_bce * self._encoder_bce(out.head_logits, lm_logits, targets,
                                                                              valid)
        return losses

    def _encoder_bce(self, logits: Tensor, lm_logits: Tensor, targets: Tensor | None, valid: Tensor) -> Tensor:
        logits = logits.unsqueeze(-1) if logits.dim() == 2 else logits  # [B, L, K]: one column per target kind
        total = logits.new_zeros(())
        for k, kind in enumerate(self.opts.encoder_bce_kinds):
            if kind == "entropy":
                y = entropy_spike_targets(predictive_entropy(lm_logits))  # [B, L]
            else:
                y = self.require_targets(targets, logits)  # [B, L]
            total = total + boundary_bce(logits[..., k], y, valid.to(logits.dtype))
        return total

    def tokenizer_parameters(self) -> Iterator[nn.Parameter]:
        skip = {id(p) for p in self.unused_parameters()}
        return (p for p in self.parameters() if id(p) not in skip)

    def unused_parameters(self) -> Iterator[nn.Parameter]:
        """The encoder-BCE head trains the pre-layers; inference never runs it."""
        head = getattr(self, "encoder_head", None)
        return iter(()) if head is None else head.parameters()
