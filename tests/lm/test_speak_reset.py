"""SPEAK's contextual-boundary predictor C inside the hourglass: where L_reset (Eq. 12) is taken, Eq. 9's
threshold, and the hard-reset share and C's precision/recall that every SPEAK run reports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speak.eval.metrics import RESET_KEYS, evaluate_bpc, reset_metrics
from speak.lm.boundaries.losses import predictive_entropy
from speak.lm.boundaries.speak_losses import reset_loss, reset_targets_from_entropy
from speak.tokenizer.model import causal_mean
from speak.train.checkpoint import load_model_weights

from ._helpers import TEXT, encode, tiny_model


def _inputs(B: int = 4, L: int = 48) -> torch.Tensor:
    ids = encode(TEXT)
    return torch.stack([ids[i * 7 : i * 7 + L] for i in range(B)])  # [B, L]


def _spiky(model):
    """A spike every few characters at init (the untrained current rarely crosses u_th)."""
    with torch.no_grad():
        model.boundary_source.net.linear1[-1].bias.fill_(0.4)
    return model


def _losses(model, x):
    out = model(x)
    return out, model.boundary_source.source_losses(out.boundary, out.logits, torch.zeros_like(x), x != 0)


def test_reset_loss_averages_over_the_spikes_only():
    model = tiny_model("speak").eval()
    x = _inputs()
    out, got = _losses(model, x)
    tok = out.boundary.tokenizer
    spikes = tok.s > 0.5
    assert 0 < int(spikes.sum()) < spikes.numel()
    e_hat = reset_targets_from_entropy(predictive_entropy(out.logits), tok.s, ratio=0.2, valid=x != 0)
    torch.testing.assert_close(got["l_reset"], reset_loss(tok.mask_logits, e_hat, spikes & (x != 0)))
    assert not torch.allclose(got["l_reset"], reset_loss(tok.mask_logits, e_hat, x != 0))


def test_calibrated_threshold_moves_toward_the_spikes_quantile_and_gates_the_mask():
    model = tiny_model("speak").train()
    source = model.boundary_source
    x = _inputs(B=8, L=64)
    _spiky(model)
    assert float(source.mask_threshold) == 0.0
    assert "mask_threshold" in source.state_dict()  # saved with the model
    for _ in range(100):  # the moving average closes 1 - 0.95^100 of the gap
        out, _ = _losses(model, x)
    tok = out.boundary.tokenizer
    e = tok.mask_logits.detach()  # [B, L]
    torch.testing.assert_close(tok.mask_scores, e - causal_mean(e, source.opts.mask_window))  # centred by default
    q = float(torch.quantile(tok.mask_scores[tok.s > 0.5], 0.8))
    assert float(source.mask_threshold) == pytest.approx(q, abs=0.02)  # the spikes move with the mask
    assert torch.equal(tok.mask, tok.mask_scores > source.mask_threshold)
    spikes = tok.s > 0.5
    assert int(spikes.sum()) >= 50
    share = float((tok.mask & spikes).sum() / spikes.sum())
    assert 0.1 < share < 0.3  # about the top 20% of spikes


def test_causal_mean_matches_a_loop_and_ignores_the_future():
    x = torch.randn(2, 200, dtype=torch.float64)
    w = 6
    ref = torch.empty_like(x)
    for t in range(x.shape[1]):  # weights (1 - 1/w)^(t - k) for the last 4w positions, normalised
        ks = torch.arange(max(0, t - 4 * w + 1), t + 1)
        weights = (1 - 1 / w) ** (t - ks).double()
        ref[:, t] = (x[:, ks] * weights).sum(1) / weights.sum()
    torch.testing.assert_close(causal_mean(x, w), ref)
    y = x.clone()
    y[:, 120:] += 5.0
    torch.testing.assert_close(causal_mean(y, w)[:, :120], causal_mean(x, w)[:, :120])
    torch.testing.assert_close(causal_mean(torch.full((1, 30), 2.5), 4), torch.full((1, 30), 2.5))


def test_centred_mask_ignores_a_level_shift_of_c_and_window_0_is_eq9():
    x = _inputs()
    base = tiny_model("speak").eval()
    with torch.no_grad():
        base.boundary_source.mask_threshold.fill_(0.05)
    shifted = tiny_model("speak").eval()
    shifted.load_state_dict(base.state_dict())
    with torch.no_grad():
        shifted.boundary_source.net.linear2.bias.add_(3.0)  # every logit e_t moves by 3
    a, b = base(x).boundary.tokenizer, shifted(x).boundary.tokenizer
    assert not torch.allclose(a.mask_logits, b.mask_logits)
    assert torch.equal(a.mask, b.mask) and 0 < int(a.mask.sum()) < a.mask.numel()
    raw = tiny_model("speak", mask_window=0).eval()
    raw.load_state_dict({**base.state_dict(), "boundary_source.mask_window": torch.tensor(0)})
    tok = raw(x).boundary.tokenizer
    assert torch.equal(tok.mask, tok.mask_logits.detach() > 0.05)


def test_threshold_stays_in_eval_mode_and_checkpoints_without_it_load_eq9():
    model = tiny_model("speak", mask_window=0).eval()
    x = _inputs()
    _losses(model, x)
    assert float(model.boundary_source.mask_threshold) == 0.0  # calibrated in training only
    state = {k: v for k, v in model.state_dict().items() if not k.endswith(("mask_threshold", "mask_window"))}
    fresh = tiny_model("speak", seed=1, mask_window=0)
    with torch.no_grad():
        fresh.boundary_source.mask_threshold.fill_(3.0)
    fresh.load_state_dict(state)  # an older checkpoint: Eq. 9's sigmoid(e) > 0.5
    assert float(fresh.boundary_source.mask_threshold) == 0.0
    tok = fresh.eval()(x).boundary.tokenizer
    assert torch.equal(tok.mask, torch.sigmoid(tok.mask_logits) > 0.5)


def test_checkpoints_carry_the_centring_their_threshold_was_calibrated_with():
    x = _inputs()
    trained = tiny_model("speak", mask_window=8).eval()
    with torch.no_grad():
        trained.boundary_source.mask_threshold.fill_(0.1)
    other = tiny_model("speak", seed=1, mask_window=32)  # a config that asks for another window
    other.load_state_dict(trained.state_dict())
    assert torch.equal(other.eval()(x).boundary.tokenizer.mask, trained(x).boundary.tokenizer.mask)
    before = {k: v for k, v in trained.state_dict().items() if not k.endswith("mask_window")}
    other.load_state_dict(before)  # saved before the centring: the raw logit against its threshold
    tok = other(x).boundary.tokenizer
    assert torch.equal(tok.mask, tok.mask_logits.detach() > 0.1)
    again = tiny_model("speak", seed=2)
    load_model_weights(again, before)  # what `speak eval` and resume use: the same reading, no missing-key error
    assert int(again.boundary_source.mask_window) == 0
    assert torch.equal(again.eval()(x).boundary.tokenizer.mask, tok.mask)


def test_reset_counts_by_hand():
    """Counts at the kept positions from a hand-made tokenizer output and entropies."""
    model = tiny_model("speak").eval()
    out = model(_inputs(B=1, L=8))
    tok = out.boundary.tokenizer
    # tokens [0,1] [2,3,4] [5] [6,7]; closing spikes at 1, 4, 5, 7; C marks the spikes at 1 and 7
    tok.s = torch.tensor([[0, 1, 0, 0, 1, 1, 0, 1]], dtype=torch.float32)
    tok.mask = torch.tensor([[0, 1, 0, 1, 0, 0, 0, 1]], dtype=torch.bool)  # position 3 is no spike: ignored
    logits = torch.zeros(1, 8, 5)
    logits[0, :, 0] = 10.0  # peaked everywhere ...
    logits[0, 1] = 0.0  # ... but uniform for predicting char 2: token [2,3,4] is the high-entropy one
    keep = torch.ones(1, 8, dtype=torch.bool)
    c = model.boundary_source.reset_counts(out.boundary, logits, keep)
    # 3 candidate tokens, top 20% -> 1: the token starting at 2, so e_hat = 1 at the spike 1
    assert c == {"spikes": 4.0, "hard_resets": 2.0, "c_marked": 2.0, "c_targets": 1.0, "c_hits": 1.0}
    keep[0, :4] = False
    c = model.boundary_source.reset_counts(out.boundary, logits, keep)
    assert c == {"spikes": 3.0, "hard_resets": 1.0, "c_marked": 1.0, "c_targets": 0.0, "c_hits": 0.0}
    m = reset_metrics({"spikes": 10.0, "hard_resets": 4.0, "c_marked": 4.0, "c_targets": 2.0, "c_hits": 1.0})
    assert m == {"hard_reset_share": 0.4, "c_precision": 0.25, "c_recall": 0.5, "c_target_rate": 0.2}


@pytest.mark.parametrize("mode,share", [("entropy-aware", None), ("all-hard", 1.0), ("all-soft", 0.0)])
def test_evaluate_bpc_reports_the_reset_metrics_for_speak(mode, share):
    model = _spiky(tiny_model("speak", speak={"reset_mode": mode}))
    ids = encode(TEXT * 4).numpy().astype(np.int64)
    r = evaluate_bpc(model, ids, scored=32, context=32, batch_size=4, max_windows=8)
    assert set(RESET_KEYS) <= set(r)
    assert all(0.0 <= r[k] <= 1.0 for k in RESET_KEYS)
    assert 0.05 < r["c_target_rate"] < 0.4  # the top 20% of the windows' tokens, counted at the scored spikes
    if share is not None:
        assert r["hard_reset_share"] == share
    else:  # the hard resets are C's marks: hits = precision * marked = recall * targets
        assert r["c_precision"] * r["hard_reset_share"] == pytest.approx(r["c_recall"] * r["c_target_rate"])


def test_evaluate_bpc_reports_no_reset_metrics_for_other_sources():
    ids = encode(TEXT * 4).numpy().astype(np.int64)
    r = evaluate_bpc(tiny_model("dtp-entropy"), ids, scored=32, context=32, batch_size=4, max_windows=8)
    assert not set(RESET_KEYS) & set(r)
