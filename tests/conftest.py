"""Shared fixtures: tiny models and data so the suite runs in minutes on 2 CPU cores."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Keras writes ~/.keras/keras.json with the backend of the first process that imports it, and later processes with
# no KERAS_BACKEND read it back; and a module imported by a test may setdefault KERAS_BACKEND=jax (bench/gpu does).
# Either made a later TF child run on JAX (CI, 2026-12). Children inherit both settings; a test that wants JAX or
# torch sets KERAS_BACKEND itself.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
if "KERAS_HOME" not in os.environ:  # the first process makes it (xdist workers inherit it) and removes it at exit
    os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="arnkit-tests-keras-home-")
    atexit.register(shutil.rmtree, os.environ["KERAS_HOME"], ignore_errors=True)

import numpy as np
import pytest


@pytest.fixture(scope="session")
def synthetic_data():
    from arnkit import data

    x_train, y_train, meta = data.load_arrays("synthetic", "train")
    x_test, y_test, _ = data.load_arrays("synthetic", "test")
    return x_train, y_train, x_test, y_test, meta


@pytest.fixture(scope="session")
def tiny_classifier(synthetic_data):
    """A small LeNet trained to ~100% clean accuracy on the synthetic set (logits out)."""
    import keras

    from arnkit.models import build

    x_train, y_train, x_test, y_test, meta = synthetic_data
    keras.utils.set_random_seed(0)
    model = build("lenet", meta.shape, meta.num_classes, width=8, hidden=32)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=4, batch_size=64, verbose=0)
    acc = float(np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test))
    assert acc > 0.95, f"tiny classifier failed to learn the synthetic set: {acc}"
    return model


@pytest.fixture(scope="session")
def mnist_tiny():
    """A small slice of real MNIST and a small LeNet trained on 4k images (~95% accuracy)."""
    import keras

    from arnkit import data
    from arnkit.models import build

    x_train, y_train, meta = data.load_arrays("mnist", "train", limit=4000)
    x_test, y_test, _ = data.load_arrays("mnist", "test", limit=200)
    keras.utils.set_random_seed(0)
    model = build("lenet", meta.shape, meta.num_classes, width=8, hidden=64)
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, epochs=3, batch_size=64, verbose=0)
    return model, x_test, y_test


@pytest.fixture(scope="module")
def pairs():
    """ARN training batches from the synthetic set: (adversarial pairs [N, 2, H, W, C], natural [N, H, W, C]),
    the two 'attacks' being Gaussian noise and a signed step."""
    import tensorflow as tf

    from arnkit import data

    x, _, _ = data.load_arrays("synthetic", "train", limit=16)
    rng = np.random.default_rng(0)
    noisy = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    signed = np.clip(x + 0.15 * np.sign(rng.normal(size=x.shape)), 0, 1)
    return tf.constant(np.stack([noisy, signed], axis=1), tf.float32), tf.constant(x, tf.float32)
