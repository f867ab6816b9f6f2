import json
import math

import numpy as np
import pytest
import torch

from speak.errors import SpeakError
from speak.train import checkpoint as C

from .conftest import TinyLM


def _state(model):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randint(0, 16, (2, 5))).sum().backward()
    opt.step()
    return opt, {
        "step": 7,
        "optimizer": opt.state_dict(),
        "nested": {3: (1, 2.5, "x"), "arr": np.arange(5, dtype=np.int32), "nan": float("nan"), "t": torch.ones(2, 3)},
        "rng": C.rng_state(),
    }


def test_round_trip(tmp_path):
    model = TinyLM()
    opt, state = _state(model)
    C.save_checkpoint(tmp_path, model, state)
    ck = C.load_checkpoint(tmp_path)
    assert ck.step == 7 and ck.path == tmp_path / "last"
    for k, v in model.state_dict().items():
        assert torch.equal(ck.model[k], v)
    opt2 = torch.optim.Adam(TinyLM().parameters(), lr=1e-3)
    opt2.load_state_dict(ck.state["optimizer"])
    for a, b in zip(opt.state_dict()["state"].values(), opt2.state_dict()["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in a)
    nested = ck.state["nested"]
    assert nested[3] == (1, 2.5, "x") and math.isnan(nested["nan"])
    assert nested["arr"].tolist() == [0, 1, 2, 3, 4] and torch.equal(nested["t"], torch.ones(2, 3))
    # meta.json is plain JSON (no pickle anywhere)
    json.loads((tmp_path / "last" / "meta.json").read_text())


def test_rotation_keeps_last_and_previous(tmp_path):
    model = TinyLM()
    for step in (1, 2, 3):
        C.save_checkpoint(tmp_path, model, {"step": step})
    assert C.load_checkpoint(tmp_path / "last").step == 3
    assert C.load_checkpoint(tmp_path / "prev").step == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last", "prev"]


def test_rng_round_trip():
    import random

    st = C.rng_state()
    a = (random.random(), np.random.rand(), torch.rand(3))
    C.set_rng_state(json.loads(json.dumps(st)))
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "meta", "no-ckpt"])
def test_damaged_checkpoint_is_one_line_error(tmp_path, damage):
    model = TinyLM()
    C.save_checkpoint(tmp_path, model, {"step": 1, "t": torch.zeros(100)})
    f = tmp_path / "last" / C.MODEL_FILE
    if damage == "truncate":
        data = f.read_bytes()
        f.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        data = bytearray(f.read_bytes())
        data[-3] ^= 0xFF
        f.write_bytes(bytes(data))
    elif damage == "delete":
        (tmp_path / "last" / C.STATE_FILE).unlink()
    elif damage == "meta":
        (tmp_path / "last" / "meta.json").write_text("{not json")
    else:
        tmp_path = tmp_path / "empty"
    with pytest.raises(SpeakError) as err:
        C.load_checkpoint(tmp_path)
    assert "\n" not in str(err.value)


def test_failed_save_leaves_nothing_partial(tmp_path, monkeypatch):
    model = TinyLM()
    C.save_checkpoint(tmp_path, model, {"step": 1})
    before = (tmp_path / "last" / "meta.json").read_bytes()
    import safetensors.torch as st

    real = st.save_file
    calls = {"n": 0}

    def flaky(tensors, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] == 2:
            real(tensors, filename, metadata=metadata)
            raise OSError("disk full")
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(st, "save_file", flaky)
    with pytest.raises(SpeakError, match="disk full"):
        C.save_checkpoint(tmp_path, model, {"step": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    assert (tmp_path / "last" / "meta.json").read_bytes() == before
    assert C.load_checkpoint(tmp_path).step == 1


def test_unstorable_value(tmp_path):
    with pytest.raises(SpeakError, match="cannot store"):
        C.save_checkpoint(tmp_path, TinyLM(), {"fn": object()})
    assert not any(p.name.startswith(".tmp") for p in tmp_path.iterdir())


def test_weights_mismatch(tmp_path):
    C.save_checkpoint(tmp_path, TinyLM(d=16), {"step": 1})
    with pytest.raises(SpeakError, match="shape"):
        C.load_model_weights(TinyLM(d=8), C.load_checkpoint(tmp_path).model)
