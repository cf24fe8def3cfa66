"""Offline access to TFDS datasets already prepared on local disk.

Finding a prepared dataset is a plain file-system check (no `tensorflow_datasets` import, no network), so
`availability()` answers in milliseconds. Reading goes through `tfds.builder_from_directory`, which takes the
features and splits from the folder's own `dataset_info.json` and never downloads anything.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from arnkit.errors import ArnkitError

_VERSION_DIR = re.compile(r"^\d+\.\d+\.\d+$")


def prepared_dir(data_dir: str | Path, name: str) -> Path | None:
    """The newest `<data_dir>/<name>/<x.y.z>/` holding a `dataset_info.json`, else None.

    TFDS writes `dataset_info.json` last and builds in an `incomplete.*` folder that it renames on success,
    so a version folder with that file is a finished dataset.
    """
    root = Path(data_dir) / name
    try:
        versions = [p for p in root.iterdir() if _VERSION_DIR.match(p.name) and (p / "dataset_info.json").is_file()]
    except OSError:  # missing, not a folder, unreadable: not prepared
        return None
    return max(versions, key=lambda p: tuple(int(part) for part in p.name.split(".")), default=None)


def manual_dir(data_dir: str | Path) -> Path:
    """Where TFDS looks for manually downloaded files by default: `<data_dir>/downloads/manual`."""
    return Path(data_dir) / "downloads" / "manual"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def read_split(builder_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 [0,1] NHWC, labels int64) of one split of a prepared dataset folder, offline."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder_from_directory(builder_dir)
    except Exception as exc:  # tfds raises many types for a damaged folder
        raise ArnkitError(
            f"cannot read the prepared dataset in {builder_dir} ({first_line(exc)}); delete that folder and prepare it again"
        ) from None
    if split not in builder.info.splits:
        raise ArnkitError(
            f"{builder_dir} has no '{split}' split (it has {', '.join(builder.info.splits)}); "
            "delete that folder and prepare it again"
        )
    try:
        arrays = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, shuffle_files=False))
    except Exception as exc:
        raise ArnkitError(
            f"cannot read the '{split}' split in {builder_dir} ({first_line(exc)}); delete that folder and prepare it again"
        ) from None
    images = np.asarray(arrays["image"])
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ArnkitError(f"{builder_dir} holds images of shape {images.shape} {images.dtype}, expected uint8 NHWC")
    return images.astype(np.float32) / 255.0, np.asarray(arrays["label"]).astype(np.int64)


def read_sources(builder_dir: Path, split: str) -> list[str]:
    """The `source` feature (the file an image was cut from) of every example of one split, in read order."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder_from_directory(builder_dir)
        arrays = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, shuffle_files=False))
        sources = arrays["source"]
    except Exception as exc:  # tfds raises many types for a damaged folder
        raise ArnkitError(
            f"cannot read the sources of '{split}' in {builder_dir} ({first_line(exc)}); delete that folder and "
            "prepare it again"
        ) from None
    return [s.decode("utf-8", "replace") if isinstance(s, bytes) else str(s) for s in sources]


@contextlib.contextmanager
def quiet_tfds_build() -> Iterator[None]:
    """Run a TFDS build without its notices ("Downloading and preparing dataset ... to <staging folder>", then
    "... downloaded and prepared ...") and progress bars: arnkit imports local files offline and prints its own
    one line. Errors still surface as the exceptions the build raises; the bars' setting is restored after."""
    from tensorflow_datasets.core.utils import tqdm_utils

    was_active = getattr(tqdm_utils, "_active", True)  # TFDS has a setter for it, no getter
    tqdm_utils.display_progress_bar(False)
    try:
        with contextlib.redirect_stdout(io.StringIO()), private_tempdir():
            yield
    finally:
        tqdm_utils.display_progress_bar(was_active)


@contextlib.contextmanager
def private_tempdir() -> Iterator[None]:
    """Point `tempfile` at a folder of our own for the block, then remove it: a TFDS builder for a dataset not yet
    prepared makes an empty `/tmp/tmp*tfds` (for bucket metadata it never fetches offline) and leaves it behind,
    one per build."""
    import shutil
    import tempfile

    before = tempfile.tempdir
    folder = tempfile.mkdtemp(prefix="arnkit-tfds-")
    tempfile.tempdir = folder
    try:
        yield
    finally:
        tempfile.tempdir = before
        shutil.rmtree(folder, ignore_errors=True)
