"""Atomic file writes: a temp file in the same directory, fsync, then os.replace, so a reader never sees half a file.

Written files and folders get the modes the umask allows (0644 / 0755 under umask 022), like any other tool's. A temp
file is named ``.NAME.PID.RANDOM.tmp``; one left by a killed process (its PID gone) is removed by the next write to
the same path. A folder that cannot be created or written raises SpeakError naming the user's path.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def read_json(path: str | os.PathLike, *, missing: str | None = None, what: str = "") -> Any:
    """The parsed JSON in `path`. A missing file raises SpeakError(`missing`) when given; unreadable JSON or UTF-8
    raises SpeakError("PATH: corrupted [what] (reason)")."""
    from speak.errors import SpeakError

    path = Path(path)
    if missing is not None and not path.is_file():
        raise SpeakError(missing)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SpeakError(f"{path}: corrupted{' ' + what if what else ''} ({err})") from None


def _umask() -> int:
    """The process umask: read from /proc where it can be (setting it to read it races with other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new regular file gets under the current umask (0644 under umask 022)."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    """The mode a new folder gets under the current umask (0755 under umask 022)."""
    return 0o777 & ~_umask()


def _make_dir(path: Path) -> str | None:
    """Create `path` and its parents; None on success, else why not (for a message that names the user's path)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        pass
    except OSError as err:
        return str(err.strerror or err)
    if path.is_dir():
        return None
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.is_dir():
            return f"{parent} is a file, not a folder"
    return "its parent cannot be created"


def ensure_dir(path: str | os.PathLike, what: str = "folder") -> Path:
    """Create the folder `path` (and its parents) if needed; any failure is one SpeakError naming `path`."""
    from speak.errors import SpeakError

    path = Path(path)
    why = _make_dir(path)
    if why is not None:
        raise SpeakError(f"{path}: cannot create this {what} ({why})")
    return path


def check_output_dir(path: str | os.PathLike, *, force: bool = False, what: str = "folder") -> None:
    """Refuse, before any work, an output folder that cannot be created or already holds files (unless `force`)."""
    from speak.errors import SpeakError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SpeakError(f"{path}: is a file, not a {what}")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise SpeakError(f"{path}: already holds files; pass --force to overwrite, or choose another folder")
    for parent in [path, *path.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise SpeakError(f"{path}: cannot create this {what} ({parent} is a file, not a folder)")
            try:  # a probe that leaves nothing behind (os.access says yes to root even on read-only mounts)
                tempfile.TemporaryFile(dir=parent).close()
            except OSError as err:
                raise SpeakError(f"{path}: cannot create this {what} ({parent}: {err.strerror or err})") from None
            break


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by another user
        return True
    return True


def remove_stale_temps(path: str | os.PathLike) -> None:
    """Remove temp files of `path` left by processes that died mid-write (kill -9, power loss)."""
    path = Path(path)
    try:
        candidates = list(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))
    except OSError:
        return
    for tmp in candidates:
        parts = tmp.name[len(path.name) + 2:-len(".tmp")].split(".")
        if len(parts) == 2 and parts[0].isdigit() and not _pid_alive(int(parts[0])):
            try:
                tmp.unlink()
            except OSError:
                pass


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)` to produce the file, then move it over `path` in one step; on failure nothing changes.

    The file gets the umask's mode. A target that cannot be written (a file in the way, a read-only folder) is one
    SpeakError naming `path`, not the temp file."""
    from speak.errors import SpeakError

    path = Path(path)
    if path.is_dir():
        raise SpeakError(f"{path}: is a folder; give a file name")
    why = _make_dir(path.parent)
    if why is not None:
        raise SpeakError(f"{path}: cannot write ({why})")
    remove_stale_temps(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise SpeakError(f"{path}: cannot write ({err.strerror or err} in {path.parent})") from None
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename in (tmp, str(path)):
            raise SpeakError(f"{path}: cannot write ({err.strerror or err})") from None
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: str | os.PathLike) -> None:
    """Persist a directory entry (a rename) where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def atomic_save_npy(path: str | os.PathLike, array: Any) -> None:
    """A numpy array as .npy (never pickled)."""
    import numpy as np

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)

    atomic_write(path, write)
