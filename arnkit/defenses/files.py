"""Exported defense files: a standard `.keras` archive plus a small `arnkit.json` member saying what it is.

    save_defense_file(model, "run/arn.keras", key="arn", kind="preprocessor", dataset="mnist")
    model, header = load_defense_file("run/arn.keras")   # header: {"kind": ..., "key": ..., "dataset": ...}

Keras ignores the extra member, so the file still loads with plain `keras.saving.load_model`. A `.keras` file
from elsewhere has no header: its kind is read off its shapes (images -> images: a pre-processor; images ->
a vector: a robust classifier).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from arnkit.errors import ArnkitError
from arnkit.io import atomic_path, load_model
from arnkit.runs.defense_record import KINDS

HEADER = "arnkit.json"


def save_defense_file(model: Any, path: str | os.PathLike, *, key: str, kind: str, dataset: str,
                      **info: Any) -> Path:
    """Save `model` as `.keras` with its defense header, atomically."""
    import arnkit

    if kind not in KINDS:
        raise ArnkitError(f"defense kind '{kind}' is not one of {', '.join(KINDS)}")
    path = Path(path)
    if path.suffix != ".keras":
        raise ArnkitError(f"defenses are saved as .keras files, got {path.name}; use a path ending in .keras")
    header = {"key": key, "kind": kind, "dataset": dataset, "arnkit_version": arnkit.__version__, **info}
    with atomic_path(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(HEADER, json.dumps(header, sort_keys=True))
    return path


def read_header(path: str | os.PathLike) -> dict[str, Any] | None:
    """The file's defense header, or None (no header, or not a zip: `load_model` then names the problem)."""
    try:
        with zipfile.ZipFile(path) as archive:
            if HEADER not in archive.namelist():
                return None
            header = json.loads(archive.read(HEADER).decode("utf-8"))
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(header, dict) or header.get("kind") not in KINDS:
        raise ArnkitError(f"{Path(path).name} has a damaged defense header ({HEADER}); re-export the defense")
    return header


def infer_kind(model: Any) -> str:
    """'preprocessor' when the model maps images to images of the same shape, 'classifier' when to a vector."""
    try:
        inputs, outputs = tuple(model.input_shape[1:]), tuple(model.output_shape[1:])
    except (AttributeError, ValueError):
        raise ArnkitError("cannot tell what this defense file is (no single input and output); export it with "
                          "arnkit, or as a model taking images") from None
    if outputs == inputs:
        return "preprocessor"
    if len(outputs) == 1:
        return "classifier"
    raise ArnkitError(f"a defense maps images {inputs} to images of the same shape (a pre-processor) or to "
                      f"logits (a robust classifier); this file maps them to {outputs}")


def load_defense_file(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """(model, header) of an exported defense; safe_mode, and hostile or corrupt files refused in one line."""
    from arnkit.defenses.arn import networks  # noqa: F401  (registers Encoder / Decoder for deserialisation)

    header = read_header(path)
    model = load_model(path)
    if header is None:
        header = {"kind": infer_kind(model), "key": None, "dataset": None, "inferred": True}
    return model, header


# A pre-processor's outputs may overshoot [0, 1] by float rounding only.
RANGE_TOLERANCE = 1e-3
KIND_FLAG = "--defense-kind"


def check_headerless(model: Any, path: str | os.PathLike, kind: str | None, shape: tuple[int, ...] | None) -> str:
    """The kind of a `.keras` file with no arnkit header, or one line saying why it is no defense.

    Without a header only the shapes speak, and an untrained plain classifier has the shapes of a robust one:
    so a header-less file is taken as a classifier only when the user says so (`kind`), and as a pre-processor
    only when it maps images to images of the same shape whose values stay in [0, 1] on a probe batch."""
    name = Path(path).name
    inferred = infer_kind(model)
    if kind is not None and kind not in KINDS:
        raise ArnkitError(f"{KIND_FLAG} takes {' or '.join(KINDS)}, got '{kind}'")
    if inferred == "classifier" and kind != "classifier":
        raise ArnkitError(f"{name} has no arnkit header and maps images to a vector {tuple(model.output_shape[1:])}: "
                          f"a classifier, not a pre-processor; if it is a robust classifier pass {KIND_FLAG} "
                          "classifier, else pass an arnkit-exported defense")
    if inferred == "preprocessor" and kind == "classifier":
        raise ArnkitError(f"{name} maps images to images of the same shape, so it is no classifier; drop "
                          f"{KIND_FLAG} classifier (it is taken as a pre-processor)")
    if inferred == "preprocessor" and shape is not None:
        low, high = probe_range(model, shape)
        if low < -RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
            raise ArnkitError(f"{name} is not a pre-processor of images in [0, 1]: on a probe batch its outputs "
                              f"span [{low:.3g}, {high:.3g}]; make it end in [0, 1] (a sigmoid, or a clip) and "
                              "save it again")
    return inferred


def probe_range(model: Any, shape: tuple[int, ...]) -> tuple[float, float]:
    """(min, max) of `model`'s outputs on a fixed probe batch in [0, 1]: black, white and uniform noise."""
    import numpy as np

    noise = np.random.default_rng(0).uniform(0.0, 1.0, size=(14, *shape)).astype("float32")
    batch = np.concatenate([np.zeros((1, *shape), "float32"), np.ones((1, *shape), "float32"), noise])
    out = np.asarray(model.predict(batch, verbose=0), dtype="float64")
    return float(out.min()), float(out.max())
