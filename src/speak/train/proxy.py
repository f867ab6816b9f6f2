"""Momentum-based proxy supervision with Metropolis-Hastings acceptance (paper Eq. 13, 15, 16; App. B; SPEC section 2).

The proxy ``s_hat`` is one bit per training-corpus character, keyed by the ABSOLUTE character offset in the training
split (never by batch slot: the stream samples random windows). It starts as an exemplar's segmentation (e.g. a
SentencePiece Unigram trained on the training split, computed by the caller) and evolves by Eq. 13:

    s_hat_{N+1} = a_N * s_{N+1} + (1 - a_N) * s_hat_N,     a_N = 1(u <= alpha),  u ~ U(0, 1)
    alpha = L_LM(s_hat_N) / L_LM(s_{N+1})                                        (Eq. 15, 16)

Decisions are per CHUNK: the proxy is cut into fixed chunks of ``chunk_size`` characters (chunk id
``offset // chunk_size``; the per-chunk memory is an array, not a dict). A training row at offset ``o`` of length L
decides every chunk that lies WHOLLY inside ``[o, o + L)``, each on its own: the candidate loss is the mean of the
row's per-character LM losses over exactly that chunk's characters, the bits written on acceptance are exactly that
chunk's, and the loss stored is that chunk's. Characters of partly covered chunks at a row's edges are neither
decided nor written, so a chunk's bits and the loss stored for them always cover the same characters (SPEC
section 2). Per chunk the store keeps the LM loss its current bits had when they were last accepted (NaN = none yet).

Same text. With the default ``windows="aligned"`` the training stream (``speak.train.data.ChunkStream``) draws
windows of exactly ``seq_len`` characters starting at multiples of ``seq_len``, in a seeded per-epoch order (the
paper's epoch structure), so a stored loss is of the same characters with the same left context, one epoch older.
With ``windows="random"`` (the plain random-offset stream) the stored loss is of the same characters but seen with
another left context; the default chunk size is then ``seq_len // 4`` so that every window covers whole chunks.

- ``L_LM(s)``: the chunk's mean per-character LM loss in the training forward, which used the tokenizer's own
  spikes s (free).
- ``L_LM(s_hat)``: by default the loss stored when the chunk's bits were last accepted. With ``reevaluate`` the
  caller runs a second forward with ``s_hat`` as the boundaries and passes its per-character losses
  (``proxy_losses``): the same characters, context and LM; the acceptance math is the same, and on rejection the
  stored loss is refreshed to the re-evaluated one.
- A chunk with no stored loss: ``first_visit="baseline"`` (default) keeps the exemplar bits and records L_LM(s) as
  the proxy's loss, so the exemplar is only replaced by a later, better segmentation; ``"accept"`` takes the new
  spikes at once. The paper initialises s_hat from an exemplar "to ensure a reliable start" (App. B); with random
  windows nearly every early row is a first visit, so ``accept`` would overwrite that start with the untrained
  tokenizer's spikes within the first few hundred steps (measured: the spike rate ran to 0.8 and L_mem diverged).
- ``greedy=True`` ("w/o MH", Table 5): accept only when the loss fell (L_LM(s) < L_LM(s_hat)).
- ``acceptance="likelihood"`` (not the paper's): alpha = exp(n (L_LM(s_hat) - L_LM(s))), the ratio of the chunk's
  likelihoods under the two segmentations (n characters, losses in nats per character): textbook Metropolis. Eq. 16's
  ratio of mean losses stays within a few percent of 1, so it accepts almost everything (measured ~1% rejections).
- ``acceptance="frozen"`` (an ablation, not the paper's): reject every candidate, first visits included, so the
  exemplar stays the target throughout, as DTP-Unigram's targets do.

Rejection rates are counted per epoch (one epoch = one pass over the training stream: characters seen / train
length; the paper reports ~10% early, ~90% late). :meth:`ProxyStore.state_dict` holds numpy arrays (the packed bits,
the chunk losses) and JSON-able scalars (the numpy Generator's state, counters), so a resumed run keeps its proxy and
RNG exactly.

:class:`ProxyPlugin` is the trainer plug-in (``on_step_end`` / ``extra_state`` / ``load_extra_state``) and
:class:`ProxyTargetStream` wraps a training stream so every batch carries the proxy targets for L_mem in
``batch.boundary_targets`` (read BEFORE the step's update, i.e. s_hat_N supervises step N).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from speak.errors import SpeakError

__all__ = ["Decision", "ProxyConfig", "ProxyPlugin", "ProxyStore", "ProxyTargetStream", "per_char_lm_loss",
           "per_row_lm_loss"]

FIRST_VISIT = ("accept", "baseline")
WINDOWS = ("aligned", "random")
ACCEPTANCE = ("ratio", "likelihood", "frozen")
STATE_KIND = "ProxyStore"
STATE_VERSION = 1


@dataclass
class ProxyConfig:
    """Options of the proxy / MH machinery (``TrainConfig.proxy`` keys)."""

    chunk_size: int = 512  # characters per chunk id (offset // chunk_size); default: seq_len (aligned), seq_len // 4
    windows: str = "aligned"  # aligned: windows = chunks in a seeded per-epoch order | random: random offsets
    greedy: bool = False  # "w/o MH" (Table 5): accept only when the loss fell
    acceptance: str = "ratio"  # ratio (Eq. 16) | likelihood (exp of the chunk's log-likelihood gain) | frozen
    reevaluate: bool = False  # L_LM(s_hat) from a second forward under the current LM (the caller computes it)
    first_visit: str = "baseline"  # baseline | accept: what to do for a chunk with no stored loss (see module doc)
    seed: int = 0  # the acceptance RNG (numpy PCG64)

    def validate(self) -> None:
        if self.chunk_size <= 0:
            raise SpeakError(f"proxy.chunk_size must be > 0, got {self.chunk_size}")
        if self.first_visit not in FIRST_VISIT:
            raise SpeakError(f"proxy.first_visit must be one of {', '.join(FIRST_VISIT)}, got {self.first_visit!r}")
        if self.windows not in WINDOWS:
            raise SpeakError(f"proxy.windows must be one of {', '.join(WINDOWS)}, got {self.windows!r}")
        if self.acceptance not in ACCEPTANCE:
            raise SpeakError(f"proxy.acceptance must be one of {', '.join(ACCEPTANCE)}, got {self.acceptance!r}")

    @classmethod
    def from_mapping(cls, mapping: dict[str, Any] | None, **defaults: Any) -> "ProxyConfig":
        """Build from a ``TrainConfig.proxy`` mapping (unknown keys -> SpeakError); ``defaults`` fill unset keys."""
        data = {**defaults, **dict(mapping or {})}
        names = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - names)
        if unknown:
            raise SpeakError(f"unknown proxy option(s) {unknown} (known: {', '.join(sorted(names))})")
        cfg = cls(**data)
        cfg.chunk_size, cfg.seed = int(cfg.chunk_size), int(cfg.seed)
        cfg.greedy, cfg.reevaluate = bool(cfg.greedy), bool(cfg.reevaluate)
        cfg.validate()
        return cfg


@dataclass
class Decision:
    """The outcome of :meth:`ProxyStore.propose` for one batch (applied by :meth:`ProxyStore.accept`).

    One entry per decided chunk (U of them: every chunk wholly inside some row, in row order)."""

    offsets: np.ndarray  # [B] int64: the rows' window starts
    spikes: np.ndarray  # [B, L] bool: the candidate s
    rows: np.ndarray  # [U] int64: the row each decision came from
    chunks: np.ndarray  # [U] int64: the chunk id decided
    new_losses: np.ndarray  # [U] float64: L_LM(s) over the chunk's characters
    old_losses: np.ndarray  # [U] float64: L_LM(s_hat) used (NaN = none stored)
    ratio: np.ndarray  # [U] alpha = L_LM(s_hat) / L_LM(s) (NaN where no old loss)
    uniforms: np.ndarray  # [U] the u draws
    accepted: np.ndarray  # [U] bool
    first: np.ndarray  # [U] bool: no loss was stored for the chunk
    refresh: np.ndarray  # [U] float64: loss to store on rejection (re-evaluated L_LM(s_hat)), NaN = keep
    applied: bool = False

    @property
    def reject_rate(self) -> float:
        """Rejected / decided among chunks that had a stored loss (first visits are not MH decisions); 0 if none."""
        decided = ~self.first
        n = int(decided.sum())
        return float((~self.accepted & decided).sum()) / n if n else 0.0


@dataclass
class _EpochCounter:
    proposals: int = 0
    accepted: int = 0
    rejected: int = 0
    first_visits: int = 0
    chars: int = 0

    def as_dict(self, epoch: int) -> dict[str, Any]:
        decided = self.accepted + self.rejected
        return {
            "epoch": epoch,
            "proposals": self.proposals,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "first_visits": self.first_visits,
            "chars": self.chars,
            "reject_rate": (self.rejected / decided) if decided else float("nan"),
        }


class ProxyStore:
    """Bit-packed proxy boundaries over a training split, with per-chunk MH acceptance (see the module docstring)."""

    def __init__(self, init_boundaries: np.ndarray, config: ProxyConfig | None = None, **options: Any) -> None:
        """``init_boundaries`` [N] bool: the exemplar's spikes over the training split (1 = a token closes at t)."""
        cfg = config if config is not None else ProxyConfig.from_mapping(options)
        if config is not None and options:
            raise SpeakError("pass either a ProxyConfig or keyword options, not both")
        cfg.validate()
        bits = np.asarray(init_boundaries)
        if bits.ndim != 1:
            raise SpeakError(f"proxy init boundaries must be 1-D (one per training character), got {bits.shape}")
        if bits.size == 0:
            raise SpeakError("proxy init boundaries are empty")
        self.config = cfg
        self.n = int(bits.size)
        self._bits = np.packbits(bits.astype(bool), bitorder="little")  # [ceil(N / 8)] uint8
        self._ones = int(np.count_nonzero(bits))  # boundaries in the proxy, kept current by _write
        self.n_chunks = -(-self.n // cfg.chunk_size)
        self._chunk_loss = np.full(self.n_chunks, np.nan, dtype=np.float64)  # [n_chunks]; NaN = none stored
        self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([cfg.seed, 0x5BEA])))
        self.chars_seen = 0
        self._epochs: list[_EpochCounter] = [_EpochCounter()]
        self._stream_epochs = False  # True once the stream reports its epochs (mark_epoch)

    # ------------------------------------------------------------------ bits
    @property
    def nbytes(self) -> int:
        """Memory held by the packed bits (the dominant cost: N / 8 bytes)."""
        return int(self._bits.nbytes)

    def _check_range(self, offsets: np.ndarray, length: int) -> None:
        if length <= 0:
            raise SpeakError(f"proxy window length must be > 0, got {length}")
        if offsets.size and (int(offsets.min()) < 0 or int(offsets.max()) + length > self.n):
            raise SpeakError(
                f"proxy window [{int(offsets.min())}, {int(offsets.max()) + length}) lies outside the training "
                f"split of {self.n} characters"
            )

    def _read(self, offset: int, length: int) -> np.ndarray:
        b0, b1 = offset // 8, (offset + length + 7) // 8
        bits = np.unpackbits(self._bits[b0:b1], bitorder="little")  # [8 * (b1 - b0)]
        start = offset - 8 * b0
        return bits[start : start + length].astype(bool)

    def _write(self, offset: int, values: np.ndarray) -> None:
        length = int(values.size)
        b0, b1 = offset // 8, (offset + length + 7) // 8
        bits = np.unpackbits(self._bits[b0:b1], bitorder="little")
        start = offset - 8 * b0
        new = values.astype(np.uint8)
        self._ones += int(new.sum()) - int(bits[start : start + length].sum())
        bits[start : start + length] = new
        self._bits[b0:b1] = np.packbits(bits, bitorder="little")

    @property
    def sf(self) -> float:
        """The proxy's shortening factor over the whole training split (characters / boundaries).

        It starts at the exemplar's and moves as MH accepts the tokenizer's spikes; Table 1's diagnostics
        (docs/decisions.md) follow it to see where the supervision drifted."""
        return self.n / max(self._ones, 1)

    def bits(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The proxy as a bool array over ``[start, stop)`` (default: the whole split)."""
        stop = self.n if stop is None else int(stop)
        if not 0 <= start <= stop <= self.n:
            raise SpeakError(f"proxy range [{start}, {stop}) outside [0, {self.n}]")
        if stop == start:
            return np.zeros(0, dtype=bool)
        return self._read(int(start), stop - int(start))

    def get(self, offsets: Any, length: int) -> np.ndarray:
        """[B, L] float32 proxy targets for the windows starting at ``offsets`` [B] (absolute train offsets)."""
        offsets = _as_offsets(offsets)
        length = int(length)
        self._check_range(offsets, length)
        out = np.empty((offsets.size, length), dtype=np.float32)
        for i, o in enumerate(offsets.tolist()):
            out[i] = self._read(int(o), length)
        return out

    # ------------------------------------------------------------------ MH
    def chunk_ids(self, offsets: Any) -> np.ndarray:
        """[B] chunk id of each offset (``offset // chunk_size``)."""
        return _as_offsets(offsets) // self.config.chunk_size

    def chunk_span(self, cid: int) -> tuple[int, int]:
        """[start, stop) characters of chunk ``cid`` (the split's last chunk may be shorter)."""
        start = int(cid) * self.config.chunk_size
        return start, min(start + self.config.chunk_size, self.n)

    def covered_chunks(self, offset: int, length: int) -> range:
        """Chunk ids lying wholly inside ``[offset, offset + length)`` (the only ones a row may decide)."""
        C = self.config.chunk_size
        first = -(-int(offset) // C)
        stop = int(offset) + int(length)
        last = stop // C if stop < self.n else self.n_chunks  # the split's short last chunk ends at n
        return range(first, max(first, last))

    def stored_losses(self, offsets: Any) -> np.ndarray:
        """[B] the loss stored for the chunk holding each offset (NaN = none)."""
        return self._chunk_loss[self.chunk_ids(offsets)].copy()

    def propose(self, offsets: Any, spikes: Any, lm_losses: Any, proxy_losses: Any | None = None) -> Decision:
        """Draw the acceptance of the tokenizer's spikes ``s`` [B, L] for every chunk wholly inside a row (one
        uniform per such chunk, in row order).

        ``lm_losses``: L_LM(s) per character [B, L] (or per row [B]: the same loss for each of the row's
        characters). ``proxy_losses`` (``reevaluate``): L_LM(s_hat) under the current LM, same shapes; without it
        the chunk's stored loss is used. NaN losses (padding) are left out of a chunk's mean. Chunks are decided in
        row order, so a later row covering the same chunk sees an earlier row's result. Nothing is written until
        :meth:`accept`.
        """
        offsets = _as_offsets(offsets)
        spikes = np.asarray(_to_numpy(spikes)) > 0.5  # [B, L] bool
        if spikes.ndim != 2 or spikes.shape[0] != offsets.size:
            raise SpeakError(f"proxy spikes must be [B, L] with B = {offsets.size}, got {spikes.shape}")
        B, L = spikes.shape
        self._check_range(offsets, L)
        new = _per_char(lm_losses, B, L, "lm_losses")  # [B, L]
        reeval = None if proxy_losses is None else _per_char(proxy_losses, B, L, "proxy_losses")  # [B, L]
        rows, cids = [], []
        for i, o in enumerate(offsets.tolist()):
            for cid in self.covered_chunks(o, L):
                rows.append(i)
                cids.append(cid)
        U = len(rows)
        u = self._rng.random(U)  # [U]; one draw per decided chunk, whatever the branches (exact resume)
        old = np.full(U, np.nan)
        new_l = np.full(U, np.nan)
        ratio = np.full(U, np.nan)
        accepted = np.zeros(U, dtype=bool)
        first = np.zeros(U, dtype=bool)
        refresh = np.full(U, np.nan)
        pending: dict[int, float] = {}  # chunk id -> stored loss after the earlier decisions of this batch
        for k in range(U):
            i, cid = rows[k], cids[k]
            a, b = self.chunk_span(cid)
            lo, hi = a - int(offsets[i]), b - int(offsets[i])  # the chunk inside row i
            l_new = _nanmean(new[i, lo:hi])
            new_l[k] = l_new
            stored = pending.get(cid, float(self._chunk_loss[cid]))
            ref = _nanmean(reeval[i, lo:hi]) if reeval is not None else stored
            if not math.isfinite(l_new):  # a broken loss never enters the proxy
                old[k] = ref
                continue
            if not math.isfinite(ref):
                first[k] = True
                accepted[k] = self.config.first_visit == "accept" and self.config.acceptance != "frozen"
                pending[cid] = l_new
                continue
            old[k] = ref
            if self.config.acceptance == "likelihood":  # p(chunk | s) / p(chunk | s_hat)
                ratio[k] = math.exp(min((b - a) * (ref - l_new), 0.0))
            else:  # Eq. 16
                ratio[k] = ref / l_new if l_new > 0 else math.inf
            if self.config.acceptance == "frozen":
                accepted[k] = False
            elif self.config.greedy:
                accepted[k] = l_new < ref
            else:
                accepted[k] = bool(u[k] <= ratio[k])  # min(1, alpha): alpha >= 1 always accepts
            if accepted[k]:
                pending[cid] = l_new
            elif reeval is not None:
                refresh[k] = ref
                pending[cid] = ref
        return Decision(offsets=offsets, spikes=spikes, rows=np.asarray(rows, dtype=np.int64),
                        chunks=np.asarray(cids, dtype=np.int64), new_losses=new_l, old_losses=old, ratio=ratio,
                        uniforms=u, accepted=accepted, first=first, refresh=refresh)

    def accept(self, decision: Decision) -> np.ndarray:
        """Apply a decision: write each accepted chunk's spikes into the proxy and store its loss, count. Returns
        the [U] accepted mask."""
        if decision.applied:
            raise SpeakError("this proxy decision was already applied")
        counter = self._epochs[-1]
        for k in range(decision.chunks.size):
            cid, i = int(decision.chunks[k]), int(decision.rows[k])
            if decision.accepted[k]:
                a, b = self.chunk_span(cid)
                lo = a - int(decision.offsets[i])
                self._write(a, decision.spikes[i, lo : lo + (b - a)])
                self._chunk_loss[cid] = decision.new_losses[k]
            elif decision.first[k]:  # first_visit = baseline: the exemplar keeps its bits, the loss is recorded
                self._chunk_loss[cid] = decision.new_losses[k]
            elif math.isfinite(decision.refresh[k]):
                self._chunk_loss[cid] = decision.refresh[k]
            counter.proposals += 1
            if decision.first[k]:
                counter.first_visits += 1
            elif decision.accepted[k]:
                counter.accepted += 1
            else:
                counter.rejected += 1
        decision.applied = True
        self._advance(decision.spikes.size)
        return decision.accepted.copy()

    def update(self, offsets: Any, spikes: Any, lm_losses: Any, proxy_losses: Any | None = None) -> Decision:
        """:meth:`propose` then :meth:`accept`; returns the applied decision."""
        d = self.propose(offsets, spikes, lm_losses, proxy_losses)
        self.accept(d)
        return d

    def _advance(self, chars: int) -> None:
        """Count characters seen; open a new epoch counter at each pass over the training split (unless the
        training stream reports its own epochs, :meth:`mark_epoch`)."""
        self.chars_seen += int(chars)
        self._epochs[-1].chars += int(chars)
        while not self._stream_epochs and self.chars_seen >= self.n * len(self._epochs):
            self._epochs.append(_EpochCounter())

    def mark_epoch(self, epoch: int) -> None:
        """The training stream's own epoch (a :class:`~speak.train.data.ChunkStream` pass, which skips the windows
        that do not fill a last step): the counters follow it instead of the characters seen."""
        self._stream_epochs = True
        while len(self._epochs) <= int(epoch):
            self._epochs.append(_EpochCounter())

    @property
    def epoch(self) -> float:
        """Passes over the training split so far (fractional)."""
        return self.chars_seen / self.n

    def epoch_stats(self) -> list[dict[str, Any]]:
        """Per epoch: proposals, accepted, rejected, first visits, chars, reject_rate (rejected / MH decisions)."""
        return [c.as_dict(i) for i, c in enumerate(self._epochs) if c.proposals or i == 0]

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """numpy arrays (``bits`` uint8, ``chunk_loss`` float64, ``epochs`` int64 [E, 5]) + JSON-able scalars."""
        epochs = np.array(
            [[c.proposals, c.accepted, c.rejected, c.first_visits, c.chars] for c in self._epochs], dtype=np.int64
        )
        return {
            "kind": STATE_KIND,
            "version": STATE_VERSION,
            "n": self.n,
            "config": {
                "chunk_size": self.config.chunk_size, "greedy": self.config.greedy,
                "acceptance": self.config.acceptance,
                "reevaluate": self.config.reevaluate, "first_visit": self.config.first_visit,
                "seed": self.config.seed, "windows": self.config.windows,
            },
            "bits": self._bits.copy(),
            "chunk_loss": self._chunk_loss.copy(),
            "epochs": epochs,
            "chars_seen": int(self.chars_seen),
            "rng": _jsonable(self._rng.bit_generator.state),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore exactly (bits, losses, counters, RNG); a state for another split or chunking -> SpeakError."""
        if not isinstance(state, dict) or state.get("kind") != STATE_KIND:
            raise SpeakError("proxy state is missing or not a ProxyStore state")
        if int(state.get("n", -1)) != self.n:
            raise SpeakError(f"proxy state covers {state.get('n')} characters, this training split has {self.n}")
        saved_cfg = state.get("config") or {}
        if int(saved_cfg.get("chunk_size", -1)) != self.config.chunk_size:
            raise SpeakError(
                f"proxy state uses chunk_size {saved_cfg.get('chunk_size')}, this run {self.config.chunk_size}"
            )
        bits = np.asarray(_to_numpy(state["bits"]), dtype=np.uint8).reshape(-1)
        losses = np.asarray(_to_numpy(state["chunk_loss"]), dtype=np.float64).reshape(-1)
        if bits.shape != self._bits.shape or losses.shape != self._chunk_loss.shape:
            raise SpeakError("proxy state arrays do not match this training split")
        epochs = np.asarray(_to_numpy(state["epochs"]), dtype=np.int64).reshape(-1, 5)
        self._bits = bits.copy()
        self._ones = int(np.unpackbits(self._bits, bitorder="little")[: self.n].sum())
        self._chunk_loss = losses.copy()
        self._epochs = [_EpochCounter(*map(int, row)) for row in epochs] or [_EpochCounter()]
        self.chars_seen = int(state["chars_seen"])
        try:
            self._rng.bit_generator.state = state["rng"]
        except (KeyError, TypeError, ValueError) as err:
            raise SpeakError(f"proxy state has an invalid generator state ({err})") from None


# ---------------------------------------------------------------------------------------------- helpers
def _to_numpy(x: Any) -> Any:
    if hasattr(x, "detach"):  # torch tensor
        return x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return x


def _as_offsets(offsets: Any) -> np.ndarray:
    arr = np.asarray(_to_numpy(offsets)).reshape(-1)
    return arr.astype(np.int64)


def _per_char(losses: Any, B: int, L: int, name: str) -> np.ndarray:
    """[B, L] float64 per-character losses from [B, L] or per-row [B] (broadcast over the row's characters)."""
    arr = np.asarray(_to_numpy(losses), dtype=np.float64)
    if arr.shape == (B, L):
        return arr
    if arr.size == B:
        return np.repeat(arr.reshape(B, 1), L, axis=1)
    raise SpeakError(f"proxy {name} must be [B, L] = [{B}, {L}] per character or [B] per row, got {arr.shape}")


def _nanmean(x: np.ndarray) -> float:
    """Mean of the finite-or-inf entries, NaN (padding) left out; NaN when there are none."""
    keep = ~np.isnan(x)
    return float(x[keep].mean()) if keep.any() else float("nan")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj


def per_char_lm_loss(logits: Any, targets: Any, pad_id: int = 0) -> Any:
    """[B, L] next-character cross-entropy (nats) per position, float32: logits [B, L, V], targets [B, L]; NaN at
    pad targets (left out of a chunk's mean)."""
    import torch
    import torch.nn.functional as F

    B, L, V = logits.shape
    with torch.no_grad():
        ce = F.cross_entropy(logits.detach().reshape(-1, V).float(), targets.reshape(-1), reduction="none")
        ce = ce.view(B, L)  # [B, L]
        return ce.masked_fill(targets == pad_id, float("nan"))  # [B, L]


def per_row_lm_loss(logits: Any, targets: Any, pad_id: int = 0) -> Any:
    """[B] mean next-character cross-entropy (nats) per row: logits [B, L, V], targets [B, L]; pad targets ignored."""
    import torch
    import torch.nn.functional as F

    B, L, V = logits.shape
    with torch.no_grad():
        ce = F.cross_entropy(logits.detach().reshape(-1, V).float(), targets.reshape(-1), reduction="none")
        ce = ce.view(B, L)  # [B, L]
        keep = (targets != pad_id).to(ce.dtype)  # [B, L]
        return (ce * keep).sum(1) / keep.sum(1).clamp(min=1)  # [B]


# ---------------------------------------------------------------------------------------------- trainer plug-in
class ProxyPlugin:
    """The trainer plug-in: after each step, propose the tokenizer's spikes to the proxy store (MH per row).

    Reads ``out.boundary.tokenizer.s`` [B, L] and per-character LM losses from ``out.logits`` vs
    ``batch.chars[:, 1:]``. ``targets_for(batch)`` gives the [B, L] L_mem targets (s_hat_N) for the objective;
    :meth:`wrap_stream` (:class:`ProxyTargetStream`) puts them into ``batch.boundary_targets``, over chunk-aligned
    windows by default. With ``reevaluate`` the losses L_LM(s_hat) come from ``reevaluate_fn(batch, proxy [B, L])
    -> [B, L]`` (or [B]); when none is given, :meth:`attach` makes one from the trainer's model: a second forward,
    without gradients, with s_hat as the boundaries. :meth:`final_metrics` gives metrics.json the per-epoch
    rejection rates.

    Under data parallelism every rank gathers all ranks' rows (same order) and applies the same decisions with the
    same seeded RNG, so the stores stay identical; rank 0's state is checkpointed.
    """

    name = "proxy"

    def __init__(self, store: ProxyStore, *, reevaluate_fn: Any | None = None, log_epochs: bool = True) -> None:
        self.store = store
        self.reevaluate_fn = reevaluate_fn
        self.log_epochs = log_epochs
        self.last_decision: Decision | None = None

    def attach(self, trainer: Any) -> None:
        """With ``reevaluate`` and no ``reevaluate_fn``: score s_hat with the trainer's model (no gradients)."""
        if not self.store.config.reevaluate or self.reevaluate_fn is not None:
            return
        import torch

        model = trainer.model

        def reevaluate(batch: Any, proxy: Any) -> Any:
            with torch.no_grad():
                out = model(batch.chars[:, :-1], boundaries=proxy)
            return per_char_lm_loss(out.logits, batch.chars[:, 1:])  # [B, L]

        self.reevaluate_fn = reevaluate

    @classmethod
    def from_boundaries(cls, init_boundaries: np.ndarray, options: dict[str, Any] | None = None, *,
                        seq_len: int | None = None, seed: int = 0, **kwargs: Any) -> "ProxyPlugin":
        """A plug-in over a fresh store; ``options`` = ``TrainConfig.proxy``. chunk_size defaults to seq_len with
        aligned windows (a window is a chunk) and to seq_len // 4 with random ones (a window covers >= 3 chunks)."""
        defaults: dict[str, Any] = {"seed": seed}
        if seq_len:
            random = (options or {}).get("windows", ProxyConfig.windows) == "random"
            defaults["chunk_size"] = max(1, int(seq_len) // 4) if random else int(seq_len)
        return cls(ProxyStore(init_boundaries, ProxyConfig.from_mapping(options, **defaults)), **kwargs)

    def wrap_stream(self, stream: Any) -> "ProxyTargetStream":
        """The training stream for this proxy: with ``windows="aligned"`` a random-offset ``CharStream`` becomes a
        :class:`~speak.train.data.ChunkStream` over the same split (windows = chunks, seeded per-epoch order);
        every batch then carries the proxy targets."""
        from speak.train.data import CharStream, ChunkStream

        if self.store.config.windows == "aligned" and isinstance(stream, CharStream):
            if stream.seq_len % self.store.config.chunk_size:
                raise SpeakError(f"proxy.windows=aligned needs chunk_size ({self.store.config.chunk_size}) to divide "
                                 f"seq_len ({stream.seq_len})")
            stream = ChunkStream.from_stream(stream)
        return ProxyTargetStream(stream, self)

    def final_metrics(self) -> dict[str, Any]:
        """metrics.json keys: ``proxy_reject_rate_per_epoch`` (rejected / MH decisions, one per epoch; NaN where an
        epoch had none, e.g. the first pass of aligned windows, all first visits), ``proxy_epochs`` (the counters)
        and ``proxy_sf``."""
        stats = self.store.epoch_stats()
        for row in stats:  # JSON has no NaN
            row["reject_rate"] = row["reject_rate"] if math.isfinite(row["reject_rate"]) else None
        return {"proxy_reject_rate_per_epoch": [row["reject_rate"] for row in stats], "proxy_epochs": stats,
                "proxy_sf": self.store.sf}

    def targets_for(self, batch: Any) -> Any:
        """[B, L] float proxy targets for ``batch`` (inputs chars[:, :-1] at ``batch.offsets``), on its device."""
        import torch

        L = int(batch.chars.shape[1]) - 1
        arr = self.store.get(batch.offsets, L)
        return torch.from_numpy(arr).to(batch.chars.device)

    def on_step_end(self, step: int, batch: Any, out: Any, metrics: dict[str, float]) -> None:
        tok = getattr(getattr(out, "boundary", None), "tokenizer", None)
        if tok is None or getattr(tok, "s", None) is None:
            raise SpeakError("the proxy plug-in needs a spiking boundary source (out.boundary.tokenizer.s)")
        spikes = tok.s.detach()  # [B, L]
        losses = per_char_lm_loss(out.logits, batch.chars[:, 1:])  # [B, L]
        offsets = batch.offsets
        proxy_losses = None
        if self.store.config.reevaluate:
            if self.reevaluate_fn is None:
                raise SpeakError("proxy.reevaluate needs a reevaluate_fn or a trainer to attach to")
            proxy_losses = self.reevaluate_fn(batch, self.targets_for(batch))  # [B, L] or [B]
        offsets, spikes, losses, proxy_losses = _gather_rows(offsets, spikes, losses, proxy_losses)
        d = self.store.update(offsets, spikes, losses, proxy_losses)
        self.last_decision = d
        metrics["proxy_reject_rate"] = d.reject_rate
        metrics["proxy_decisions"] = float((~d.first).sum())  # MH decisions this step (first visits are none)
        metrics["proxy_accept_frac"] = float(d.accepted.mean()) if d.accepted.size else 0.0  # of decided chunks
        metrics["proxy_epoch"] = self.store.epoch
        metrics["proxy_sf"] = self.store.sf

    def extra_state(self) -> dict[str, Any]:
        return self.store.state_dict()

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.store.load_state_dict(state)


def _gather_rows(offsets: Any, spikes: Any, losses: Any, proxy_losses: Any) -> tuple[Any, Any, Any, Any]:
    """All ranks' rows in rank order when torch.distributed is initialised (identical stores on every rank)."""
    import torch

    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return offsets, spikes, losses, proxy_losses
    world = dist.get_world_size()

    def gather(t: Any) -> Any:
        if t is None:
            return None
        t = t.contiguous()
        parts = [torch.empty_like(t) for _ in range(world)]
        dist.all_gather(parts, t)
        return torch.cat(parts, 0)

    return (gather(offsets), gather(spikes.float()), gather(losses.float()),
            gather(proxy_losses.float() if proxy_losses is not None else None))


class ProxyTargetStream:
    """Wraps a training stream: each batch's ``boundary_targets`` become the proxy targets (s_hat_N) at its offsets.

    ``state_dict`` / ``load_state_dict`` delegate to the wrapped stream (the proxy's state lives in the plug-in).
    """

    def __init__(self, stream: Any, plugin: ProxyPlugin) -> None:
        self.stream = stream
        self.plugin = plugin

    def next_batch(self) -> Any:
        batch = self.stream.next_batch()
        if hasattr(self.stream, "epoch"):  # a ChunkStream: per-epoch counters follow its passes
            self.plugin.store.mark_epoch(self.stream.epoch)
        batch.boundary_targets = self.plugin.targets_for(batch)
        return batch

    def __iter__(self):
        while True:
            yield self.next_batch()

    def __len__(self) -> int:
        return len(self.stream)

    def state_dict(self) -> dict[str, Any]:
        return self.stream.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stream.load_state_dict(state)

    def __getattr__(self, name: str) -> Any:  # batch_size, seq_len, chars_per_batch, ...
        return getattr(self.stream, name)
