"""``magnet`` (Ahia et al. 2024): ``dtp-gumbel`` with one predictor and one Binomial prior per script
(``speak.lm.scripts``); the script of each position is exposed as ``script_ids``. Predictors exist only for the
scripts the alphabet contains (+ common).

MAGNET is byte-level: its priors are boundaries per UTF-8 BYTE. Over characters the prior of each script is converted
per sequence (:func:`speak.lm.scripts.char_priors`: x the mean UTF-8 bytes of the sequence's characters of that
script, capped at 0.5), so Hebrew's 0.1 per byte asks for about 0.18 boundaries per character, not 0.1. Evaluation
(``eval_sampling``, docs/baselines.md): ``dither`` places boundaries deterministically at the predicted rate (the
default here); ``mode`` is ``1(p > threshold)``."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from speak.errors import SpeakError
from speak.lm.boundaries.base import BoundaryOutput, need_alphabet
from speak.lm.boundaries.learned import (
    EVAL_SAMPLING,
    BoundaryPredictor,
    LearnedOptions,
    LearnedSource,
    gumbel_sigmoid_hard,
)
from speak.lm.boundaries.losses import per_script_binomial_prior_loss
from speak.lm.scripts import COMMON, SCRIPT_INDEX, SCRIPTS, char_priors, script_table, sequence_scripts, utf8_widths

# MAGNET's priors: expected boundaries per UTF-8 BYTE. Latin 0.2, Cyrillic 0.1, Devanagari 0.08 as in the spec; the
# others follow the same UTF-8-width pattern (2-byte scripts like Cyrillic: 0.1; 3-byte like Devanagari: 0.08);
# non-letters before any letter and letters of unlisted scripts use DTP's 0.2. Converted per character in the loss.
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


@dataclass
class MagnetOptions(LearnedOptions):
    temperature: float = 0.5  # relaxed-Bernoulli temperature
    threshold: float = 0.5  # hard = 1(sigmoid(logit + noise) > threshold)
    script_priors: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SCRIPT_PRIORS))  # per byte
    # evaluation: "dither" = deterministic boundaries at the predicted rate; "mode" = 1(sigmoid(logit) > threshold)
    eval_sampling: str = "dither"

    def validate(self) -> None:
        super().validate()
        if self.temperature <= 0.0:
            raise SpeakError(f"boundary.temperature must be positive, got {self.temperature}")
        if not 0.0 < self.threshold < 1.0:
            raise SpeakError(f"boundary.threshold must be in (0, 1), got {self.threshold}")
        if self.eval_sampling not in EVAL_SAMPLING:
            raise SpeakError(f"boundary.eval_sampling must be one of {', '.join(EVAL_SAMPLING)}, "
                             f"got {self.eval_sampling!r}")
        unknown = sorted(set(self.script_priors) - set(SCRIPTS))
        if unknown:
            raise SpeakError(f"boundary.script_priors has unknown scripts {unknown}; valid: {', '.join(SCRIPTS)}")
        bad = {k: v for k, v in self.script_priors.items() if not 0.0 < v < 1.0}
        if bad:
            raise SpeakError(f"boundary.script_priors must be in (0, 1), got {bad}")


class Magnet(LearnedSource):
    name = "magnet"
    label = "MAGNET"
    Options = MagnetOptions
    opts: MagnetOptions
    needs_alphabet = True

    def __init__(self, opts, d_model, vocab_size, alphabet):
        super().__init__(opts, d_model, vocab_size, alphabet)
        alphabet = need_alphabet(self.name, alphabet, vocab_size)
        table = script_table(alphabet)  # [V]; -1 = inherits
        present = sorted({COMMON} | {int(i) for i in table.tolist() if i >= 0})
        missing = [SCRIPTS[i] for i in present if SCRIPTS[i] not in opts.script_priors]
        if missing:
            raise SpeakError(f"boundary.script_priors lacks a prior for scripts {missing} found in the alphabet")
        self.register_buffer("script_of_id", table, persistent=False)
        self.scripts: tuple[str, ...] = tuple(SCRIPTS[i] for i in present)
        self.predictors = nn.ModuleDict({name: BoundaryPredictor(d_model) for name in self.scripts})
        priors = torch.tensor([opts.script_priors.get(name, 0.2) for name in SCRIPTS], dtype=torch.float32)
        self.register_buffer("priors", priors, persistent=False)  # [n_scripts] per byte; indexed by script id
        self.register_buffer("utf8_widths", utf8_widths(alphabet), persistent=False)  # [V] bytes per character
        self.add_encoder_head(d_model)

    def forward(self, chars: Tensor, features: Tensor) -> BoundaryOutput:
        feats = self.features(features)  # [B, L, D]
        script_ids = sequence_scripts(chars, self.script_of_id)  # [B, L]
        logits = feats.new_zeros(chars.shape)  # [B, L]
        for name, predictor in self.predictors.items():  # a loop over scripts (a handful), not groups
            sel = script_ids == SCRIPT_INDEX[name]  # [B, L]
            if bool(sel.any()):
                logits = logits.masked_scatter(sel, predictor(feats[sel]).to(logits.dtype))  # [N] into [B, L]
        hard = gumbel_sigmoid_hard(logits, self.opts.temperature, self.training, self.opts.threshold,
                                   self.opts.eval_sampling)  # [B, L]
        return BoundaryOutput(hard=hard, logits=logits, script_ids=script_ids, head_logits=self.head_logits(features),
                              extras={"utf8_widths": self.utf8_widths[chars]})  # [B, L] bytes per position

    def char_priors(self, out: BoundaryOutput, mask: Tensor | None = None) -> Tensor:
        """[B, n_scripts] per-character priors of each sequence (the per-byte priors x mean UTF-8 bytes)."""
        return char_priors(self.priors, out.extras["utf8_widths"], out.script_ids, mask)

    def source_losses(self, out, lm_logits, targets, valid):
        mask = valid.to(lm_logits.dtype)  # [B, L]
        return {"prior": per_script_binomial_prior_loss(out.hard, out.script_ids, self.char_priors(out, mask), mask)}
