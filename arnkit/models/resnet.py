"""CIFAR ResNet from He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition" (CVPR 2016), Sec. 4.2.

The ARN paper's CIFAR-10 target is ResNet-110. Layout: a 3x3 conv (`width` filters), then three stages of
n = (depth - 2) / 6 basic blocks (two 3x3 conv-BN, post-activation ReLU) with `width`, 2*width, 4*width
filters, the last two stages starting with stride 2; global average pooling; a dense layer of logits.

Shortcuts across a stride/width change follow the paper's CIFAR choice (option A, parameter-free):
subsample by 2 and zero-pad the new channels. `shortcut="projection"` uses a 1x1 conv + BN (option B).

Example:
    >>> from arnkit.models import build
    >>> model = build("resnet", (32, 32, 3), 10, depth=110)   # the paper's ResNet-110, 1.7M parameters
"""

from __future__ import annotations

import keras
from keras import layers

from arnkit.errors import ArnkitError

# Named keyword configs (never positional lists). "tiny" exists for the test suite.
PRESETS: dict[str, dict] = {
    "paper": {"depth": 110},
    "cpu": {"depth": 20},
    "tiny": {"depth": 8, "width": 4},
}

_SHORTCUTS = ("pad", "projection")


def resnet(input_shape: tuple[int, int, int] = (32, 32, 3), num_classes: int = 10, *, depth: int = 20,
           width: int = 16, shortcut: str = "pad", name: str | None = None) -> keras.Model:
    """Build ResNet-`depth` (depth = 6n + 2: 20, 32, 44, 56, 110, ...) mapping [0,1] images to logits."""
    if depth < 8 or (depth - 2) % 6:
        raise ArnkitError(f"ResNet depth must be 6n+2 with n >= 1 (8, 20, 32, 44, 56, 110, ...), got {depth}")
    if shortcut not in _SHORTCUTS:
        raise ArnkitError(f"shortcut must be one of {_SHORTCUTS}, got {shortcut!r}")
    blocks_per_stage = (depth - 2) // 6

    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv(width, 3, 1, "stem_conv")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for stage in range(3):
        filters = width * 2**stage
        for block in range(blocks_per_stage):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, filters, stride, shortcut, f"stage{stage + 1}_block{block + 1}")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    logits = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name or f"resnet{depth}")


def _conv(filters: int, kernel: int, stride: int, name: str) -> layers.Conv2D:
    # No bias: BatchNorm follows every conv. He-normal init as in the paper.
    return layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                         kernel_initializer="he_normal", name=name)


def _basic_block(x, filters: int, stride: int, shortcut: str, prefix: str):
    residual = _conv(filters, 3, stride, f"{prefix}_conv1")(x)
    residual = layers.BatchNormalization(name=f"{prefix}_bn1")(residual)
    residual = layers.ReLU(name=f"{prefix}_relu1")(residual)
    residual = _conv(filters, 3, 1, f"{prefix}_conv2")(residual)
    residual = layers.BatchNormalization(name=f"{prefix}_bn2")(residual)

    in_filters = x.shape[-1]
    if stride != 1 or in_filters != filters:
        if shortcut == "projection":
            x = _conv(filters, 1, stride, f"{prefix}_proj")(x)
            x = layers.BatchNormalization(name=f"{prefix}_proj_bn")(x)
        else:
            x = _pad_shortcut(x, filters, stride, prefix)
    x = layers.Add(name=f"{prefix}_add")([x, residual])
    return layers.ReLU(name=f"{prefix}_out")(x)


def _pad_shortcut(x, filters: int, stride: int, prefix: str):
    """Option A with built-in layers only, so `.keras` files load without importing arnkit.

    A 1x1 pool with stride 2 keeps every other pixel (same output size as a 'same' stride-2 conv);
    channels are zero-padded by moving them to a spatial axis, padding there, and moving them back.
    """
    if stride != 1:
        x = layers.MaxPooling2D(pool_size=1, strides=stride, name=f"{prefix}_subsample")(x)
    extra = filters - x.shape[-1]
    if extra:
        x = layers.Permute((3, 1, 2), name=f"{prefix}_channels_first")(x)
        x = layers.ZeroPadding2D(((extra // 2, extra - extra // 2), (0, 0)), data_format="channels_last",
                                 name=f"{prefix}_pad_channels")(x)
        x = layers.Permute((2, 3, 1), name=f"{prefix}_channels_last")(x)
    return x
