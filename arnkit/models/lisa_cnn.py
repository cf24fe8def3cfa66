"""LISA-CNN from Eykholt et al., "Robust Physical-World Attacks on Deep Learning Visual Classification"
(CVPR 2018), the traffic-sign target the ARN paper uses on LISA (following Wu et al. 2020, DOA).

Three convolutions with ReLU: 64 filters 8x8 stride 2 ('same'), 128 filters 6x6 stride 2 ('valid'),
128 filters 5x5 stride 1 ('valid'); flatten; a dense layer of logits. At 32x32x3 the flattened feature
has 2*2*128 = 512 units. The ARN/DOA setup has 16 classes (RP2's own code uses 18). A 28x28 input
leaves a 1x1 map, so MNIST-shaped inputs also work. `width` (64 in the paper) scales all three convs.
`dropout` > 0 puts a Dropout layer before the logits: active in training only, no weights, so the network
computed at test time is exactly LISA-CNN (arnkit's LISA target recipe uses 0.5; docs/results-lisa.md).

Example:
    >>> from arnkit.models import build
    >>> model = build("lisa_cnn", (32, 32, 3), 16)
"""

from __future__ import annotations

import keras
from keras import layers

from arnkit.errors import ArnkitError

PRESETS: dict[str, dict] = {
    "paper": {"width": 64},
    "cpu": {"width": 64},
    "tiny": {"width": 8},
}

# The two 'valid' convs need a 14x14 map after the first stride-2 conv, i.e. inputs of 27 pixels or more.
_MIN_SIDE = 27


def lisa_cnn(input_shape: tuple[int, int, int] = (32, 32, 3), num_classes: int = 16, *, width: int = 64,
             dropout: float = 0.0, name: str = "lisa_cnn") -> keras.Model:
    """Build LISA-CNN (conv `width`, 2*`width`, 2*`width`; dense logits)."""
    if not 0.0 <= dropout < 1.0:
        raise ArnkitError(f"dropout must be in [0, 1), got {dropout}")
    if min(input_shape[:2]) < _MIN_SIDE:
        raise ArnkitError(f"LISA-CNN needs images at least {_MIN_SIDE}x{_MIN_SIDE}, got {input_shape}; "
                          "resize the images or pick another model")
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(width, 8, strides=2, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.Conv2D(2 * width, 6, strides=2, padding="valid", activation="relu", name="conv2")(x)
    x = layers.Conv2D(2 * width, 5, strides=1, padding="valid", activation="relu", name="conv3")(x)
    x = layers.Flatten(name="flatten")(x)
    if dropout:
        x = layers.Dropout(float(dropout), name="dropout")(x)
    logits = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name)
