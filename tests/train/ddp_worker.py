"""Launched by test_ddp.py under `torchrun --nproc_per_node 2`: trains through the real pipeline and records a
digest of each rank's parameters and buffers at the last step (test-only files; the library writes from rank 0 only)."""

import hashlib
import json
import os
import sys
from pathlib import Path

import torch

from speak.experiments.pipeline import train_and_evaluate
from speak.train.config import load_config


class ParamDigest:
    name = "param_digest"

    def __init__(self, out: Path) -> None:
        self.out = out

    def attach(self, trainer) -> None:
        self.trainer = trainer

    def on_step_end(self, step, batch, out, metrics) -> None:
        if step != self.trainer.cfg.steps:
            return
        h = hashlib.sha256()
        for t in [*self.trainer.model.parameters(), *self.trainer.model.buffers()]:
            h.update(t.detach().cpu().numpy().tobytes())
        rank = int(os.environ["RANK"])
        offsets = batch.offsets.tolist()
        (self.out / f"rank{rank}.json").write_text(json.dumps({"digest": h.hexdigest(), "offsets": offsets}))


def main() -> None:
    out = Path(sys.argv[1])
    boundary = sys.argv[2] if len(sys.argv) > 2 else "fixed"
    cfg = load_config(
        flags=dict(preset="cpu-tiny", boundary=boundary, steps=4, out=str(out / "run"), quiet=True, device="cpu",
                   seq_len=32, batch_size=2),
        sets=["eval_every=2", "eval_windows=2", "test_windows=2", "timing_batches=1", "checkpoint_every=2",
              "log_every=1"],
    )
    torch.set_num_threads(1)
    train_and_evaluate(cfg, plugins=[ParamDigest(out)])


if __name__ == "__main__":
    main()
