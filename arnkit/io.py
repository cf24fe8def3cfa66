"""Atomic file writes, safe model loading, content hashes, the one JSON record reader and the build lock."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from arnkit.errors import ArnkitError


@functools.cache
def _umask() -> int:
    """The process's umask (read once: os.umask can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temp file keeps the final suffix so writers that look at the extension (Keras, h5py) accept it.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix or path.suffix or ".tmp",
                                   dir=path.parent)
    except OSError as exc:
        raise ArnkitError(
            f"cannot write to {path.parent}: {exc.strerror}; choose a writable place with --workspace "
            "or ARNKIT_WORKSPACE"
        ) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            # mkstemp makes the file 0600; a plain open() would give 0666 less the umask, as users expect of
            # files they share (a group's workspace, a served report).
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    return write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n").encode())


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_arrays(*arrays: Any) -> str:
    """sha256 over the dtype, shape and bytes of each array, in order: the content hash of an HDF5 set's
    arrays (the file's own bytes change with compression and attributes, the arrays do not)."""
    import numpy as np

    digest = hashlib.sha256()
    for array in arrays:
        value = np.ascontiguousarray(np.asarray(array))
        digest.update(json.dumps([str(value.dtype), list(value.shape)]).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def read_json_record(path: str | os.PathLike, what: str = "record") -> dict[str, Any]:
    """The JSON object stored at `path`; a damaged one is one line naming the file and the fix (an
    ArnkitError, so a lister can mark the artifact damaged instead of dropping it)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArnkitError(f"{what} {path} is missing; rerun the command that makes it") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = f"not valid JSON: {exc.msg if isinstance(exc, json.JSONDecodeError) else exc.reason}"
        raise ArnkitError(f"{what} {path} is damaged ({reason}); delete it or rerun with --rebuild") from None
    except OSError as exc:
        raise ArnkitError(f"cannot read {what} {path} ({exc.strerror}); check its permissions") from None
    if not isinstance(raw, dict):
        raise ArnkitError(f"{what} {path} is damaged (not a JSON object); delete it or rerun with --rebuild")
    return raw


def notify(line: str) -> None:
    """One line on stderr, at once (a library notice that must show while the work goes on)."""
    print(f"arnkit: {line}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def building(path: str | os.PathLike) -> Iterator[None]:
    """Hold `<path>.lock` (an exclusive `flock`) while building the artifact at `path`, so that two processes
    never build it at once: the second says so in one line and waits, then finds the artifact built and reuses
    it (callers check for the artifact again inside the block). The lock file is left in place; a stale one
    may be pruned (`arnkit runs prune`): a waiter whose file was removed locks the new one instead."""
    path = Path(path)
    lock = path.with_name(path.name + ".lock")
    fd = _lock_file(lock, path)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _lock_file(lock: Path, path: Path) -> int:
    """Open and flock `lock`; retried when the file was removed (`arnkit runs prune`) or replaced while this
    process waited, since a lock on an unlinked file would exclude no one."""
    waited = False
    while True:
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ArnkitError(f"cannot lock {lock} ({exc.strerror}); check that the workspace is writable") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not waited:
                notify(f"waiting for {path.name} (another arnkit process is building it)")
                waited = True
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def save_model(model: Any, path: str | os.PathLike) -> Path:
    """Save a Keras model as a `.keras` file, atomically."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ArnkitError(f"models are saved as .keras files, got {path.name}; use a path ending in .keras")
    with atomic_path(path) as tmp:
        model.save(tmp)
    return path


def load_model(path: str | os.PathLike, *, custom_objects: dict | None = None) -> Any:
    """Load a `.keras` model with `safe_mode=True`; refuse legacy HDF5, pickles and corrupt files."""
    import keras

    path = Path(path)
    if not path.exists():
        raise ArnkitError(f"model file not found: {path}; check the path or train one first")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(b"\x89HDF"):
        raise ArnkitError(
            f"{path.name} is a legacy HDF5 model file, which arnkit refuses (it can run arbitrary code); "
            "re-save it as .keras with keras.Model.save"
        )
    if head[:1] == b"\x80" or path.suffix in {".pkl", ".pickle", ".pt", ".pth", ".joblib"}:
        raise ArnkitError(
            f"{path.name} looks like a pickle, which arnkit refuses (loading it can run arbitrary code); "
            "export the model as a .keras file"
        )
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise ArnkitError(f"{path.name} is not a valid .keras model file; re-save it with keras.Model.save(path.keras)")
    try:
        return keras.saving.load_model(path, custom_objects=custom_objects, safe_mode=True, compile=False)
    except Exception as exc:  # keras raises many types for a broken or hostile archive
        raise ArnkitError(unloadable_reason(path.name, str(exc) or type(exc).__name__)) from None


def unloadable_reason(name: str, message: str) -> str:
    """One whole line for a model keras would not load. A Lambda layer is Python code that safe_mode will not
    run: re-saving keeps it, so the fix is to rebuild without it. Otherwise keras's first sentence, whole."""
    if "Lambda" in message:
        return (f"cannot load {name} safely: it contains a Lambda layer, whose Python code arnkit does not run; "
                "rebuild the model with built-in layers instead of the Lambda and save it again")
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    sentence = first.split(". ")[0].rstrip(".")
    return f"cannot load {name} safely ({sentence}); re-export the model as .keras"
