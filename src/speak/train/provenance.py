"""Where a run's corpus came from: its absolute path and content hash (``RUN/corpus.json``), so a run folder can be
evaluated or resumed from any directory and says clearly when its corpus moved or changed."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

from speak.atomic import atomic_write_json, read_json
from speak.errors import SpeakError

CORPUS_FILE = "corpus.json"
_PATH_SPECS = ("text8", "enwik8")  # specs that may carry a local path: "text8:PATH"


def _split(spec: str) -> tuple[str, Path] | None:
    """(prefix, path) when the spec names a local file ("text8:" prefix for "text8:PATH", "" for a plain path)."""
    name, sep, arg = str(spec).partition(":")
    if sep and name.lower() in _PATH_SPECS:
        return (name + ":", Path(arg).expanduser()) if arg else None
    path = Path(str(spec)).expanduser()
    looks_like_path = path.exists() or "/" in str(spec) or path.suffix.lower() in (".txt", ".xz", ".gz", ".bz2", ".zip")
    return ("", path) if looks_like_path else None


def absolute_spec(spec: str) -> str:
    """The corpus spec with a local file's path made absolute (other specs unchanged)."""
    split = _split(spec)
    if split is None or not split[1].exists():
        return spec
    return split[0] + str(split[1].resolve())


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def corpus_record(spec: str) -> dict[str, Any]:
    """{spec, path, bytes, sha256} of a local-file corpus; {spec} alone for named corpora (embedded, wiki40b, ...)."""
    split = _split(spec)
    if split is None or not split[1].is_file():
        return {"spec": spec}
    path = split[1].resolve()
    return {"spec": spec, "path": str(path), "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def write_corpus_record(run_dir: str | os.PathLike, spec: str) -> None:
    atomic_write_json(Path(run_dir) / CORPUS_FILE, corpus_record(spec))


def check_run_corpus(run_dir: str | os.PathLike, spec: str, *, strict: bool) -> str:
    """The spec to load a run's corpus with, from any directory. A moved corpus is one SpeakError that names the
    recorded path; a changed one is a SpeakError when `strict` (resuming needs the same text), else a warning line.
    A run without a record (older runs) gets a relative path looked up from the run folder's parents."""
    run_dir = Path(run_dir)
    record = read_json(run_dir / CORPUS_FILE, what="corpus record") if (run_dir / CORPUS_FILE).is_file() else None
    if record is None:
        split = _split(spec)
        if split is not None and not split[1].is_absolute() and not split[1].exists():
            for parent in run_dir.resolve().parents:
                if (parent / split[1]).is_file():
                    return split[0] + str(parent / split[1])
        return spec
    path = record.get("path")
    if not path:
        return spec
    where = Path(path)
    if not where.is_file():
        fix = "put it back to resume" if strict else "put it back, or evaluate on another corpus with --corpus"
        raise SpeakError(f"{where}: the corpus of run {run_dir} is gone (moved or deleted); {fix}")
    digest = file_sha256(where)
    if digest != record.get("sha256"):
        message = (f"{where}: the corpus changed since run {run_dir} was trained (sha256 {record.get('sha256', '?')[:12]}"
                   f" -> {digest[:12]})")
        if strict:
            raise SpeakError(message + "; resuming needs the same text")
        print(f"speak: warning: {message}; its metrics are not comparable with the run's", file=sys.stderr)
    split = _split(spec)
    return split[0] + str(where) if split is not None else spec
