"""Typed training configuration: defaults < preset < config file < plain CLI flags < ``--set key=value``.

A run is fully described by one :class:`TrainConfig`. Presets (``cpu-tiny``, ``cpu-small``, ``paper``) bundle the
training-protocol defaults for a scale; the model size of the same name comes from ``speak.lm.hourglass``'s
presets (``model`` holds per-field overrides of that model config). ``configs/<preset>.yaml`` are the same presets
as files (a test keeps them in sync).

Files are YAML (``yaml.safe_load``) or TOML (``tomllib``); nothing is ever evaluated. Unknown keys and invalid
values raise :class:`speak.errors.SpeakError` with one line naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speak.errors import SpeakError

AMP_CHOICES = ("auto", "off", "bf16", "fp16")

# Boundary sources named by the architecture doc; the live registry in speak.lm.boundaries wins when present.
KNOWN_BOUNDARIES = ("none", "fixed", "whitespace", "dtp-entropy", "dtp-unigram", "dtp-gumbel", "magnet", "speak")

# Boundary sources that train on corpus-aligned exemplar (SentencePiece Unigram) boundaries.
NEEDS_EXEMPLAR_TARGETS = frozenset({"dtp-unigram", "speak"})

# Keys that may change when a run is resumed (operational knobs); everything else must match the checkpoint.
RESUME_MUTABLE = frozenset(
    {
        "steps", "eval_every", "eval_windows", "eval_batch_size", "test_windows", "timing_batches", "out", "amp",
        "device", "log_every", "checkpoint_every", "quiet",
    }
)


@dataclass
class TrainConfig:
    """Everything a training run needs. Field docs are the CLI/YAML key documentation."""

    corpus: str = "embedded"  # a load_corpus spec: a path (.txt/.xz/.gz), "embedded", "text8", ...
    boundary: str = "none"  # boundary source name (none, fixed, whitespace, dtp-*, magnet, speak)
    preset: str = "cpu-small"  # scale preset: training defaults here + the model preset of the same name
    model: dict[str, Any] = field(default_factory=dict)  # overrides of the model config's fields
    clean: str | None = None  # DTP cleaner language (e.g. "en") applied to the corpus, or None
    exemplar: str = "unigram"  # exemplar segmenter spec for corpus-aligned boundary targets (dtp-unigram, speak)
    exemplar_vocab: int = 1000  # vocabulary size of the exemplar trained on the train split
    exemplar_anchor: str = "start"  # where exemplar boundaries sit for a causal predictor: start | end (text.segment)
    steps: int = 2000
    batch_size: int = 8
    seq_len: int = 512  # characters per training window (the model sees seq_len inputs, seq_len targets)
    lr: float = 2.5e-4
    warmup: int = 200  # linear warm-up steps, then cosine to 0 at `steps`
    grad_clip: float = 0.25  # max global grad norm (0 = off)
    weight_decay: float = 0.0  # AdamW decoupled weight decay (0 = plain Adam)
    eval_every: int = 500  # validation every N steps (0 = only at the end)
    eval_windows: int = 32  # windows of the valid split per periodic evaluation (0 = all)
    eval_scored: int | None = None  # scored chars per window (None: seq_len // 4; DTP: 512)
    eval_context: int | None = None  # context chars before them (None: seq_len - scored; DTP: 1536)
    eval_batch_size: int = 8
    test_windows: int = 0  # windows of the test split for the final BPC (0 = all)
    timing_batches: int = 10  # batches timed (median) for tokenize / inference ms per batch
    seed: int = 0
    out: str = "runs/default"
    amp: str = "auto"  # auto (bf16/fp16 on CUDA only), off, bf16, fp16
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    log_every: int = 10
    checkpoint_every: int = 500  # 0 = only at the end
    quiet: bool = False
    proxy: dict[str, Any] = field(default_factory=dict)  # options of the SPEAK proxy / MH plug-in (later)

    # ------------------------------------------------------------------ derived values
    @property
    def scored(self) -> int:
        """Scored characters per evaluation window."""
        return int(self.eval_scored) if self.eval_scored is not None else max(1, self.seq_len // 4)

    @property
    def context(self) -> int:
        """Context characters before the scored ones in an evaluation window."""
        return int(self.eval_context) if self.eval_context is not None else max(0, self.seq_len - self.scored)

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-safe dict of every field."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed (validated)."""
        cfg = dataclasses.replace(self, **changes)
        validate(cfg)
        return cfg


# ---------------------------------------------------------------------------------------------- presets
# Training-protocol defaults per scale. The "paper" preset is DTP's protocol (SPEC section 4).
PRESETS: dict[str, dict[str, Any]] = {
    "cpu-tiny": {
        "preset": "cpu-tiny", "steps": 200, "batch_size": 8, "seq_len": 128, "lr": 2e-3, "warmup": 20,
        "eval_every": 100, "eval_windows": 16, "eval_batch_size": 16, "test_windows": 64,
        "timing_batches": 5, "log_every": 10, "checkpoint_every": 100, "exemplar_vocab": 500,
    },
    "cpu-small": {
        "preset": "cpu-small", "steps": 2000, "batch_size": 8, "seq_len": 512, "lr": 1e-3, "warmup": 200,
        "eval_every": 500, "eval_windows": 32, "eval_batch_size": 8, "test_windows": 0,
        "timing_batches": 10, "log_every": 10, "checkpoint_every": 500, "exemplar_vocab": 1000,
    },
    "paper": {
        "preset": "paper", "steps": 200_000, "batch_size": 8, "seq_len": 2048, "lr": 2.5e-4, "warmup": 4000,
        "grad_clip": 0.25, "eval_every": 5000, "eval_windows": 64, "eval_scored": 512, "eval_context": 1536,
        "eval_batch_size": 8, "test_windows": 0, "timing_batches": 20, "log_every": 100,
        "checkpoint_every": 5000, "amp": "auto", "exemplar_vocab": 8000,
    },
}


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(TrainConfig))


def _unknown_key(key: str, where: str) -> SpeakError:
    close = difflib.get_close_matches(key, FIELD_NAMES, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return SpeakError(f"unknown config key '{key}'{where}{hint}")


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Convert ``value`` (from YAML/TOML or a CLI string) to the annotated type ``tp``; SpeakError if impossible."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "~", "")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(key, value, inner[0])
    if origin is dict or tp is dict:
        if isinstance(value, str):
            import yaml

            try:
                value = yaml.safe_load(value) if value.strip() else {}
            except yaml.YAMLError as err:
                raise SpeakError(f"config key '{key}': not a mapping: {value!r} ({err.__class__.__name__})") from None
        if not isinstance(value, dict):
            raise SpeakError(f"config key '{key}' must be a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise SpeakError(f"config key '{key}' must be a boolean, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise SpeakError(f"config key '{key}' must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip().replace("_", ""))
            except ValueError:
                try:
                    f = float(value)
                except ValueError:
                    f = None
                if f is not None and f.is_integer():
                    return int(f)
        raise SpeakError(f"config key '{key}' must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise SpeakError(f"config key '{key}' must be a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise SpeakError(f"config key '{key}' must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise SpeakError(f"config key '{key}' must be a string, got {value!r}")
    return value


def _parse_scalar(text: str) -> Any:
    """A CLI value for a free-form (dict) key: YAML scalar rules (``128`` -> int, ``true`` -> bool)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_mapping(base: dict[str, Any], mapping: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Merge a (file) mapping into ``base`` with type coercion; unknown keys raise SpeakError."""
    hints = _hints()
    out = dict(base)
    for key, value in mapping.items():
        if not isinstance(key, str) or key not in hints:
            raise _unknown_key(str(key), where)
        tp = hints[key]
        if key in ("model", "proxy"):
            merged = dict(out.get(key) or {})
            merged.update(_coerce(key, value, tp))
            out[key] = merged
        else:
            out[key] = _coerce(key, value, tp)
    return out


def apply_overrides(base: dict[str, Any], sets: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``key=value`` strings (dotted paths into ``model`` / ``proxy``), typed by the dataclass fields."""
    hints = _hints()
    out = dict(base)
    for item in sets:
        if "=" not in item:
            raise SpeakError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        key = key.strip()
        head, _, rest = key.partition(".")
        if head not in hints:
            raise _unknown_key(head, " (in --set)")
        if rest:
            if head not in ("model", "proxy"):
                raise SpeakError(f"config key '{head}' has no sub-keys (got '{key}')")
            sub = dict(out.get(head) or {})
            node = sub
            parts = rest.split(".")
            for p in parts[:-1]:
                node = node.setdefault(p, {})
                if not isinstance(node, dict):
                    raise SpeakError(f"config key '{key}': '{p}' is not a mapping")
            node[parts[-1]] = _parse_scalar(value)
            out[head] = sub
        elif head in ("model", "proxy"):
            merged = dict(out.get(head) or {})
            merged.update(_coerce(head, value, hints[head]))
            out[head] = merged
        else:
            out[head] = _coerce(head, value, hints[head])
    return out


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a YAML or TOML config file into a mapping (keys checked later)."""
    p = Path(path)
    if not p.is_file():
        raise SpeakError(f"config file not found: {p}")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise SpeakError(f"config file {p}: invalid TOML: {err}") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            msg = " ".join(str(err).split())
            raise SpeakError(f"config file {p}: invalid YAML: {msg}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpeakError(f"config file {p}: top level must be a mapping, got {type(data).__name__}")
    return data


def preset_mapping(name: str) -> dict[str, Any]:
    """The training defaults of a preset; unknown preset -> SpeakError listing the known ones."""
    if name not in PRESETS:
        raise SpeakError(f"unknown preset '{name}' (known: {', '.join(sorted(PRESETS))})")
    return dict(PRESETS[name])


def load_config(
    path: str | Path | None = None,
    *,
    flags: dict[str, Any] | None = None,
    sets: list[str] | tuple[str, ...] = (),
    validate_model: bool = True,
) -> TrainConfig:
    """Build a validated config: defaults < preset < file < ``flags`` (plain CLI options, None = unset) < ``sets``.

    The preset is taken from (in order of precedence) ``--set preset=``, the flags, the file, else the default.
    """
    file_map = read_config_file(path) if path is not None else {}
    where = f" (in {path})" if path is not None else ""
    for key in file_map:
        if key not in FIELD_NAMES:
            raise _unknown_key(str(key), where)
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    for key in flags:
        if key not in FIELD_NAMES:
            raise _unknown_key(key, " (in flags)")
    preset = TrainConfig.preset
    if "preset" in file_map:
        preset = str(file_map["preset"])
    if "preset" in flags:
        preset = str(flags["preset"])
    for item in sets:
        k, _, v = item.partition("=")
        if k.strip() == "preset":
            preset = v.strip()
    base = dataclasses.asdict(TrainConfig())
    base = apply_mapping(base, preset_mapping(preset), " (in preset)")
    base = apply_mapping(base, file_map, where)
    base = apply_mapping(base, flags, " (in flags)")
    base = apply_overrides(base, list(sets))
    cfg = TrainConfig(**base)
    validate(cfg, model=validate_model)
    return cfg


def config_from_dict(data: dict[str, Any], *, validate_model: bool = True) -> TrainConfig:
    """Rebuild a config saved with :meth:`TrainConfig.to_dict` (checkpoint / run dir); unknown keys -> SpeakError."""
    base = apply_mapping(dataclasses.asdict(TrainConfig()), data, " (in saved config)")
    cfg = TrainConfig(**base)
    validate(cfg, model=validate_model)
    return cfg


# ---------------------------------------------------------------------------------------------- validation
def known_boundaries() -> tuple[str, ...]:
    """Boundary source names: the live registry of ``speak.lm.boundaries`` when it exposes one, else the doc's list."""
    try:
        from speak.lm import boundaries as b  # noqa: PLC0415
    except Exception:  # not written yet, or broken: fall back to the documented names
        return KNOWN_BOUNDARIES
    for attr in ("BOUNDARY_SOURCES", "SOURCES", "REGISTRY", "BOUNDARIES"):
        reg = getattr(b, attr, None)
        if isinstance(reg, dict) and reg:
            return tuple(str(k) for k in reg)
        if isinstance(reg, (list, tuple)) and reg:
            return tuple(str(k) for k in reg)
    fn = getattr(b, "available_boundaries", None) or getattr(b, "boundary_names", None)
    if callable(fn):
        try:
            return tuple(str(k) for k in fn())
        except Exception:
            pass
    return KNOWN_BOUNDARIES


def _check_model_overrides(cfg: TrainConfig) -> None:
    """Validate ``model`` against the hourglass config when that module exists; always check heads | d_model."""
    from speak.train import trainer  # noqa: PLC0415  (lazy: imports torch and speak.lm)

    trainer.validate_model_config(cfg)


def validate(cfg: TrainConfig, *, model: bool = True) -> None:
    """Raise one-line SpeakErrors for invalid values (checked at start-up, before any work)."""
    def positive(name: str, allow_zero: bool = False) -> None:
        v = getattr(cfg, name)
        if v is None:
            return
        if (v < 0) if allow_zero else (v <= 0):
            need = ">= 0" if allow_zero else "> 0"
            raise SpeakError(f"config key '{name}' must be {need}, got {v}")

    for name in ("steps", "batch_size", "seq_len", "eval_batch_size", "log_every", "exemplar_vocab"):
        positive(name)
    if cfg.exemplar_anchor not in ("start", "end"):
        raise SpeakError(f"config key 'exemplar_anchor' must be 'start' or 'end', got {cfg.exemplar_anchor!r}")
    for name in ("warmup", "eval_every", "eval_windows", "test_windows", "checkpoint_every", "timing_batches",
                 "grad_clip", "weight_decay"):
        positive(name, allow_zero=True)
    positive("lr")
    positive("eval_scored")
    positive("eval_context", allow_zero=True)
    if cfg.preset not in PRESETS:
        raise SpeakError(f"unknown preset '{cfg.preset}' (known: {', '.join(sorted(PRESETS))})")
    if cfg.amp not in AMP_CHOICES:
        raise SpeakError(f"config key 'amp' must be one of {', '.join(AMP_CHOICES)}, got '{cfg.amp}'")
    dev = cfg.device
    if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        raise SpeakError(f"config key 'device' must be auto, cpu, cuda or cuda:N, got '{dev}'")
    names = known_boundaries()
    if cfg.boundary not in names:
        raise SpeakError(f"unknown boundary '{cfg.boundary}' (known: {', '.join(names)})")
    if cfg.scored + cfg.context > cfg.seq_len:
        raise SpeakError(
            f"evaluation window eval_scored + eval_context = {cfg.scored} + {cfg.context} exceeds seq_len "
            f"{cfg.seq_len} (the model would see longer sequences than it was trained on)"
        )
    if not cfg.corpus:
        raise SpeakError("config key 'corpus' is empty")
    if not cfg.out:
        raise SpeakError("config key 'out' is empty")
    if model:
        _check_model_overrides(cfg)


def resume_mismatches(saved: dict[str, Any], current: TrainConfig) -> list[str]:
    """Keys whose saved value differs from the current config and may not change on resume."""
    now = current.to_dict()
    bad = []
    for key in FIELD_NAMES:
        if key in RESUME_MUTABLE:
            continue
        if key in saved and saved[key] != now.get(key):
            bad.append(key)
    return bad


def dump_yaml(cfg: TrainConfig) -> str:
    """The config as YAML text (what `speak train` writes next to the run as config.yaml)."""
    import yaml

    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
