"""``blt``: BLT's entropy patching (Pagnoni et al. 2024, "Byte Latent Transformer", arXiv 2412.09871, Sec. 2.3) on
characters.

The paper's equations (x_i: the i-th byte, here character; p_e: a small, separately trained byte LM):

- Next-byte entropy: ``H(x_i) = - sum_v p_e(x_i = v | x_<i) log p_e(x_i = v | x_<i)`` (nats).
- Global constraint: a patch starts at i where ``H(x_i) > theta_g``.
- Approximate monotonic constraint: a patch starts at i where ``H(x_i) - H(x_{i-1}) > theta_r``.
- Both ("global+monotonic"): where both hold (the reference code's combination of the two thresholds).
- The first position always starts a patch; patching is not trained by the LM (no gradient reaches it).

On characters: the entropy model is a small causal character LM whose logits at t predict t + 1, so
``Hnext[:, t] = H(x_{t+1})`` is known at t. A patch start at i = t + 1 closes our group at t (:mod:`.starts`):
``hard[:, t] = start(t + 1)``, decided from characters <= t. The monotonic difference at t = 0 would need H(x_0),
the entropy of the first character with no context, which a window without a beginning-of-text symbol does not
have: there ``hard[:, 0]`` follows the global threshold in ``global`` mode and is 0 in the other two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from speak.errors import SpeakError
from speak.lm.boundaries.base import BoundaryConfig, BoundaryOutput, BoundarySource, SourceOptions
from speak.lm.boundaries.losses import predictive_entropy
from speak.lm.boundaries.starts import starts_to_boundaries
from speak.text.vocab import PAD_ID

__all__ = ["MODES", "BLTOptions", "BLTPatching", "boundaries_from_next_entropy", "entropy_model_loss",
           "patch_starts"]

MODES = ("global", "monotonic", "global+monotonic")


def patch_starts(entropy: Tensor, mode: str, threshold: float, rel_threshold: float) -> Tensor:
    """Patch starts [B, N] bool from entropies ``entropy[:, i] = H(x_i)`` [B, N]; position 0 always starts.

    ``mode``: "global" (H_i > threshold), "monotonic" (H_i - H_{i-1} > rel_threshold) or "global+monotonic" (both).
    """
    if mode not in MODES:
        raise ValueError(f"unknown BLT patching mode {mode!r}; valid: {', '.join(MODES)}")
    h = entropy.detach()  # [B, N]; no gradient reaches the patching
    above = h[:, 1:] > threshold  # [B, N - 1]
    rising = (h[:, 1:] - h[:, :-1]) > rel_threshold  # [B, N - 1]
    rest = {"global": above, "monotonic": rising, "global+monotonic": above & rising}[mode]
    first = torch.ones(h.shape[0], 1, dtype=torch.bool, device=h.device)  # [B, 1]
    return torch.cat([first, rest], dim=1)  # [B, N]


def boundaries_from_next_entropy(next_entropy: Tensor, mode: str, threshold: float, rel_threshold: float) -> Tensor:
    """Our boundaries [B, L] from ``next_entropy[:, t] = H(x_{t+1})`` [B, L] (the entropy model's logits at t).

    BLT's entropies are ``H(x_i)`` for i = 0..L with H(x_0) unknown (taken as +inf: no monotonic start at i = 1);
    ``hard[:, t] = start(t + 1)``.
    """
    B, L = next_entropy.shape
    h0 = next_entropy.new_full((B, 1), torch.inf)  # [B, 1]
    starts = patch_starts(torch.cat([h0, next_entropy.detach()], dim=1), mode, threshold, rel_threshold)  # [B, L+1]
    return starts_to_boundaries(starts, L).to(next_entropy.dtype)  # [B, L]


@dataclass
class BLTOptions(SourceOptions):
    mode: str = "global"  # global | monotonic | global+monotonic (MODES)
    threshold: float = 2.0  # theta_g (nats): the global threshold, the SF knob
    rel_threshold: float = 0.5  # theta_r (nats): the approximate monotonic threshold
    entropy_preset: str = "cpu-tiny"  # size of the entropy model: a vanilla hourglass of this preset
    # A model.safetensors of a finished `--boundary none` run of entropy_preset: loaded and frozen. "" = the entropy
    # model trains on the train split alongside the LM (its own next-character loss, on its own parameters).
    entropy_weights: str = ""
    loss_weight: float = 1.0  # weight of the entropy model's next-character loss

    def validate(self) -> None:
        from speak.presets import HOURGLASS_PRESETS

        if self.mode not in MODES:
            raise SpeakError(f"boundary.mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        for key in ("threshold", "rel_threshold"):
            if not math.isfinite(getattr(self, key)):
                raise SpeakError(f"boundary.{key} must be a finite number of nats, got {getattr(self, key)}")
        if self.entropy_preset not in HOURGLASS_PRESETS:
            raise SpeakError(f"boundary.entropy_preset must be one of {', '.join(HOURGLASS_PRESETS)}, "
                             f"got {self.entropy_preset!r}")
        if self.entropy_weights and not Path(self.entropy_weights).is_file():
            raise SpeakError(f"boundary.entropy_weights: no file {self.entropy_weights}")
        if self.loss_weight < 0.0:
            raise SpeakError(f"boundary.loss_weight must be >= 0, got {self.loss_weight}")


class BLTPatching(BoundarySource):
    """Patches from a small character LM's next-character entropy; the LM's gradient never reaches them."""

    name = "blt"
    label = "BLT (entropy patching)"
    Options = BLTOptions
    opts: BLTOptions

    def __init__(self, opts, d_model, vocab_size, alphabet):
        super().__init__(opts, d_model, vocab_size, alphabet)
        from speak.lm.hourglass import HourglassConfig, HourglassLM  # lazy: the hourglass imports this package

        cfg = HourglassConfig.from_preset(opts.entropy_preset, vocab_size, dropout=0.0, max_len=1 << 20,
                                          boundary=BoundaryConfig("none"))
        self.entropy_model = HourglassLM(cfg)
        self.frozen = bool(opts.entropy_weights)
        if self.frozen:
            self._load(opts.entropy_weights)
            self.entropy_model.requires_grad_(False)

    def _load(self, path: str) -> None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            tensors = load_file(path, device="cpu")
        except (OSError, SafetensorError) as exc:
            raise SpeakError(f"boundary.entropy_weights: cannot read {path}: {exc}") from None
        try:
            self.entropy_model.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise SpeakError(f"boundary.entropy_weights: {path} is not a '{self.opts.entropy_preset}' vanilla "
                             f"character LM of this vocabulary ({first})") from None

    def forward(self, chars: Tensor, features: Tensor) -> BoundaryOutput:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            logits = self.entropy_model(chars).logits  # [B, L, V]; logits[:, t] predicts chars[:, t + 1]
        hard = boundaries_from_next_entropy(predictive_entropy(logits), self.opts.mode, self.opts.threshold,
                                            self.opts.rel_threshold).to(features.dtype)  # [B, L]; no grad
        extras = {} if self.frozen or not self.training else {"entropy_logits": logits, "chars": chars}
        return BoundaryOutput(hard=hard, extras=extras)

    def aux_losses(self, out, lm_logits, targets, valid):
        logits = out.extras.get("entropy_logits")
        if logits is None:
            return {}
        return {"entropy_lm": entropy_model_loss(logits, out.extras["chars"])}


def entropy_model_loss(logits: Tensor, chars: Tensor) -> Tensor:
    """The entropy model's next-character cross-entropy (nats) inside the window: logits [B, L, V], chars [B, L];
    targets equal to ``<pad>`` are ignored."""
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V).float(), chars[:, 1:].reshape(-1), ignore_index=PAD_ID)
