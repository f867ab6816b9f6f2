"""``speak``: the SPEAK tokenizer on the hourglass pre-layer features (GTok, paper Sec. 3.2-3.3, App. B/C.1; SPEC
section 2). Everything SPEAK does at training time inside the hourglass is here.

- Boundaries: the tokenizer net (``speak.tokenizer.SpeakTokenizerNet``, Eq. 2-4, 7-9) fed the pre-layer features
  as its ContextEncoder; ``hard`` = its spikes ``s``, detached: "the objective loss optimizes the language model via
  backpropagation and the token boundary predictor through proxy supervision" (Fig. 2D). Letting L_LM reach the
  currents through the surrogate drives the spike rate to 1 (more groups always help the LM).
- L_mem (Eq. 14) pulls u toward the proxy s_hat, which the data stream carries in ``batch.boundary_targets`` (the
  proxy store keyed by corpus offset and refined by Metropolis-Hastings, Eq. 13, 15, 16: ``Targets.PROXY``). Its
  alpha and beta are learned with the model (App. C.1).
- L_reset (Eq. 12): the tokens of the tokenizer's own spikes are ranked by the LM's predictive entropy of their
  first character (no grad); the top ``entropy_ratio`` of the batch put e_hat = 1 on the spike closing the token
  before them. The BCE is averaged over the spikes, the token boundaries where e_hat is defined. Eq. 9's threshold
  (``mask_threshold``, a logit) follows the (1 - ``entropy_ratio``) quantile of C's logits at the training spikes,
  so the top ``entropy_ratio`` of spikes hard-reset (docs/decisions.md). The threshold is compared with e_t minus
  its causal mean over about ``mask_window`` characters: C's logits shift level from one text to another (on
  vi-help's test split the raw threshold hard-reset 8.5% of spikes against 20% in training); a window of a few
  hundred characters removes the text's level and keeps the local ranking (at 32 characters C lost precision).
  Only when the reset mode uses the contextual-boundary masks.
- The tokenizer's losses stop at the shared pre-layers by default (``detach_features``): L_mem's gradient through
  the integrate-and-fire scan is ~80x the LM's there at init, so the encoder would learn L_mem's features.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from speak.errors import SpeakError
from speak.lm.boundaries.base import BoundaryOutput, Targets
from speak.lm.boundaries.learned import LearnedOptions, LearnedSource
from speak.lm.boundaries.losses import predictive_entropy
from speak.lm.boundaries.speak_losses import membrane_loss, reset_loss, reset_targets_from_entropy
from speak.neuron.modes import ResetMode
from speak.tokenizer import SpeakTokenizerNet, TokenizerConfig

# The ranges of L_mem's alpha and beta the paper searched (App. C.1): alpha in [0.8, 1.4], beta in [0.3, 0.8].
MEM_SCALE_GRID = ((0.8, 1.4), (0.3, 0.8))
# GTok's tokenizer (SPEC section 3): the pre-layer features are the ContextEncoder, Linear1 is DTP's MLP without
# tanh (App. C.1 follows DTP; tanh keeps I_t < u_th, so the neuron could not fire right after a hard reset).
GTOK_TOKENIZER = {"encoder": "features", "linear1": "mlp", "tanh": False}
# TokenizerConfig fields a run does not set: they come from the model (vocabulary size, feature width).
TOKENIZER_FROM_MODEL = ("vocab_size", "feature_dim")
# Step of the calibrated threshold toward each training batch's quantile (an exponential moving average).
CALIBRATION_RATE = 0.05


@dataclass
class SpeakOptions(LearnedOptions):
    detach_features: bool = True
    # TokenizerConfig overrides (``model.boundary.speak.<field>``) on top of GTOK_TOKENIZER
    speak: dict[str, Any] = field(default_factory=dict,
                                  metadata={"schema": TokenizerConfig, "exclude": TOKENIZER_FROM_MODEL})
    mem_alpha: float = 1.2  # L_mem's alpha (Eq. 14), initial value when learned
    mem_beta: float = 0.6  # L_mem's beta (Eq. 14)
    learn_mem_scales: bool = True  # GTok: alpha and beta are learned with the model (App. C.1)
    bound_mem_scales: bool = False  # keep learned alpha, beta inside MEM_SCALE_GRID (not in the paper)
    mem_second_term: bool = True  # False = "w/o L_mem 2nd term" (Table 5)
    mem_balanced: bool = True  # L_mem's spiking and silent sums each normalised by their own count
    entropy_ratio: float = 0.2  # top share of tokens by entropy that are high-entropy (App. A.2)
    mask_window: int = 512  # Eq. 9 compares e_t - its causal mean over ~this many characters (0: e_t itself)

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.entropy_ratio <= 1.0:
            raise SpeakError(f"boundary.entropy_ratio must be in [0, 1], got {self.entropy_ratio}")
        if self.mask_window < 0:
            raise SpeakError(f"boundary.mask_window must be >= 0 (0: no centring), got {self.mask_window}")

    def tokenizer_config(self, vocab_size: int, feature_dim: int) -> TokenizerConfig:
        opts = {**GTOK_TOKENIZER, **self.speak, "vocab_size": vocab_size}
        if opts["encoder"] == "features":
            opts["feature_dim"] = feature_dim
        try:
            return TokenizerConfig(**opts)
        except TypeError as exc:  # unknown keyword
            raise SpeakError(f"bad boundary.speak options {sorted(self.speak)}: {exc}") from exc


class SpeakBoundaries(LearnedSource):
    """The SPEAK tokenizer on the hourglass pre-layer features (GTok). Its hard boundaries are the spikes ``s``."""

    name = "speak"
    label = "SPEAK"
    Options = SpeakOptions
    opts: SpeakOptions
    needs = Targets.PROXY

    def __init__(self, opts, d_model, vocab_size, alphabet):
        super().__init__(opts, d_model, vocab_size, alphabet)
        tok_cfg = opts.tokenizer_config(vocab_size, d_model)
        if tok_cfg.encoder == "char-ngram" and tok_cfg.ngram_lookahead > 0:
            raise SpeakError("boundary.speak: ngram_lookahead reads future characters, which the LM must not see")
        self.net = SpeakTokenizerNet(tok_cfg)
        scales = torch.tensor([opts.mem_alpha, opts.mem_beta])  # L_mem's (alpha, beta), Eq. 14
        if opts.learn_mem_scales:
            self.mem_scales = nn.Parameter(scales)
        else:
            self.register_buffer("mem_scales", scales)
        self.register_buffer("mask_threshold", torch.zeros(()))  # Eq. 9's threshold as a logit, calibrated
        # the centring the threshold was calibrated with travels with it in the checkpoint
        self.register_buffer("mask_window", torch.tensor(opts.mask_window))
        self._mask_window = opts.mask_window
        self.add_encoder_head(d_model)

    def alpha_beta(self) -> tuple[Tensor, Tensor]:
        """L_mem's (alpha, beta) (Eq. 14); clamped to MEM_SCALE_GRID when ``bound_mem_scales`` (no gradient outside)."""
        alpha, beta = self.mem_scales[0], self.mem_scales[1]
        if self.opts.bound_mem_scales:
            (a_lo, a_hi), (b_lo, b_hi) = MEM_SCALE_GRID
            alpha, beta = alpha.clamp(a_lo, a_hi), beta.clamp(b_lo, b_hi)
        return alpha, beta

    def forward(self, chars: Tensor, features: Tensor) -> BoundaryOutput:
        mask = {"mask_threshold": self.mask_threshold, "mask_window": self._mask_window}
        if self.net.cfg.encoder == "features":  # GTok: the shared pre-layers are the ContextEncoder
            out = self.net(chars, features=self.features(features), **mask)
        else:  # its own per-character encoder (standalone setting inside the hourglass)
            out = self.net(chars, **mask)
        return BoundaryOutput(hard=out.s.detach().to(features.dtype), tokenizer=out,
                              head_logits=self.head_logits(features))  # [B, L]

    def source_losses(self, out, lm_logits, targets, valid):
        """L_mem (Eq. 14) against the proxy targets, and L_reset (Eq. 12) when the reset mode uses the masks."""
        o, ncfg, tok = self.opts, self.net.cfg, out.tokenizer
        targets = self.require_targets(targets, tok.u)  # [B, L]
        alpha, beta = self.alpha_beta()
        losses = {"l_mem": membrane_loss(
            tok.u, tok.current, targets, alpha=alpha, beta=beta, u_th=ncfg.u_th, u_reset=ncfg.u_reset,
            gamma=ncfg.gamma, delta=ncfg.delta, valid=valid, second_term=o.mem_second_term, balanced=o.mem_balanced)}
        if ResetMode.parse(ncfg.reset_mode).uses_mask:
            entropy = predictive_entropy(lm_logits)  # [B, L] the LM's next-char entropy, no grad
            e_hat = reset_targets_from_entropy(entropy, tok.s, ratio=o.entropy_ratio, valid=valid)  # [B, L]
            spikes = tok.s.detach() > 0.5  # [B, L] the token boundaries, where e_hat is defined
            at = spikes if valid is None else spikes & valid.bool()
            losses["l_reset"] = reset_loss(tok.mask_logits, e_hat, at)
            if self.training:
                self._calibrate_threshold(tok.mask_scores, at)
        return losses

    @torch.no_grad()
    def _calibrate_threshold(self, e: Tensor, spikes: Tensor) -> None:
        """Move Eq. 9's threshold toward the (1 - entropy_ratio) quantile of the scores e [B, L] it is compared with,
        at this batch's spikes [B, L], so about ``entropy_ratio`` of the spikes hard-reset, as many as there are
        high-entropy tokens (App. A.2)."""
        at = e[spikes].float()  # [K]
        if at.numel() == 0:
            return
        q = torch.quantile(at, 1.0 - self.opts.entropy_ratio)
        self.mask_threshold.lerp_(q.to(self.mask_threshold.dtype), CALIBRATION_RATE)

    @torch.no_grad()
    def reset_counts(self, out: BoundaryOutput, lm_logits: Tensor, keep: Tensor) -> dict[str, float]:
        """Counts over the positions ``keep`` [B, L] for the hard-reset share and C's precision/recall: spikes,
        spikes that hard-reset, spikes C marks (m = 1), high-entropy targets e_hat (top ``entropy_ratio`` tokens of
        the batch, Eq. 12) and the targets C marks."""
        tok, ncfg = out.tokenizer, self.net.cfg
        spikes = tok.s > 0.5  # [B, L]
        hard, _ = ResetMode.parse(ncfg.reset_mode).resolve(tok.mask, ncfg.theta, spikes.shape, spikes.device)
        hard = torch.zeros_like(spikes) if hard is None else hard.bool()
        entropy = predictive_entropy(lm_logits)  # [B, L]
        e_hat = reset_targets_from_entropy(entropy, tok.s, ratio=self.opts.entropy_ratio) > 0.5  # [B, L]
        marked = tok.mask.bool() & spikes & keep
        return {"spikes": float((spikes & keep).sum()), "hard_resets": float((hard & spikes & keep).sum()),
                "c_marked": float(marked.sum()), "c_targets": float((e_hat & keep).sum()),
                "c_hits": float((marked & e_hat).sum())}

    @staticmethod
    def fill_legacy_state(state_dict: dict[str, Tensor], prefix: str) -> None:
        """A checkpoint decides as it was trained: from before the calibrated threshold, Eq. 9's 0.5 (logit 0) on
        the raw logit; from before the centring, its threshold on the raw logit (window 0)."""
        state_dict.setdefault(prefix + "mask_threshold", torch.zeros(()))
        state_dict.setdefault(prefix + "mask_window", torch.tensor(0))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        self.fill_legacy_state(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._mask_window = int(self.mask_window)

    def _encoder_params(self) -> set[int]:
        if self.net.cfg.encoder != "features":
            return set()  # its own encoder runs and counts as the tokenizer's
        enc = getattr(self.net, "encoder", None)
        return {id(p) for p in enc.parameters()} if isinstance(enc, nn.Module) else set()

    def unused_parameters(self) -> Iterator[nn.Parameter]:
        skip = self._encoder_params() | {id(p) for p in super().unused_parameters()}  # own encoder replaced, head
        return (p for p in self.parameters() if id(p) in skip)
