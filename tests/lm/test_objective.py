"""Baseline losses and compute_objective: formulas, metrics, a few training steps per boundary source."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from speak.errors import SpeakError
from speak.lm.hourglass import count_parameters
from speak.lm.boundaries.losses import (
    binomial_prior_loss,
    boundary_bce,
    dtp_entropy_targets,
    per_script_binomial_prior_loss,
    predictive_entropy,
)
from speak.lm.boundaries.speak import MEM_SCALE_GRID
from speak.lm.boundaries.speak_losses import membrane_loss, reset_loss, reset_targets_from_entropy
from speak.train.data import Batch
from speak.train.objective import batch_shortening, compute_objective

from ._helpers import TEXT, all_sources, encode, tiny_model


def _speak_aux_losses(model, out, batch, inputs):
    """The source's auxiliary losses as the objective computes them."""
    return model.boundary_source.aux_losses(out.boundary, out.logits, batch.boundary_targets, inputs != 0)


# ------------------------------------------------------------------------------------------------ losses
def test_boundary_bce_is_on_logits():
    z = torch.tensor([[2.0, -1.0, 0.5]])
    y = torch.tensor([[1.0, 0.0, 0.0]])
    want = -(math.log(torch.sigmoid(z[0, 0])) + math.log(1 - torch.sigmoid(z[0, 1])) + math.log(1 - torch.sigmoid(z[0, 2]))) / 3
    assert boundary_bce(z, y).item() == pytest.approx(want, rel=1e-6)
    double_sigmoid = F.binary_cross_entropy_with_logits(torch.sigmoid(z), y).item()
    assert boundary_bce(z, y).item() != pytest.approx(double_sigmoid, rel=1e-3)
    mask = torch.tensor([[1.0, 0.0, 0.0]])
    assert boundary_bce(z, y, mask).item() == pytest.approx(-math.log(torch.sigmoid(z[0, 0])), rel=1e-6)


def test_binomial_prior_matches_distribution():
    hard = torch.tensor([[1.0, 0, 0, 0, 1, 0, 0, 0, 0, 0], [1.0, 1, 1, 1, 1, 1, 0, 0, 0, 0]])
    got = binomial_prior_loss(hard, 0.2)
    d = torch.distributions.Binomial(10, torch.tensor(0.2))
    want = -(d.log_prob(torch.tensor(2.0)) + d.log_prob(torch.tensor(6.0))) / 10 / 2
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    # mode of the prior costs less than far from it
    assert binomial_prior_loss(hard[:1], 0.2) < binomial_prior_loss(hard[1:], 0.2)


def test_binomial_prior_gradient_pushes_towards_prior():
    p = torch.full((1, 50), 0.8, requires_grad=True)
    binomial_prior_loss(p, 0.2).backward()
    assert (p.grad > 0).all()  # lowering the boundary count lowers the loss


def test_per_script_prior_reduces_to_single_script():
    torch.manual_seed(0)
    hard = (torch.rand(3, 20) < 0.3).float()
    ids = torch.full((3, 20), 1, dtype=torch.long)
    priors = torch.tensor([0.5, 0.2, 0.1])
    got = per_script_binomial_prior_loss(hard, ids, priors)
    assert got.item() == pytest.approx(binomial_prior_loss(hard, 0.2).item(), rel=1e-5)


def test_per_script_prior_sums_scripts():
    hard = torch.tensor([[1.0, 0, 1, 0, 0, 1]])
    ids = torch.tensor([[1, 1, 1, 2, 2, 2]])
    priors = torch.tensor([0.5, 0.2, 0.1])
    got = per_script_binomial_prior_loss(hard, ids, priors)
    a = torch.distributions.Binomial(3, torch.tensor(0.2)).log_prob(torch.tensor(2.0))
    b = torch.distributions.Binomial(3, torch.tensor(0.1)).log_prob(torch.tensor(1.0))
    assert got.item() == pytest.approx((-(a + b) / 6).item(), rel=1e-5)


def test_dtp_entropy_targets_hand_example():
    # entropies via temperature of a uniform-vs-peaked distribution
    H = torch.tensor([0.5, 1.0, 0.2, 0.3, 0.9, 0.1])
    V = 5

    def logits_with_entropy(h):
        # bisection on a logit gap g: distribution [e^g, 1, 1, 1, 1] / Z has entropy decreasing in g
        lo, hi = 0.0, 50.0
        for _ in range(80):
            mid = (lo + hi) / 2
            ent = predictive_entropy(torch.tensor([[[mid] + [0.0] * (V - 1)]]))[0, 0].item()
            lo, hi = (mid, hi) if ent > h else (lo, mid)
        return torch.tensor([lo] + [0.0] * (V - 1))

    logits = torch.stack([logits_with_entropy(h.item()) for h in H]).unsqueeze(0)  # [1, 6, V]
    y = dtp_entropy_targets(logits)
    # t=0: never; t=1: 1.0 > 0.5; t=2: no; t=3: 0.3 > 0.2 but not > 1.0; t=4: 0.9 > 0.3, 0.2; t=5: no
    assert y[0].tolist() == [0, 1, 0, 0, 1, 0]
    assert not y.requires_grad


# ------------------------------------------------------------------------------------------------ objective
def _batches(L=32, B=4, seed=0):
    ids = encode(TEXT * 4)
    g = torch.Generator().manual_seed(seed)
    while True:
        off = torch.randint(0, ids.numel() - L - 1, (B,), generator=g)
        chars = torch.stack([ids[o : o + L + 1] for o in off.tolist()])  # [B, L + 1]
        targets = torch.stack([(ids[o : o + L] == encode(" ")[0]).float() for o in off.tolist()])  # word ends
        yield Batch(chars=chars, offsets=off, boundary_targets=targets)


def test_metrics_and_sf():
    model = tiny_model("fixed", fixed_k=4)
    batch = next(_batches(L=32))
    loss, m = compute_objective(model, batch, step=0)
    assert loss.requires_grad
    assert {"loss", "lm_loss", "bpc", "sf", "n_groups", "boundary_rate"} <= set(m)
    assert m["bpc"] == pytest.approx(m["lm_loss"] / math.log(2))
    assert m["sf"] == pytest.approx(4.0)
    assert batch_shortening(torch.tensor([[0.0, 1, 0, 0, 0]]))[0] == pytest.approx(5 / 2)
    assert batch_shortening(torch.tensor([[1.0, 1, 1]]), shortens=False)[0] == 1.0


def test_lm_loss_is_next_char_cross_entropy():
    model = tiny_model("none").eval()
    batch = next(_batches(L=16, B=2))
    _, m = compute_objective(model, batch, step=0)
    logits = model(batch.chars[:, :-1]).logits
    want = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.chars[:, 1:].reshape(-1))
    assert m["lm_loss"] == pytest.approx(want.item(), rel=1e-5)
    assert m["sf"] == 1.0


def test_dtp_unigram_needs_targets():
    model = tiny_model("dtp-unigram")
    b = next(_batches())
    with pytest.raises(SpeakError, match="exemplar targets in batch.boundary_targets"):
        compute_objective(model, Batch(chars=b.chars, offsets=b.offsets), step=0)


def test_speak_losses_train_heads_and_mem_scales():
    """L_mem (proxy targets) and L_reset (entropy targets) reach both heads and the learnable alpha, beta."""
    model = tiny_model("speak").train()
    batch = next(_batches())
    loss, m = compute_objective(model, batch, step=0)
    assert {"l_mem", "l_reset"} <= set(m)
    loss.backward()
    net = model.boundary_source.net
    assert net.linear1[0].weight.grad.abs().sum() > 0  # L_mem -> T
    assert net.linear2.weight.grad.abs().sum() > 0  # L_reset -> C
    assert model.boundary_source.mem_scales.grad.abs().sum() > 0  # learnable alpha, beta (GTok)


def test_speak_losses_match_their_equations():
    model = tiny_model("speak", learn_mem_scales=False, mem_alpha=1.3, mem_beta=0.5).eval()
    batch = next(_batches())
    inputs = batch.chars[:, :-1]
    out = model(inputs)
    got = _speak_aux_losses(model, out, batch, inputs)
    tok = out.boundary.tokenizer
    want_mem = membrane_loss(tok.u, tok.current, batch.boundary_targets, alpha=1.3, beta=0.5, balanced=True)
    e_hat = reset_targets_from_entropy(predictive_entropy(out.logits), tok.s, ratio=0.2)
    torch.testing.assert_close(got["l_mem"], want_mem)
    torch.testing.assert_close(got["l_reset"], reset_loss(tok.mask_logits, e_hat, tok.s > 0.5))  # at the spikes


def test_bounded_mem_scales_use_the_papers_grid():
    """With bound_mem_scales, L_mem sees alpha, beta clamped to App. C.1's grid, and no gradient moves them outward."""
    model = tiny_model("speak", bound_mem_scales=True).eval()
    source = model.boundary_source
    with torch.no_grad():
        source.mem_scales.copy_(torch.tensor([0.3, 1.5]))  # both outside: alpha low, beta high
    (a_lo, _), (_, b_hi) = MEM_SCALE_GRID
    alpha, beta = source.alpha_beta()
    assert (float(alpha.detach()), float(beta.detach())) == pytest.approx((a_lo, b_hi))
    batch = next(_batches())
    inputs = batch.chars[:, :-1]
    out = model(inputs)
    got = _speak_aux_losses(model, out, batch, inputs)["l_mem"]
    tok = out.boundary.tokenizer
    want = membrane_loss(tok.u, tok.current, batch.boundary_targets, alpha=a_lo, beta=b_hi, balanced=True)
    torch.testing.assert_close(got, want)
    got.backward()
    assert source.mem_scales.grad.abs().sum() == 0


def test_speak_uniform_reset_has_no_reset_loss_and_needs_proxy_targets():
    model = tiny_model("speak", speak={"reset_mode": "all-hard"})
    batch = next(_batches())
    _, m = compute_objective(model, batch, step=0)
    assert "l_mem" in m and "l_reset" not in m
    with pytest.raises(SpeakError, match="proxy targets"):
        compute_objective(model, Batch(chars=batch.chars, offsets=batch.offsets), step=0)


AUX = {"dtp-entropy": "boundary_bce", "dtp-unigram": "boundary_bce", "dtp-gumbel": "prior", "magnet": "prior",
       "hnet": "ratio", "blt": "entropy_lm"}


@pytest.mark.parametrize("name", all_sources())
def test_each_source_trains_a_few_steps(name):
    torch.manual_seed(0)
    model = tiny_model(name).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    batches = _batches(L=32, B=4, seed=1)
    history = []
    for step in range(12):
        loss, m = compute_objective(model, next(batches), step=step)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        history.append(m)
    if name in AUX:
        assert AUX[name] in history[0]
    first = sum(h["lm_loss"] for h in history[:3]) / 3
    last = sum(h["lm_loss"] for h in history[-3:]) / 3
    assert last < first
    if name == "none":
        assert all(h["sf"] == 1.0 for h in history)
    elif name == "blt":  # a fresh entropy model is near uniform (every entropy above theta: SF 1) and learns
        assert history[-1]["entropy_lm"] < history[0]["entropy_lm"]
    else:
        assert all(h["sf"] > 1.0 for h in history)


def test_predictor_gets_gradient_from_its_loss():
    for name in ("dtp-entropy", "dtp-unigram", "dtp-gumbel", "magnet"):
        model = tiny_model(name).train()
        loss, _ = compute_objective(model, next(_batches()), step=0)
        loss.backward()
        grads = [p.grad for p in model.boundary_source.parameters()]
        assert all(g is not None for g in grads) or name == "magnet", name
        assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0, name


@pytest.mark.parametrize("name", all_sources())
def test_bf16_autocast_runs_and_counts_exactly(name):
    """Under autocast (CPU bf16 here, CUDA fp16/bf16 in the trainer) group counts stay exact beyond 256."""
    model = tiny_model(name, **({"fixed_k": 1} if name == "fixed" else {})).train()
    batch = next(_batches(L=300, B=1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, m = compute_objective(model, batch, step=0)
    assert math.isfinite(loss.item())
    loss.backward()
    if name == "fixed":
        assert m["sf"] == 1.0 and m["n_groups"] == 300.0


def test_lm_loss_sends_no_gradient_through_speak_spikes():
    """The tokenizer learns from the proxy (L_mem), not from L_LM through the spike surrogate (paper Fig. 2D)."""
    model = tiny_model("speak").train()
    batch = next(_batches())
    out = model(batch.chars[:, :-1])
    V = out.logits.shape[-1]
    F.cross_entropy(out.logits.reshape(-1, V), batch.chars[:, 1:].reshape(-1)).backward()
    head = model.boundary_source.net.linear1
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0.0 for p in head.parameters())


def test_speak_tokenizer_losses_stop_at_the_shared_encoder_by_default():
    """L_mem's gradient through the scan would swamp the LM's in the shared pre-layers: detached by default."""
    batch = next(_batches())
    inputs = batch.chars[:, :-1]

    def encoder_grad(**opts):
        model = tiny_model("speak", **opts).train()
        out = model(inputs)
        _speak_aux_losses(model, out, batch, inputs)["l_mem"].backward()
        return sum(float(p.grad.abs().sum()) for n, p in model.named_parameters()
                   if p.grad is not None and not n.startswith("boundary_source"))

    assert encoder_grad() == 0.0
    assert encoder_grad(detach_features=False) > 0.0


def test_speak_encoder_bce_trains_only_the_shared_encoder_and_its_own_head():
    """encoder_bce (not in the paper): a BCE of a separate head vs the proxy reaches the pre-layers; the tokenizer's
    heads, its spikes and L_mem stay what they are without it."""
    batch = next(_batches())
    inputs = batch.chars[:, :-1]
    plain = tiny_model("speak").train()
    model = tiny_model("speak", encoder_bce=0.5).train()
    assert plain.boundary_source.encoder_head is None
    head_ids = {id(p) for p in model.boundary_source.encoder_head.parameters()}
    assert not head_ids & {id(p) for p in model.boundary_source.tokenizer_parameters()}

    out, out_plain = model(inputs), plain(inputs)
    assert torch.equal(out.boundary.hard, out_plain.boundary.hard)
    losses = _speak_aux_losses(model, out, batch, inputs)
    plain_losses = _speak_aux_losses(plain, out_plain, batch, inputs)
    assert "encoder_bce" not in plain_losses
    assert float(losses["l_mem"].detach()) == pytest.approx(float(plain_losses["l_mem"].detach()))
    valid = (inputs != 0).float()
    expected = 0.5 * boundary_bce(out.boundary.head_logits, batch.boundary_targets, valid)
    assert float(losses["encoder_bce"].detach()) == pytest.approx(float(expected.detach()))

    losses["encoder_bce"].backward()
    grads = {n: float(p.grad.abs().sum()) for n, p in model.named_parameters() if p.grad is not None}
    assert sum(v for n, v in grads.items() if not n.startswith("boundary_source")) > 0.0  # the pre-layers learn
    assert sum(v for n, v in grads.items() if n.startswith("boundary_source.net")) == 0.0  # the tokenizer does not
    # a training aid only: inference neither runs the head nor counts its parameters
    model.eval()
    assert model(inputs).boundary.head_logits is None
    assert count_parameters(model) == count_parameters(plain)
    with pytest.raises(SpeakError, match="encoder_bce"):
        tiny_model("speak", encoder_bce=-1.0)
    with pytest.raises(SpeakError, match="encoder_bce_targets"):
        tiny_model("speak", encoder_bce=1.0, encoder_bce_targets="exemplar")


def test_speak_encoder_bce_on_entropy_targets_learns_dtp_entropy_spikes():
    """encoder_bce_targets=entropy: the head's BCE is against DTP-Entropy's targets from the LM's own logits, not the
    proxy; the proxy still drives L_mem."""
    batch = next(_batches())
    inputs = batch.chars[:, :-1]
    model = tiny_model("speak", encoder_bce=1.0, encoder_bce_targets="entropy").train()
    out = model(inputs)
    losses = _speak_aux_losses(model, out, batch, inputs)
    valid = (inputs != 0).float()
    entropy_targets = dtp_entropy_targets(out.logits)
    assert not torch.equal(entropy_targets, batch.boundary_targets.float())
    expected = boundary_bce(out.boundary.head_logits, entropy_targets, valid)
    assert float(losses["encoder_bce"].detach()) == pytest.approx(float(expected.detach()))
    proxy_bce = boundary_bce(out.boundary.head_logits, batch.boundary_targets, valid)
    assert float(losses["encoder_bce"].detach()) != pytest.approx(float(proxy_bce.detach()))


def test_speak_encoder_bce_on_both_targets_sums_one_bce_per_head_output():
    """encoder_bce_targets=proxy+entropy: the head has one output per target kind; the loss is the sum of the two BCEs."""
    batch = next(_batches())
    inputs = batch.chars[:, :-1]
    model = tiny_model("speak", encoder_bce=0.5, encoder_bce_targets="proxy+entropy").train()
    out = model(inputs)
    assert out.boundary.head_logits.shape == (*inputs.shape, 2)
    losses = _speak_aux_losses(model, out, batch, inputs)
    valid = (inputs != 0).float()
    expected = 0.5 * (boundary_bce(out.boundary.head_logits[..., 0], batch.boundary_targets, valid)
                      + boundary_bce(out.boundary.head_logits[..., 1], dtp_entropy_targets(out.logits), valid))
    assert float(losses["encoder_bce"].detach()) == pytest.approx(float(expected.detach()))
    model.eval()
    assert model(inputs).boundary.head_logits is None


def test_encoder_bce_is_open_to_every_learned_source():
    """The encoder-BCE head is a LearnedSource option: on DTP-Unigram it learns the exemplar targets its predictor
    trains on; a source without boundary targets can only use the entropy targets."""
    batch = next(_batches())
    inputs = batch.chars[:, :-1]
    model = tiny_model("dtp-unigram", encoder_bce=0.5).train()
    out = model(inputs)
    losses = model.boundary_source.aux_losses(out.boundary, out.logits, batch.boundary_targets, inputs != 0)
    assert set(losses) == {"boundary_bce", "encoder_bce"}
    expected = 0.5 * boundary_bce(out.boundary.head_logits, batch.boundary_targets, (inputs != 0).float())
    assert float(losses["encoder_bce"].detach()) == pytest.approx(float(expected.detach()))
    assert tiny_model("dtp-entropy", encoder_bce=1.0, encoder_bce_targets="entropy") is not None
    with pytest.raises(SpeakError, match="no boundary targets"):
        tiny_model("dtp-entropy", encoder_bce=1.0)


def test_per_script_prior_takes_one_set_of_priors_per_sequence():
    torch.manual_seed(0)
    hard = (torch.rand(2, 40) < 0.2).float()
    ids = torch.randint(0, 3, (2, 40))
    per_seq = torch.tensor([[0.5, 0.2, 0.1], [0.3, 0.25, 0.15]])  # [B = 2, S = 3]
    got = per_script_binomial_prior_loss(hard, ids, per_seq)
    rows = [per_script_binomial_prior_loss(hard[i : i + 1], ids[i : i + 1], per_seq[i]) for i in range(2)]
    assert got.item() == pytest.approx(sum(r.item() for r in rows) / 2, rel=1e-5)
