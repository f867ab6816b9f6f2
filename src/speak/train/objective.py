"""The training objective over one batch (the hourglass/trainer seam, docs/ARCHITECTURE.md).

    L_total = L_LM + w * L_aux(source)

- L_LM: mean cross-entropy (nats) of ``logits[:, t]`` vs ``chars[:, t + 1]``; targets equal to ``<pad>`` (id 0)
  are ignored. bpc = L_LM / ln 2.
- L_aux by boundary source (w = ``config.boundary.loss_weight``):
  ``dtp-unigram``: ``boundary_bce(logits, batch.boundary_targets)``;
  ``dtp-entropy``: ``boundary_bce(logits, dtp_entropy_targets(LM logits))`` (targets from the LM's own predictive
  entropy, no grad); ``dtp-gumbel``: ``binomial_prior_loss(hard, prior)``; ``magnet``: the per-script Binomial prior;
  ``none`` / ``fixed`` / ``whitespace``: nothing; ``speak``: :func:`_speak_aux_losses` (L_mem, L_reset, and
  ``boundary.encoder_bce`` x the BCE of its encoder head vs the proxy, DTP-Entropy's targets, or both (one output
  each), by ``encoder_bce_targets``, when that option is on).
  Positions whose input is ``<pad>`` are masked out of every auxiliary loss.
- metrics: loss, lm_loss, bpc, sf (B * L / groups over the batch, trailing partial groups included; 1.0 for the
  vanilla model), n_groups, boundary_rate, and each auxiliary loss by name.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch.nn.functional as F
from torch import Tensor

from speak.errors import SpeakError
from speak.lm.pooling import count_groups
from speak.neuron.modes import ResetMode
from speak.train.entropy import predictive_entropy, reset_targets_from_entropy
from speak.train.spiking_losses import membrane_loss, reset_loss
from speak.train.losses import (
    binomial_prior_loss,
    boundary_bce,
    dtp_entropy_targets,
    entropy_spike_targets,
    per_script_binomial_prior_loss,
)

if TYPE_CHECKING:  # pragma: no cover
    from speak.lm.hourglass import HourglassLM, HourglassOutput
    from speak.train.data import Batch

__all__ = ["PAD_ID", "compute_objective", "shortening_factor"]

PAD_ID = 0  # CharVocab: 0 = <pad>


def shortening_factor(hard: Tensor, shortens: bool = True) -> tuple[float, int]:
    """(SF, groups): characters / groups over the batch, counting each sequence's trailing partial group."""
    B, L = hard.shape
    if not shortens:
        return 1.0, B * L
    groups = int(count_groups(hard).sum().item())
    return (B * L) / max(groups, 1), groups


def _speak_aux_losses(model: Any, out: "HourglassOutput", batch: "Batch", inputs: Tensor) -> dict[str, Tensor]:
    """SPEAK's auxiliary losses (paper Sec. 3.2-3.3): L_mem against the proxy targets and the entropy-aware L_reset.

    - L_mem (Eq. 14) pulls u toward the proxy s_hat, which the data stream puts in ``batch.boundary_targets``
      (the ProxyStore, keyed by corpus offset and refined by Metropolis-Hastings, Eq. 13, 15, 16).
    - L_reset (Eq. 12): the tokens of the tokenizer's own spikes are ranked by the LM's predictive entropy of their
      first character (no grad); the top `entropy_ratio` of the batch put e_hat = 1 on the spike closing the token
      before them. Only when the reset mode uses the contextual-boundary masks.
    """
    cfg = model.config.boundary
    source = model.boundary_source
    tok = out.boundary.tokenizer
    valid = inputs != PAD_ID  # [B, L]
    if batch.boundary_targets is None:
        raise SpeakError("boundary source 'speak' needs proxy targets in batch.boundary_targets (enable the proxy)")
    ncfg = source.net.cfg
    alpha, beta = source.alpha_beta()
    losses = {"l_mem": membrane_loss(
        tok.u, tok.current, batch.boundary_targets.to(tok.u.device), alpha=alpha, beta=beta, u_th=ncfg.u_th,
        u_reset=ncfg.u_reset, gamma=ncfg.gamma, delta=ncfg.delta, valid=valid, second_term=cfg.mem_second_term,
        balanced=cfg.mem_balanced)}
    uses_mask = ResetMode.parse(ncfg.reset_mode).uses_mask
    bce_kinds = cfg.encoder_bce_kinds if out.boundary.logits is not None else ()
    # the LM's next-char entropy (no grad), computed once for L_reset and the entropy BCE
    entropy = predictive_entropy(out.logits) if uses_mask or "entropy" in bce_kinds else None  # [B, L]
    if uses_mask:
        e_hat = reset_targets_from_entropy(entropy, tok.s, ratio=cfg.entropy_ratio, mode=cfg.entropy_mode,
                                           valid=valid)  # [B, L]
        losses["l_reset"] = reset_loss(tok.mask_logits, e_hat, valid)
    if bce_kinds:  # encoder_bce (not in the paper): the pre-layers learn boundaries
        logits = out.boundary.logits  # [B, L] or [B, L, K]: one column per target kind
        logits = logits.unsqueeze(-1) if logits.dim() == 2 else logits  # [B, L, K]
        total = logits.new_zeros(())
        for k, kind in enumerate(bce_kinds):
            if kind == "entropy":
                targets = entropy_spike_targets(entropy)  # [B, L]
            else:
                targets = batch.boundary_targets.to(logits.device)  # [B, L]
            total = total + boundary_bce(logits[..., k], targets, valid.to(logits.dtype))
        losses["encoder_bce"] = cfg.encoder_bce * total
    return losses


def _aux_losses(model: Any, out: "HourglassOutput", batch: "Batch", inputs: Tensor) -> dict[str, Tensor]:
    cfg = model.config.boundary
    name = cfg.name
    b = out.boundary
    mask = (inputs != PAD_ID).to(out.logits.dtype)  # [B, L]
    if name in ("none", "fixed", "whitespace"):
        return {}
    if name == "dtp-unigram":
        if batch.boundary_targets is None:
            raise SpeakError("boundary source 'dtp-unigram' needs batch.boundary_targets (exemplar boundaries)")
        targets = batch.boundary_targets.to(b.logits.device)  # [B, L]
        if targets.shape != b.logits.shape:
            raise SpeakError(f"boundary_targets shape {tuple(targets.shape)} != inputs shape {tuple(b.logits.shape)}")
        return {"boundary_bce": boundary_bce(b.logits, targets, mask)}
    if name == "dtp-entropy":
        return {"boundary_bce": boundary_bce(b.logits, dtp_entropy_targets(out.logits), mask)}
    if name == "dtp-gumbel":
        return {"prior": binomial_prior_loss(b.hard, cfg.prior, mask)}
    if name == "magnet":
        priors = model.boundary_source.priors  # [n_scripts]
        return {"prior": per_script_binomial_prior_loss(b.hard, b.script_ids, priors, mask)}
    if name == "speak":
        return _speak_aux_losses(model, out, batch, inputs)
    raise SpeakError(f"compute_objective does not know boundary source {name!r}")


def compute_objective(model: "HourglassLM", batch: "Batch", *, step: int) -> tuple[Tensor, dict[str, float]]:
    """Total loss (L_LM + the boundary source's auxiliary losses) and scalar metrics (lm_loss, bpc, sf, ...)."""
    core = getattr(model, "module", model)  # unwrap DDP for the config / source; call the wrapper itself
    chars = batch.chars
    inputs, targets = chars[:, :-1], chars[:, 1:]  # [B, L] each
    out = model(inputs)
    V = out.logits.shape[-1]
    lm_loss = F.cross_entropy(
        out.logits.reshape(-1, V).float(), targets.reshape(-1), ignore_index=PAD_ID
    )  # nats per predicted character
    aux = _aux_losses(core, out, batch, inputs)
    weight = core.config.boundary.loss_weight
    total = lm_loss
    for value in aux.values():
        total = total + weight * value
    sf, groups = shortening_factor(out.boundary.hard, core.boundary_source.shortens)
    metrics: dict[str, float] = {
        "loss": float(total.detach()),
        "lm_loss": float(lm_loss.detach()),
        "bpc": float(lm_loss.detach()) / math.log(2.0),
        "sf": sf,
        "n_groups": float(groups),
        "boundary_rate": float(out.boundary.hard.detach().float().mean()),
    }
    for key, value in aux.items():
        metrics[key] = float(value.detach())
    return total, metrics
