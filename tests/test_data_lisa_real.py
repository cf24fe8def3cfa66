"""`arnkit data import lisa` on the real DOA release (lisa-16.tar): counts, pixels, label map, reuse, CLI.

The archive is built twice in this file (once by the library, once through the CLI); everything else reads
those two builds or re-imports them as reused.
"""

from __future__ import annotations

import json
import os
import re
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from arnkit import data
from arnkit.data.lisa import CLASS_NAMES, RP2_CLASS_NAMES
from arnkit.data.lisa_import import import_lisa

LISA_TAR = Path(os.environ.get("ARNKIT_LISA_TAR", "/work/shared/data/lisa-16.tar"))
pytestmark = pytest.mark.skipif(
    not LISA_TAR.is_file(), reason=f"real LISA archive not found at {LISA_TAR} (set ARNKIT_LISA_TAR to its path)"
)
_IMAGE = re.compile(r"^LISA/(train|val)/(\d+)/[^/]+\.png$")


@pytest.fixture(scope="module")
def tar_folders() -> dict[str, dict[int, int]]:
    """Images per split and class folder, read straight from the tar (independent of arnkit's reader)."""
    counts: dict[str, dict[int, int]] = {"train": {}, "test": {}}
    with tarfile.open(LISA_TAR) as tar:
        for member in tar:
            match = _IMAGE.match(member.name)
            if member.isfile() and match:
                split = {"train": "train", "val": "test"}[match[1]]
                counts[split][int(match[2])] = counts[split].get(int(match[2]), 0) + 1
    return counts


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple[dict, Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    data_dir = tmp_path_factory.mktemp("lisa") / "data"
    start = time.perf_counter()
    result = import_lisa(LISA_TAR, data_dir)
    print(f"\nreal LISA import: {time.perf_counter() - start:.1f} s")
    arrays = {split: data.load_arrays("lisa", split, data_dir=data_dir)[:2] for split in ("train", "val", "test")}
    return result, data_dir, arrays


def test_real_lisa_counts_and_pixels(imported):
    result, data_dir, arrays = imported
    assert result["reused"] is False and result["classes"] == 16
    assert result["counts"] == {"train": 3509, "test": 1148}
    assert Path(result["path"]) == data_dir / "arnkit_lisa" / "1.0.0"
    assert sorted(p.name for p in data_dir.iterdir()) == ["arnkit_lisa"]  # no staging left
    # DOA's 3,509 training images are arnkit's train + val (val: 10% of each class's tracks, data/splits.py)
    for split, n in (("train", 3128), ("val", 381), ("test", 1148)):
        x, y = arrays[split]
        assert x.shape == (n, 32, 32, 3) and x.dtype == np.float32 and y.shape == (n,)
        assert x.min() >= 0.0 and x.max() <= 1.0 and x.std() > 0.05
        assert len(np.unique(x.reshape(n, -1)[:, ::97], axis=0)) > 0.9 * n  # distinct images, not one repeated


def test_real_lisa_label_map_matches_the_folders(imported, tar_folders):
    _, data_dir, arrays = imported
    # The tar's README gives folder -> sign; arnkit's label is that sign's position in CLASS_NAMES.
    with tarfile.open(LISA_TAR) as tar:
        readme = tar.extractfile("LISA/README.txt").read().decode()
    mapping = readme.split("Folder -> sign:", 1)[1].split("(there is no folder", 1)[0]
    folder_sign = {int(k): sign for k, sign in re.findall(r"(\d+) ([A-Za-z0-9]+)", mapping)}
    assert folder_sign == {k: name for k, name in enumerate(RP2_CLASS_NAMES) if k != 12}
    label_of = {k: CLASS_NAMES.index(sign) for k, sign in folder_sign.items()}
    assert (label_of[0], label_of[13], label_of[16]) == (0, 12, 15)
    for split, per_folder in tar_folders.items():
        assert sorted(per_folder) == sorted(folder_sign)  # all 16 folders, both splits
        expected = np.zeros(16, np.int64)
        for folder, n in per_folder.items():
            expected[label_of[folder]] = n
        # the tar's train folders hold arnkit's train + val
        labels = np.concatenate([arrays["train"][1], arrays["val"][1]]) if split == "train" else arrays[split][1]
        assert np.bincount(labels, minlength=16).tolist() == expected.tolist()

    # Per example: the stored source path's folder maps to the stored label.
    import tensorflow_datasets as tfds

    test = tfds.as_numpy(tfds.builder_from_directory(data_dir / "arnkit_lisa" / "1.0.0").as_dataset(
        split="test", batch_size=-1))
    folders = [int(s.decode().split("/")[2]) for s in test["source"]]
    assert [label_of[f] for f in folders] == test["label"].tolist()


def test_real_lisa_second_import_is_reused(imported):
    result, data_dir, arrays = imported
    info = Path(result["path"]) / "dataset_info.json"
    stamp = info.stat().st_mtime_ns
    start = time.perf_counter()
    again = import_lisa(LISA_TAR, data_dir)
    assert time.perf_counter() - start < 5.0
    assert again["reused"] is True and again["sha256"] == result["sha256"] and again["counts"] == result["counts"]
    assert info.stat().st_mtime_ns == stamp
    for split, (x, y) in arrays.items():
        x2, y2, _ = data.load_arrays("lisa", split, data_dir=data_dir)
        np.testing.assert_array_equal(x2, x)
        np.testing.assert_array_equal(y2, y)


def test_real_lisa_through_the_cli(tmp_path):
    from typer.testing import CliRunner

    from arnkit_cli.main import app

    runner = CliRunner()
    workspace = ["--workspace", str(tmp_path)]
    before = json.loads(runner.invoke(app, ["datasets", "--json", *workspace]).stdout)
    assert {r["name"]: r["available"] for r in before["datasets"]}["lisa"] is False
    result = runner.invoke(app, ["data", "import", "lisa", str(LISA_TAR), "--json", *workspace])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["dataset"] == "lisa" and record["reused"] is False
    assert record["counts"] == {"train": 3509, "test": 1148} and record["classes"] == 16
    after = json.loads(runner.invoke(app, ["datasets", "--json", *workspace]).stdout)
    lisa = {r["name"]: r for r in after["datasets"]}["lisa"]
    assert lisa["available"] is True and lisa["reason"] == ""
    plain = runner.invoke(app, ["data", "import", "lisa", str(LISA_TAR), *workspace])
    assert plain.exit_code == 0 and "3,509 train / 1,148 test" in plain.output and "reused" in plain.output
