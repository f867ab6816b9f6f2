"""The proxy store and MH acceptance (paper Eq. 13, 15, 16; SPEC section 2)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from speak.errors import SpeakError
from speak.train.checkpoint import _TensorSink, decode_state, encode_state
from speak.train.data import Batch, CharStream, ChunkStream
from speak.train.proxy import (
    ProxyConfig,
    ProxyPlugin,
    ProxyStore,
    ProxyTargetStream,
    per_char_lm_loss,
    per_row_lm_loss,
)


def _random_bits(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(n) < 0.3


@pytest.mark.parametrize("n", [1, 7, 9, 1001, 4099])
def test_bitpack_roundtrip_odd_lengths(n):
    bits = _random_bits(n, n)
    store = ProxyStore(bits, chunk_size=16)
    assert np.array_equal(store.bits(), bits)
    assert store.nbytes == -(-n // 8)
    # every window reads back the right slice, including windows that straddle byte edges and the end
    for o, L in [(0, n), (n - 1, 1), (min(3, n - 1), max(1, min(5, n - 3)))]:
        if o + L <= n:
            assert np.array_equal(store.get([o], L)[0].astype(bool), bits[o : o + L])


def test_write_then_read_at_unaligned_offsets():
    n = 203
    bits = _random_bits(n, 1)
    store = ProxyStore(bits, chunk_size=10, first_visit="accept")
    new = ~bits[13:50]
    d = store.update([13], new[None, :].astype(np.float32), [1.0])  # first visits -> accepted
    assert d.chunks.tolist() == [2, 3, 4]  # [20, 50): the whole chunks inside [13, 50)
    expect = bits.copy()
    expect[20:50] = new[7:]  # [13, 20) is only part of chunk 1: neither decided nor written
    assert np.array_equal(store.bits(), expect)  # neighbours of the written chunks are untouched


def test_proxy_sf_follows_every_write_and_a_resume():
    n, L = 997, 23
    store = ProxyStore(_random_bits(n, 5), chunk_size=5, first_visit="accept")
    rng = np.random.default_rng(6)
    for _ in range(40):  # overlapping, byte-unaligned writes at varying densities
        offs = rng.integers(0, n - L, size=3)
        store.update(offs, rng.random((3, L)) < rng.random(), 1.0 + rng.random(3))
        assert store.sf == pytest.approx(n / store.bits().sum())
    resumed = ProxyStore(np.ones(n, dtype=bool), chunk_size=5)
    resumed.load_state_dict(_roundtrip_via_checkpoint_encoding(store.state_dict()))
    assert resumed.sf == store.sf


def test_offsets_key_the_bits_not_slots():
    bits = _random_bits(500, 2)
    store = ProxyStore(bits, chunk_size=8, first_visit="accept")
    a = store.get(torch.tensor([40, 300, 7]), 32)
    b = store.get(torch.tensor([7, 40, 300]), 32)
    assert np.array_equal(a[0], b[1]) and np.array_equal(a[1], b[2]) and np.array_equal(a[2], b[0])
    # an update from slot 1 is seen by a later batch holding the same offset in slot 0
    s = np.ones((2, 32), dtype=np.float32)
    store.update([7, 40], s, [1.0, 1.0])
    assert store.get([40], 32)[0].all()
    plugin = ProxyPlugin(store)
    batch = Batch(chars=torch.zeros(2, 33, dtype=torch.long), offsets=torch.tensor([300, 40]))
    t = plugin.targets_for(batch)
    assert t.shape == (2, 32) and t.dtype == torch.float32 and bool(t[1].all())
    assert np.array_equal(t[0].numpy().astype(bool), bits[300:332])


def test_out_of_range_window_is_an_error():
    store = ProxyStore(np.zeros(100, bool))
    with pytest.raises(SpeakError):
        store.get([90], 20)


def test_accepts_when_no_loss_stored_and_when_loss_falls():
    store = ProxyStore(np.zeros(1000, bool), chunk_size=50, seed=0, first_visit="accept")
    s = np.ones((1, 50), np.float32)
    d = store.update([0], s, [2.0])
    assert d.accepted[0] and d.first[0]
    assert store.stored_losses([0])[0] == 2.0
    for i in range(200):  # a lower loss is accepted with probability 1
        loss = 2.0 - 0.001 * (i + 1)
        d = store.update([0], s, [loss])
        assert d.accepted[0]
        assert store.stored_losses([0])[0] == pytest.approx(loss)


def test_first_visit_baseline_keeps_exemplar_bits():
    store = ProxyStore(np.zeros(1000, bool), chunk_size=50, first_visit="baseline")
    d = store.update([0], np.ones((1, 50), np.float32), [2.0])
    assert not d.accepted[0] and d.first[0]
    assert not store.bits().any()
    assert store.stored_losses([0])[0] == 2.0


def test_acceptance_frequency_matches_ratio():
    """alpha = L(s_hat) / L(s) = 0.5 -> accepted about half of the time."""
    store = ProxyStore(np.zeros(4000 * 4, bool), chunk_size=4, seed=123)
    offsets = np.arange(4000) * 4
    store.update(offsets, np.zeros((4000, 4)), np.full(4000, 1.0))  # every chunk now stores loss 1.0
    d = store.update(offsets, np.ones((4000, 4)), np.full(4000, 2.0))  # ratio 1 / 2
    assert np.allclose(d.ratio, 0.5)
    assert abs(d.accepted.mean() - 0.5) < 0.03
    stats = store.epoch_stats()
    assert stats[0]["first_visits"] == 4000  # the first pass covered the split exactly: one epoch
    assert abs(stats[1]["reject_rate"] - 0.5) < 0.03


def test_acceptance_with_reevaluated_proxy_losses():
    store = ProxyStore(np.zeros(4000, bool), chunk_size=1, seed=5, reevaluate=True)
    offsets = np.arange(4000)
    # no stored losses at all: the caller's re-evaluated L(s_hat) drives the decision (ratio 0.25)
    d = store.update(offsets, np.ones((4000, 1)), np.full(4000, 4.0), proxy_losses=np.full(4000, 1.0))
    assert not d.first.any()
    assert abs(d.accepted.mean() - 0.25) < 0.03
    # rejected chunks now hold the re-evaluated loss, accepted ones the new loss
    stored = store.stored_losses(offsets)
    assert np.allclose(stored[d.accepted], 4.0) and np.allclose(stored[~d.accepted], 1.0)


def test_likelihood_acceptance_uses_the_chunk_log_likelihood():
    """n = 4 characters 0.1733 nats worse each: alpha = exp(-0.693) = 1/2; a lower loss always passes."""
    n, L = 4000, 4
    store = ProxyStore(np.zeros(n * L, bool), chunk_size=L, seed=9, reevaluate=True, acceptance="likelihood")
    offsets = np.arange(n) * L
    worse = np.log(2.0) / L
    d = store.update(offsets, np.ones((n, L)), np.full(n, 1.0 + worse), proxy_losses=np.full(n, 1.0))
    assert np.allclose(d.ratio, 0.5) and abs(d.accepted.mean() - 0.5) < 0.03
    d = store.update(offsets, np.ones((n, L)), np.full(n, 0.5), proxy_losses=np.full(n, 1.0))
    assert d.accepted.all()
    with pytest.raises(SpeakError, match="acceptance"):
        ProxyConfig(acceptance="exp").validate()


def test_greedy_never_accepts_a_higher_loss():
    store = ProxyStore(np.zeros(2000, bool), chunk_size=1, seed=0, greedy=True)
    offsets = np.arange(2000)
    store.update(offsets, np.zeros((2000, 1)), np.full(2000, 1.0))
    d = store.update(offsets, np.ones((2000, 1)), np.full(2000, 1.01))
    assert not d.accepted.any()
    assert not store.bits().any()
    d = store.update(offsets, np.ones((2000, 1)), np.full(2000, 0.99))
    assert d.accepted.all()


def test_frozen_proxy_keeps_the_exemplar_whatever_the_loss():
    init = np.arange(3000) % 3 == 0
    store = ProxyStore(init, chunk_size=1, seed=0, acceptance="frozen", first_visit="accept")
    offsets = np.arange(3000)
    d = store.update(offsets, np.ones((3000, 1)), np.full(3000, 1.0))  # first visits: even "accept" keeps it
    d = store.update(offsets, np.ones((3000, 1)), np.full(3000, 0.1))  # a far lower loss
    assert not d.accepted.any()
    assert np.array_equal(store.bits(), init)


def test_rows_of_one_chunk_are_decided_in_order():
    store = ProxyStore(np.zeros(100, bool), chunk_size=5, greedy=True, first_visit="accept")
    d = store.update([0, 0, 0], np.ones((3, 5)), [3.0, 2.0, 2.5])
    assert d.accepted.tolist() == [True, True, False]  # row 3 compares against row 2's accepted 2.0
    assert store.stored_losses([0])[0] == 2.0


def _roundtrip_via_checkpoint_encoding(state):
    sink = _TensorSink()
    meta = json.loads(json.dumps(encode_state(state, sink)))
    return decode_state(meta, sink.tensors)


def test_state_dict_roundtrip_reproduces_decisions_exactly():
    n, L, B = 3000, 40, 6
    a = ProxyStore(_random_bits(n, 3), chunk_size=10, seed=11)

    def step(store, k):
        r = np.random.default_rng(1000 + k)
        offs = r.integers(0, n - L, size=B)
        return store.update(offs, r.random((B, L)) < 0.2, 1.0 + r.random(B))

    for k in range(30):
        step(a, k)
    state = _roundtrip_via_checkpoint_encoding(a.state_dict())
    b = ProxyStore(_random_bits(n, 77), chunk_size=10, seed=999)  # different init and seed: all overwritten
    b.load_state_dict(state)
    for k in range(30, 120):
        da, db = step(a, k), step(b, k)
        assert np.array_equal(da.accepted, db.accepted) and np.array_equal(da.uniforms, db.uniforms)
    assert np.array_equal(a.bits(), b.bits())
    assert np.array_equal(a.stored_losses(np.arange(0, n, 10)), b.stored_losses(np.arange(0, n, 10)),
                          equal_nan=True)
    assert a.epoch_stats() == b.epoch_stats()


def test_load_state_rejects_other_split():
    a = ProxyStore(np.zeros(100, bool), chunk_size=10)
    with pytest.raises(SpeakError):
        ProxyStore(np.zeros(101, bool), chunk_size=10).load_state_dict(a.state_dict())
    with pytest.raises(SpeakError):
        ProxyStore(np.zeros(100, bool), chunk_size=20).load_state_dict(a.state_dict())


def test_epoch_counters():
    store = ProxyStore(np.zeros(100, bool), chunk_size=10, seed=0)
    for _ in range(5):  # 5 x 2 rows x 10 chars = 100 chars = one epoch
        store.update([0, 50], np.zeros((2, 10)), [1.0, 1.0])
    assert store.epoch == pytest.approx(1.0)
    store.update([0, 50], np.zeros((2, 10)), [0.5, 0.5])
    stats = store.epoch_stats()
    assert [s["epoch"] for s in stats] == [0, 1]
    assert stats[0]["proposals"] == 10 and stats[0]["first_visits"] == 2 and stats[0]["chars"] == 100
    assert stats[1]["accepted"] == 2 and stats[1]["reject_rate"] == 0.0


def test_memory_for_text8_train_split():
    n = 90_000_000
    store = ProxyStore(np.zeros(n, dtype=bool), chunk_size=2048)
    assert store.nbytes == n // 8  # 11.25 MB of bits
    assert store.nbytes / 1e6 == pytest.approx(11.25)
    assert store._chunk_loss.nbytes < 400_000  # per-chunk losses are negligible
    del store


def test_config_rejects_unknown_options():
    with pytest.raises(SpeakError):
        ProxyConfig.from_mapping({"chunk": 5})
    with pytest.raises(SpeakError):
        ProxyConfig.from_mapping({"first_visit": "maybe"})


def test_per_row_lm_loss_matches_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 11)
    targets = torch.randint(1, 11, (3, 7))
    targets[2, 4:] = 0  # padding ignored
    got = per_row_lm_loss(logits, targets)
    for b in range(3):
        keep = targets[b] != 0
        ref = torch.nn.functional.cross_entropy(logits[b][keep], targets[b][keep])
        assert got[b].item() == pytest.approx(ref.item(), rel=1e-5)


def test_plugin_on_step_end_updates_store_and_logs():
    n, B, L = 400, 3, 16
    ids = np.random.default_rng(0).integers(1, 9, size=n)
    stream = CharStream(ids, B, L, seed=0)
    plugin = ProxyPlugin.from_boundaries(np.zeros(n, bool), {"greedy": False, "first_visit": "accept"}, seq_len=L,
                                         seed=3)
    wrapped = plugin.wrap_stream(stream)
    assert isinstance(wrapped.stream, ChunkStream)  # windows aligned to the chunks by default
    batch = wrapped.next_batch()
    assert (batch.offsets % L == 0).all()
    assert batch.boundary_targets.shape == (B, L) and not batch.boundary_targets.any()
    spikes = torch.ones(B, L)
    out = SimpleNamespace(logits=torch.randn(B, L, 9), boundary=SimpleNamespace(tokenizer=SimpleNamespace(s=spikes)))
    metrics: dict[str, float] = {}
    plugin.on_step_end(1, batch, out, metrics)
    assert metrics["proxy_reject_rate"] == 0.0 and metrics["proxy_accept_frac"] == 1.0
    assert plugin.targets_for(batch).all()  # first visits accepted: the spikes are the proxy now
    assert metrics["proxy_sf"] == n / plugin.store.bits().sum()  # all-zero start, now the written rows' ones
    st = plugin.extra_state()
    other = ProxyPlugin.from_boundaries(np.zeros(n, bool), {"first_visit": "accept"}, seq_len=L)
    other.load_extra_state(_roundtrip_via_checkpoint_encoding(st))
    assert np.array_equal(other.store.bits(), plugin.store.bits())
    assert wrapped.state_dict() == wrapped.stream.state_dict() and wrapped.seq_len == L
    assert wrapped.state_dict()["kind"] == "ChunkStream"
    with pytest.raises(SpeakError):
        plugin.on_step_end(2, batch, SimpleNamespace(logits=out.logits, boundary=SimpleNamespace(tokenizer=None)), {})


def _speak_run(tmp_path, out, steps, resume, extra=()):
    """A tiny speak run through the real trainer; returns (trainer, proxy plug-in)."""
    from speak.train import runs as R
    from speak.train import trainer as T
    from speak.train.config import load_config
    from speak.train.objective import compute_objective

    corpus = tmp_path / "c.txt"
    if not corpus.exists():
        text = ("the quick brown fox jumps over the lazy dog. " * 40 + "pack my box with five dozen liquor jugs. " * 40)
        corpus.write_text(text, encoding="utf-8")
    cfg = load_config(flags={"boundary": "speak", "corpus": str(corpus), "preset": "cpu-tiny", "steps": steps,
                             "seed": 1, "out": str(out), "quiet": True},
                      sets=["batch_size=4", "seq_len=32", "eval_every=0", "checkpoint_every=3",
                            "exemplar_vocab=40", "warmup=2", *extra])
    data = R.prepare_data(cfg)
    stream, plugins = R.build_training_stream(cfg, data, T.DistInfo(), tmp_path / "cache")
    T.seed_everything(cfg.seed)
    model = R.build_hourglass(cfg, data.vocab)
    tr = T.Trainer(model, compute_objective, stream, None, cfg, plugins=plugins)
    tr.fit(resume=resume)
    return tr, plugins[0]


def test_reevaluate_scores_the_proxy_with_the_current_lm(tmp_path):
    """proxy.reevaluate: L_LM(s_hat) comes from a second forward of the trainer's model with s_hat as boundaries."""
    tr, plugin = _speak_run(tmp_path, tmp_path / "r", 8, False, extra=["proxy.reevaluate=true"])
    assert plugin.reevaluate_fn is not None and all("proxy_reject_rate" in r for r in tr.history)
    batch = tr.stream.next_batch()
    proxy = plugin.targets_for(batch)
    with torch.no_grad():
        logits = tr.model(batch.chars[:, :-1], boundaries=proxy).logits
    expected = per_char_lm_loss(logits, batch.chars[:, 1:])  # [B, L]
    torch.testing.assert_close(plugin.reevaluate_fn(batch, proxy), expected, equal_nan=True)
    d = plugin.last_decision
    decided = ~d.first
    assert decided.any() and np.isfinite(d.old_losses[decided]).all()


def test_real_trainer_resume_keeps_proxy_exactly(tmp_path):
    """A speak run interrupted at step 3 and resumed to 6 ends with the same proxy, losses and RNG as a straight run."""
    def run(out, steps, resume):
        return _speak_run(tmp_path, out, steps, resume)

    straight, p1 = run(tmp_path / "a", 6, False)
    run(tmp_path / "b", 3, False)
    resumed, p2 = run(tmp_path / "b", 6, True)
    a, b = p1.store.state_dict(), p2.store.state_dict()
    assert np.array_equal(a["bits"], b["bits"])
    assert np.array_equal(a["chunk_loss"], b["chunk_loss"], equal_nan=True)
    assert a["rng"] == b["rng"] and a["chars_seen"] == b["chars_seen"]
    assert np.array_equal(a["epochs"], b["epochs"])
    assert [r["loss"] for r in straight.history[3:]] == [r["loss"] for r in resumed.history]


def test_default_first_visit_keeps_the_exemplar_start():
    """App. B: the proxy starts from the exemplar; by default a first visit records the loss and keeps the bits."""
    init = np.zeros(100, bool)
    init[::5] = True
    store = ProxyStore(init.copy(), chunk_size=10, seed=0)
    store.update(np.array([0]), np.ones((1, 10), bool), np.array([2.0]))
    assert np.array_equal(store.bits(), init)
    store.update(np.array([0]), np.ones((1, 10), bool), np.array([1.0]))  # a later, better segmentation wins
    assert store.bits()[:10].all()


# ---------------------------------------------------------------------------------------------- same text (SPEC 2)
def test_unaligned_overlapping_windows_decide_whole_chunks_with_their_own_losses():
    """A row decides only the chunks wholly inside it; each chunk's candidate loss is the mean over exactly its
    characters, and what it stores is that loss, next to exactly its bits."""
    n, C = 60, 5
    store = ProxyStore(np.zeros(n, bool), chunk_size=C, first_visit="accept", greedy=True)
    losses = np.arange(24, dtype=np.float64).reshape(2, 12) + 1.0  # per character, all different
    spikes = np.zeros((2, 12))
    spikes[0, :] = 1.0  # row 0 at 3: [3, 15) -> chunks 1, 2 = [5, 15); row 1 at 9: [9, 21) -> chunks 2, 3
    d = store.update([3, 9], spikes, losses)
    assert d.rows.tolist() == [0, 0, 1, 1] and d.chunks.tolist() == [1, 2, 2, 3]
    assert d.new_losses[0] == pytest.approx(losses[0, 2:7].mean())  # chunk 1 = row 0's positions 2..6
    assert d.new_losses[1] == pytest.approx(losses[0, 7:12].mean())
    assert d.new_losses[2] == pytest.approx(losses[1, 1:6].mean())  # chunk 2 seen again by row 1 (overlap)
    # chunk 2: row 0 (first visit) wrote ones with loss 10; row 1 proposes zeros at loss 15 -> greedy rejects
    assert d.first.tolist() == [True, True, False, True] and d.accepted.tolist() == [True, True, False, True]
    bits = store.bits()
    assert not bits[:5].any() and bits[5:15].all() and not bits[15:].any()  # [3, 5) of row 0 is never written
    assert store.stored_losses([5, 10, 15]).tolist() == pytest.approx(
        [losses[0, 2:7].mean(), losses[0, 7:12].mean(), losses[1, 6:11].mean()])
    assert np.isnan(store.stored_losses([0, 20])).all()  # partly covered chunks: no loss, no bits


def test_writes_at_chunk_edges_and_at_the_split_end():
    n, C = 23, 5  # chunks [0,5) .. [15,20) and the short last chunk [20, 23)
    store = ProxyStore(np.zeros(n, bool), chunk_size=C, first_visit="accept")
    assert list(store.covered_chunks(5, 10)) == [1, 2]  # starts and ends on edges
    assert list(store.covered_chunks(6, 9)) == [2]
    assert list(store.covered_chunks(6, 3)) == []  # inside one chunk: nothing to decide
    assert list(store.covered_chunks(15, 8)) == [3, 4]  # the split's last, short chunk ends at n
    d = store.update([15], np.ones((1, 8)), np.full((1, 8), 2.0))
    assert d.chunks.tolist() == [3, 4] and store.bits()[15:].all() and not store.bits()[:15].any()
    d = store.update([6], np.ones((1, 3)), [1.0])  # no whole chunk: no draw, no write, characters still counted
    assert d.chunks.size == 0 and d.uniforms.size == 0 and store.chars_seen == 11


def test_reevaluated_losses_are_per_chunk_of_the_same_window():
    store = ProxyStore(np.zeros(40, bool), chunk_size=10, reevaluate=True, greedy=True)
    new = np.full((1, 20), 1.0)
    old = np.concatenate([np.full(10, 2.0), np.full(10, 0.5)])[None, :]  # s better on chunk 1, worse on chunk 2
    d = store.update([10], np.ones((1, 20)), new, proxy_losses=old)
    assert d.old_losses.tolist() == [2.0, 0.5] and d.accepted.tolist() == [True, False]
    assert store.bits()[10:20].all() and not store.bits()[20:30].any()
    assert store.stored_losses([10, 20]).tolist() == [1.0, 0.5]  # rejected: the re-evaluated s_hat loss


def test_nan_losses_are_left_out_of_a_chunks_mean():
    store = ProxyStore(np.zeros(10, bool), chunk_size=5, first_visit="accept")
    losses = np.array([[1.0, np.nan, 3.0, np.nan, 2.0]])
    d = store.update([0], np.ones((1, 5)), losses)
    assert d.new_losses[0] == pytest.approx(2.0)


def test_chunk_stream_visits_every_window_once_per_epoch_in_a_seeded_order():
    n, B, L = 1000, 3, 16  # 62 windows; 20 steps per epoch (2 left over)
    ids = np.random.default_rng(0).integers(1, 9, size=n)
    a = ChunkStream(ids, B, L, seed=4)
    epoch0 = np.concatenate([a.next_batch().offsets.numpy() for _ in range(20)])
    assert (epoch0 % L == 0).all() and len(set(epoch0.tolist())) == 60 and epoch0.max() + L + 1 <= n
    b = a.next_batch()
    assert a.epoch == 1 and a.position == B
    again = ChunkStream(ids, B, L, seed=4)
    assert np.array_equal(np.concatenate([again.next_batch().offsets.numpy() for _ in range(20)]), epoch0)
    other = ChunkStream(ids, B, L, seed=5)
    assert not np.array_equal(np.concatenate([other.next_batch().offsets.numpy() for _ in range(20)]), epoch0)
    batch = a.batch_at(b.offsets.numpy())
    assert torch.equal(batch.chars, torch.from_numpy(np.stack([ids[o : o + L + 1] for o in b.offsets.tolist()])))
    # resume: the state reproduces the next windows exactly
    state = json.loads(json.dumps(a.state_dict()))
    c = ChunkStream(ids, B, L, seed=4)
    c.load_state_dict(state)
    for _ in range(25):
        assert torch.equal(a.next_batch().offsets, c.next_batch().offsets)
    with pytest.raises(SpeakError):
        c.load_state_dict(CharStream(ids, B, L).state_dict())


def test_chunk_stream_ranks_take_disjoint_shares_of_one_order():
    ids = np.arange(1, 2001) % 7 + 1
    r0 = ChunkStream(ids, 4, 10, seed=1, rank=0, world_size=2)
    r1 = ChunkStream(ids, 4, 10, seed=1, rank=1, world_size=2)
    seen0 = np.concatenate([r0.next_batch().offsets.numpy() for _ in range(24)])
    seen1 = np.concatenate([r1.next_batch().offsets.numpy() for _ in range(24)])
    assert not set(seen0.tolist()) & set(seen1.tolist())  # 24 steps x 8 rows = 192 of the 199 windows
    with pytest.raises(SpeakError, match="aligned windows"):
        ChunkStream(ids[:50], 4, 10, world_size=2)


def test_random_windows_option_keeps_the_random_stream_with_smaller_chunks():
    n, B, L = 400, 3, 16
    stream = CharStream(np.ones(n, dtype=np.int64), B, L, seed=0)
    plugin = ProxyPlugin.from_boundaries(np.zeros(n, bool), {"windows": "random"}, seq_len=L)
    assert plugin.store.config.chunk_size == 4
    assert plugin.wrap_stream(stream).stream is stream
    with pytest.raises(SpeakError, match="windows"):
        ProxyConfig.from_mapping({"windows": "sometimes"})
    bad = ProxyPlugin.from_boundaries(np.zeros(n, bool), {"chunk_size": 5}, seq_len=L)
    with pytest.raises(SpeakError, match="divide"):
        bad.wrap_stream(stream)


def test_final_metrics_report_the_rejection_rate_per_epoch():
    store = ProxyStore(np.zeros(20, bool), chunk_size=10, seed=0, greedy=True)
    plugin = ProxyPlugin(store)
    store.update([0, 10], np.zeros((2, 10)), [1.0, 1.0])  # epoch 0: first visits only
    store.update([0, 10], np.ones((2, 10)), [2.0, 0.5])  # epoch 1: one rejected, one accepted
    m = json.loads(json.dumps(plugin.final_metrics()))
    assert m["proxy_reject_rate_per_epoch"] == [None, 0.5]
    assert [e["first_visits"] for e in m["proxy_epochs"]] == [2, 0]


def test_speak_run_writes_the_rejection_rate_per_epoch_to_metrics_json(tmp_path):
    """A real `speak train` run over two epochs of aligned windows: metrics.json names the per-epoch rates."""
    from speak.experiments.pipeline import train_and_evaluate
    from speak.train.config import load_config

    corpus = tmp_path / "c.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. a cat naps. " * 40, encoding="utf-8")
    cfg = load_config(flags={"boundary": "speak", "corpus": str(corpus), "preset": "cpu-tiny", "steps": 24,
                             "out": str(tmp_path / "run"), "quiet": True, "device": "cpu"},
                      sets=["batch_size=4", "seq_len=32", "eval_every=0", "test_windows=2", "timing_batches=1",
                            "checkpoint_every=0", "exemplar_vocab=32"])
    metrics = train_and_evaluate(cfg)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    rates = saved["proxy_reject_rate_per_epoch"]
    assert rates == metrics["proxy_reject_rate_per_epoch"] and len(rates) >= 2
    assert rates[0] is None  # the first pass over aligned windows visits every chunk for the first time
    assert all(r is None or 0.0 <= r <= 1.0 for r in rates[1:]) and any(r is not None for r in rates[1:])
    assert [row["epoch"] for row in saved["proxy_epochs"]] == list(range(len(rates)))
