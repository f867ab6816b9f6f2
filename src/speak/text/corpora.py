"""Corpus loaders and deterministic splits.

``load_corpus(spec)`` accepts:

- a path to a local ``.txt`` / ``.xz`` / ``.gz`` / ``.bz2`` / ``.zip`` file (UTF-8, read strictly and losslessly);
- ``embedded``: the World English Bible slice shipped in the package (``speak/data/en-bible.txt.xz``);
- ``text8`` / ``text8:/path`` and ``enwik8`` / ``enwik8:/path``: Matt Mahoney's benchmark files, read from the
  given local copy (the zip or the unzipped file), else from the cache, else downloaded from mattmahoney.net and
  checked against a known digest;
- ``wiki40b:LANG[:SPLIT]`` and ``cc100:LANG`` through Hugging Face ``datasets`` (imported lazily).

Every user-facing failure is a :class:`speak.errors.SpeakError` that says what to do.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from speak.errors import SpeakError

EMBEDDED_NAME = "en-bible.txt.xz"

#: Canonical archives. Digests are "ALGO:HEX". enwik8's SHA-256 is the one Hugging Face ``datasets`` records for
#: this URL; for text8.zip the published digest we could confirm offline is SHA-1 (gluonnlp's registry), so
#: text8 is checked with SHA-1 plus its size.
TEXT8_URL = "http://mattmahoney.net/dc/text8.zip"
TEXT8_ZIP_DIGEST = "sha1:6c70299b93b7e1f927b42cd8f6ac1a31547c7a2e"
TEXT8_ZIP_SIZE = 31_344_016
TEXT8_MEMBER = "text8"
ENWIK8_URL = "http://mattmahoney.net/dc/enwik8.zip"
ENWIK8_ZIP_DIGEST = "sha256:547994d9980ebed1288380d652999f38a14fe291a6247c157c3d33d4932534bc"
ENWIK8_ZIP_SIZE = 36_445_475
ENWIK8_MEMBER = "enwik8"

#: Sentinel for "use the canonical digest for archives, skip the check for an already unzipped local file".
DEFAULT = "default"

#: cc100 is streamed; without an explicit ``max_chars`` we stop after this many characters.
CC100_DEFAULT_MAX_CHARS = 100_000_000

_SPECS_HELP = (
    "a file path (.txt/.xz/.gz/.bz2/.zip), 'embedded', 'text8[:PATH]', 'enwik8[:PATH]', "
    "'wiki40b:LANG[:SPLIT]' or 'cc100:LANG'"
)


# ---------------------------------------------------------------------------------------------- local files
#: What a damaged, truncated or misnamed compressed file raises while it is read.
CODEC_ERRORS = (lzma.LZMAError, OSError, EOFError, zlib.error)


def unreadable(path: str | os.PathLike, exc: BaseException) -> SpeakError:
    """The one-line error for a file whose (decompressed) bytes cannot be read."""
    suffix = Path(path).suffix.lower()
    kind = f"a damaged or misnamed {suffix} file" if suffix in (".xz", ".lzma", ".gz", ".bz2", ".zip") else "unreadable"
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
    return SpeakError(f"{path}: {kind} ({reason})")


def open_binary(path: Path):
    """Open ``path`` for reading decompressed bytes, choosing the codec from the suffix."""
    suffix = path.suffix.lower()
    if suffix == ".xz" or suffix == ".lzma":
        return lzma.open(path, "rb")
    if suffix == ".gz":
        return gzip.open(path, "rb")
    if suffix == ".bz2":
        return bz2.open(path, "rb")
    return open(path, "rb")


def _read_bytes(path: Path) -> bytes:
    """All decompressed bytes of ``path``; a .zip must hold exactly one file (or a member named like the zip)."""
    if not path.exists():
        raise SpeakError(f"{path} does not exist")
    if path.is_dir():
        raise SpeakError(f"{path} is a directory, not a text file")
    try:
        if path.suffix.lower() == ".zip":
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/")]
                if path.stem in names:
                    names = [path.stem]
                if len(names) != 1:
                    raise SpeakError(f"{path} holds {len(names)} files; expected exactly one text file")
                return zf.read(names[0])
        with open_binary(path) as fh:
            return fh.read()
    except SpeakError:
        raise
    except (*CODEC_ERRORS, zipfile.BadZipFile) as exc:
        raise unreadable(path, exc) from None


def _decode_utf8(data: bytes, where: str) -> str:
    """Strict UTF-8 decoding with an error that names the file and the byte offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpeakError(f"{where} is not valid UTF-8 (byte offset {exc.start})") from exc


def read_text(path: str | os.PathLike) -> str:
    """Read a local UTF-8 text file, transparently decompressing ``.xz``/``.gz``/``.bz2``/``.zip``.

    Decoding is strict and newlines are kept byte for byte (``\\r\\n`` stays ``\\r\\n``), so the text is exactly
    what the file holds. A missing, empty, unreadable or non-UTF-8 file raises :class:`SpeakError`; the byte offset
    of a decoding error refers to the decompressed stream.
    """
    p = Path(path).expanduser()
    data = _read_bytes(p)
    if not data:
        raise SpeakError(f"{p} is empty")
    return _decode_utf8(data, str(p))


def embedded_corpus_path() -> Path:
    """Path of the corpus shipped inside the package (a public-domain World English Bible slice, see data/README)."""
    ref = resources.files("speak").joinpath("data", EMBEDDED_NAME)
    path = Path(str(ref))
    if not path.is_file():
        raise SpeakError(f"the embedded corpus is missing from the installation ({path}); reinstall speak")
    return path


# ---------------------------------------------------------------------------------------------- downloads
def cache_root() -> Path:
    """``$SPEAK_CACHE`` or ``~/.cache/speak``: downloaded corpora, compiled kernels."""
    return Path(os.environ.get("SPEAK_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "speak"))


def default_cache_dir() -> Path:
    """Where downloaded corpora go: ``corpora/`` under :func:`cache_root`."""
    return cache_root() / "corpora"


def file_digest(path: Path, algo: str) -> str:
    """Hex digest of a file, read in 1 MB chunks."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_digest(path: Path, expected: str | None) -> None:
    """Check ``path`` against ``expected`` ("sha256:HEX", "sha1:HEX" or bare SHA-256 hex); ``None`` skips."""
    if expected is None:
        return
    algo, _, hexd = expected.rpartition(":")
    algo = algo or "sha256"
    try:
        got = file_digest(path, algo)
    except ValueError as exc:
        raise ValueError(f"unknown digest algorithm {algo!r}") from exc
    if got.lower() != hexd.lower():
        raise SpeakError(
            f"{path} failed its {algo} check (expected {hexd}, got {got}); the file is corrupted or not the "
            "canonical one. Delete it and retry, or pass checksum=None to accept it as is."
        )


def download(url: str, dest: Path, digest: str | None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically (temporary file, digest check, rename). Network errors -> SpeakError."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out, length=1 << 20)
        verify_digest(tmp, digest)
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise SpeakError(f"could not download {url}: {exc}") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def _zip_member_text(path: Path, member: str, lossy_ok: bool = False) -> str:
    """Read ``member`` from the zip at ``path`` as UTF-8 (``lossy_ok``: replace invalid bytes, with a warning)."""
    try:
        with zipfile.ZipFile(path) as zf:
            try:
                data = zf.read(member)
            except KeyError:
                raise SpeakError(f"{path} has no member {member!r} (members: {zf.namelist()[:5]})") from None
    except zipfile.BadZipFile as exc:
        raise SpeakError(f"{path} is not a valid zip file: {exc}") from exc
    return _bytes_to_text(data, f"{path}:{member}", lossy_ok)


def _bytes_to_text(data: bytes, where: str, lossy_ok: bool) -> str:
    """Decode a benchmark file: strict UTF-8, or (``lossy_ok``) U+FFFD for invalid bytes plus a warning."""
    if not data:
        raise SpeakError(f"{where} is empty")
    if not lossy_ok:
        return _decode_utf8(data, where)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        warnings.warn(f"{where}: invalid UTF-8 bytes were replaced by U+FFFD", stacklevel=3)
        return text


def _load_mahoney(
    name: str,
    url: str,
    member: str,
    zip_digest: str,
    source: str | os.PathLike | None,
    cache_dir: str | os.PathLike | None,
    checksum: str | None,
    allow_download: bool,
    lossy_ok: bool,
) -> str:
    """Shared text8 / enwik8 logic: a local copy (zip or unzipped), then the cache, then a checked download."""
    digest = zip_digest if checksum == DEFAULT else checksum
    if source is not None:
        p = Path(source).expanduser()
        if not p.exists():
            raise SpeakError(f"{name}: {p} does not exist")
        if zipfile.is_zipfile(p):
            verify_digest(p, digest)
            return _zip_member_text(p, member, lossy_ok)
        if checksum != DEFAULT:  # an explicit digest applies to whatever file was given
            verify_digest(p, checksum)
        return _bytes_to_text(_read_bytes(p), str(p), lossy_ok)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    raw, archive = cache / member, cache / f"{member}.zip"
    if raw.is_file():
        return _bytes_to_text(raw.read_bytes(), str(raw), lossy_ok)
    if not archive.is_file():
        how = (
            f"download {url} yourself and pass '{name}:/path/to/{member}.zip' (or the unzipped file), "
            f"or put {member}.zip in {cache}"
        )
        if not allow_download:
            raise SpeakError(f"{name} is not in {cache} and downloading is disabled: {how}")
        try:
            download(url, archive, digest)
        except SpeakError as exc:
            raise SpeakError(f"{name} is not in {cache} and could not be downloaded ({exc}); {how}") from exc
    else:
        verify_digest(archive, digest)
    return _zip_member_text(archive, member, lossy_ok)


def load_text8(
    source: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    checksum: str | None = DEFAULT,
    download: bool = True,
) -> str:
    """text8 (the first 10^8 characters of cleaned 2006 English Wikipedia: a-z and space).

    ``source``: a local ``text8.zip`` or unzipped ``text8``; otherwise ``cache_dir`` (default
    :func:`default_cache_dir`) is searched and, when ``download`` is true, the archive is fetched from
    mattmahoney.net. ``checksum``: ``DEFAULT`` checks archives against the canonical digest, ``None`` skips checks,
    any "algo:hex" string is checked against whatever file is read.
    """
    return _load_mahoney(
        "text8", TEXT8_URL, TEXT8_MEMBER, TEXT8_ZIP_DIGEST, source, cache_dir, checksum, download, lossy_ok=False
    )


def load_enwik8(
    source: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    checksum: str | None = DEFAULT,
    download: bool = True,
) -> str:
    """enwik8 (the first 10^8 bytes of the 2006 English Wikipedia XML dump), read from ``enwik8.zip``'s member.

    Same sources and ``checksum`` rules as :func:`load_text8`. Decoded as UTF-8; should any byte sequence be
    invalid (the dump is cut at a byte count), it becomes U+FFFD with a warning rather than failing.
    """
    return _load_mahoney(
        "enwik8", ENWIK8_URL, ENWIK8_MEMBER, ENWIK8_ZIP_DIGEST, source, cache_dir, checksum, download, lossy_ok=True
    )


# ---------------------------------------------------------------------------------------------- HF datasets
def _import_datasets():
    """Import Hugging Face ``datasets`` lazily (it is slow to import and only needed for wiki40b / cc100)."""
    try:
        import datasets  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise SpeakError("loading wiki40b / cc100 needs the `datasets` package: pip install datasets") from exc
    return datasets


def _wiki40b_text(raw: str) -> str:
    """Turn a wiki40b record into plain text: one paragraph per line, titles and section headers dropped."""
    paragraphs = []
    for block in raw.split("_START_PARAGRAPH_")[1:]:
        body = block.split("_START_SECTION_")[0].split("_START_ARTICLE_")[0].strip()
        for par in body.split("_NEWLINE_"):
            par = par.strip()
            if par:
                paragraphs.append(par)
    return "\n".join(paragraphs)


def load_wiki40b(lang: str, split: str = "train", max_chars: int | None = None) -> str:
    """wiki40b for ``lang`` (Hugging Face ``google/wiki40b``) as one paragraph per line; offline -> SpeakError."""
    ds_mod = _import_datasets()
    try:
        ds = ds_mod.load_dataset("google/wiki40b", lang, split=split)
    except Exception as exc:  # network, missing config, offline mode: all user-facing
        raise SpeakError(
            f"wiki40b:{lang} could not be loaded through Hugging Face datasets ({type(exc).__name__}: {exc}). "
            "It needs network access or a populated HF cache (HF_DATASETS_CACHE); for an offline machine, export "
            "the text to a file and pass its path instead."
        ) from exc
    return _collect((_wiki40b_text(r["text"]) for r in ds), max_chars, f"wiki40b:{lang}")


def load_cc100(lang: str, max_chars: int | None = CC100_DEFAULT_MAX_CHARS) -> str:
    """The first ``max_chars`` characters of CC-100 ``lang`` (streamed through ``datasets``); offline -> SpeakError."""
    ds_mod = _import_datasets()
    try:
        ds = ds_mod.load_dataset("statmt/cc100", lang=lang, split="train", streaming=True)
        return _collect((r["text"].rstrip("\n") for r in ds), max_chars, f"cc100:{lang}")
    except SpeakError:
        raise
    except Exception as exc:
        raise SpeakError(
            f"cc100:{lang} could not be loaded through Hugging Face datasets ({type(exc).__name__}: {exc}). "
            "It needs network access; on an offline machine, save the text to a file and pass its path instead."
        ) from exc


def _collect(records, max_chars: int | None, name: str) -> str:
    """Join non-empty records with newlines, stopping once ``max_chars`` characters are gathered."""
    parts, total = [], 0
    for text in records:
        if not text:
            continue
        parts.append(text)
        total += len(text) + 1
        if max_chars is not None and total >= max_chars:
            break
    out = "\n".join(parts)
    if max_chars is not None:
        out = out[:max_chars]
    if not out:
        raise SpeakError(f"{name} gave no text")
    return out


# ---------------------------------------------------------------------------------------------- dispatcher
def load_corpus(spec: str | os.PathLike, cache_dir: str | os.PathLike | None = None, max_chars: int | None = None) -> str:
    """Load a corpus by spec (see the module docstring); ``max_chars`` truncates the result (and bounds streaming)."""
    if isinstance(spec, os.PathLike):
        text = read_text(spec)
        return text if max_chars is None else text[:max_chars]
    if not isinstance(spec, str) or not spec:
        raise SpeakError(f"corpus spec must be a non-empty string: {_SPECS_HELP}")
    name, sep, arg = spec.partition(":")
    key = name.lower()
    if key == "embedded" and not sep:
        text = read_text(embedded_corpus_path())
    elif key == "text8":
        text = load_text8(arg or None, cache_dir=cache_dir)
    elif key == "enwik8":
        text = load_enwik8(arg or None, cache_dir=cache_dir)
    elif key == "wiki40b" and sep:
        lang, _, split = arg.partition(":")
        if not lang:
            raise SpeakError("wiki40b needs a language: wiki40b:LANG[:SPLIT], e.g. wiki40b:en")
        text = load_wiki40b(lang, split or "train", max_chars)
    elif key == "cc100" and sep:
        if not arg:
            raise SpeakError("cc100 needs a language: cc100:LANG, e.g. cc100:fi")
        text = load_cc100(arg, max_chars if max_chars is not None else CC100_DEFAULT_MAX_CHARS)
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise SpeakError(f"unknown corpus {spec!r}: not an existing file, and not one of: {_SPECS_HELP}")
        text = read_text(path)
    return text if max_chars is None else text[:max_chars]


# ---------------------------------------------------------------------------------------------- splits
@dataclass(frozen=True)
class Splits:
    """Contiguous train / valid / test parts of one corpus (``train + valid + test == text``)."""

    train: str
    valid: str
    test: str

    def lengths(self) -> tuple[int, int, int]:
        """Character counts of the three parts."""
        return len(self.train), len(self.valid), len(self.test)


def split_corpus(text: str, valid: float = 0.05, test: float = 0.05) -> Splits:
    """Deterministic contiguous split: train first, then ``valid``, then ``test`` (fractions of the characters).

    The default is the 90/5/5 convention of SPEC section 4. Sizes are ``round(n * fraction)`` for valid and test,
    the rest is train, so ``train + valid + test == text`` exactly.
    """
    if not (0 <= valid < 1 and 0 <= test < 1 and valid + test < 1):
        raise ValueError(f"valid ({valid}) and test ({test}) must be fractions in [0, 1) summing to < 1")
    n = len(text)
    n_valid, n_test = int(round(n * valid)), int(round(n * test))
    n_train = n - n_valid - n_test
    return Splits(text[:n_train], text[n_train : n_train + n_valid], text[n_train + n_valid :])


def text8_splits(
    text: str, n_train: int = 90_000_000, n_valid: int = 5_000_000, n_test: int = 5_000_000
) -> Splits:
    """The text8 convention: the first 90M characters train, the next 5M valid, the next 5M test."""
    need = n_train + n_valid + n_test
    if len(text) < need:
        raise SpeakError(
            f"text8 splits need {need} characters but the text has {len(text)}; is this the full text8?"
        )
    return Splits(text[:n_train], text[n_train : n_train + n_valid], text[n_train + n_valid : need])


__all__ = [
    "DEFAULT",
    "Splits",
    "default_cache_dir",
    "download",
    "embedded_corpus_path",
    "load_cc100",
    "load_corpus",
    "load_enwik8",
    "load_text8",
    "load_wiki40b",
    "read_text",
    "split_corpus",
    "text8_splits",
    "verify_digest",
]
