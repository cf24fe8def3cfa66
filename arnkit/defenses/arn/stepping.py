"""What the JAX and torch trainers (JaxTrainer, TorchTrainer) share: the checks and handles of the constructor
and `fit` over `batches(step)`. `trainer_for(arn)`, which picks the running backend's trainer, lives in
trainers.py: this base must not import its subclasses' modules (they import it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

PLAYERS = ("encoder", "decoder", "attack_discriminator", "image_discriminator")
OPTIMIZERS = ("e_optimizer", "g_optimizer", "da_optimizer", "di_optimizer")
AVERAGED_PLAYERS = ("encoder", "decoder")  # the deployed restorer: what ARNConfig.ema averages


class SteppedTrainer:
    """A trainer with `train_step(x_adv, x_nat)` and a `step` counter for a compiled `ARN`; subclasses name
    their backend and supply the step."""

    backend_name = ""

    def __init__(self, arn: Any, *, seed: int | None = None) -> None:
        from arnkit import backend
        from arnkit.defenses.arn.forward import Shapes
        from arnkit.errors import ArnkitError

        backend.require_backend(type(self).__name__, (self.backend_name,))
        arn._require_compiled(f"train it under {self.backend_name}")
        cfg = arn.arn_config
        if cfg.adaptive:
            raise ArnkitError("adaptive ARN training (--adaptive) runs on the TensorFlow backend only; drop --adaptive "
                              "or set KERAS_BACKEND=tensorflow")
        self.arn = arn
        self.networks = {player: getattr(arn, player) for player in PLAYERS}
        self.optimizers = {player: getattr(arn, attr) for player, attr in zip(PLAYERS, OPTIMIZERS, strict=True)}
        self.shapes = Shapes(arn.image_shape, arn.num_domains)
        self.guide = arn._guide.value if cfg.guide_weight > 0 else None
        self.seed = int(cfg.seed if seed is None else seed)
        self.step = arn.step  # steps taken: the encoder optimizer's iteration count

    def train_step(self, x_adv, x_nat, *, noise: dict[str, np.ndarray] | None = None) -> dict[str, float]:
        raise NotImplementedError

    def fit(self, batches: Callable[[int], tuple[np.ndarray, np.ndarray]], steps: int, *,
            on_step: Callable[[int, dict[str, float]], None] | None = None) -> list[dict[str, float]]:
        """Run `steps` steps from the current one; batches(step) gives (x_adv, x_nat). Returns each step's
        losses. Call `sync()` before checkpointing or exporting."""
        history = []
        for _ in range(int(steps)):
            step = self.step
            x_adv, x_nat = batches(step)
            logs = self.train_step(x_adv, x_nat)
            history.append(logs)
            if on_step is not None:
                on_step(step + 1, logs)
        return history
