"""The teacher-forced membrane objective (speak.train.forced) and a standalone fit trained with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speak.neuron import LIFNeuron
from speak.train.forced import forced_loss, forced_membrane, forced_membrane_reference


@pytest.mark.parametrize("u_reset", [0.0, 0.2])
def test_forced_membrane_matches_the_step_by_step_reference(u_reset):
    g = torch.Generator().manual_seed(1)
    current = torch.randn(4, 37, generator=g)
    gold = torch.rand(4, 37, generator=g) < 0.3
    hard = torch.rand(4, 37, generator=g) < 0.5
    fast = forced_membrane(current, gold, hard, theta=0.8, u_reset=u_reset)
    ref = forced_membrane_reference(current, gold, hard, theta=0.8, u_reset=u_reset)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)


def test_forced_membrane_is_the_free_neuron_when_the_neuron_fires_at_the_forced_spikes():
    """When the free-running neuron (Eq. 1 + 10) spikes exactly at the forced positions, both membranes agree."""
    g = torch.Generator().manual_seed(2)
    current = torch.rand(3, 40, generator=g) * 0.6  # [B, L]
    neuron = LIFNeuron(theta=0.8, reset_mode="all-hard")
    u, s, _ = neuron(current, None)
    forced = forced_membrane(current, s > 0.5, torch.ones_like(s, dtype=torch.bool), theta=0.8)
    assert (s > 0.5).any()
    torch.testing.assert_close(forced, u)


def test_forced_loss_rewards_crossing_the_threshold_at_the_boundaries():
    gold = torch.tensor([[False, True, False, True]])
    valid = torch.ones_like(gold)
    right = torch.tensor([[0.2, 1.5, 0.1, 1.4]])
    wrong = torch.tensor([[1.5, 0.2, 1.4, 0.1]])
    assert forced_loss(right, gold, valid) < forced_loss(wrong, gold, valid)
    u = right.clone().requires_grad_(True)
    forced_loss(u, gold, valid).backward()
    assert (u.grad[gold] < 0).all() and (u.grad[~gold] > 0).all()  # boundaries pushed up, the rest down


def test_a_forced_fit_learns_the_exemplar_and_its_fused_ids_match_the_network():
    from speak.text.corpora import load_corpus
    from speak.text.segment import segment
    from speak.train.mimic import STANDALONE, MimicConfig, corpus_lines, fit_tokenizer_lines

    train, valid = corpus_lines(load_corpus("embedded")[:200_000])
    cfg = MimicConfig(**{**STANDALONE, "steps": 60, "ngram_buckets": 1024, "token_vocab": 600,
                         "exemplar": "whitespace"})
    tok, m, _ = fit_tokenizer_lines(train, valid[:200], cfg)
    assert m.spike_acc > 0.9 and m.nonspike_acc > 0.9  # word starts are easy: a 60-step fit must find them
    fast = tok._lookup()
    lines = valid[:40]
    got = fast.encode_ids(lines)  # the shipped vocabulary, fused scan
    for line, ids in zip(lines, got.split()):
        with torch.no_grad():
            s = tok.trace(line).s[0].numpy() > 0.5
        want = [pid for piece in segment(line, s) for pid, _, _ in tok.segment_vocab.pieces_of(piece)]
        assert ids.tolist() == want
        assert tok.segment_vocab.decode(ids.tolist()) == line
