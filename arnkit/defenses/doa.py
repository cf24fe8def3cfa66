"""DOA, Defending against Occlusion Attacks (Wu, Tong & Vorobeychik, ICLR 2020, arXiv:1909.09552): the target
fine-tuned on ROA examples of its current weights, so the robust classifier is the defense. Each batch's
examples come from `arnkit.attacks.roa`: a rectangle placed where the input gradient is largest (the top
`candidates` windows, then the exhaustive test among them), then signed-gradient steps inside it.

    record = registry.get("doa").train("lisa", workspace=ws, roa="9x5")   # or `arnkit train --defense doa --roa 9x5`

The paper's LISA and MNIST rows use 7x7 (the default) and 9x5; `roa` is "HxW", rows by columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from arnkit.errors import ArnkitError
from arnkit.progress import Progress
from arnkit.runs.context import RunContext

SEEN = ("roa",)


def parse_rectangle(roa: str | tuple[int, int] | None, shape: tuple[int, ...], default: tuple[int, int]
                    ) -> tuple[int, int]:
    """(height, width) from "HxW", checked against the image shape in one line."""
    if roa is None:
        size = tuple(default)
    elif isinstance(roa, str):
        parts = roa.lower().replace(" ", "").split("x")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise ArnkitError(f"--roa takes HxW in pixels, e.g. 7x7 or 9x5; got '{roa}'")
        size = (int(parts[0]), int(parts[1]))
    else:
        size = tuple(int(v) for v in roa)
    if len(size) != 2 or min(size) < 1:
        raise ArnkitError(f"--roa takes HxW with both sides >= 1, got {roa}")
    if size[0] > shape[0] or size[1] > shape[1]:
        raise ArnkitError(f"--roa {size[0]}x{size[1]} does not fit {shape[0]}x{shape[1]} images; pass a smaller "
                          "rectangle, e.g. --roa 7x7")
    return size  # type: ignore[return-value]


def train_doa(dataset: str = "mnist", *, roa: str | tuple[int, int] | None = None, epochs: int | None = None,
              attack_steps: int | None = None, train_limit: int = 0, eval_limit: int = 1000, resume: bool = True,
              seed: int = 0, workspace: str | Path | None = None, progress: Progress | None = None,
              context: RunContext | None = None, select_val: int | None = None,
              dropout: float | None = None) -> dict[str, Any]:
    """Fine-tune the workspace target on ROA examples (DOA); export it; return the run record. Defaults come
    from `arnkit.presets` (`doa`); `attack_steps` are the signed steps inside the rectangle; `select_val` > 0
    keeps the epoch with the lowest ROA error on that many validation images (the record's `epoch_scores`)."""
    import tensorflow as tf

    from arnkit.attacks.roa import ROA
    from arnkit.defenses.classifier_training import fine_tune_target

    ctx = context or RunContext.build(dataset, workspace=workspace, seed=seed, progress=progress)
    meta, preset = ctx.info, ctx.preset.doa
    height, width = parse_rectangle(roa, tuple(meta.shape), preset.roa)
    n_epochs = preset.recipe.epochs if epochs is None else int(epochs)
    n_steps = preset.attack_steps if attack_steps is None else int(attack_steps)
    if n_steps < 1:
        raise ArnkitError(f"DOA needs steps >= 1 inside the rectangle, got {n_steps}")
    attack = ROA(width=width, height=height, stride=preset.stride, search="gradient", candidates=preset.candidates,
                 steps=n_steps, step_size=preset.step_size, targeted=False)

    def craft(model: Any, xb: np.ndarray, yb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # ROA draws nothing at random: seed and batch are there for the contract only.
        return attack.run(model, tf.constant(xb), tf.constant(yb.astype(np.int64)), None, seed=0, batch=0)

    options = {"roa": f"{height}x{width}", "epochs": n_epochs, "attack_steps": n_steps, "stride": preset.stride,
               "candidates": preset.candidates, "step_size": preset.step_size, "train_limit": int(train_limit),
               "recipe": preset.recipe.to_dict()}
    n_select = preset.select_val if select_val is None else int(select_val)
    if n_select < 0:
        raise ArnkitError(f"--select-val must be >= 0 (0 = keep the last epoch), got {n_select}")
    rate = preset.dropout if dropout is None else float(dropout)
    if rate is not None:
        options["dropout"] = rate  # only then, as select_val
    select = None
    if n_select:
        options["select_val"] = n_select  # only then: the runs trained before selection keep their folders
        select = _val_roa_error(ctx, attack, n_select)
    return fine_tune_target("doa", meta.name, craft, recipe=preset.recipe, epochs=n_epochs, options=options,
                            seen=list(SEEN), title=f"DOA on {meta.name} (ROA {height}x{width})",
                            label=f"doa_{height}x{width}",
                            train_limit=train_limit, eval_limit=eval_limit, resume=resume, seed=seed,
                            context=ctx, select=select, dropout=rate)


def _val_roa_error(ctx: RunContext, attack: Any, limit: int) -> Any:
    """The model -> its ROA error (%) on the first `limit` validation images (never test: it picks the epoch)."""
    import tensorflow as tf

    from arnkit import data

    x, y, _ = data.load_arrays(ctx.dataset, "val", data_dir=ctx.workspace.data_dir)
    x, y = x[:limit], y[:limit]
    if len(x) < limit:
        raise ArnkitError(f"--select-val {limit} is more than the {len(x)} validation images of {ctx.dataset}; "
                          f"pass at most {len(x)}")
    labels = tf.constant(y.astype(np.int64))

    def error(model: Any) -> float:
        x_adv = attack.run(model, tf.constant(x), labels, None, seed=0, batch=0)
        pred = np.argmax(model.predict(x_adv, batch_size=256, verbose=0), axis=-1)
        return 100.0 * float(np.mean(pred != y))

    return error
