import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("boundary", ["fixed", "speak"])  # speak: its calibrated threshold is a trained buffer
def test_torchrun_two_processes(tmp_path, boundary):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(HERE / "ddp_worker.py"), str(tmp_path), boundary]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == 4
    assert (run / "train_log.csv").read_text().count("\n") == 5  # header + 4 steps
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["digest"] == r1["digest"]  # parameters and buffers identical across ranks
    assert r0["offsets"] != r1["offsets"]  # each rank draws its own windows
    meta = json.loads((run / "checkpoints" / "last" / "meta.json").read_text())
    assert meta["state"]["world_size"] == 2
