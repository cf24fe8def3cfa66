"""A bfloat16 twin of a Keras model, for attacks that only need the gradient's sign. TensorFlow-only module.

PGD and FGSM step along sign(gradient): rounding the forward and backward passes to bfloat16 (8-bit mantissa)
flips only the signs of near-zero gradient components, and the projection, the iterate and the final scoring
stay in float32 on the real model. On CPUs with native bfloat16 (AVX512_BF16 / AMX) the LeNet step runs ~1.7x
faster. It is an opt-in (`PGD(precision="bfloat16")`), never the default: docs/benchmarks.md records the
success rate and margins it reaches next to float32.

The twin is a clone with the `mixed_bfloat16` dtype policy (float32 weights, bfloat16 compute), made once per
model; its weights are copied from the model for every batch, so it follows a model that is still training.
"""

from __future__ import annotations

import weakref
from typing import Any

from arnkit.errors import ArnkitError

PRECISIONS = ("float32", "bfloat16")
_TWINS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ArnkitError(f"unknown precision '{precision}'; choose one of: {', '.join(PRECISIONS)}")
    return precision


def gradient_model(model: Any, precision: str) -> Any:
    """The model an attack of this `precision` takes its gradients from: `model` itself, or its bfloat16 twin."""
    return bfloat16_twin(model) if precision == "bfloat16" else model


def bfloat16_twin(model: Any) -> Any:
    """`model` cloned under the mixed_bfloat16 policy, with `model`'s current weights. Needs a Keras
    functional or Sequential model (a subclassed model or a plain callable cannot be cloned)."""
    import keras

    if not isinstance(model, keras.Model):
        raise ArnkitError(
            f"precision='bfloat16' needs a Keras model to clone, got {type(model).__name__}; "
            "use precision='float32' for composed or custom models"
        )
    twin = _TWINS.get(model)
    if twin is None:
        def to_bfloat16(layer):
            config = layer.get_config()
            config["dtype"] = "mixed_bfloat16"
            return layer.__class__.from_config(config)

        try:
            twin = keras.models.clone_model(model, clone_function=to_bfloat16)
        except Exception as error:  # noqa: BLE001 - Keras raises several types for uncloneable models
            raise ArnkitError(
                f"cannot clone {model.name} for precision='bfloat16' ({type(error).__name__}: {error}); "
                "use precision='float32'"
            ) from None
        _TWINS[model] = twin
    twin.set_weights(model.get_weights())
    return twin
