"""The embedded MNIST and the dataset registry."""

import time

import numpy as np
import pytest

from arnkit import data
from arnkit.data.mnist import MnistSource
from arnkit.errors import ArnkitError

CANONICAL_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
CANONICAL_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_mnist_shapes_range_and_label_counts():
    x, y, meta = data.load_arrays("mnist", "test")
    assert x.shape == (10000, 28, 28, 1) and x.dtype == np.float32
    assert y.dtype == np.int64 and meta.num_classes == 10
    assert 0.0 == x.min() and x.max() == 1.0
    assert np.bincount(y).tolist() == CANONICAL_TEST_COUNTS
    x_train, y_train, _ = data.load_arrays("mnist", "train")
    assert x_train.shape == (55000, 28, 28, 1)  # the last 5,000 of MNIST's 60,000 are val (data/splits.py)
    _, y_val, _ = data.load_arrays("mnist", "val")
    assert (np.bincount(y_train) + np.bincount(y_val)).tolist() == CANONICAL_TRAIN_COUNTS
    assert abs(float(x_train.mean()) - 0.1307) < 1e-3


def test_load_returns_tf_dataset_and_limit():
    ds, meta = data.load("mnist", "test", limit=5)
    batches = list(ds.batch(5))
    assert len(batches) == 1 and tuple(batches[0][0].shape) == (5, 28, 28, 1)
    assert meta.eps == pytest.approx(0.3) and meta.eps_raised == pytest.approx(0.4)


def test_limit_larger_than_split_is_refused():
    with pytest.raises(ArnkitError, match="larger than"):
        data.load_arrays("synthetic", "test", limit=10_000)


def test_unknown_dataset_and_split():
    with pytest.raises(ArnkitError, match="unknown dataset 'imagenet'.*mnist"):
        data.load_arrays("imagenet")
    with pytest.raises(ArnkitError, match="unknown split"):
        data.load_arrays("mnist", "validation")


def test_corrupt_embedded_file_is_detected(tmp_path):
    bad = tmp_path / "mnist.npz"
    blob = bytearray(MnistSource().path.read_bytes())
    blob[1000] ^= 0xFF
    bad.write_bytes(bytes(blob))
    with pytest.raises(ArnkitError, match="corrupt.*reinstall"):
        MnistSource(path=bad).load_arrays("test", tmp_path)


def test_synthetic_is_deterministic_and_balanced():
    x1, y1, meta = data.load_arrays("synthetic", "train")
    x2, y2, _ = data.load_arrays("synthetic", "train")
    np.testing.assert_array_equal(x1, x2)
    assert np.bincount(y1).tolist() == [meta.split_sizes["train"] // 4] * 4
    assert x1.min() >= 0 and x1.max() <= 1


def test_availability_answers_fast_without_network(tmp_path):
    start = time.perf_counter()
    status = {name: data.availability(name, tmp_path) for name in data.SOURCES}
    assert time.perf_counter() - start < 5
    assert status["mnist"] is None and status["synthetic"] is None
    assert status["cifar10"] and "arnkit data import cifar10" in status["cifar10"]
    assert status["lisa"]
