"""How closely trained runs' boundaries follow the exemplar they were trained towards (a Table 1 diagnostic).

For each run folder (a `speak train` / `speak experiment` run with a checkpoint) this samples training windows,
takes the hourglass's boundaries and compares them with the exemplar segmentation the run was supervised with
(`speak.train.mimic.boundary_metrics`: precision, recall, F1, SF), with the recall split by the length of the
exemplar token a boundary closes (1-2 characters or longer). It also prints the share of false positives
that come right after another boundary (for SPEAK: double fires after a soft reset) and, for SPEAK runs, the share
of spikes followed by a hard reset and where the proxy s_hat ended: its SF over the training split, its agreement
with the exemplar, and the MH counts per epoch.

    python benchmarks/gtok_agreement.py runs/compare/runs/en-bible/{speak,dtp-unigram}/seed0 --windows 64
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from speak.experiments.segment_run import load_run_model
from speak.neuron.modes import ResetMode
from speak.train.checkpoint import load_checkpoint
from speak.train.data import exemplar_boundaries
from speak.train.mimic import boundary_metrics
from speak.train.proxy import ProxyStore
from speak.train.runs import exemplar_spec, prepare_data, read_run_files
from speak.train.trainer import CHECKPOINT_DIR


def recall_by_token_length(pred: np.ndarray, gold: np.ndarray, short: int = 2) -> tuple[float, float]:
    """Recall of the exemplar boundaries that close a token of <= `short` characters, and of the longer ones.

    pred, gold [W, L] bool; a boundary's token runs from the previous exemplar boundary in its window (the first
    boundary of each window has no known length and is left out)."""
    hits = {True: [0, 0], False: [0, 0]}  # is-short -> [found, total]
    for p, g in zip(pred, gold):
        pos = np.flatnonzero(g[:-1])  # [K] the final position always closes a group: not scored
        is_short = np.diff(pos) <= short  # [K-1] the length of the token each boundary pos[1:] closes
        for flag in (True, False):
            sel = pos[1:][is_short == flag]
            hits[flag][0] += int(p[sel].sum())
            hits[flag][1] += len(sel)
    return tuple(found / max(total, 1) for found, total in (hits[True], hits[False]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--windows", type=int, default=64)
    ap.add_argument("--cache", default=None, help="exemplar cache folder (default: none, retrain per corpus)")
    args = ap.parse_args()
    exemplars: dict[tuple, tuple] = {}
    cols = ["run", "rate", "P", "R", "R 1-2 chars", "R 3+ chars", "F1", "SF", "exemplar SF", "FP after a boundary",
            "hard-reset share", "proxy SF", "proxy F1", "MH acc/rej"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for run in args.runs:
        cfg, vocab = read_run_files(run)
        key = (cfg.corpus, exemplar_spec(cfg), cfg.exemplar_vocab, cfg.exemplar_anchor, cfg.seed)
        if key not in exemplars:
            data = prepare_data(cfg, vocab)
            ex = exemplar_boundaries(data.train_text, spec=key[1], vocab_size=key[2], cache_dir=args.cache,
                                     seed=cfg.seed, anchor=key[3])
            exemplars[key] = (data.train_ids, ex)
        ids, ex = exemplars[key]
        L = cfg.seq_len
        starts = np.random.default_rng(0).integers(0, len(ids) - L, size=args.windows)
        x = torch.as_tensor(np.stack([ids[s:s + L] for s in starts])).long()  # [W, L]
        gold = np.stack([ex[s:s + L] for s in starts])  # [W, L]
        model, _ = load_run_model(run)
        with torch.no_grad():
            outs = [model(x[i:i + 8]).boundary for i in range(0, len(x), 8)]
        hard = np.concatenate([b.hard.numpy() > 0.5 for b in outs])  # [W, L]
        resets = "-"  # SPEAK with entropy-aware reset: the share of spikes whose mask asks for a hard reset (Eq. 9)
        if outs[0].tokenizer is not None and ResetMode.parse(model.boundary_source.net.cfg.reset_mode).uses_mask:
            resets = f"{np.concatenate([b.tokenizer.mask.numpy() for b in outs])[hard].mean():.3f}"
        m = boundary_metrics(list(hard), list(gold))
        short, long_ = recall_by_token_length(hard, gold)
        fp = hard[:, 1:] & ~gold[:, 1:]  # [W, L-1]
        after = float((fp & hard[:, :-1]).sum() / max(fp.sum(), 1))
        proxy_cols = ["-", "-", "-"]
        state = load_checkpoint(f"{run}/{CHECKPOINT_DIR}").state.get("extra", {}).get("proxy")
        if state:
            proxy = ProxyStore(ex, chunk_size=state["config"]["chunk_size"])
            proxy.load_state_dict(state)
            pm = boundary_metrics([proxy.bits()], [ex])
            mh = " ".join(f"{e['accepted']}/{e['rejected']}" for e in proxy.epoch_stats())
            proxy_cols = [f"{pm.sf:.2f}", f"{pm.f1:.3f}", mh]
        print(f"| {run} | {hard.mean():.3f} | {m.precision:.3f} | {m.recall:.3f} | {short:.3f} | {long_:.3f} | "
              f"{m.f1:.3f} | {m.sf:.2f} | "
              f"{m.exemplar_sf:.2f} | {after:.2f} | {resets} | " + " | ".join(proxy_cols) + " |", flush=True)


if __name__ == "__main__":
    main()
