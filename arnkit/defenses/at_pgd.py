"""AT_PGD, the paper's adversarial-training baseline (Madry et al., ICLR 2018): the robust classifier is the
defense. arnkit fine-tunes the workspace target on untargeted L-inf PGD examples crafted against the model's
current weights at every batch (min-max training), which is the same game started from a clean solution, and
cheaper on CPUs than training from scratch.

    record = registry.get("at_pgd").train("mnist", workspace=ws)     # or `arnkit train --defense at_pgd`
    defense = registry.load_record(record)                          # kind "classifier": protect() is itself

The loop (resumable, seeded per batch) is `classifier_training.fine_tune_target`, shared with DOA.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from arnkit.errors import ArnkitError
from arnkit.progress import Progress
from arnkit.runs.context import RunContext

SEEN = ("pgd_n",)  # the attack it trains on, for the seen/unseen split of the tables


def train_at_pgd(dataset: str = "mnist", *, epochs: int | None = None, eps: float | None = None,
                 attack_steps: int | None = None, step_size: float | None = None, train_limit: int = 0,
                 eval_limit: int = 1000, resume: bool = True, seed: int = 0, workspace: str | Path | None = None,
                 progress: Progress | None = None, context: RunContext | None = None) -> dict[str, Any]:
    """Fine-tune the workspace target with PGD adversarial training; export it; return the run record.

    Defaults come from `arnkit.presets` (`at_pgd`); `attack_steps` are PGD steps per batch; `train_limit` uses the
    first N training images (0 = all)."""
    import tensorflow as tf

    from arnkit.attacks.pgd import sign_gradient_descent
    from arnkit.defenses.classifier_training import fine_tune_target

    ctx = context or RunContext.build(dataset, workspace=workspace, seed=seed, progress=progress)
    meta, preset = ctx.info, ctx.preset.at_pgd
    n_epochs = preset.recipe.epochs if epochs is None else int(epochs)
    eps = preset.eps if eps is None else float(eps)
    n_steps = preset.attack_steps if attack_steps is None else int(attack_steps)
    step_size = preset.step_size if step_size is None else float(step_size)
    if n_epochs < 1 or n_steps < 1:
        raise ArnkitError(f"AT_PGD needs epochs >= 1 and steps >= 1, got {n_epochs} and {n_steps}")
    if not 0.0 < eps <= 1.0 or not step_size > 0.0:
        raise ArnkitError(f"AT_PGD eps must be in (0, 1] and the step size > 0, got {eps} and {step_size}")

    def craft(model: Any, xb: np.ndarray, yb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x_start = np.clip(xb + rng.uniform(-eps, eps, xb.shape).astype(np.float32), 0.0, 1.0)
        return sign_gradient_descent(model, tf.constant(xb), tf.constant(x_start), tf.constant(yb), eps=eps,
                                     step_size=step_size, steps=n_steps, ascend=True)

    # "steps" (not attack_steps) keys the run folder, as in the first release, so cached runs are reused.
    options = {"epochs": n_epochs, "eps": eps, "steps": n_steps, "step_size": step_size,
               "train_limit": int(train_limit), "recipe": preset.recipe.to_dict()}
    return fine_tune_target("at_pgd", meta.name, craft, recipe=preset.recipe, epochs=n_epochs, options=options,
                            seen=list(SEEN), title=f"AT_PGD on {meta.name} (PGD-{n_steps}, eps {eps:.4g})",
                            train_limit=train_limit, eval_limit=eval_limit, resume=resume, seed=seed,
                            context=ctx)
