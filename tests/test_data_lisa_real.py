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

CHECKOUT = Path(__file__).resolve().parents[1]
_IMAGE = re.compile(r"^LISA/(train|val)/(\d+)/[^/]+\.png$")


def locate_archive(checkout: Path, env: dict[str, str]) -> tuple[str, Path | None, str]:
    """("run", path, "") / ("skip", None, why) / ("fail", None, why) for the real archive.

    CI keeps shared data in `<checkout>/../shared`: where that folder exists the archive must be in it (a
    missing one is a broken CI, not a reason to skip in silence). $ARNKIT_LISA_TAR, when set, must exist."""
    if env.get("ARNKIT_LISA_TAR"):
        path = Path(env["ARNKIT_LISA_TAR"])
        return ("run", path, "") if path.is_file() else ("fail", None, f"ARNKIT_LISA_TAR={path} is not a file")
    shared = checkout.parent / "shared"
    if not shared.is_dir():
        return "skip", None, f"no {shared} beside the checkout; set ARNKIT_LISA_TAR to the real lisa-16.tar"
    path = shared / "data" / "lisa-16.tar"
    if not path.is_file():
        return "fail", None, f"{shared} exists but {path} is missing: put the DOA release there"
    return "run", path, ""


@pytest.fixture(scope="module")
def lisa_tar() -> Path:
    verdict, path, why = locate_archive(CHECKOUT, dict(os.environ))
    if verdict == "skip":
        pytest.skip(why)
    if verdict == "fail":
        pytest.fail(why)
    return path


def test_archive_is_found_beside_the_checkout_and_a_missing_one_fails(tmp_path):
    checkout = tmp_path / "repo"
    checkout.mkdir()
    assert locate_archive(checkout, {})[0] == "skip"  # no ../shared at all: not a CI machine
    (tmp_path / "shared" / "data").mkdir(parents=True)
    verdict, _, why = locate_archive(checkout, {})
    assert verdict == "fail" and "lisa-16.tar is missing" in why
    tar = tmp_path / "shared" / "data" / "lisa-16.tar"
    tar.write_bytes(b"")
    assert locate_archive(checkout, {}) == ("run", tar, "")
    assert locate_archive(checkout, {"ARNKIT_LISA_TAR": str(tmp_path / "nope.tar")})[0] == "fail"
    assert locate_archive(tmp_path / "elsewhere", {"ARNKIT_LISA_TAR": str(tar)}) == ("run", tar, "")


@pytest.fixture(scope="module")
def tar_folders(lisa_tar) -> dict[str, dict[int, int]]:
    """Images per split and class folder, read straight from the tar (independent of arnkit's reader)."""
    counts: dict[str, dict[int, int]] = {"train": {}, "test": {}}
    with tarfile.open(lisa_tar) as tar:
        for member in tar:
            match = _IMAGE.match(member.name)
            if member.isfile() and match:
                split = {"train": "train", "val": "test"}[match[1]]
                counts[split][int(match[2])] = counts[split].get(int(match[2]), 0) + 1
    return counts


@pytest.fixture(scope="module")
def imported(tmp_path_factory, lisa_tar) -> tuple[dict, Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    data_dir = tmp_path_factory.mktemp("lisa") / "data"
    start = time.perf_counter()
    result = import_lisa(lisa_tar, data_dir)
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


def test_real_lisa_label_map_matches_the_folders(imported, tar_folders, lisa_tar):
    _, data_dir, arrays = imported
    # The tar's README gives folder -> sign; arnkit's label is that sign's position in CLASS_NAMES.
    with tarfile.open(lisa_tar) as tar:
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


def test_real_lisa_second_import_is_reused(imported, lisa_tar):
    result, data_dir, arrays = imported
    info = Path(result["path"]) / "dataset_info.json"
    stamp = info.stat().st_mtime_ns
    start = time.perf_counter()
    again = import_lisa(lisa_tar, data_dir)
    assert time.perf_counter() - start < 5.0
    assert again["reused"] is True and again["sha256"] == result["sha256"] and again["counts"] == result["counts"]
    assert info.stat().st_mtime_ns == stamp
    for split, (x, y) in arrays.items():
        x2, y2, _ = data.load_arrays("lisa", split, data_dir=data_dir)
        np.testing.assert_array_equal(x2, x)
        np.testing.assert_array_equal(y2, y)


def test_real_lisa_through_the_cli(tmp_path, lisa_tar):
    from typer.testing import CliRunner

    from arnkit_cli.main import app

    runner = CliRunner()
    workspace = ["--workspace", str(tmp_path)]
    before = json.loads(runner.invoke(app, ["datasets", "--json", *workspace]).stdout)
    assert {r["name"]: r["available"] for r in before["datasets"]}["lisa"] is False
    result = runner.invoke(app, ["data", "import", "lisa", str(lisa_tar), "--json", *workspace])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["dataset"] == "lisa" and record["reused"] is False
    assert record["counts"] == {"train": 3509, "test": 1148} and record["classes"] == 16
    after = json.loads(runner.invoke(app, ["datasets", "--json", *workspace]).stdout)
    lisa = {r["name"]: r for r in after["datasets"]}["lisa"]
    assert lisa["available"] is True and lisa["reason"] == ""
    plain = runner.invoke(app, ["data", "import", "lisa", str(lisa_tar), *workspace])
    assert plain.exit_code == 0 and "3,509 train / 1,148 test" in plain.output and "reused" in plain.output
