"""VGG-19 from Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition"
(ICLR 2015), configuration E, in its usual CIFAR form with batch normalization.

Sixteen 3x3 conv-BN-ReLU layers in five blocks (64x2, 128x2, 256x4, 512x4, 512x4), each block ending in
2x2 max-pooling; at 32x32 that leaves a 1x1x512 map, which global average pooling flattens; then one dense
layer of logits (the CIFAR variant drops ImageNet's two 4096-unit layers). Pools use 'same' padding so a
28x28 MNIST input also works. `width_scale` multiplies every conv width (1.0 = the paper's VGG-19).

Example:
    >>> from arnkit.models import build
    >>> model = build("vgg19", (32, 32, 3), 10)                     # 20.0M parameters
    >>> small = build("vgg", (32, 32, 3), 10, width_scale=0.25)     # quarter width for a CPU
"""

from __future__ import annotations

import keras
from keras import layers

from arnkit.errors import ArnkitError

PRESETS: dict[str, dict] = {
    "paper": {"width_scale": 1.0},
    "cpu": {"width_scale": 0.25},
    "tiny": {"width_scale": 0.0625},
}

# Conv widths per block for configuration E (VGG-19).
_VGG19_BLOCKS: tuple[tuple[int, ...], ...] = ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4)


def vgg19(input_shape: tuple[int, int, int] = (32, 32, 3), num_classes: int = 10, *, width_scale: float = 1.0,
          name: str = "vgg19") -> keras.Model:
    """Build VGG-19 with batch normalization, mapping [0,1] images to logits."""
    if width_scale <= 0:
        raise ArnkitError(f"width_scale must be positive, got {width_scale}")
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for block, widths in enumerate(_VGG19_BLOCKS, start=1):
        for index, width in enumerate(widths, start=1):
            prefix = f"block{block}_conv{index}"
            # No bias: BatchNorm right after makes it redundant.
            x = layers.Conv2D(max(1, round(width * width_scale)), 3, padding="same", use_bias=False,
                              kernel_initializer="he_normal", name=prefix)(x)
            x = layers.BatchNormalization(name=f"{prefix}_bn")(x)
            x = layers.ReLU(name=f"{prefix}_relu")(x)
        x = layers.MaxPooling2D(2, padding="same", name=f"block{block}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    logits = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name)
