"""Checkpoints without pickle: tensors in safetensors, everything else in JSON, written atomically.

Layout of a run's checkpoint folder (``RUN/checkpoints``)::

    last/   model.safetensors   the model's state_dict (tied tensors are stored once per name)
            state.safetensors   every other tensor: optimizer moments, plug-in tensors (e.g. SPEAK's proxy bits)
            meta.json           step, config, RNG states (as lists), data stream, scheduler, scaler, best metric,
                                plug-in state, and a manifest (size + SHA-256 of each file)
    prev/   the checkpoint before ``last``

A save writes a fresh temporary folder in the same parent, fsyncs every file and the folder, then rotates
``last -> prev`` and renames the new folder to ``last`` (``os.replace``). A crash leaves either the old pair or
``prev`` alone (which :func:`load_checkpoint` falls back to), never a half-written ``last``. Loading checks the
manifest (missing, truncated or corrupted files) and raises a one-line :class:`SpeakError`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from speak.atomic import dir_mode, ensure_dir, file_mode, fsync_dir
from speak.errors import SpeakError

FORMAT = "speak.checkpoint"
VERSION = 1
MODEL_FILE = "model.safetensors"
STATE_FILE = "state.safetensors"
META_FILE = "meta.json"
LAST = "last"
PREV = "prev"
_TMP_PREFIX = ".tmp-ckpt-"


# ---------------------------------------------------------------------------------------------- (de)serialisation
class _TensorSink:
    """Collects tensors under unique names while a nested state is turned into JSON."""

    def __init__(self) -> None:
        self.tensors: dict[str, Tensor] = {}

    def add(self, prefix: str, t: Tensor) -> str:
        name = prefix or "t"
        i = 0
        while name in self.tensors:
            i += 1
            name = f"{prefix}#{i}"
        self.tensors[name] = t.detach().to("cpu").contiguous().clone()
        return name


def encode_state(obj: Any, sink: _TensorSink, prefix: str = "") -> Any:
    """A JSON-safe copy of a nested state; tensors (and numpy arrays) go to ``sink`` and leave a reference."""
    if isinstance(obj, Tensor):
        return {"__tensor__": sink.add(prefix, obj)}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": sink.add(prefix, torch.from_numpy(np.ascontiguousarray(obj)))}
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        return {"__float__": repr(obj)}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: encode_state(v, sink, f"{prefix}.{k}" if prefix else k) for k, v in obj.items()}
        return {
            "__items__": [
                [encode_state(k, sink, prefix), encode_state(v, sink, f"{prefix}.{k}" if prefix else str(k))]
                for k, v in obj.items()
            ]
        }
    if isinstance(obj, tuple):
        return {"__tuple__": [encode_state(v, sink, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode_state(v, sink, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, torch.dtype):
        return {"__dtype__": str(obj).removeprefix("torch.")}
    raise SpeakError(f"checkpoint: cannot store a value of type {type(obj).__name__} at '{prefix}'")


def decode_state(obj: Any, tensors: dict[str, Tensor]) -> Any:
    """Inverse of :func:`encode_state`."""
    if isinstance(obj, list):
        return [decode_state(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj or "__ndarray__" in obj:
        name = obj.get("__tensor__", obj.get("__ndarray__"))
        if name not in tensors:
            raise SpeakError(f"checkpoint: tensor '{name}' is missing from {STATE_FILE}")
        t = tensors[name]
        return t.numpy() if "__ndarray__" in obj else t
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__tuple__" in obj:
        return tuple(decode_state(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {decode_state(k, tensors): decode_state(v, tensors) for k, v in obj["__items__"]}
    if "__dtype__" in obj:
        return getattr(torch, obj["__dtype__"])
    return {k: decode_state(v, tensors) for k, v in obj.items()}


def model_tensors(model_or_state: torch.nn.Module | dict[str, Tensor]) -> dict[str, Tensor]:
    """A model's state_dict as independent contiguous CPU tensors (safetensors refuses shared storage)."""
    sd = model_or_state.state_dict() if isinstance(model_or_state, torch.nn.Module) else model_or_state
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}


# ---------------------------------------------------------------------------------------------- RNG states
def rng_state() -> dict[str, Any]:
    """Python, numpy (legacy global) and torch CPU/CUDA generator states, as JSON lists."""
    import random

    py = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state().tolist(),
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state` output; malformed -> SpeakError."""
    import random

    try:
        py = state["python"]
        random.setstate((int(py[0]), tuple(int(x) for x in py[1]), py[2]))
        npst = state["numpy"]
        np.random.set_state((str(npst[0]), np.asarray(npst[1], dtype=np.uint32), int(npst[2]), int(npst[3]),
                             float(npst[4])))
        torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
        cuda = state.get("cuda") or []
        if cuda and torch.cuda.is_available():
            n = min(len(cuda), torch.cuda.device_count())
            torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in cuda[:n]])
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as err:
        raise SpeakError(f"checkpoint: invalid RNG state ({err.__class__.__name__}: {err})") from None


# ---------------------------------------------------------------------------------------------- files
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)



# ---------------------------------------------------------------------------------------------- save / load
@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns."""

    path: Path
    model: dict[str, Tensor]
    state: dict[str, Any]  # decoded meta: step, config, rng, data, scheduler, optimizer, extra, ...
    meta: dict[str, Any] = field(default_factory=dict)  # the raw meta.json

    @property
    def step(self) -> int:
        return int(self.state.get("step", 0))


def save_checkpoint(root: str | Path, model: torch.nn.Module | dict[str, Tensor], state: dict[str, Any]) -> Path:
    """Write ``model`` tensors and ``state`` (nested; tensors allowed anywhere) as ``root/last`` atomically.

    The previous ``last`` becomes ``prev``; the one before is deleted. Returns the new ``last`` folder. On any
    failure the temporary folder is removed and the existing checkpoints are untouched.
    """
    from safetensors.torch import save_file

    root = Path(root)
    ensure_dir(root, 'checkpoint folder')
    for stale in root.glob(f"{_TMP_PREFIX}*"):  # left by a crash mid-save
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=root))
    os.chmod(tmp, dir_mode())  # mkdtemp's 0700 would hide the checkpoint from other users
    try:
        sink = _TensorSink()
        encoded = encode_state(state, sink)
        save_file(model_tensors(model), str(tmp / MODEL_FILE), metadata={"format": FORMAT})
        save_file(sink.tensors, str(tmp / STATE_FILE), metadata={"format": FORMAT})
        manifest = {}
        for name in (MODEL_FILE, STATE_FILE):
            p = tmp / name
            os.chmod(p, file_mode())  # safetensors writes 0600 whatever the umask
            _fsync_file(p)
            manifest[name] = {"bytes": p.stat().st_size, "sha256": _sha256(p)}
        meta = {"format": FORMAT, "version": VERSION, "files": manifest, "state": encoded}
        with open(tmp / META_FILE, "w", encoding="utf-8") as fh:
            json.dump(meta, fh)
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(tmp)
        last, prev = root / LAST, root / PREV
        if last.exists():
            if prev.exists():
                shutil.rmtree(prev)
            os.replace(last, prev)
        os.replace(tmp, last)
        fsync_dir(root)
        return last
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, (OSError, RuntimeError, ValueError, TypeError)) and not isinstance(err, SpeakError):
            raise SpeakError(f"could not write checkpoint in {root}: {err.__class__.__name__}: {err}") from err
        raise


def find_checkpoint(root: str | Path) -> Path | None:
    """``root/last`` if present, else ``root/prev`` (a save interrupted between its renames), else None."""
    root = Path(root)
    for name in (LAST, PREV):
        p = root / name
        if (p / META_FILE).is_file():
            return p
    return None


def load_checkpoint(path: str | Path, *, verify: bool = True) -> Checkpoint:
    """Load a checkpoint folder (``.../last``) or a checkpoints root (picks :func:`find_checkpoint`).

    Missing, truncated or corrupted files, or a malformed meta.json, raise a one-line SpeakError.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / META_FILE).exists():
        found = find_checkpoint(path)
        if found is None:
            raise SpeakError(f"no checkpoint found in {path} (expected {path}/{LAST}/{META_FILE})")
        path = found
    try:
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SpeakError(f"checkpoint {path}: unreadable {META_FILE} ({err.__class__.__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SpeakError(f"checkpoint {path}: {META_FILE} is not a speak checkpoint")
    if meta.get("version") != VERSION:
        raise SpeakError(f"checkpoint {path}: unsupported version {meta.get('version')!r} (this speak reads {VERSION})")
    files = meta.get("files") or {}
    loaded: dict[str, dict[str, Tensor]] = {}
    for name in (MODEL_FILE, STATE_FILE):
        p = path / name
        info = files.get(name)
        if not p.is_file():
            raise SpeakError(f"checkpoint {path}: {name} is missing")
        if not isinstance(info, dict):
            raise SpeakError(f"checkpoint {path}: {META_FILE} lists no entry for {name}")
        size = p.stat().st_size
        if size != info.get("bytes"):
            raise SpeakError(f"checkpoint {path}: {name} is truncated or altered ({size} bytes, expected {info.get('bytes')})")
        if verify and _sha256(p) != info.get("sha256"):
            raise SpeakError(f"checkpoint {path}: {name} is corrupted (SHA-256 mismatch)")
        try:
            loaded[name] = load_file(str(p), device="cpu")
        except (SafetensorError, OSError, RuntimeError, ValueError) as err:
            raise SpeakError(f"checkpoint {path}: {name} is not a valid safetensors file ({err})") from None
    state = decode_state(meta.get("state") or {}, loaded[STATE_FILE])
    if not isinstance(state, dict):
        raise SpeakError(f"checkpoint {path}: malformed state in {META_FILE}")
    return Checkpoint(path=path, model=loaded[MODEL_FILE], state=state, meta=meta)


def load_model_weights(model: torch.nn.Module, tensors: dict[str, Tensor], *, where: str = "checkpoint") -> None:
    """``model.load_state_dict`` with one-line errors for missing / unexpected / mis-shaped tensors. A module with
    ``fill_legacy_state(tensors, prefix)`` first supplies the entries that checkpoints from before it lack."""
    tensors = dict(tensors)
    for name, module in model.named_modules():
        fill = getattr(module, "fill_legacy_state", None)
        if callable(fill):
            fill(tensors, f"{name}." if name else "")
    own = model.state_dict()
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} (e.g. '{missing[0]}')")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} (e.g. '{unexpected[0]}')")
        raise SpeakError(f"{where} does not match the model: {', '.join(parts)}")
    for k, v in own.items():
        if tuple(v.shape) != tuple(tensors[k].shape):
            raise SpeakError(f"{where} does not match the model: '{k}' has shape {tuple(tensors[k].shape)}, "
                             f"the model expects {tuple(v.shape)}")
    model.load_state_dict(tensors)
