"""Target-model zoo. Every model maps images in [0,1] NHWC to logits and round-trips through `.keras`.

Built only from `keras.layers`, so saved models load under any Keras backend without importing arnkit.
Each model module has `PRESETS`: named keyword configs ("paper" = the ARN paper's size, "cpu" = a size a
laptop trains, "tiny" = for tests); explicit keyword arguments override a preset.

Example:
    >>> from arnkit.models import build
    >>> model = build("resnet", (32, 32, 3), 10, preset="paper")   # ResNet-110
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from arnkit.errors import ArnkitError

# Modules stay reachable as arnkit.models.<module>; the builders are reached through MODELS / build().
from arnkit.models import lenet, lisa_cnn, resnet, vgg, wide_resnet
from arnkit.models.wrappers import rescaled

# Canonical names first; aliases point at the same builder.
MODELS: dict[str, Callable[..., keras.Model]] = {
    "lenet": lenet.lenet,
    "resnet": resnet.resnet,
    "wide_resnet": wide_resnet.wide_resnet,
    "vgg19": vgg.vgg19,
    "lisa_cnn": lisa_cnn.lisa_cnn,
    "wrn": wide_resnet.wide_resnet,
    "vgg": vgg.vgg19,
}

PRESETS: dict[str, dict[str, dict]] = {
    "lenet": lenet.PRESETS,
    "resnet": resnet.PRESETS,
    "wide_resnet": wide_resnet.PRESETS,
    "vgg19": vgg.PRESETS,
    "lisa_cnn": lisa_cnn.PRESETS,
}


def canonical_name(name: str) -> str:
    """The zoo's own name for `name` (resolves aliases such as 'wrn'); ArnkitError if unknown."""
    key = name.lower()
    if key not in MODELS:
        raise ArnkitError(f"unknown model '{name}'; choose one of: {', '.join(MODELS)}")
    builder = MODELS[key]
    return next(known for known, candidate in MODELS.items() if candidate is builder)


def build(name: str, input_shape: tuple[int, int, int], num_classes: int, *, preset: str | None = None,
          **kwargs) -> keras.Model:
    """Build zoo model `name` for the given input shape and class count.

    `preset` picks a named config from the model's PRESETS; keyword arguments override it.
    """
    canonical = canonical_name(name)
    options: dict = {}
    if preset is not None:
        presets = PRESETS.get(canonical, {})
        if preset not in presets:
            raise ArnkitError(f"model '{canonical}' has no preset '{preset}'; choose one of: {', '.join(presets)}")
        options.update(presets[preset])
    options.update(kwargs)
    try:
        return MODELS[canonical](input_shape=tuple(input_shape), num_classes=num_classes, **options)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        raise ArnkitError(f"model '{canonical}' does not take that option ({exc}); "
                          f"see help(arnkit.models.{MODELS[canonical].__name__})") from None


__all__ = ["MODELS", "PRESETS", "build", "canonical_name", "rescaled"]
