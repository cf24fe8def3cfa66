"""Shared by the ARN adaptive and lever tests: a tiny random target to guide and attack through. (Their image
batch is the `pairs` fixture of conftest.py.)"""

from __future__ import annotations

import keras


def guide_model():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(x)))
