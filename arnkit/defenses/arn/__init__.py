"""ARN: the adversarial noise removing network of "Towards Defending against Adversarial Examples via
Attack-Invariant Features" (Zhou, Liu, Han, Liu, Gong, Wang, Liu; ICML 2021).

An encoder E learns attack-invariant features (against an attack discriminator D_A, with a normalisation
term), a decoder G restores natural images from them (pixel MSE, against an image discriminator D_I).
The deployed defense is the pre-processor x -> G(E(x)).

- config.py   ARNConfig: loss weights (Section 4.1), objective "paper" | "reference", ablation switches
- networks.py E, G, D_A, D_I and width PRESETS (backend-agnostic)
- losses.py   Eq. 1-6 and the official code's variants (pure functions)
- model.py    ARN(keras.Model) with the Algorithm 1 train_step, checkpoints (TensorFlow only)
- export.py   export_preprocessor / save_defense / load_defense (backend-agnostic)

`ARN`, `training_dataset` and `read_checkpoint` import TensorFlow, so they load on first use.
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

_TF_ONLY = ("ARN", "training_dataset", "read_checkpoint", "unpack_batch")


def __getattr__(name):
    if name in _TF_ONLY:
        from arnkit.defenses.arn import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ARN",
    "PRESETS",
    "ARNConfig",
    "ARNWidths",
    "AttackDiscriminator",
    "Decoder",
    "Encoder",
    "ImageDiscriminator",
    "build_networks",
    "export_preprocessor",
    "load_defense",
    "losses",
    "read_checkpoint",
    "save_defense",
    "training_dataset",
    "unpack_batch",
]
