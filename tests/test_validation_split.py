"""The validation split: sizes, disjointness from train and test, determinism, LISA held out by track, and
isolation: the target, the pools and defense training never read a validation or test image."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from arnkit import data
from arnkit.data import splits
from arnkit.errors import ArnkitError

LISA_TAR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lisa-16.tar"


def _rows(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in np.asarray(x).reshape(len(x), -1)}


def _raw_train(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The source's own training arrays (train + val), below the split."""
    return data.get_source(name).load_arrays("train", Path("."))


def test_synthetic_sizes_disjointness_and_determinism():
    x_tr, y_tr, info = data.load_arrays("synthetic", "train")
    x_val, y_val, _ = data.load_arrays("synthetic", "val")
    x_te, _, _ = data.load_arrays("synthetic", "test")
    assert (len(x_tr), len(x_val), len(x_te)) == (info.split_sizes["train"], info.split_sizes["val"],
                                                  info.split_sizes["test"]) == (512, 64, 128)
    assert not _rows(x_tr) & _rows(x_val) and not _rows(x_tr) & _rows(x_te) and not _rows(x_val) & _rows(x_te)
    assert set(np.unique(y_val)) == set(range(info.num_classes))  # every class on validation
    again, _, _ = data.load_arrays("synthetic", "val")
    np.testing.assert_array_equal(again, x_val)
    raw, _ = _raw_train("synthetic")
    np.testing.assert_array_equal(raw[-64:], x_val)  # the rule: the last 64


def test_mnist_val_is_the_last_5000_training_images():
    x_tr, y_tr, info = data.load_arrays("mnist", "train")
    x_val, y_val, _ = data.load_arrays("mnist", "val", limit=100)
    raw_x, raw_y = _raw_train("mnist")
    assert len(raw_x) == 60000 and len(x_tr) == 55000 and info.split_sizes["val"] == 5000
    np.testing.assert_array_equal(x_tr, raw_x[:55000])
    np.testing.assert_array_equal(x_val, raw_x[55000:55100])
    np.testing.assert_array_equal(y_val, raw_y[55000:55100])
    assert splits.definition("mnist") == {"version": splits.VERSION,
                                          "val": {"kind": "last", "count": 5000, "fraction": 0.0, "seed": 0}}


def test_a_dataset_without_a_val_rule_refuses_val_in_one_line():
    with pytest.raises(ArnkitError, match="has no validation split") as err:
        splits.val_positions("digits", np.zeros(10))
    assert "\n" not in str(err.value) and "--split test" in str(err.value)
    with pytest.raises(ArnkitError, match="unknown split 'valid'; choose one of: train, val, test"):
        data.load_arrays("synthetic", "valid")


def _tracks(seed: int) -> tuple[np.ndarray, list[str]]:
    """A LISA-like layout: 3 classes of 10, 20 and 3 tracks, each track 1-6 frames, frames shuffled."""
    rng = np.random.default_rng(seed)
    labels, keys = [], []
    for label, n_tracks in enumerate((10, 20, 3)):
        for t in range(n_tracks):
            for _frame in range(1 + t % 6):
                labels.append(label)
                keys.append(f"c{label}_{1000 + t}.avi")
    order = rng.permutation(len(keys))
    return np.array(labels)[order], [keys[i] for i in order]


def test_lisa_rule_holds_out_whole_tracks_per_class_deterministically():
    labels, keys = _tracks(0)
    val = splits.val_positions("lisa", labels, lambda: keys)
    val_tracks = {keys[i] for i in val}
    train_tracks = {keys[i] for i in splits.positions("lisa", "train", labels, lambda: keys)}
    assert not val_tracks & train_tracks  # no track on both sides
    assert len(splits.positions("lisa", "train", labels, lambda: keys)) + len(val) == len(labels)
    per_class = {c: {k for k in val_tracks if k.startswith(f"c{c}_")} for c in range(3)}
    assert [len(per_class[c]) for c in range(3)] == [1, 2, 1]  # 10% of each class's tracks, at least one
    # The choice depends on the tracks, not on the order of the files.
    labels2, keys2 = _tracks(1)
    assert {keys2[i] for i in splits.val_positions("lisa", labels2, lambda: keys2)} == val_tracks
    assert splits.track_of("LISA/train/13/335_stop_1330545910.avi_image0.png") == "stop_1330545910.avi"


@pytest.mark.skipif(not LISA_TAR.is_file(), reason="no ../shared/data/lisa-16.tar beside the checkout")
def test_real_lisa_val_is_stratified_by_track(tmp_path):
    from arnkit.data.lisa_import import import_lisa
    from arnkit.data.tfds_local import read_sources

    data_dir = tmp_path / "data"
    import_lisa(LISA_TAR, data_dir)
    source = data.get_source("lisa")
    _, raw_y = source.load_arrays("train", data_dir)
    keys = source.train_groups(data_dir)
    assert len(keys) == len(raw_y) == 3509 and len(set(keys)) > 300
    val = splits.val_positions("lisa", raw_y, lambda: keys)
    train = splits.positions("lisa", "train", raw_y, lambda: keys)
    assert (len(train), len(val)) == (source.info.split_sizes["train"], source.info.split_sizes["val"])
    assert not {keys[i] for i in val} & {keys[i] for i in train}
    assert set(raw_y[val]) == set(range(16))  # every class on validation
    x_val, y_val, _ = data.load_arrays("lisa", "val", data_dir=data_dir)
    np.testing.assert_array_equal(y_val, raw_y[val])
    assert len(read_sources(data_dir / "arnkit_lisa" / "1.0.0", "train")) == 3509


# ------------------------------------------------------------------------------------------ isolation ---

@pytest.fixture
def spy(monkeypatch):
    """Every data.load_arrays call: (calling function, split, images returned)."""
    calls: list[tuple[str, str, np.ndarray]] = []
    real = data.load_arrays

    def load_arrays(name, split="train", **kwargs):
        out = real(name, split, **kwargs)
        calls.append((inspect.stack()[1].function, split, out[0]))
        return out

    monkeypatch.setattr(data, "load_arrays", load_arrays)
    return calls


def _held_out(name: str) -> set[bytes]:
    return _rows(data.load_arrays(name, "val")[0]) | _rows(data.load_arrays(name, "test")[0])


# The functions that fit a model or craft its pools (the target's `_train` also reads test, to report accuracy).
TRAINING_READERS = {"_train", "seen_pools", "fit"}


def test_synthetic_target_pools_and_defense_never_touch_val_or_test(tmp_path, spy, monkeypatch):
    import keras

    from arnkit import adversarial_store
    from arnkit.pipeline.train import train
    from arnkit.runs.adversarial import seen_pools
    from arnkit.runs.context import RunContext
    from arnkit.runs.target import with_target

    held = _held_out("synthetic")
    spy.clear()
    fitted: list[np.ndarray] = []
    real_fit = keras.Model.fit

    def fit(self, x, *args, **kwargs):
        fitted.append(np.asarray(x))
        return real_fit(self, x, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit)
    ctx = with_target(RunContext.build("synthetic", workspace=tmp_path, seed=0))
    assert ctx.target.record.train_split["n"] == 512 and "last 64" in ctx.target.record.train_split["rule"]
    pools = seen_pools(ctx, ["fgsm"], pool_size=48)
    record = train("synthetic", "at_pgd", epochs=1, workspace=tmp_path)
    assert len(fitted) == 1 and len(fitted[0]) == 512 and not _rows(fitted[0]) & held  # the target's fit
    readers = {caller for caller, split, _ in spy if split == "train"}
    assert TRAINING_READERS <= readers  # the target, the pools and AT_PGD each read train here
    for caller, split, x in spy:
        assert split != "val", f"{caller} read the validation split"
        if split == "train":
            assert not _rows(x) & held, f"{caller} read a validation or test image"
    # The stored pool: its indices are train positions, below the val rows; its images are train images.
    stored = adversarial_store.load(Path(pools.paths[0]))
    raw_x, raw_y = _raw_train("synthetic")
    positions = splits.positions("synthetic", "train", raw_y)[stored.indices]
    assert not set(positions) & set(splits.val_positions("synthetic", raw_y))
    assert not _rows(pools.x_nat) & held
    assert record["reused"] is False  # AT_PGD was fitted here, on the train rows checked above


def test_mnist_target_fit_and_pools_read_only_the_55000(tmp_path, spy, monkeypatch):
    import keras

    from arnkit.runs.adversarial import seen_pools
    from arnkit.runs.context import RunContext
    from arnkit.runs.target import with_target

    fitted: list[np.ndarray] = []
    # No real training (cheap): record what the target would be fitted on.
    monkeypatch.setattr(keras.Model, "fit", lambda self, x, *a, **k: fitted.append(np.asarray(x)))
    ctx = with_target(RunContext.build("mnist", workspace=tmp_path, seed=0))
    raw_x, _ = _raw_train("mnist")
    assert len(fitted) == 1 and len(fitted[0]) == 55000
    np.testing.assert_array_equal(fitted[0], raw_x[:55000])  # never one of the last 5,000 (val)
    pools = seen_pools(ctx, ["fgsm"], pool_size=32)
    assert pools.x_nat.shape[0] == 32
    assert not _rows(pools.x_nat) & _rows(raw_x[55000:])
    assert "val" not in {split for _, split, _ in spy}
    assert [split for caller, split, _ in spy if caller == "seen_pools"] == ["train"]
