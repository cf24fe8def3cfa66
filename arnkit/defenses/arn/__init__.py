"""ARN: the adversarial noise removing network of "Towards Defending against Adversarial Examples via
Attack-Invariant Features" (Zhou, Liu, Han, Liu, Gong, Wang, Liu; ICML 2021).

An encoder E learns attack-invariant features (against an attack discriminator D_A, with a normalisation
term), a decoder G restores natural images from them (pixel MSE, against an image discriminator D_I).
The deployed defense is the pre-processor x -> G(E(x)).

- config.py   ARNConfig: loss weights (Section 4.1), objective "paper" | "reference", ablation switches
- networks.py E, G, D_A, D_I and width PRESETS (backend-agnostic)
- losses.py   Eq. 1-6 and the official code's variants (pure functions)
- forward.py  Algorithm 1's forward pass and the players' objectives, shared by every backend
- model.py    ARN(keras.Model): checkpoints, the TensorFlow train_step (GradientTape, tf.distribute)
- jax_training.py  JaxTrainer: the same step under KERAS_BACKEND=jax (one jitted step, DataParallel)
- torch_training.py  TorchTrainer: the same step under KERAS_BACKEND=torch (torch autograd)
- stepping.py the loop JaxTrainer and TorchTrainer share
- trainers.py trainer_for(arn): the running backend's stepped trainer
- export.py   export_preprocessor / save_defense / load_defense (backend-agnostic)

`ARN`, `JaxTrainer`, `TorchTrainer` and friends load on first use.
"""

from arnkit.defenses.arn import losses
from arnkit.defenses.arn.config import ARNConfig
from arnkit.defenses.arn.export import export_preprocessor, load_defense, save_defense
from arnkit.defenses.arn.networks import (
    PRESETS,
    ARNWidths,
    AttackDiscriminator,
    Decoder,
    Encoder,
    ImageDiscriminator,
    build_networks,
)

_LAZY = {"ARN": "model", "training_dataset": "model", "read_checkpoint": "model", "unpack_batch": "model",
         "JaxTrainer": "jax_training", "data_parallel": "jax_training", "TorchTrainer": "torch_training",
         "trainer_for": "trainers"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"arnkit.defenses.arn.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ARN",
    "PRESETS",
    "ARNConfig",
    "ARNWidths",
    "JaxTrainer",
    "TorchTrainer",
    "AttackDiscriminator",
    "Decoder",
    "Encoder",
    "ImageDiscriminator",
    "build_networks",
    "data_parallel",
    "export_preprocessor",
    "load_defense",
    "losses",
    "read_checkpoint",
    "save_defense",
    "trainer_for",
    "training_dataset",
    "unpack_batch",
]
