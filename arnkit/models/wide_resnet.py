"""Wide ResNet from Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016).

WRN-d-k: a 3x3 conv with 16 filters, then three groups of n = (d - 4) / 6 pre-activation blocks
(BN-ReLU-conv3x3, optional dropout, BN-ReLU-conv3x3) with 16k, 32k, 64k filters, the last two groups
starting with stride 2; a 1x1 conv shortcut wherever the shape changes; final BN-ReLU, global average
pooling, dense logits. The ARN paper's cross-model target is WRN-28-20 (145.8M parameters); the default
here is WRN-10-2 (one block per group, ~0.3M parameters) so a CPU can train it.

Example:
    >>> from arnkit.models import build
    >>> model = build("wrn", (32, 32, 3), 10, depth=28, widen_factor=10)   # WRN-28-10, 36.5M parameters
"""

from __future__ import annotations

import keras
from keras import layers

from arnkit.errors import ArnkitError

PRESETS: dict[str, dict] = {
    "paper": {"depth": 28, "widen_factor": 20},
    "cpu": {"depth": 10, "widen_factor": 2},
    "tiny": {"depth": 10, "widen_factor": 1, "base_width": 4},
}


def wide_resnet(input_shape: tuple[int, int, int] = (32, 32, 3), num_classes: int = 10, *, depth: int = 10,
                widen_factor: int = 2, dropout: float = 0.0, base_width: int = 16,
                name: str | None = None) -> keras.Model:
    """Build WRN-`depth`-`widen_factor` (depth = 6n + 4: 10, 16, 22, 28, 40, ...) mapping [0,1] images to logits.

    `dropout` is the rate between the two convs of each block (the WRN paper uses 0.3 in some runs);
    `base_width` (16 in the paper) scales every layer, for tests.
    """
    if depth < 10 or (depth - 4) % 6:
        raise ArnkitError(f"WRN depth must be 6n+4 with n >= 1 (10, 16, 22, 28, 40, ...), got {depth}")
    if widen_factor < 1:
        raise ArnkitError(f"widen_factor must be >= 1, got {widen_factor}")
    blocks_per_group = (depth - 4) // 6

    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv(base_width, 3, 1, "stem_conv")(inputs)
    for group in range(3):
        filters = base_width * widen_factor * 2**group
        for block in range(blocks_per_group):
            stride = 2 if group > 0 and block == 0 else 1
            x = _wide_block(x, filters, stride, dropout, f"group{group + 1}_block{block + 1}")
    x = layers.BatchNormalization(name="final_bn")(x)
    x = layers.ReLU(name="final_relu")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    logits = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name or f"wrn{depth}_{widen_factor}")


def _conv(filters: int, kernel: int, stride: int, name: str) -> layers.Conv2D:
    return layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                         kernel_initializer="he_normal", name=name)


def _wide_block(x, filters: int, stride: int, dropout: float, prefix: str):
    activated = layers.BatchNormalization(name=f"{prefix}_bn1")(x)
    activated = layers.ReLU(name=f"{prefix}_relu1")(activated)
    residual = _conv(filters, 3, stride, f"{prefix}_conv1")(activated)
    residual = layers.BatchNormalization(name=f"{prefix}_bn2")(residual)
    residual = layers.ReLU(name=f"{prefix}_relu2")(residual)
    if dropout > 0:
        residual = layers.Dropout(dropout, name=f"{prefix}_dropout")(residual)
    residual = _conv(filters, 3, 1, f"{prefix}_conv2")(residual)

    # When the shape changes the projection reads the pre-activated input, as in the authors' code.
    if stride != 1 or x.shape[-1] != filters:
        x = _conv(filters, 1, stride, f"{prefix}_shortcut")(activated)
    return layers.Add(name=f"{prefix}_add")([x, residual])
