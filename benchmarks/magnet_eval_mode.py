"""The Gumbel sources at evaluation: validation BPC and SF of finished magnet / dtp-gumbel runs with
``eval_sampling`` = mode and = dither, against the SF their priors ask for (MAGNET: the per-byte priors converted per
character over the validation text; DTP-Gumbel: 1 / prior). Validation, because it chooses the default mode.

    python benchmarks/magnet_eval_mode.py RUN_DIR [RUN_DIR ...]

The boundaries do not change training; only the evaluation mode is swapped on the same checkpoint.
"""

from __future__ import annotations

import argparse
import sys

import torch


def target_sf(source, ids) -> float:
    """1 / the mean per-character prior over the text (each position's script prior, converted per character)."""
    from speak.lm.scripts import char_priors, sequence_scripts

    if not hasattr(source, "script_of_id"):  # dtp-gumbel: one prior
        return 1.0 / source.opts.prior
    chars = torch.as_tensor(ids, dtype=torch.long).view(1, -1)  # [1, N]
    scripts = sequence_scripts(chars, source.script_of_id)  # [1, N]
    priors = char_priors(source.priors, source.utf8_widths[chars], scripts)  # [1, S]
    return float(1.0 / priors[0][scripts[0]].mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    args = ap.parse_args(argv)
    from speak.eval.metrics import evaluate_bpc
    from speak.train.runs import load_run_model, prepare_data

    print(f"{'run':<40} {'target SF':>9} {'mode BPC':>9} {'mode SF':>9} {'dither BPC':>10} {'dither SF':>9}")
    for run in args.runs:
        cfg, vocab, model, _ = load_run_model(run)
        data = prepare_data(cfg, vocab)
        model.eval()
        row = [target_sf(model.boundary_source, data.valid_ids)]
        for mode in ("mode", "dither"):
            model.boundary_source.opts.eval_sampling = mode
            m = evaluate_bpc(model, data.valid_ids, scored=cfg.scored, context=cfg.context,
                             batch_size=cfg.eval_batch_size, max_windows=cfg.eval_windows or None)
            row += [m["bpc"], m["sf"]]
        print(f"{run[-40:]:<40} {row[0]:9.2f} {row[1]:9.4f} {row[2]:9.2f} {row[3]:10.4f} {row[4]:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
