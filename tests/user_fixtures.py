"""Data and a model that arnkit did not write, for the "your model, your data" tests: scikit-learn's digits
as PNG class folders, and a small Keras CNN of the user's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def digits_arrays(n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: (n, 8, 8) images in 0-16 and their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images[:n], d.target[:n]


def write_digits(root: Path, *, rgb: bool = False, split: bool = True, n: int | None = None,
                 side: int = 16) -> Path:
    """The digits as PNG class folders at side x side: train/<c>/, test/<c>/ (every fifth image in test) or
    one tree <c>/."""
    images, labels = digits_arrays(n)
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        part = ("test" if i % 5 == 0 else "train") if split else ""
        folder = root / part / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        pil = Image.fromarray((img * 255 / 16).astype(np.uint8), "L").resize((side, side), Image.BILINEAR)
        (pil.convert("RGB") if rgb else pil).save(folder / f"{i:04d}.png")
    return root


def user_cnn(shape: tuple[int, ...], classes: int, x: np.ndarray, y: np.ndarray, *, epochs: int = 8,
             seed: int = 0) -> Any:
    """A small CNN as a user would write it (Sequential, logits out), trained on (x, y) in [0, 1]."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(shape=shape),
        keras.layers.Conv2D(16, 3, activation="relu", padding="same"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu", padding="same"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(classes),
    ], name="my_cnn")
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return model
