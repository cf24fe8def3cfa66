"""Import datasets a user already has on disk into the workspace, so they load offline.

`import_cifar10(archive, data_dir)` is the library function behind `arnkit data import cifar10 PATH`.
It reads the standard `cifar-10-python.tar.gz` (Krizhevsky 2009: `cifar-10-batches-py/data_batch_1..5`
and `test_batch`, each a Python pickle of a dict with b'data' uint8 (N, 3072) and b'labels') and stores
it with `tfds.dataset_builders.store_as_tfds_dataset` as the TFDS dataset `arnkit_cifar10` (version
1.0.0) under `data_dir`, keeping the archive's order. `arnkit.data.cifar10` reads it from there.

The pickles are read with an allow-list unpickler: a pickle can name any importable callable, so a hostile
archive could run code on a plain `pickle.load`. Only the few numpy names needed to rebuild the arrays
are allowed; anything else is refused with ArnkitError before it is called. Nothing is extracted to disk.

Example:
    >>> from arnkit.data.importers import import_cifar10
    >>> import_cifar10("~/Downloads/cifar-10-python.tar.gz", "~/.arnkit/data")  # doctest: +SKIP
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath

import numpy as np

from arnkit.data.tfds_local import first_line, prepared_dir
from arnkit.errors import ArnkitError

CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_IMPORTED_NAME = "arnkit_cifar10"
CIFAR10_IMPORTED_VERSION = "1.0.0"
CIFAR10_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_COUNTS = {"train": 50000, "test": 10000}
_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_BATCHES = ("test_batch",)
_MAX_BATCH_BYTES = 64 << 20  # a real batch is ~31 MB; refuse anything far larger before reading it
_PIXELS = 32 * 32 * 3


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """Python 3 writes bytes at pickle protocol 2 as `_codecs.encode(text, 'latin1')`; allow only that."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise ArnkitError("the CIFAR-10 pickle asks for a text codec other than latin1; refusing it (archive tampered?)")
    return codecs.encode(text, "latin1")


def _allowed_globals() -> dict[tuple[str, str], object]:
    reconstruct = _numpy_reconstruct()
    return {
        # The original archive was written by Python 2 numpy, which names numpy.core; numpy 2 names numpy._core.
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_bytes,
    }


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only allow-listed globals; every other name (os.system, builtins.eval, ...) is refused."""

    def __init__(self, file, *, source: str) -> None:
        super().__init__(file, encoding="bytes")
        self._source = source
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise ArnkitError(
                f"{self._source} asks to load '{module}.{name}', which is not part of a CIFAR-10 batch; refusing "
                "it (the archive may be hostile): use the official cifar-10-python.tar.gz"
            ) from None

    def persistent_load(self, pid):
        raise ArnkitError(f"{self._source} uses pickle persistent ids, which CIFAR-10 batches never do; refusing it")


def _field(batch: Mapping, key: str):
    for candidate in (key.encode(), key):  # Python 2 str keys arrive as bytes with encoding="bytes"
        if candidate in batch:
            return batch[candidate]
    return None


def parse_cifar10_batch(blob: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> (images uint8 NHWC (N, 32, 32, 3), labels int64 (N,)), validated."""
    try:
        batch = _RestrictedUnpickler(io.BytesIO(blob), source=source).load()
    except ArnkitError:
        raise
    except Exception as exc:  # truncated or garbled pickles raise many types
        raise ArnkitError(f"{source} is not a readable CIFAR-10 batch ({first_line(exc)}); re-download the archive") from None
    if not isinstance(batch, dict):
        raise ArnkitError(f"{source} holds a {type(batch).__name__}, not a CIFAR-10 batch dict; re-download the archive")
    data, labels = _field(batch, "data"), _field(batch, "labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        described = f"{data.shape} {data.dtype}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ArnkitError(f"{source}: 'data' is {described}, expected uint8 (N, {_PIXELS}); re-download the archive")
    if not isinstance(labels, list | np.ndarray) or not all(isinstance(v, int | np.integer) for v in labels):
        raise ArnkitError(f"{source}: 'labels' is not a list of integers; re-download the archive")
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(labels) != len(data):
        raise ArnkitError(f"{source} has {len(data)} images but {len(labels)} labels; re-download the archive")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise ArnkitError(f"{source} has labels outside 0..9; re-download the archive")
    # Rows are 1024 red, 1024 green, 1024 blue values, each a 32x32 image in row-major order.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def read_cifar10_archive(
    archive_path: str | os.PathLike, *, expected_counts: Mapping[str, int] | None = CIFAR10_COUNTS
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'train': (x uint8 NHWC, y int64), 'test': ...} from `cifar-10-python.tar.gz`, without extracting it.

    `expected_counts` (default: the real 50,000 / 10,000) catches a partial or altered archive; None skips it.
    """
    path = Path(archive_path).expanduser()
    if not path.is_file():
        raise ArnkitError(f"CIFAR-10 archive not found: {path}; pass the path of {CIFAR10_ARCHIVE}")
    wanted = set(_TRAIN_BATCHES + _TEST_BATCHES)
    batches: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                base = PurePosixPath(member.name).name
                if base not in wanted or not member.isfile():
                    continue
                if base in batches:
                    raise ArnkitError(f"{path.name} contains {base} twice; use the official {CIFAR10_ARCHIVE}")
                if member.size > _MAX_BATCH_BYTES:
                    raise ArnkitError(f"{path.name}: {member.name} is {member.size} bytes, far too large for a CIFAR-10 batch")
                handle = tar.extractfile(member)
                blob = handle.read() if handle is not None else b""
                batches[base] = parse_cifar10_batch(blob, f"{path.name}:{member.name}")
    except ArnkitError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise ArnkitError(
            f"{path.name} is not a complete tar.gz archive ({first_line(exc)}); re-download {CIFAR10_ARCHIVE}"
        ) from None
    missing = sorted(wanted - set(batches))
    if missing:
        raise ArnkitError(f"{path.name} lacks {', '.join(missing)}; it is not the python version of CIFAR-10 ({CIFAR10_ARCHIVE})")
    splits = {
        "train": _concatenate([batches[name] for name in _TRAIN_BATCHES]),
        "test": _concatenate([batches[name] for name in _TEST_BATCHES]),
    }
    for split, (x, _) in splits.items():
        if expected_counts is not None and len(x) != expected_counts[split]:
            raise ArnkitError(
                f"{path.name} has {len(x)} {split} images, expected {expected_counts[split]}; re-download {CIFAR10_ARCHIVE}"
            )
    return splits


def _concatenate(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


def _examples(x: np.ndarray, y: np.ndarray) -> Iterator[tuple[int, dict]]:
    for i in range(len(x)):
        yield i, {"image": x[i], "label": int(y[i])}


def import_cifar10(
    archive_path: str | os.PathLike,
    data_dir: str | os.PathLike,
    *,
    expected_counts: Mapping[str, int] | None = CIFAR10_COUNTS,
    overwrite: bool = True,
) -> Path:
    """Validate `cifar-10-python.tar.gz` and store it as TFDS dataset `arnkit_cifar10` in `data_dir`, offline.

    Atomic: the dataset is built in a hidden staging folder inside `data_dir` and renamed into place only once
    it is complete and reads back with the right counts; on any failure nothing new is left behind and an
    earlier import stays intact. Returns the dataset folder `<data_dir>/arnkit_cifar10/1.0.0`.
    """
    splits = read_cifar10_archive(archive_path, expected_counts=expected_counts)
    data_dir = Path(data_dir).expanduser()
    final = data_dir / CIFAR10_IMPORTED_NAME / CIFAR10_IMPORTED_VERSION
    if final.exists() and not overwrite:
        raise ArnkitError(f"CIFAR-10 is already imported at {final}; pass overwrite=True to replace it")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{CIFAR10_IMPORTED_NAME}-import.", dir=data_dir))
    except OSError as exc:
        raise ArnkitError(f"cannot write to {data_dir} ({exc.strerror}); choose a writable workspace") from None
    try:
        built = _store_with_tfds(splits, staging)
        _check_readable(built, {split: len(x) for split, (x, _) in splits.items()})
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():  # move the old copy aside first so `final` never holds a half-replaced dataset
            os.replace(final, staging / "previous")
        os.replace(built, final)
    except ArnkitError:
        raise
    except Exception as exc:
        raise ArnkitError(f"storing CIFAR-10 in {data_dir} failed ({first_line(exc)}); check free disk space and retry") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _store_with_tfds(splits: dict[str, tuple[np.ndarray, np.ndarray]], staging: Path) -> Path:
    import tensorflow_datasets as tfds

    from arnkit.data.tfds_local import quiet_tfds_build

    with quiet_tfds_build():
        _store(tfds, splits, staging)
    built = prepared_dir(staging, CIFAR10_IMPORTED_NAME)
    if built is None:
        raise ArnkitError(f"TFDS did not produce {CIFAR10_IMPORTED_NAME} in {staging}; retry the import")
    return built


def _store(tfds, splits: dict[str, tuple[np.ndarray, np.ndarray]], staging: Path) -> None:
    features = tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(32, 32, 3)),
        "label": tfds.features.ClassLabel(names=list(CIFAR10_CLASS_NAMES)),
    })
    tfds.dataset_builders.store_as_tfds_dataset(
        name=CIFAR10_IMPORTED_NAME,
        version=CIFAR10_IMPORTED_VERSION,
        features=features,
        split_datasets={split: _examples(x, y) for split, (x, y) in splits.items()},
        data_dir=staging,
        description="CIFAR-10 imported by arnkit from cifar-10-python.tar.gz (archive order kept).",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        download_config=tfds.download.DownloadConfig(try_download_gcs=False),
        disable_shuffling=True,
    )


def _check_readable(builder_dir: Path, counts: dict[str, int]) -> None:
    import tensorflow_datasets as tfds

    info = tfds.builder_from_directory(builder_dir).info
    for split, count in counts.items():
        stored = info.splits[split].num_examples
        if stored != count:
            raise ArnkitError(f"stored {stored} {split} images instead of {count}; retry the import")
