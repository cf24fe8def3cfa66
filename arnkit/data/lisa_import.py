"""`arnkit data import lisa PATH`: import DOA's prepared LISA release into the workspace, offline.

PATH is the release (Wu et al. 2020, tongwu2020/phattacks `sign/LISA`) as a `.tar` (also `.tar.gz` / `.tgz`), a
`.zip`, or the extracted folder (`LISA/` itself or a folder holding it): `train/<k>/*.png` and `val/<k>/*.png`,
k = RP2 class index, 0..16 without 12. Anything else in it (DOA's `test/13`, a README) is ignored.

Everything is checked by name before any image is decoded: both splits, all 16 class folders in each and nothing
else, DOA's 3,509 / 1,148 images. The TFDS dataset `arnkit_lisa` is then built from the archive directly (nothing
is extracted) in a staging folder inside `data_dir` and renamed into place, so a failure never leaves a partial
or half-replaced dataset. The source's sha256 is stored beside it (`arnkit_import.json`): importing the same
content again reuses the dataset; a different source or `force=True` rebuilds it.

Example:
    >>> from arnkit.data.lisa_import import import_lisa
    >>> import_lisa("~/Downloads/lisa-16.tar", "~/.arnkit/data")["counts"]  # doctest: +SKIP
    {'train': 3509, 'test': 1148}
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from arnkit.data.lisa_files import (
    ANNOTATIONS,
    BUILDER_NAME,
    BUILDER_VERSION,
    CLASS_NAMES,
    DOA_COUNTS,
    DOA_FOLDER,
    DROPPED_CLASS,
    RP2_CLASS_NAMES,
    LisaFiles,
)
from arnkit.data.tfds_local import first_line
from arnkit.errors import ArnkitError
from arnkit.io import sha256_file, write_json_atomic

SIDECAR = "arnkit_import.json"
_FOLDERS = frozenset(str(i) for i, name in enumerate(RP2_CLASS_NAMES) if name != DROPPED_CLASS)
_DROPPED_FOLDER = str(RP2_CLASS_NAMES.index(DROPPED_CLASS))
_RELEASE = f"pass DOA's LISA release ({DOA_FOLDER}/train, {DOA_FOLDER}/val)"


def locate_release(path: str | os.PathLike) -> LisaFiles:
    """The release at `path`: an archive as is, a folder as `LISA/` itself or the folder holding it."""
    from arnkit.data.lisa_builder import is_tar_name

    path = Path(path).expanduser()
    if path.is_dir():
        return LisaFiles("doa", path / DOA_FOLDER if (path / DOA_FOLDER).is_dir() else path)
    if not path.exists():
        raise ArnkitError(f"LISA data not found: {path}; {_RELEASE} as a .tar or .zip, or the extracted folder")
    if path.suffix.lower() == ".zip" or is_tar_name(path):
        return LisaFiles("doa", path)
    raise ArnkitError(f"{path} is not a .tar, .tar.gz, .tgz, .zip or folder; {_RELEASE}")


def check_release(files: LisaFiles, expected_counts: Mapping[str, int] | None = DOA_COUNTS) -> dict[str, int]:
    """Validate the release by file names only (no image is decoded); returns {'train': n, 'test': n}.

    `expected_counts` (default DOA's 3,509 / 1,148) catches a partial copy; None skips it (tiny fixtures).
    """
    from arnkit.data.lisa_builder import _DOA_IMAGE, _open

    opened = _open(files)
    try:
        names = opened.names()
    finally:
        opened.close()
    where = files.path
    matches = [m for m in map(_DOA_IMAGE.match, names) if m and "__MACOSX" not in m["prefix"]]
    if not matches:
        if any(PurePosixPath(n).name == ANNOTATIONS for n in names):
            raise ArnkitError(
                f"{where} is the original LISA archive, which `arnkit data import lisa` does not take; {_RELEASE}, "
                "or put the original into <data_dir>/downloads/manual/ to build it on first load"
            )
        raise ArnkitError(f"{where} holds no train/<k>/*.png or val/<k>/*.png; {_RELEASE}")
    prefixes = sorted({m["prefix"] for m in matches})
    if len(prefixes) > 1:
        raise ArnkitError(f"{where} holds several LISA copies ({', '.join(p or './' for p in prefixes)}); pass just one")
    shown = prefixes[0] or (f"{where.name}/" if where.is_dir() else "")
    per_folder: dict[str, dict[str, int]] = {"train": {}, "val": {}}
    for m in matches:
        counts = per_folder[m["split"].lower()]
        counts[m["folder"]] = counts.get(m["folder"], 0) + 1
    for split, counts in per_folder.items():
        if not counts:
            raise ArnkitError(f"{shown}{split} is missing in {where}; {_RELEASE}")
        for folder in sorted(counts, key=int):
            if folder == _DROPPED_FOLDER:
                raise ArnkitError(
                    f"class folder {split}/{folder} ({DROPPED_CLASS}) is not one of the 16 LISA classes (DOA and the "
                    f"paper drop it) in {where}; remove {shown}{split}/{folder} or pass DOA's 16-class release"
                )
            if folder not in _FOLDERS:
                raise ArnkitError(
                    f"class folder {split}/{folder} is not one of the 16 LISA classes (RP2 indices 0..16 without "
                    f"{_DROPPED_FOLDER}) in {where}; remove {shown}{split}/{folder} or pass DOA's 16-class release"
                )
        missing = sorted(_FOLDERS - set(counts), key=int)
        if missing:
            raise ArnkitError(
                f"{shown}{split} in {where} lacks class folder(s) {', '.join(missing)} of the 16; "
                "re-download or re-extract the archive"
            )
    found = {"train": sum(per_folder["train"].values()), "test": sum(per_folder["val"].values())}
    for split, label in (("train", "train"), ("test", "val")):
        if expected_counts is not None and found[split] != expected_counts[split]:
            raise ArnkitError(
                f"{where} has {found[split]:,} {label} images, expected {expected_counts[split]:,} (DOA's split); "
                "re-download or re-extract the archive"
            )
    return found


def source_sha256(files: LisaFiles) -> str:
    """sha256 of an archive file; of a folder, of its sorted [relative path, size, sha256 of bytes] list."""
    if not files.path.is_dir():
        return sha256_file(files.path)
    entries = []
    for dirpath, _, names in os.walk(files.path):
        for name in names:
            full = Path(dirpath, name)
            blob = full.read_bytes()
            entries.append([full.relative_to(files.path).as_posix(), len(blob), hashlib.sha256(blob).hexdigest()])
    return hashlib.sha256(json.dumps(sorted(entries)).encode()).hexdigest()


def import_lisa(
    path: str | os.PathLike,
    data_dir: str | os.PathLike,
    *,
    force: bool = False,
    expected_counts: Mapping[str, int] | None = DOA_COUNTS,
) -> dict[str, Any]:
    """Validate DOA's LISA release at `path` and build it as TFDS dataset `arnkit_lisa` in `data_dir`, offline.

    Returns {'dataset', 'path' (the dataset folder), 'source', 'sha256', 'counts' {'train', 'test'}, 'classes',
    'reused' (True: the same content was imported before and `force` is False), 'seconds'}.
    """
    start = time.perf_counter()
    source = Path(path).expanduser()
    files = locate_release(source)
    counts = check_release(files, expected_counts)
    digest = source_sha256(files)
    data_dir = Path(data_dir).expanduser()
    final = data_dir / BUILDER_NAME / BUILDER_VERSION
    previous = _read_sidecar(final)
    reused = not force and previous.get("sha256") == digest and (final / "dataset_info.json").is_file()
    if not reused:
        _build(files, data_dir, final, {"source": str(source), "sha256": digest, "counts": counts})
    return {"dataset": "lisa", "path": str(final), "source": str(source), "sha256": digest, "counts": counts,
            "classes": len(CLASS_NAMES), "reused": reused, "seconds": round(time.perf_counter() - start, 3)}


def _read_sidecar(builder_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((builder_dir / SIDECAR).read_text())
    except (OSError, ValueError):  # none yet (e.g. built from manual_dir) or damaged: not reusable
        return {}


def _build(files: LisaFiles, data_dir: Path, final: Path, record: dict[str, Any]) -> None:
    """Build in a hidden staging data_dir, check it, then swap it in (the old copy stays until the swap)."""
    from arnkit.data.importers import _check_readable
    from arnkit.data.lisa_builder import _remove_if_empty, build_lisa

    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{BUILDER_NAME}-import.", dir=data_dir))
    except OSError as exc:
        raise ArnkitError(f"cannot write to {data_dir} ({exc.strerror}); choose a writable workspace") from None
    try:
        built = build_lisa(staging, files=files)  # reads `files` only, never a manual_dir
        _check_readable(built, record["counts"])
        write_json_atomic(built / SIDECAR, record)
        final.parent.mkdir(parents=True, exist_ok=True)
        aside = staging / "previous"
        if final.exists():
            os.replace(final, aside)
        try:
            os.replace(built, final)
        except OSError:
            if aside.exists():
                os.replace(aside, final)
            raise
    except ArnkitError:
        raise
    except Exception as exc:
        raise ArnkitError(f"storing LISA in {data_dir} failed ({first_line(exc)}); check free disk space and retry") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_if_empty(final.parent)
