"""Stable model fingerprints for provenance: a hash of the architecture config and the weight values."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np


def model_fingerprint(model: Any) -> str:
    """sha256 (first 16 hex) over the weights' names, shapes, dtypes and bytes. Unchanged by re-saving."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(np.asarray(weight.numpy() if hasattr(weight, "numpy") else weight))
        digest.update(json.dumps([weight.path if hasattr(weight, "path") else weight.name,
                                  list(value.shape), str(value.dtype)]).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()[:16]
