"""Which Keras backend runs, and whether TensorFlow is there at all.

arnkit trains ARN, crafts the seen-attack pools and evaluates gray / white box under the TensorFlow, JAX
and (for attacks and inference) torch backends; the rest (the baselines' training, TF-only attacks, LID,
LISA's TFDS builder) needs TensorFlow. `choose_default()` runs before Keras is imported (arnkit/__init__):
with no KERAS_BACKEND set and no TensorFlow installed it picks JAX, then torch, so `pip install 'arnkit[jax]'`
works without setting anything.

    from arnkit import backend
    backend.name()                            # "tensorflow", "jax" or "torch"
    backend.require_tensorflow("arnkit detect")   # one line naming the extra when TF is missing
"""

from __future__ import annotations

import importlib.util
import os
import sys

from arnkit.errors import ArnkitError

BACKEND_VAR = "KERAS_BACKEND"
TF_EXTRA = "pip install 'arnkit[tf]'"


def _installed(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def has_tensorflow() -> bool:
    """TensorFlow is importable (checked without importing it)."""
    return _installed("tensorflow")


def choose_default() -> str | None:
    """Set KERAS_BACKEND=jax (or torch) when nobody chose and TensorFlow is missing; return what was set."""
    if BACKEND_VAR in os.environ or "keras" in sys.modules or has_tensorflow():
        return None
    for candidate in ("jax", "torch"):
        if _installed(candidate):
            os.environ[BACKEND_VAR] = candidate
            return candidate
    return None


def name() -> str:
    """The Keras backend of this process ("tensorflow", "jax", "torch", ...)."""
    import keras

    return keras.backend.backend()


def is_tensorflow() -> bool:
    return name() == "tensorflow"


def require_tensorflow(what: str) -> None:
    """Refuse `what` in one line when it needs TensorFlow and this process cannot run it."""
    if not has_tensorflow():
        raise ArnkitError(f"{what} needs TensorFlow, which is not installed here: {TF_EXTRA} "
                          f"(the JAX backend runs target train, attack with the pool attacks, train and evaluate "
                          f"gray/white)")
    if not is_tensorflow():
        raise ArnkitError(f"{what} runs on the TensorFlow backend only, this process runs Keras on {name()}: "
                          f"set KERAS_BACKEND=tensorflow")


def require_backend(what: str, supported: tuple[str, ...]) -> None:
    """Refuse `what` in one line unless this process's backend is one of `supported`."""
    current = name()
    if current not in supported:
        if "tensorflow" in supported and not has_tensorflow():
            require_tensorflow(what)
        raise ArnkitError(f"{what} runs on the {' / '.join(supported)} backend, this process runs Keras on "
                          f"{current}: set KERAS_BACKEND={supported[0]}")
