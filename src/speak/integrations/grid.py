"""Stage-1 grid search over the Table 7 factors (paper App. C.2): mimic an exemplar, report spike accuracies.

Factors (all optional; missing ones keep MimicConfig's defaults, the paper's final configuration):
``encoder`` (``char-mlp`` = "1 layer" Linear-LN-GELU, ``char-mlp-2`` = two such blocks, ``char-ngram`` = hashed causal
n-grams, ours), ``balanced`` (L_mem's two sums weighted equally, ours), ``tanh`` (Linear1 with or
without tanh), ``alpha``, ``beta`` (L_mem, Eq. 14) and ``char_dim``. The paper's hourglass ContextEncoders are not
per-character and are not part of this grid. One exemplar is trained once and shared by every configuration.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from speak.atomic import atomic_write_json, atomic_write_text, ensure_dir
from speak.errors import SpeakError

FACTORS = ("encoder", "tanh", "alpha", "beta", "char_dim", "balanced")
# a factor's MimicConfig field where the names differ (Table 7 calls them alpha, beta; L_mem's balanced option)
FIELDS = {"alpha": "mem_alpha", "beta": "mem_beta", "balanced": "mem_balanced"}
ENCODER_NAMES = {"char-mlp": "1 layer", "char-mlp-2": "2 layers", "char-ngram": "hashed n-grams"}


@dataclass
class GridRow:
    encoder: str
    tanh: bool
    alpha: float
    beta: float
    char_dim: int
    spike_acc: float
    nonspike_acc: float
    acc_sum: float
    f1: float
    sf: float
    exemplar_sf: float
    seconds: float
    balanced: bool = False


def expand(factors: dict[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The Cartesian product of the factor values, in the order given."""
    unknown = sorted(set(factors) - set(FACTORS))
    if unknown:
        raise SpeakError(f"unknown grid factor(s) {', '.join(unknown)}; valid: {', '.join(FACTORS)}")
    keys = [k for k in FACTORS if k in factors]
    for k in keys:
        if not list(factors[k]):
            raise SpeakError(f"grid factor {k!r} has no values")
    return [dict(zip(keys, combo)) for combo in itertools.product(*(list(factors[k]) for k in keys))]


def grid_search(text: str, factors: dict[str, Sequence[Any]], steps: int = 300, *, base=None,
                progress: Callable[[int, int, GridRow], None] | None = None) -> list[GridRow]:
    """Fit one tokenizer per configuration (``fit_tokenizer``) and collect Table-7 metrics on the valid split."""
    from speak.text.corpora import split_corpus
    from speak.text.exemplar import load_exemplar
    from speak.train.mimic import MimicConfig, _lines, fit_tokenizer

    base = base or MimicConfig()
    base = replace(base, steps=int(steps))
    configs = expand(factors)
    train_lines, _ = _lines(split_corpus(text).train)
    if len(train_lines) < 2:
        raise SpeakError("corpus too small for the grid: it needs several lines in its train part")
    exemplar = load_exemplar(base.exemplar, texts=train_lines)
    rows = []
    for i, overrides in enumerate(configs):
        cfg = replace(base, **{FIELDS.get(k, k): v for k, v in overrides.items()})
        t = time.perf_counter()
        _, m, _ = fit_tokenizer(text, cfg, exemplar=exemplar)
        row = GridRow(cfg.encoder, cfg.tanh, cfg.mem_alpha, cfg.mem_beta, cfg.char_dim, 100 * m.spike_acc,
                      100 * m.nonspike_acc, 100 * (m.spike_acc + m.nonspike_acc), m.f1, m.sf, m.exemplar_sf,
                      time.perf_counter() - t, cfg.mem_balanced)
        rows.append(row)
        if progress is not None:
            progress(i, len(configs), row)
    return rows


def table_markdown(rows: Sequence[GridRow]) -> str:
    """Table 7's layout: Linear1, ContextEncoder, alpha, beta, char dim, spike acc, non-spike acc, acc sum."""
    out = ["| Linear1 | ContextEncoder | alpha | beta | char dim | L_mem | Spike Acc | Non-spike Acc | Acc Sum |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {'tanh' if r.tanh else 'no tanh'} | {ENCODER_NAMES.get(r.encoder, r.encoder)} | {r.alpha:g} | "
                   f"{r.beta:g} | {r.char_dim} | {'balanced' if r.balanced else 'mean'} | {r.spike_acc:.2f} | {r.nonspike_acc:.2f} | {r.acc_sum:.2f} |")
    return "\n".join(out) + "\n"


def write_grid(rows: Sequence[GridRow], out_dir: str | Path, meta: dict[str, Any] | None = None) -> tuple[Path, Path]:
    out = Path(out_dir)
    ensure_dir(out)
    atomic_write_json(out / "grid.json", {"meta": meta or {}, "rows": [asdict(r) for r in rows]})
    atomic_write_text(out / "grid.md", table_markdown(rows))
    return out / "grid.json", out / "grid.md"


def parse_values(spec: str | None, kind: type) -> list[Any] | None:
    """'1.0,1.2' -> [1.0, 1.2]; for bool: 'true,false'."""
    if spec is None:
        return None
    vals = []
    for raw in spec.split(","):
        raw = raw.strip()
        if not raw:
            continue
        if kind is bool:
            low = raw.lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise SpeakError(f"not a boolean: {raw!r}")
            vals.append(low in ("true", "1", "yes"))
        else:
            try:
                vals.append(kind(raw))
            except ValueError:
                raise SpeakError(f"not a valid {kind.__name__}: {raw!r}") from None
    if not vals:
        raise SpeakError(f"empty value list {spec!r}")
    return vals


def load_grid(path: str | Path) -> list[GridRow]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return [GridRow(**r) for r in data["rows"]]
