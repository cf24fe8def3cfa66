"""One Python call: defend a Keras classifier of your own on image arrays of your own, with the CLI's caching
and resume (issue 28, "Your model, your data").

    import arnkit
    result = arnkit.defend(model, (x_train, y_train), (x_test, y_test), seen="pgd_n,pgd_t", workspace="ws")
    result.preprocessor      # keras.Model: images in [0, 1] -> restored images (None for a robust classifier)
    result.protected         # keras.Model: images in [0, 1] -> the classifier's outputs, behind the defense
    result.table             # {"clean": {"none": 1.2, "arn": 1.9}, "pgd_n": {...}, ...}: gray-box error %

The arrays become a workspace dataset (named after their content unless `name` is given; its eps by channel
count unless `eps` is given), the model a workspace file (named after its weights), and the defense is
trained by `arnkit train --dataset NAME --target FILE`: a second call with the same inputs reuses all of it,
and an interrupted one resumes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arnkit.errors import ArnkitError
from arnkit.progress import Progress
from arnkit.workspace import Workspace


@dataclass
class Defended:
    """What `defend` returns: the trained defense, the protected classifier and the gray-box table."""

    defense: Any  # arnkit.runs.defense.Defense
    preprocessor: Any | None  # images -> restored images; None when the defense is a robust classifier
    protected: Any  # images -> outputs of the classifier behind the defense, one keras.Model
    table: dict[str, dict[str, float]]  # {row: {"none": error %, <defense>: error %}} on the test images
    record: dict[str, Any]  # the run's record.json
    dataset: str  # the workspace dataset the arrays became
    target_path: str  # the classifier's file in the workspace


def _pair(split: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(split, tuple | list) or len(split) != 2:
        raise ArnkitError(f"{name} must be a pair (images, labels), e.g. (x_{name}, y_{name})")
    return np.asarray(split[0]), np.asarray(split[1])


def _content_name(arrays: dict[str, np.ndarray]) -> str:
    """A dataset name from the arrays' content, so the same arrays map to the same workspace dataset."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        value = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{value.dtype.str}:{value.shape}".encode())
        digest.update(value.tobytes())
    return f"arrays-{digest.hexdigest()[:10]}"


def _dataset(arrays: dict[str, np.ndarray], ws: Workspace, *, name: str | None, eps: float | None,
             force: bool) -> str:
    """The workspace dataset holding `arrays`: imported once, then reused (an explicit name is reused as it is;
    `force` replaces it)."""
    from arnkit.data import user
    from arnkit.data.user_import import import_arrays

    key = (name or _content_name(arrays)).lower()
    existing = user.find(ws.data_dir, key)
    if existing is None or force:
        import_arrays(arrays, ws.data_dir, name=key, eps=eps, force=force)
    elif eps is not None and abs(float(existing.info.eps) - float(eps)) > 1e-12:
        raise ArnkitError(f"dataset '{key}' exists in {ws.root} with eps {existing.info.eps:g}, not {eps:g}; pass "
                          "force=True to replace it, or another name")
    return key


def _target_file(model: Any, ws: Workspace) -> Path:
    """The classifier as a workspace file: a path is used as it is; a model is saved once, named after its
    weights (so the same model maps to the same file, and so to the same cached attacks and defenses)."""
    if isinstance(model, str | Path):
        path = Path(model).expanduser()
        if path.suffix != ".keras" or not path.is_file():
            raise ArnkitError(f"model {model} is not a .keras file; pass a keras.Model or the path of one saved "
                              "with model.save('my.keras')")
        return path
    from arnkit.fingerprint import model_fingerprint
    from arnkit.io import save_model

    if not hasattr(model, "save") or not hasattr(model, "weights"):
        raise ArnkitError(f"model must be a keras.Model or the path of a .keras file, got {type(model).__name__}")
    path = ws.dir("targets") / f"user-{model_fingerprint(model)}.keras"
    if not path.exists():
        save_model(model, path)
    return path


def defend(model: Any, train: tuple[Any, Any], test: tuple[Any, Any], *, seen: str | list[str] | None = None,
           defense: str = "arn", name: str | None = None, eps: float | None = None,
           class_names: list[str] | None = None, input_scale: float | None = None, output: str | None = None,
           workspace: str | Path | None = None, seed: int = 0, progress: Progress | None = None,
           force: bool = False, **options: Any) -> Defended:
    """Train `defense` (any registry key; ARN by default) for `model` on the arrays, score it gray box on the
    test arrays, and return the pre-processor, the protected classifier and the table.

    `model`: a keras.Model (or a .keras path) mapping images in [0, 1] (NHWC) to logits or probabilities;
    `input_scale=255` when it expects 0-255, `output` "logits" | "probabilities" to say what it ends in
    (detected otherwise). `train`, `test`: (images uint8 0-255 or float [0, 1], integer labels). `seen`: the
    attacks it trains on (default: the dataset's preset). `options` are the recipe's (`arnkit train --help`),
    e.g. steps=3000, width="tiny"."""
    from arnkit.defenses import registry
    from arnkit.pipeline.train import train as train_command
    from arnkit.runs import target as target_service
    from arnkit.runs.context import RunContext

    ws = Workspace.resolve(workspace)
    x_train, y_train = _pair(train, "train")
    x_test, y_test = _pair(test, "test")
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    if class_names is not None:
        arrays["class_names"] = np.asarray([str(c) for c in class_names])
    registry.get(defense)  # an unknown defense is one line before anything is written
    path = _target_file(model, ws)
    dataset = _dataset(arrays, ws, name=name, eps=eps, force=force)
    record = train_command(dataset, defense, seed=seed, workspace=ws.root, progress=progress, target=path,
                           input_scale=input_scale, target_output=output, seen=seen, **options)
    ctx = RunContext.build(dataset, workspace=ws, seed=seed, progress=progress)
    classifier = target_service.from_file(ctx, path, input_scale=input_scale, output=output)
    trained = registry.load_record(record, ctx.info)
    return Defended(defense=trained, preprocessor=trained.model if trained.restores else None,
                    protected=trained.protect(classifier.model), table=record["evaluation"], record=record,
                    dataset=dataset, target_path=str(path))


__all__ = ["Defended", "defend"]
