"""`trainer_for(arn)`: the stepped trainer of the running Keras backend. Apart from stepping.py (the base both
trainers subclass) so that the base never imports its subclasses' modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from arnkit.defenses.arn.stepping import SteppedTrainer


def trainer_for(arn, *, seed: int | None = None) -> SteppedTrainer:
    """The stateless-step trainer of the running Keras backend: JaxTrainer (jax) or TorchTrainer (torch).
    TensorFlow trains with `arn.fit` (the custom train_step under tf.distribute)."""
    from arnkit import backend
    from arnkit.errors import ArnkitError

    if backend.name() == "jax":
        from arnkit.defenses.arn.jax_training import JaxTrainer

        return JaxTrainer(arn, seed=seed)
    if backend.name() == "torch":
        from arnkit.defenses.arn.torch_training import TorchTrainer

        return TorchTrainer(arn, seed=seed)
    raise ArnkitError(f"no stepped trainer for KERAS_BACKEND={backend.name()}: on TensorFlow train with arn.fit(...)")
