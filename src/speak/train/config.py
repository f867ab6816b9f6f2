"""Typed training configuration: defaults < preset < config file < plain CLI flags < ``--set key=value``.

A run is fully described by one :class:`TrainConfig`. It is one tree of typed dataclasses from the CLI to the
kernel: ``model.*`` are fields of :class:`speak.lm.hourglass.HourglassConfig`, ``model.boundary.*`` fields of the
chosen boundary source's ``Options`` (``speak.lm.boundaries``), ``model.boundary.speak.*`` fields of
:class:`speak.tokenizer.TokenizerConfig`, ``proxy.*`` fields of :class:`speak.train.proxy.ProxyConfig`.
``--set a.b.c=value`` walks that tree: each value is converted to its field's type, and an unknown key is one
error line listing the valid keys at its level. ``model`` and ``proxy`` hold only the keys a run changes.

Presets (``cpu-tiny``, ``cpu-small``, ``paper``) live in :mod:`speak.presets`; ``configs/<preset>.yaml`` are the
same presets as files (a test keeps them in sync).

Files are YAML (``yaml.safe_load``) or TOML (``tomllib``); nothing is ever evaluated. Unknown keys and invalid
values raise :class:`speak.errors.SpeakError` with one line naming the key.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import typing
from dataclasses import dataclass, field
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from speak.errors import SpeakError
from speak.lm.boundaries.registry import DEFAULT as DEFAULT_SOURCE
from speak.presets import TRAINING_PRESETS

AMP_CHOICES = ("auto", "off", "bf16", "fp16")

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
    boundary: str = DEFAULT_SOURCE  # boundary source name (speak.lm.boundaries.registry)
    preset: str = "cpu-small"  # scale preset: training defaults here + the model preset of the same name
    model: dict[str, Any] = field(default_factory=dict)  # overrides of the model config's fields
    clean: str | None = None  # DTP cleaner language (e.g. "en") applied to the corpus, or None
    exemplar: str = "unigram"  # exemplar segmenter spec for sources that train on exemplar or proxy targets
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
    proxy: dict[str, Any] = field(default_factory=dict)  # overrides of ProxyConfig (sources with proxy targets)

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
PRESETS: dict[str, dict[str, Any]] = TRAINING_PRESETS  # training-protocol defaults per scale (speak.presets)


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(TrainConfig))


# ---------------------------------------------------------------------------------------------- the typed tree
def _nested_roots() -> dict[str, tuple[type, tuple[str, ...]]]:
    """TrainConfig fields whose values override a lower layer's typed config: field -> (dataclass, keys it omits)."""
    from speak.lm.hourglass import HourglassConfig
    from speak.train.proxy import ProxyConfig

    return {"model": (HourglassConfig, ("vocab_size", "alphabet")), "proxy": (ProxyConfig, ())}


def _level(cls: type, omit: tuple[str, ...], boundary: str) -> dict[str, tuple[Any, tuple | None]]:
    """The keys at one level of the tree: name -> (type, (child dataclass, omitted keys) or None for a leaf)."""
    hints = typing.get_type_hints(cls)
    roots = _nested_roots() if cls is TrainConfig else {}
    out: dict[str, tuple[Any, tuple | None]] = {}
    for f in dataclasses.fields(cls):
        if f.name in omit:
            continue
        child = roots.get(f.name)
        if f.name == "boundary" and cls is not TrainConfig:  # the hourglass's BoundaryConfig: the source's options
            from speak.lm.boundaries import get_source

            child = (get_source(boundary).Options, ())
        elif "schema" in f.metadata:  # an override mapping of another config (e.g. the SPEAK tokenizer's)
            child = (f.metadata["schema"], tuple(f.metadata.get("exclude", ())))
        out[f.name] = (hints[f.name], child)
    return out


def _unknown_key(path: str, valid: Iterable[str], where: str = "") -> SpeakError:
    valid = sorted(valid)
    close = difflib.get_close_matches(path.rsplit(".", 1)[-1], valid, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    level = f"valid {path.rsplit('.', 1)[0]}.* keys" if "." in path else "valid keys"
    return SpeakError(f"unknown config key '{path}'{where} ({hint}{level}: {', '.join(valid)})")


def set_key(tree: dict[str, Any], path: str, value: Any, *, where: str = "", text: bool = False) -> None:
    """Set ``path`` (dotted, e.g. ``model.boundary.speak.theta``) in a TrainConfig mapping, walking the typed tree:
    the value is converted to the field's type (``text``: it came from the command line), a mapping merges key by
    key; an unknown key or a wrong type is a one-line SpeakError."""
    keys = path.split(".")
    level = _level(TrainConfig, (), str(tree.get("boundary", TrainConfig.boundary)))
    node = tree
    for depth, key in enumerate(keys):
        here = ".".join(keys[: depth + 1])
        if key not in level:
            raise _unknown_key(here, level, where)
        tp, child = level[key]
        if depth == len(keys) - 1:
            if child is None:
                node[key] = _coerce(here, _parse_scalar(value) if text and _wants_parse(tp) else value, tp)
                return
            mapping = _coerce(here, value, dict)
            for sub, v in mapping.items():
                set_key(tree, f"{here}.{sub}", v, where=where)
            return
        if child is None:
            raise SpeakError(f"config key '{here}' has no sub-keys (got '{path}')")
        node[key] = dict(node.get(key) or {})  # copy on write: presets and defaults stay untouched
        node = node[key]
        level = _level(child[0], child[1], str(tree.get("boundary", TrainConfig.boundary)))


def _wants_parse(tp: Any) -> bool:
    """Whether a command-line string for a field of type ``tp`` is parsed as YAML first (containers, Any)."""
    origin = typing.get_origin(tp) or tp
    return origin in (tuple, list, dict) or tp is Any


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
    if tp is Any:
        return value
    if origin in (tuple, list) or tp in (tuple, list):
        if isinstance(value, str):
            value = _parse_scalar(value)
        if not isinstance(value, (list, tuple)):
            raise SpeakError(f"config key '{key}' must be a list, got {value!r}")
        inner = [a for a in args if a is not Ellipsis] or [Any]
        if origin is tuple and Ellipsis not in args and len(args) not in (0, len(value)):
            raise SpeakError(f"config key '{key}' must have {len(args)} items, got {len(value)}")
        return [_coerce(f"{key}[{i}]", v, inner[min(i, len(inner) - 1)]) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if isinstance(value, str):
            import yaml

            try:
                value = yaml.safe_load(value) if value.strip() else {}
            except yaml.YAMLError as err:
                raise SpeakError(f"config key '{key}': not a mapping: {value!r} ({err.__class__.__name__})") from None
        if not isinstance(value, dict):
            raise SpeakError(f"config key '{key}' must be a mapping, got {type(value).__name__}")
        if len(args) == 2:
            return {str(k): _coerce(f"{key}.{k}", v, args[1]) for k, v in value.items()}
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
    """Merge a (file) mapping into ``base`` through the typed tree; unknown keys raise SpeakError."""
    out = copy.deepcopy(base)
    items = sorted(mapping.items(), key=lambda kv: isinstance(kv[1], dict))  # plain keys (the boundary) first
    for key, value in items:
        if not isinstance(key, str):
            raise _unknown_key(str(key), FIELD_NAMES, where)
        set_key(out, key, value, where=where)
    return out


def apply_overrides(base: dict[str, Any], sets: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``key=value`` strings (dotted paths walk the typed tree), each typed by its field."""
    out = copy.deepcopy(base)
    pairs = []
    for item in sets:
        if "=" not in item:
            raise SpeakError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        pairs.append((key.strip(), value))
    for key, value in sorted(pairs, key=lambda kv: "." in kv[0]):  # top-level keys (the boundary) first
        set_key(out, key, value, where=" (in --set)", text=True)
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
            raise _unknown_key(str(key), FIELD_NAMES, where)
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    for key in flags:
        if key not in FIELD_NAMES:
            raise _unknown_key(key, FIELD_NAMES, " (in flags)")
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
    from speak.lm.boundaries import source_names

    names = source_names()
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
        validate_model_config(cfg)


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


# ---------------------------------------------------------------------------------------------- the model config
def model_config(cfg: TrainConfig, vocab_size: int, alphabet: tuple[str, ...] | None):
    """The HourglassConfig of a run: the model preset of ``cfg.preset`` + ``cfg.model`` + the boundary source."""
    from speak.lm.boundaries import BoundaryConfig
    from speak.lm.hourglass import HourglassConfig
    from speak.presets import HOURGLASS_PRESETS

    overrides = copy.deepcopy(cfg.model)
    bopts = dict(overrides.pop("boundary", None) or {})
    if "layers" in overrides:
        overrides["layers"] = tuple(overrides["layers"])
    if cfg.preset not in HOURGLASS_PRESETS:
        raise SpeakError(f"the model has no preset '{cfg.preset}' (known: {', '.join(HOURGLASS_PRESETS)})")
    base = dict(HOURGLASS_PRESETS[cfg.preset])
    base.update(overrides)
    base["max_len"] = max(int(base.get("max_len", cfg.seq_len)), cfg.seq_len)
    try:
        return HourglassConfig(vocab_size=vocab_size, alphabet=alphabet,
                               boundary=BoundaryConfig(cfg.boundary, **bopts), **base)
    except TypeError as err:
        raise SpeakError(f"invalid model config: {err}") from None


def validate_model_config(cfg: TrainConfig) -> None:
    """Check ``cfg.model`` and ``cfg.proxy`` against their typed configs (with a stand-in alphabet) at start-up."""
    from speak.train.proxy import ProxyConfig

    alphabet = ("<pad>", "<unk>", " ", "a", "b", "\n")
    model_config(cfg, len(alphabet), alphabet)
    ProxyConfig.from_mapping(cfg.proxy)
