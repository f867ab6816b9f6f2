import json

import numpy as np
import pytest
import torch

from speak.errors import SpeakError
from speak.train import data as D
from speak.train.data import CharStream, count_eval_windows, eval_windows

from .conftest import tiny_ids


def test_offsets_and_chars_match():
    ids = tiny_ids(1000)
    bnd = np.random.default_rng(1).random(1000) < 0.3
    s = CharStream(ids, 4, 16, seed=3, boundary=bnd)
    for _ in range(5):
        b = s.next_batch()
        assert b.chars.shape == (4, 17) and b.chars.dtype == torch.int64 and b.offsets.shape == (4,)
        assert b.boundary_targets.shape == (4, 16) and b.boundary_targets.dtype == torch.float32
        for i, off in enumerate(b.offsets.tolist()):
            assert b.chars[i].tolist() == ids[off : off + 17].tolist()
            assert b.boundary_targets[i].tolist() == bnd[off : off + 16].astype(np.float32).tolist()


def test_determinism_ranks_and_resume():
    ids = tiny_ids(2000)
    a, b = CharStream(ids, 4, 16, seed=7), CharStream(ids, 4, 16, seed=7)
    assert all(torch.equal(a.next_batch().offsets, b.next_batch().offsets) for _ in range(3))
    r1 = CharStream(ids, 4, 16, seed=7, rank=1, world_size=2)
    r0 = CharStream(ids, 4, 16, seed=7, rank=0, world_size=2)
    assert not torch.equal(r0.next_batch().offsets, r1.next_batch().offsets)
    state = json.loads(json.dumps(a.state_dict()))  # JSON-safe
    expect = [a.next_batch().offsets for _ in range(3)]
    c = CharStream(ids, 4, 16, seed=123)
    c.load_state_dict(state)
    assert all(torch.equal(e, c.next_batch().offsets) for e in expect)
    with pytest.raises(SpeakError, match="seq_len"):
        CharStream(ids, 4, 8, seed=7).load_state_dict(state)


def test_too_small_corpus():
    with pytest.raises(SpeakError, match="smaller than one batch"):
        CharStream(np.arange(50), 4, 16)


@pytest.mark.parametrize("n, scored, context", [(1000, 32, 96), (129, 32, 96), (50, 32, 96), (1001, 7, 0), (5000, 512, 1536)])
def test_eval_windows_score_every_target_once(n, scored, context):
    ids = np.arange(n)
    hits = np.zeros(n, dtype=int)
    width = context + scored + 1
    wins = list(eval_windows(ids, scored=scored, context=context))
    assert len(wins) == count_eval_windows(n, scored, context)
    for w in wins:
        assert w.ids.tolist() == ids[w.start : w.start + w.ids.size].tolist()
        assert w.ids.size == min(width, n)
        targets = np.arange(w.start + 1, w.start + w.ids.size)[-w.n_scored :]
        hits[targets] += 1
        if w.start > 0:  # full context before the first scored target
            assert targets[0] - w.start >= context
    assert hits[0] == 0 and (hits[1:] == 1).all()


def test_exemplar_boundaries_cached(tmp_path, monkeypatch):
    text = "the cat sat on the mat " * 20
    arr = D.exemplar_boundaries(text, spec="whitespace", cache_dir=tmp_path)
    assert arr.dtype == bool and arr.shape == (len(text),) and 0 < arr.sum() < len(text)
    assert len(list(tmp_path.glob("exemplar-whitespace-*.npy"))) == 1

    def boom(*a, **k):
        raise AssertionError("should come from the cache")

    monkeypatch.setattr(D, "_exemplar_spikes", boom)
    assert np.array_equal(D.exemplar_boundaries(text, spec="whitespace", cache_dir=tmp_path), arr)


def test_exemplar_note_is_reported_fresh_and_from_the_cache(tmp_path, monkeypatch):
    text = "the cat sat on the mat " * 20
    spikes = np.zeros(len(text), dtype=bool)
    spikes[::5] = True
    monkeypatch.setattr(D, "_exemplar_spikes", lambda *a, **k: (spikes, "vocabulary grown from 8 to 40"))
    fresh: list[str] = []
    arr = D.exemplar_boundaries(text, spec="sentencepiece:8", cache_dir=tmp_path, notes=fresh)
    assert fresh == ["vocabulary grown from 8 to 40"]

    def boom(*a, **k):
        raise AssertionError("should come from the cache")

    monkeypatch.setattr(D, "_exemplar_spikes", boom)
    cached: list[str] = []
    assert np.array_equal(D.exemplar_boundaries(text, spec="sentencepiece:8", cache_dir=tmp_path, notes=cached), arr)
    assert cached == fresh
