"""CIFAR-10 import/loader and LISA builder on tiny fixtures written in the real on-disk formats."""

from __future__ import annotations

import io
import os
import pickle
import random
import shutil
import struct
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from arnkit import data
from arnkit.data.cifar10 import Cifar10Source
from arnkit.data.importers import import_cifar10, parse_cifar10_batch
from arnkit.data.lisa import CLASS_NAMES, DOA_COUNTS, RP2_CLASS_NAMES, TEST_FRACTION, LisaFiles, LisaSource
from arnkit.data.lisa_import import import_lisa
from arnkit.errors import ArnkitError

# ---------------------------------------------------------------- CIFAR-10 fixture (cifar-10-python.tar.gz)


class _Py2StylePickler(pickle._Pickler):
    """Writes bytes as BINSTRING, the way Python 2 cPickle wrote the original CIFAR-10 batches."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def _py2_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    _Py2StylePickler(buffer, protocol=2).dump(obj)
    # Python 2's numpy named the module numpy.core.multiarray; numpy 2 writes numpy._core.multiarray.
    return buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def _batch(rng: np.random.Generator, n: int, name: str, pixels: int = 3072) -> dict:
    return {
        b"batch_label": name.encode(),
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, pixels), dtype=np.uint8),
        b"filenames": [f"img_{name}_{i}.png".encode() for i in range(n)],
    }


def _write_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def _cifar_archive(path: Path, per_batch: int = 20, n_test: int = 10, replace: dict | None = None):
    """A tiny cifar-10-python.tar.gz; returns (path, expected uint8 NHWC per split, labels per split)."""
    rng = np.random.default_rng(0)
    batches = {f"data_batch_{i}": _batch(rng, per_batch, f"data_batch_{i}") for i in range(1, 6)}
    batches["test_batch"] = _batch(rng, n_test, "test_batch")
    members = {name: _py2_pickle(batch) for name, batch in batches.items()}
    members["batches.meta"] = _py2_pickle({b"label_names": [b"airplane"], b"num_vis": 3072})
    members.update(replace or {})

    def nhwc(names):
        stacked = np.concatenate([batches[n][b"data"] for n in names])
        return stacked.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)

    train_names = [f"data_batch_{i}" for i in range(1, 6)]
    expected = {"train": nhwc(train_names), "test": nhwc(["test_batch"])}
    labels = {"train": np.concatenate([batches[n][b"labels"] for n in train_names]),
              "test": np.asarray(batches["test_batch"][b"labels"])}
    return _write_tar(path, members), expected, labels


TINY_COUNTS = {"train": 100, "test": 10}


def _leftovers(data_dir: Path) -> list[str]:
    return sorted(p.name for p in data_dir.iterdir()) if data_dir.exists() else []


def test_cifar10_missing_fails_fast_with_both_fixes(tmp_path):
    start = time.perf_counter()
    reason = Cifar10Source().availability(tmp_path)
    assert time.perf_counter() - start < 1.0
    assert reason is not None and "\n" not in reason
    assert "arnkit data import cifar10" in reason and "tfds build cifar10" in reason
    start = time.perf_counter()
    with pytest.raises(ArnkitError, match="arnkit data import cifar10"):
        data.load_arrays("cifar10", "test", data_dir=tmp_path)
    assert time.perf_counter() - start < 5.0


def test_cifar10_import_then_load_offline(tmp_path, monkeypatch):
    archive, expected, labels = _cifar_archive(tmp_path / "cifar-10-python.tar.gz")
    data_dir = tmp_path / "data"
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    built = import_cifar10(archive, data_dir, expected_counts=TINY_COUNTS)
    assert built == data_dir / "arnkit_cifar10" / "1.0.0"
    assert _leftovers(data_dir) == ["arnkit_cifar10"]  # no staging folder left behind
    # TFDS's builder makes an empty tmp*tfds folder per build; the import keeps it in a folder of its own
    assert sorted(p.name for p in system_tmp.iterdir()) == [] and tempfile.tempdir == str(system_tmp)
    assert Cifar10Source().availability(data_dir) is None
    # val is the last 10% of the archive's training images (data/splits.py), train the rest
    parts = {"train": slice(0, 90), "val": slice(90, 100), "test": slice(None)}
    for split, part in parts.items():
        x, y, info = data.load_arrays("cifar10", split, data_dir=data_dir)
        source = "test" if split == "test" else "train"
        assert x.shape == (len(expected[source][part]), 32, 32, 3) and x.dtype == np.float32 and y.dtype == np.int64
        assert 0.0 <= x.min() and x.max() <= 1.0
        # Archive order and pixel layout (1024 R, 1024 G, 1024 B per row) survive the round trip exactly.
        np.testing.assert_array_equal(np.round(x * 255).astype(np.uint8), expected[source][part])
        np.testing.assert_array_equal(y, labels[source][part])
    assert info.num_classes == 10


def test_cifar10_archive_in_manual_dir_counts_as_available(tmp_path):
    manual = tmp_path / "downloads" / "manual"
    manual.mkdir(parents=True)
    _cifar_archive(manual / "cifar-10-python.tar.gz")
    assert Cifar10Source().availability(tmp_path) is None
    # Loading imports it offline; this tiny archive fails the real 50,000-image check, before anything is written.
    with pytest.raises(ArnkitError, match="expected 50000"):
        data.load_arrays("cifar10", "train", data_dir=tmp_path)
    assert not (tmp_path / "arnkit_cifar10").exists()


def test_cifar10_reads_a_dataset_made_by_tfds_build(tmp_path):
    import tensorflow_datasets as tfds

    # The layout `tfds build cifar10 --data_dir DIR` leaves: DIR/cifar10/<version>/ with id, image, label.
    images = np.stack([np.full((32, 32, 3), v, np.uint8) for v in (0, 128, 255)])
    tfds.dataset_builders.store_as_tfds_dataset(
        name="cifar10", version="3.0.2", data_dir=tmp_path, disable_shuffling=True,
        features=tfds.features.FeaturesDict({
            "id": tfds.features.Text(), "image": tfds.features.Image(shape=(32, 32, 3)),
            "label": tfds.features.ClassLabel(num_classes=10)}),
        split_datasets={"test": [(i, {"id": f"test_{i}", "image": images[i], "label": 2 * i}) for i in range(3)]},
        download_config=tfds.download.DownloadConfig(try_download_gcs=False),
    )
    assert Cifar10Source().availability(tmp_path) is None
    x, y, _ = data.load_arrays("cifar10", "test", data_dir=tmp_path)
    np.testing.assert_allclose(x[:, 0, 0, 0], [0.0, 128 / 255, 1.0])
    assert list(y) == [0, 2, 4]


class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Evaluates:
    def __reduce__(self):
        return eval, ("__import__('os').getcwd()",)


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_cifar10_hostile_pickle_is_refused_without_running(tmp_path, protocol):
    marker = tmp_path / "pwned"
    hostile = pickle.dumps({b"data": _RunsShell(marker), b"labels": []}, protocol=protocol)
    archive, _, _ = _cifar_archive(tmp_path / "evil.tar.gz", replace={"data_batch_3": hostile})
    data_dir = tmp_path / "data"
    with pytest.raises(ArnkitError, match="refusing") as caught:
        import_cifar10(archive, data_dir, expected_counts=TINY_COUNTS)
    assert "system" in str(caught.value)
    assert not marker.exists()
    assert _leftovers(data_dir) == []
    pickle.loads(hostile)  # control: a plain unpickler does run the payload
    assert marker.exists()
    with pytest.raises(ArnkitError, match=r"builtin(s|__)\.eval"):
        parse_cifar10_batch(pickle.dumps(_Evaluates(), protocol=protocol), "batch")


def test_cifar10_python3_protocol2_pickle_is_accepted():
    # Python 3 writes bytes at protocol 2 through _codecs.encode: a re-pickled archive must still load.
    batch = {b"data": np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072), b"labels": [3, 7]}
    x, y = parse_cifar10_batch(pickle.dumps(batch, protocol=2), "batch")
    assert x.shape == (2, 32, 32, 3) and list(y) == [3, 7]
    assert x[0, 0, 1, 0] == 1 and x[0, 0, 0, 1] == (1024 % 256)  # channel planes become the last axis


def test_cifar10_truncated_archive_is_refused(tmp_path):
    archive, _, _ = _cifar_archive(tmp_path / "cifar-10-python.tar.gz")
    blob = archive.read_bytes()
    archive.write_bytes(blob[: len(blob) // 2])
    data_dir = tmp_path / "data"
    with pytest.raises(ArnkitError, match="re-download"):
        import_cifar10(archive, data_dir, expected_counts=TINY_COUNTS)
    assert _leftovers(data_dir) == []


def test_cifar10_wrong_shapes_and_counts_are_refused(tmp_path):
    rng = np.random.default_rng(1)
    wrong = _py2_pickle(_batch(rng, 20, "data_batch_2", pixels=3000))
    archive, _, _ = _cifar_archive(tmp_path / "a.tar.gz", replace={"data_batch_2": wrong})
    with pytest.raises(ArnkitError, match=r"'data' is \(20, 3000\)"):
        import_cifar10(archive, tmp_path / "data", expected_counts=TINY_COUNTS)
    mismatch = _batch(rng, 20, "data_batch_4")
    mismatch[b"labels"] = mismatch[b"labels"][:19]
    archive, _, _ = _cifar_archive(tmp_path / "b.tar.gz", replace={"data_batch_4": _py2_pickle(mismatch)})
    with pytest.raises(ArnkitError, match="20 images but 19 labels"):
        import_cifar10(archive, tmp_path / "data", expected_counts=TINY_COUNTS)
    archive, _, _ = _cifar_archive(tmp_path / "c.tar.gz")
    with pytest.raises(ArnkitError, match="has 100 train images, expected 50000"):
        import_cifar10(archive, tmp_path / "data")
    assert _leftovers(tmp_path / "data") == []


def test_cifar10_failed_reimport_keeps_the_previous_dataset(tmp_path, monkeypatch):
    from arnkit.data import importers

    archive, expected, _ = _cifar_archive(tmp_path / "cifar-10-python.tar.gz")
    data_dir = tmp_path / "data"
    import_cifar10(archive, data_dir, expected_counts=TINY_COUNTS)

    def broken_check(builder_dir, counts):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(importers, "_check_readable", broken_check)
    with pytest.raises(ArnkitError, match="No space left"):
        import_cifar10(archive, data_dir, expected_counts=TINY_COUNTS)
    assert _leftovers(data_dir) == ["arnkit_cifar10"]
    assert sorted(p.name for p in (data_dir / "arnkit_cifar10").iterdir()) == ["1.0.0"]
    x, _, _ = data.load_arrays("cifar10", "test", data_dir=data_dir)
    np.testing.assert_array_equal(np.round(x * 255).astype(np.uint8), expected["test"])


# ---------------------------------------------------------------- LISA fixture (signDatabasePublicFramesOnly)

HEADER = ("Filename;Annotation tag;Upper left corner X;Upper left corner Y;Lower right corner X;"
          "Lower right corner Y;Occluded,On another road;Origin file;Origin frame number;Origin track;"
          "Origin track frame number")
# tag -> (red, green); blue carries the instance number so every crop is identifiable.
TAG_COLORS = {"stop": (220, 20), "yield": (20, 220), "pedestrianCrossing": (220, 220), "speedLimit25": (120, 40),
              "speedLimitUrdbl": (40, 120), "noLeftTurn": (90, 90)}
TAG_COUNTS = {"stop": 8, "yield": 4, "pedestrianCrossing": 5, "speedLimit25": 4, "speedLimitUrdbl": 3, "noLeftTurn": 2}
OUTLINE = (250, 250, 250)
KEPT = ("stop", "yield", "pedestrianCrossing", "speedLimit25")


def _lisa_original(root: Path) -> list[str]:
    """Write frames with two signs each plus allAnnotations.csv under root; return the CSV rows."""
    from PIL import Image, ImageDraw

    signs = [(tag, i) for tag, n in TAG_COUNTS.items() for i in range(n)]
    rows, folder = [], "aiua120214-0/frameAnnotations-DataLog02142012_external_camera.avi_annotations"
    (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for frame_index in range(0, len(signs), 2):
        name = f"{folder}/sign_{1330545910 + frame_index}.avi_image{frame_index}.png"
        frame = Image.fromarray(rng.integers(0, 60, (60, 96, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(frame)
        for slot, (tag, i) in enumerate(signs[frame_index:frame_index + 2]):
            x0, y0 = 6 + 48 * slot + i, 8 + i
            x1, y1 = x0 + 31, y0 + 31  # inclusive corners, as in LISA: a 32x32 sign, so no resampling blur
            draw.rectangle([x0, y0, x1, y1], fill=(*TAG_COLORS[tag], 10 * i + 5), outline=OUTLINE)
            rows.append(f"{name};{tag};{x0};{y0};{x1};{y1};0,0;{folder}.avi;{frame_index};{tag}_{i}.avi;{slot}")
        frame.save(root / name)
    (root / "allAnnotations.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return rows


def _check_crops(x: np.ndarray, y: np.ndarray) -> set[tuple[int, int]]:
    """Each crop is exactly its sign: outline on all four edges, colour inside; returns (label, instance)."""
    assert x.shape[1:] == (32, 32, 3) and x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    found = set()
    pixels = np.round(x * 255).astype(np.int64)
    for image, label in zip(pixels, y, strict=True):
        tag = CLASS_NAMES[label]
        assert tag in KEPT
        inside = image[1:-1, 1:-1]
        assert (inside[..., :2] == TAG_COLORS[tag]).all(), f"crop of {tag} is shifted or mislabelled"
        edges = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
        assert (edges == OUTLINE).all(), f"crop of {tag} misses the sign's edge or includes background"
        blue = np.unique(inside[..., 2])
        assert len(blue) == 1 and (blue[0] - 5) % 10 == 0
        found.add((int(label), int(blue[0] - 5) // 10))
    return found


def test_lisa_missing_message_is_fast_and_says_where(tmp_path):
    start = time.perf_counter()
    reason = LisaSource().availability(tmp_path)
    assert time.perf_counter() - start < 1.0
    assert reason is not None and "\n" not in reason
    assert "signDatabasePublicFramesOnly.zip" in reason and str(tmp_path / "downloads" / "manual") in reason
    start = time.perf_counter()
    with pytest.raises(ArnkitError, match="LISA is not prepared"):
        data.load_arrays("lisa", "train", data_dir=tmp_path)
    assert time.perf_counter() - start < 5.0


def test_lisa_class_list_is_rp2_minus_speed_limit_urdbl():
    assert len(CLASS_NAMES) == 16 and "speedLimitUrdbl" not in CLASS_NAMES
    assert CLASS_NAMES[0] == "addedLane" and CLASS_NAMES[12] == "stop" and CLASS_NAMES[-1] == "yield"


def test_lisa_original_archive_builds_offline(tmp_path):
    data_dir = tmp_path / "data"
    manual = data_dir / "downloads" / "manual"
    _lisa_original(manual / "signDatabasePublicFramesOnly")
    assert LisaSource().availability(data_dir) is None
    x_train, y_train, info = data.load_arrays("lisa", "train", data_dir=data_dir)
    x_val, y_val, _ = data.load_arrays("lisa", "val", data_dir=data_dir)
    x_test, y_test, _ = data.load_arrays("lisa", "test", data_dir=data_dir)
    assert info.num_classes == 16 and (data_dir / "arnkit_lisa" / "1.0.0" / "dataset_info.json").is_file()
    # val is held out of the builder's train split (data/splits.py): together they are its train split
    train, val, test = _check_crops(x_train, y_train), _check_crops(x_val, y_val), _check_crops(x_test, y_test)
    assert not train & test and not train & val and not val & test
    train |= val
    label = {tag: CLASS_NAMES.index(tag) for tag in KEPT}
    # Every annotation of a kept class appears once; the excluded tags are gone.
    assert train | test == {(label[tag], i) for tag in KEPT for i in range(TAG_COUNTS[tag])}
    for tag in KEPT:
        assert int(np.sum(y_test == label[tag])) == round(TAG_COUNTS[tag] * TEST_FRACTION)

    # The zip of the same folder gives the same dataset.
    zipped_dir = tmp_path / "zipped"
    zipped_manual = zipped_dir / "downloads" / "manual"
    zipped_manual.mkdir(parents=True)
    with zipfile.ZipFile(zipped_manual / "signDatabasePublicFramesOnly.zip", "w") as archive:
        for path in sorted((manual / "signDatabasePublicFramesOnly").rglob("*")):
            archive.write(path, path.relative_to(manual).as_posix())
    x_zip, y_zip, _ = data.load_arrays("lisa", "test", data_dir=zipped_dir)
    np.testing.assert_array_equal(x_zip, x_test)
    np.testing.assert_array_equal(y_zip, y_test)


def test_lisa_corrupt_frame_fails_in_one_line_and_leaves_nothing(tmp_path):
    manual = tmp_path / "downloads" / "manual" / "signDatabasePublicFramesOnly"
    rows = _lisa_original(manual)
    stop_frame = next(row.split(";")[0] for row in rows if ";stop;" in row)
    (manual / stop_frame).write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(ArnkitError, match="cannot decode") as caught:
        data.load_arrays("lisa", "train", data_dir=tmp_path)
    assert "\n" not in str(caught.value)
    assert _leftovers(tmp_path) == ["downloads"]
    assert LisaSource().availability(tmp_path) is None  # the manual files are still there to retry


def test_lisa_split_is_deterministic_and_ignores_row_order(tmp_path):
    from arnkit.data.lisa_builder import collect_records

    first, second = tmp_path / "a", tmp_path / "b"
    rows = _lisa_original(first)
    _lisa_original(second)
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    (second / "allAnnotations.csv").write_text("\n".join([HEADER, *shuffled]) + "\n")
    a = collect_records(LisaFiles("original", first))
    b = collect_records(LisaFiles("original", second))
    for split in ("train", "test"):
        assert sorted(r.key for r in a[split]) == sorted(r.key for r in b[split])
    assert not {r.key for r in a["train"]} & {r.key for r in a["test"]}


def test_lisa_annotations_cannot_point_outside_the_folder(tmp_path):
    from arnkit.data.lisa_builder import collect_records

    root = tmp_path / "lisa"
    root.mkdir()
    (tmp_path / "secret.png").write_bytes(b"x")
    (root / "allAnnotations.csv").write_text(HEADER + "\n../secret.png;stop;1;1;5;5;0,0;a;0;b;0\n")
    with pytest.raises(ArnkitError, match="outside"):
        collect_records(LisaFiles("original", root))


def _doa_release(root: Path, folders: dict[int, int] | None = None, per_split: tuple[int, int] = (3, 2)) -> None:
    """DOA's prepared layout: LISA/{train,val}/<RP2 index>/*.png with 64x64 crops; folders maps index -> red shade."""
    from PIL import Image

    folders = folders or {0: 30, 13: 130, 16: 230}
    for split, per_class in zip(("train", "val"), per_split, strict=True):
        for folder, shade in folders.items():
            (root / "LISA" / split / str(folder)).mkdir(parents=True)
            for i in range(per_class):
                pixels = np.full((64, 64, 3), (shade, i, 7), dtype=np.uint8)
                Image.fromarray(pixels).save(root / "LISA" / split / str(folder) / f"{100 + i}_x_{i}.avi_image{i}.png")


def test_lisa_doa_release_keeps_its_split_and_maps_folders(tmp_path):
    data_dir = tmp_path / "data"
    _doa_release(data_dir / "downloads" / "manual")
    assert LisaSource().availability(data_dir) is None
    # The release's 3 training images per class (3 tracks) are train 2 + val 1 (data/splits.py: >= 1 val track).
    for split, per_class in (("train", 2), ("val", 1), ("test", 2)):
        x, y, _ = data.load_arrays("lisa", split, data_dir=data_dir)
        assert x.shape == (3 * per_class, 32, 32, 3)
        # Folder k is RP2's class k: 0 addedLane -> 0, 13 stop -> 12, 16 yield -> 15.
        shade_of = {0: 30, 12: 130, 15: 230}
        assert sorted(np.bincount(y, minlength=16).nonzero()[0]) == [0, 12, 15]
        for image, label in zip(np.round(x * 255).astype(int), y, strict=True):
            assert (image[..., 0] == shade_of[int(label)]).all() and (image[..., 2] == 7).all()


def test_lisa_doa_folder_of_dropped_class_is_refused(tmp_path):
    from arnkit.data.lisa_builder import collect_records

    _doa_release(tmp_path)
    (tmp_path / "LISA" / "train" / "12").mkdir()
    (tmp_path / "LISA" / "train" / "12" / "a.png").write_bytes((tmp_path / "LISA/train/0/100_x_0.avi_image0.png").read_bytes())
    with pytest.raises(ArnkitError, match="train/12 is not one of the 16"):
        collect_records(LisaFiles("doa", tmp_path / "LISA"))


# ---------------------------------------------------------------- `arnkit data import lisa` on DOA-layout fixtures

ALL_FOLDERS = {k: 10 + 14 * k for k in range(17) if k != 12}  # the 16 RP2 indices; red shade identifies the folder
TINY_LISA = {"train": 32, "test": 16}


def _doa16(root: Path) -> Path:
    """A tiny release with all 16 class folders: 2 train and 1 val image each; returns the LISA/ folder."""
    _doa_release(root, ALL_FOLDERS, per_split=(2, 1))
    return root / "LISA"


def _zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(folder.rglob("*")):
            out.write(path, path.relative_to(folder.parent).as_posix())
    return archive


def _check_tiny_lisa(data_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    label_of = {k: CLASS_NAMES.index(RP2_CLASS_NAMES[k]) for k in ALL_FOLDERS}
    shade_of_label = {label_of[k]: shade for k, shade in ALL_FOLDERS.items()}
    out = {}
    for split, count in TINY_LISA.items():
        # the release's train folders are arnkit's train + val (data/splits.py)
        parts = [data.load_arrays("lisa", p, data_dir=data_dir)[:2] for p in (("train", "val") if split == "train"
                                                                              else (split,))]
        x, y = np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts])
        assert x.shape == (count, 32, 32, 3) and x.dtype == np.float32
        assert np.bincount(y, minlength=16).tolist() == [count // 16] * 16
        red = np.round(x[..., 0] * 255).astype(int)
        assert all((red[i] == shade_of_label[int(label)]).all() for i, label in enumerate(y))
        out[split] = (x, y)
    return out


def test_lisa_import_folder_zip_and_tar_all_work_and_reuse(tmp_path, capfd):
    lisa = _doa16(tmp_path / "src")
    data_dir = tmp_path / "data"
    capfd.readouterr()
    first = import_lisa(tmp_path / "src", data_dir, expected_counts=TINY_LISA)  # the folder holding LISA/
    # TFDS's "Downloading and preparing ... to <staging>" and its progress bars stay out of an offline import.
    out, err = capfd.readouterr()
    assert "Downloading" not in out + err and "Generating" not in err and "Shuffling" not in err, out + err
    assert first["reused"] is False and first["counts"] == TINY_LISA and first["classes"] == 16
    assert first["path"] == str(data_dir / "arnkit_lisa" / "1.0.0") and first["dataset"] == "lisa"
    assert _leftovers(data_dir) == ["arnkit_lisa"] and LisaSource().availability(data_dir) is None
    arrays = _check_tiny_lisa(data_dir)
    # LISA/ itself is the same content: reused without a rebuild.
    again = import_lisa(lisa, data_dir, expected_counts=TINY_LISA)
    assert again["reused"] is True and again["sha256"] == first["sha256"]
    assert import_lisa(lisa, data_dir, expected_counts=TINY_LISA, force=True)["reused"] is False

    zipped = import_lisa(_zip_folder(lisa, tmp_path / "LISA.zip"), data_dir, expected_counts=TINY_LISA)
    assert zipped["reused"] is False and zipped["sha256"] != first["sha256"]  # another source: rebuilt
    tar_path = tmp_path / "lisa.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(lisa, arcname="./LISA")
        link = tarfile.TarInfo("LISA/train/0/escape.png")  # links are not regular files: never read
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    tarred = import_lisa(tar_path, data_dir, expected_counts=TINY_LISA)
    assert tarred["reused"] is False and tarred["counts"] == TINY_LISA
    for split, (x, y) in _check_tiny_lisa(data_dir).items():  # every route gives the same dataset
        np.testing.assert_array_equal(x, arrays[split][0])
        np.testing.assert_array_equal(y, arrays[split][1])
    assert _leftovers(data_dir) == ["arnkit_lisa"]
    assert sorted(p.name for p in (data_dir / "arnkit_lisa").iterdir()) == ["1.0.0"]


def _drop_val(lisa: Path) -> None:
    shutil.rmtree(lisa / "val")


def _add_folder(name: str):
    def add(lisa: Path) -> None:
        (lisa / "train" / name).mkdir()
        shutil.copy(next((lisa / "train" / "0").iterdir()), lisa / "train" / name / "a.png")
    return add


def _drop_folder(lisa: Path) -> None:
    shutil.rmtree(lisa / "val" / "5")


@pytest.mark.parametrize("damage, counts, message", [
    (_drop_val, TINY_LISA, r"^LISA/val is missing in .*; pass DOA's LISA release \(LISA/train, LISA/val\)$"),
    (_add_folder("17"), None, r"^class folder train/17 is not one of the 16 LISA classes"),
    (_add_folder("12"), None, r"^class folder train/12 \(speedLimitUrdbl\) is not one of the 16 LISA classes"),
    (_drop_folder, None, r"^LISA/val in .* lacks class folder\(s\) 5 of the 16; re-download"),
    (None, {"train": 32, "test": 17}, r"has 16 val images, expected 17 \(DOA's split\); re-download or re-extract"),
    (None, DOA_COUNTS, r"has 32 train images, expected 3,509 \(DOA's split\); re-download or re-extract"),
], ids=["no-val", "extra-17", "dropped-12", "missing-5", "val-count", "default-counts"])
def test_lisa_import_refuses_a_wrong_release_in_one_line(tmp_path, damage, counts, message):
    lisa = _doa16(tmp_path / "src")
    if damage is not None:
        damage(lisa)
    data_dir = tmp_path / "data"
    kwargs = {} if counts is DOA_COUNTS else {"expected_counts": counts}  # DOA_COUNTS: the default check fires
    start = time.perf_counter()
    with pytest.raises(ArnkitError, match=message) as caught:
        import_lisa(_zip_folder(lisa, tmp_path / "LISA.zip"), data_dir, **kwargs)
    assert time.perf_counter() - start < 5.0  # names only: nothing decoded, nothing built
    assert "\n" not in str(caught.value)
    assert _leftovers(data_dir) == []


def test_lisa_import_rejects_missing_and_unknown_paths(tmp_path):
    with pytest.raises(ArnkitError, match="LISA data not found"):
        import_lisa(tmp_path / "nope.tar", tmp_path / "data")
    (tmp_path / "lisa.rar").write_bytes(b"x")
    with pytest.raises(ArnkitError, match=r"not a \.tar, \.tar\.gz, \.tgz, \.zip or folder"):
        import_lisa(tmp_path / "lisa.rar", tmp_path / "data")
    (tmp_path / "broken.tar").write_bytes(b"not a tar at all" * 64)
    with pytest.raises(ArnkitError, match="cannot open .*broken.tar"):
        import_lisa(tmp_path / "broken.tar", tmp_path / "data")
    _lisa_original(tmp_path / "original")
    with pytest.raises(ArnkitError, match="is the original LISA archive"):
        import_lisa(tmp_path / "original", tmp_path / "data")
    assert _leftovers(tmp_path / "data") == []


def test_lisa_import_corrupt_png_fails_in_one_line_and_keeps_the_old_dataset(tmp_path):
    lisa = _doa16(tmp_path / "src")
    victim = sorted((lisa / "val" / "13").iterdir())[0]
    good = victim.read_bytes()
    victim.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    data_dir = tmp_path / "data"
    with pytest.raises(ArnkitError, match=r"^cannot decode LISA/val/13/.*\.png") as caught:
        import_lisa(_zip_folder(lisa, tmp_path / "LISA.zip"), data_dir, expected_counts=TINY_LISA)
    assert "\n" not in str(caught.value)
    assert _leftovers(data_dir) == []  # no staging folder, no arnkit_lisa
    # A failed rebuild leaves the earlier import as it was.
    victim.write_bytes(good)
    import_lisa(lisa, data_dir, expected_counts=TINY_LISA)
    before = _check_tiny_lisa(data_dir)
    victim.write_bytes(b"broken")
    with pytest.raises(ArnkitError, match="cannot decode"):
        import_lisa(lisa, data_dir, expected_counts=TINY_LISA)
    assert _leftovers(data_dir) == ["arnkit_lisa"]
    np.testing.assert_array_equal(_check_tiny_lisa(data_dir)["test"][0], before["test"][0])
