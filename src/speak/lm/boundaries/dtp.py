"""DTP's learned boundary predictors (Nawrot et al. 2023): the MLP d -> 4d -> GELU -> 1 on the pre-layer features.

- ``dtp-entropy`` / ``dtp-unigram``: ``hard = 1(sigmoid(logit) > threshold)``, no gradient through ``hard``; the
  predictor learns from a BCE on its LOGITS (no double sigmoid) against entropy-spike targets from the LM's own
  next-character entropy (entropy) or against an exemplar segmentation of the corpus (unigram: SentencePiece
  Unigram by default).
- ``dtp-gumbel``: training: relaxed Bernoulli (logistic noise, temperature 0.5) with a straight-through hard
  sample; evaluation: NO noise (the public code samples noise at evaluation), boundaries placed deterministically at
  the predicted rate (``eval_sampling: dither``; ``mode`` = ``1(sigmoid(logit) > 0.5)``, which an uninformative
  predictor at its prior never crosses: docs/decisions.md). Trained by the LM loss (through the straight-through path) + a Binomial prior on the boundary count.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from speak.errors import SpeakError
from speak.lm.boundaries.base import BoundaryOutput, Targets
from speak.lm.boundaries.learned import (
    BoundaryPredictor,
    LearnedOptions,
    LearnedSource,
    EVAL_SAMPLING,
    gumbel_sigmoid_hard,
    logit,
)
from speak.lm.boundaries.losses import binomial_prior_loss, boundary_bce, dtp_entropy_targets


@dataclass
class DTPOptions(LearnedOptions):
    threshold: float = 0.5  # hard = 1(sigmoid(logit) > threshold)

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.threshold < 1.0:
            raise SpeakError(f"boundary.threshold must be in (0, 1), got {self.threshold}")


@dataclass
class GumbelOptions(DTPOptions):
    prior: float = 0.2  # Binomial prior (expected boundary rate)
    temperature: float = 0.5  # relaxed-Bernoulli temperature
    # evaluation: "dither" = deterministic boundaries at the predicted rate; "mode" = 1(sigmoid(logit) > threshold)
    eval_sampling: str = "dither"

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.prior < 1.0:
            raise SpeakError(f"boundary.prior must be in (0, 1), got {self.prior}")
        if self.temperature <= 0.0:
            raise SpeakError(f"boundary.temperature must be positive, got {self.temperature}")
        if self.eval_sampling not in EVAL_SAMPLING:
            raise SpeakError(f"boundary.eval_sampling must be one of {', '.join(EVAL_SAMPLING)}, "
                             f"got {self.eval_sampling!r}")


class _Predictor(LearnedSource):
    Options = DTPOptions
    opts: DTPOptions

    def __init__(self, opts, d_model, vocab_size, alphabet):
        super().__init__(opts, d_model, vocab_size, alphabet)
        self.predictor = BoundaryPredictor(d_model)
        self.add_encoder_head(d_model)

    def _hard(self, logits: Tensor) -> Tensor:
        return (logits.detach() > logit(self.opts.threshold)).to(logits.dtype)  # [B, L]; no grad

    def forward(self, chars: Tensor, features: Tensor) -> BoundaryOutput:
        logits = self.predictor(self.features(features))  # [B, L]
        return BoundaryOutput(hard=self._hard(logits), logits=logits, head_logits=self.head_logits(features))


class DTPEntropy(_Predictor):
    name = "dtp-entropy"
    label = "DTP (Entropy)"

    def source_losses(self, out, lm_logits, targets, valid):
        return {"boundary_bce": boundary_bce(out.logits, dtp_entropy_targets(lm_logits), valid.to(lm_logits.dtype))}


class DTPUnigram(_Predictor):
    name = "dtp-unigram"
    label = "DTP (Unigram)"
    needs = Targets.EXEMPLAR

    def source_losses(self, out, lm_logits, targets, valid):
        targets = self.require_targets(targets, out.logits)  # [B, L]
        return {"boundary_bce": boundary_bce(out.logits, targets, valid.to(lm_logits.dtype))}


class DTPGumbel(_Predictor):
    name = "dtp-gumbel"
    label = "DTP (Gumbel)"
    Options = GumbelOptions
    opts: GumbelOptions

    def _hard(self, logits: Tensor) -> Tensor:
        return gumbel_sigmoid_hard(logits, self.opts.temperature, self.training, self.opts.threshold,
                                   self.opts.eval_sampling)  # [B, L]

    def source_losses(self, out, lm_logits, targets, valid):
        return {"prior": binomial_prior_loss(out.hard, self.opts.prior, valid.to(lm_logits.dtype))}
