"""Target-model zoo. Every model maps images in [0,1] NHWC to logits and round-trips through `.keras`."""

from __future__ import annotations

from collections.abc import Callable

import keras

from arnkit.errors import ArnkitError
from arnkit.models.lenet import lenet

MODELS: dict[str, Callable[..., keras.Model]] = {
    "lenet": lenet,
}


def build(name: str, input_shape: tuple[int, int, int], num_classes: int, **kwargs) -> keras.Model:
    """Build zoo model `name` for the given input shape and class count."""
    try:
        builder = MODELS[name.lower()]
    except KeyError:
        raise ArnkitError(f"unknown model '{name}'; choose one of: {', '.join(MODELS)}") from None
    return builder(input_shape=tuple(input_shape), num_classes=num_classes, **kwargs)


__all__ = ["MODELS", "build"]
