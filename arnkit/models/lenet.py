"""LeNet-5 as the ARN paper ran it (advertorch's `LeNet5`): conv32-pool-conv64-pool-fc200-fc10, ReLU, logits out."""

from __future__ import annotations

import keras
from keras import layers

PRESETS: dict[str, dict] = {
    "paper": {"width": 32, "hidden": 200},
    "cpu": {"width": 32, "hidden": 200},
    "tiny": {"width": 4, "hidden": 16},
}


def lenet(input_shape: tuple[int, int, int] = (28, 28, 1), num_classes: int = 10, *, width: int = 32,
          hidden: int = 200, name: str = "lenet") -> keras.Model:
    """Two 3x3 conv layers (width, 2*width) with max-pooling, a `hidden`-unit dense layer, `num_classes` logits."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(width, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(2 * width, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(hidden, activation="relu", name="fc1")(x)
    logits = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name)
