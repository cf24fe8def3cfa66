"""ARN's training step under KERAS_BACKEND=torch: Algorithm 1 with torch autograd.

The forward pass and the losses are the shared ones (`forward.py`); this module supplies only the torch
piece. The Keras networks run as they are (their variables are torch parameters), one forward pass builds
one graph, and `torch.autograd.grad` pulls each player's objective back to that player's weights only (E:
L_mse + lambda1 L_att + lambda2 L_nor; G: L_mse + theta L_adv; D_A and D_I: their own losses, one pull-back
for both). Every gradient is taken before any optimizer moves a weight, so the four players update
simultaneously, as on TensorFlow and JAX.

The noise is a pure function of (seed, step), so a resumed run draws what an uninterrupted one would. The
state lives in the Keras variables: `sync()` and `reload()` only keep the step counter.

    arn = ARN(image_shape=(28, 28, 1), num_attacks=2, config=cfg); arn.compile()
    trainer = TorchTrainer(arn)
    logs = trainer.fit(batches, steps=30)    # batches(step) -> (x_adv (B, K, H, W, C), x_nat (B, H, W, C))
"""

from __future__ import annotations

import numpy as np

from arnkit.defenses.arn.forward import forward_losses, player_targets
from arnkit.defenses.arn.stepping import PLAYERS, SteppedTrainer

# Which of the shared objectives each player descends (the discriminators share one pull-back).
OBJECTIVES = {"encoder": ("restore", "e_rest"), "decoder": ("restore", "g_adv"),
              "discriminators": ("d",)}
OWNERS = {"encoder": ("encoder",), "decoder": ("decoder",),
          "discriminators": ("attack_discriminator", "image_discriminator")}


class TorchTrainer(SteppedTrainer):
    """Trains a compiled `ARN` under the torch backend, in place in its Keras variables."""

    backend_name = "torch"

    def sync(self) -> None:
        """Nothing to write back: the step trains the Keras variables themselves (kept for JaxTrainer's API)."""

    def reload(self) -> None:
        """Take the step counter from the ARN again (after `arn.restore_checkpoint`)."""
        self.step = self.arn.step

    def train_step(self, x_adv, x_nat, *, noise: dict[str, np.ndarray] | None = None) -> dict[str, float]:
        """One simultaneous update of the four players; returns the batch's loss values.

        noise: optional {"normal": (D*B, *latent), "uniform": (D*B,)} in place of the seeded draws (tests feed
        every backend the same noise)."""
        import keras
        import torch

        x_adv, x_nat = np.asarray(x_adv, np.float32), np.asarray(x_nat, np.float32)
        self.arn._check_batch(x_adv, x_nat)
        x_adv, x_nat = keras.ops.convert_to_tensor(x_adv), keras.ops.convert_to_tensor(x_nat)
        draws = np.random.SeedSequence([self.seed, int(self.step)]).generate_state(2)
        batch = x_nat.shape[0]

        def draw(kind, event_shape):
            if noise is not None:
                return keras.ops.convert_to_tensor(noise[kind])
            shape = (self.shapes.num_domains * batch, *event_shape)
            if kind == "normal":
                return keras.random.normal(shape, seed=int(draws[0]))
            return keras.random.uniform(shape, seed=int(draws[1]))

        def apply(player, x):
            return self.networks[player](x, training=True)

        guide = (lambda x: self.guide(x, training=False)) if self.guide is not None else None
        values = forward_losses(apply, self.arn.arn_config, self.shapes, x_adv, x_nat, noise=draw, guide=guide,
                                input_gradient=_input_gradient)
        targets = player_targets(values, self.arn.arn_config)
        grads = {}
        for group, names in OBJECTIVES.items():  # every gradient first: the players move simultaneously
            variables = [v for player in OWNERS[group] for v in self.networks[player].trainable_variables]
            objective = sum(targets[name] for name in names)
            pulled = torch.autograd.grad(objective, [v.value for v in variables], retain_graph=True,
                                         allow_unused=True)
            for variable, grad in zip(variables, pulled, strict=True):
                grads[id(variable)] = torch.zeros_like(variable.value) if grad is None else grad
        for player in PLAYERS:
            variables = self.networks[player].trainable_variables
            self.optimizers[player].apply([grads[id(v)] for v in variables], variables)
        self.step += 1
        return {name: float(value.detach().cpu()) for name, value in values.items()
                if value is not None and name not in ("restored", "leaked_rows")}


def _input_gradient(fn, x):
    """d sum(fn(x)) / dx, still differentiable with respect to fn's weights (D_I's gradient penalty)."""
    import torch

    if not x.requires_grad:
        x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(x).sum(), x, create_graph=True)
    return grad
