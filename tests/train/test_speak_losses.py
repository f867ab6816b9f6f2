"""L_mem (Eq. 14), L_reset (Eq. 12), token-level entropy targets (App. A.2) and the n-gram entropy stand-in."""

import math

import numpy as np
import pytest
import torch

from speak.lm.boundaries.losses import predictive_entropy
from speak.lm.boundaries.speak_losses import membrane_loss, membrane_targets, reset_loss, reset_targets_from_entropy
from speak.train.entropy import NGramEntropy


def test_membrane_targets_by_hand():
    I = torch.tensor([[0.5, -0.3, 1.5]])
    fire, rest = membrane_targets(I, alpha=1.2, beta=0.6)
    # u_fire = max(1, 1 + I) = [1.5, 1.0, 2.5]; target = 1.2 u_fire - 0.2
    torch.testing.assert_close(fire, torch.tensor([[1.6, 1.0, 2.8]]))
    # u_rest = min(1 - eps, 0 + I) = [0.5, -0.3, 1 - eps]; target = 0.6 u_rest
    torch.testing.assert_close(rest, torch.tensor([[0.3, -0.18, 0.6 * (1 - 1e-8)]]))


def test_membrane_loss_by_hand_and_second_term():
    u = torch.tensor([[0.2, 1.1, 0.9]])
    I = torch.tensor([[0.5, -0.3, 1.5]])
    s_hat = torch.tensor([[0.0, 1.0, 1.0]])
    fire, rest = membrane_targets(I, alpha=1.2, beta=0.6)
    errs = [(rest[0, 0] - 0.2) ** 2, (fire[0, 1] - 1.1) ** 2, (fire[0, 2] - 0.9) ** 2]
    assert membrane_loss(u, I, s_hat, alpha=1.2, beta=0.6).item() == pytest.approx(float(sum(errs) / 3), rel=1e-6)
    assert membrane_loss(u, I, s_hat, alpha=1.2, beta=0.6, second_term=False).item() == pytest.approx(float((errs[1] + errs[2]) / 2), rel=1e-6)
    valid = torch.tensor([[True, True, False]])
    assert membrane_loss(u, I, s_hat, alpha=1.2, beta=0.6, valid=valid).item() == pytest.approx(float((errs[0] + errs[1]) / 2), rel=1e-6)
    # balanced: the one silent position weighs as much as the two spiking ones together
    balanced = 0.5 * (errs[0] + (errs[1] + errs[2]) / 2)
    assert membrane_loss(u, I, s_hat, alpha=1.2, beta=0.6, balanced=True).item() == pytest.approx(float(balanced), rel=1e-6)
    assert membrane_loss(u, I, s_hat, alpha=1.2, beta=0.6, valid=valid, balanced=True).item() == pytest.approx(
        float(0.5 * (errs[0] + errs[1])), rel=1e-6)


def test_membrane_loss_targets_are_detached_from_current():
    I = torch.tensor([[0.5, 0.7]], requires_grad=True)
    u = torch.tensor([[0.1, 0.2]], requires_grad=True)
    membrane_loss(u, I, torch.tensor([[1.0, 0.0]]), alpha=1.2, beta=0.6).backward()
    assert I.grad is None or float(I.grad.abs().sum()) == 0.0
    assert float(u.grad.abs().sum()) > 0


def test_membrane_loss_drives_spikes_toward_targets():
    from speak.neuron import lif_scan

    torch.manual_seed(0)
    logits = torch.zeros(1, 12, requires_grad=True)
    s_hat = torch.tensor([[0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 1]], dtype=torch.float32)
    opt = torch.optim.Adam([logits], lr=0.05)
    for _ in range(300):
        I = torch.tanh(logits)
        u, s, _ = lif_scan(I, None, theta=0.8)
        loss = membrane_loss(u, I, s_hat, alpha=1.2, beta=0.6)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, s, _ = lif_scan(torch.tanh(logits), None, theta=0.8)
    assert torch.equal(s, s_hat)


def test_reset_loss_is_bce_with_logits():
    e = torch.tensor([[2.0, -1.0]])
    y = torch.tensor([[1.0, 0.0]])
    want = -(math.log(torch.sigmoid(e[0, 0])) + math.log(1 - torch.sigmoid(e[0, 1]))) / 2
    assert reset_loss(e, y).item() == pytest.approx(want, rel=1e-6)


def test_reset_targets_mark_the_boundary_before_high_entropy_tokens():
    # tokens (a spike closes its token): [0,1] [2,3,4] [5] [6,7]; entropy of predicting char t = H[t - 1]
    s = torch.tensor([[0, 1, 0, 0, 1, 1, 0, 1]], dtype=torch.float32)
    H = torch.tensor([[0.1, 3.0, 0.2, 0.2, 0.5, 2.0, 0.1, 0.1]])
    # candidate tokens start at 2 (H[1] = 3.0), 5 (H[4] = 0.5), 6 (H[5] = 2.0)
    t = reset_targets_from_entropy(H, s, ratio=0.2)  # ceil(0.2 * 3) = 1 token: the one starting at 2
    assert t.tolist() == [[0, 1, 0, 0, 0, 0, 0, 0]]
    t = reset_targets_from_entropy(H, s, ratio=0.5)  # 2 tokens: starts 2 and 6
    assert t.tolist() == [[0, 1, 0, 0, 0, 1, 0, 0]]
    with pytest.raises(ValueError):
        reset_targets_from_entropy(H, s, ratio=1.5)


def test_reset_targets_rank_within_the_batch():
    s = torch.tensor([[0, 1, 0, 1], [0, 1, 0, 1]], dtype=torch.float32)
    H = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 5.0, 0.0, 0.0]])
    t = reset_targets_from_entropy(H, s, ratio=0.5)  # 2 candidate tokens in the batch, keep the top one
    assert t.tolist() == [[0, 0, 0, 0], [0, 1, 0, 0]]


def test_predictive_entropy_uniform_and_peaked():
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]]])
    h = predictive_entropy(logits)
    assert h[0, 0].item() == pytest.approx(math.log(4), rel=1e-6)
    assert h[0, 1].item() == pytest.approx(0.0, abs=1e-6)


def test_ngram_entropy_is_low_where_the_next_char_is_determined():
    ids = np.array([2, 3, 4, 5] * 200 + [2, 3, 6, 7, 8] * 50, dtype=np.int64)  # after (2,3) two continuations
    ng = NGramEntropy(vocab_size=10, order=3).fit(ids)
    h = ng.entropy_next(np.array([2, 3, 4, 5], dtype=np.int64))
    assert h[1] > h[2]  # context (2,3) is ambiguous, (3,4) is not
    assert h.shape == (4,)



def test_reset_loss_averages_over_the_given_positions_by_hand():
    e = torch.tensor([[1.0, -2.0, 0.5, 3.0]])
    t = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    at = torch.tensor([[True, True, False, False]])
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731 - softplus: -log sigmoid(-x)
    assert float(reset_loss(e, t, at)) == pytest.approx((sp(-1.0) + sp(-2.0)) / 2, rel=1e-6)
