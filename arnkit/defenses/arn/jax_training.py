"""ARN's training step under KERAS_BACKEND=jax: Algorithm 1 as one jitted, stateless function.

The forward pass and the losses are the shared ones (`forward.py`); this module supplies only the JAX piece:
`stateless_call` on the weights being differentiated, one `jax.vjp` of the four players' objectives and
`optimizer.stateless_apply` for each player. One forward pass serves all four players: the vector-Jacobian
product is pulled back once per player with that player's weighting of the objectives (E: L_mse + lambda1
L_att + lambda2 L_nor; G: L_mse + theta L_adv; D_A + D_I: their own losses, independent of each other), and
XLA drops the parts of each pull-back that no player keeps, as the TensorFlow step does by hand.

Randomness is a pure function of (seed, step): `jax.random.fold_in`, so a resumed run draws what an
uninterrupted one would. Data parallel: with `keras.distribution.DataParallel` set before the ARN is built
(`data_parallel()`), the weights are replicated, each batch is split over the local devices and the jitted
step is one SPMD program whose BatchNorm statistics and gradients are those of the global batch.

    arn = ARN(image_shape=(28, 28, 1), num_attacks=2, config=cfg); arn.compile()
    trainer = JaxTrainer(arn)
    logs = trainer.fit(batches, steps=30)    # batches(step) -> (x_adv (B, K, H, W, C), x_nat (B, H, W, C))
    trainer.sync()                           # weights back into the Keras variables (checkpoint, export)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from arnkit import backend
from arnkit.defenses.arn.forward import forward_losses, player_targets
from arnkit.defenses.arn.stepping import PLAYERS, SteppedTrainer
from arnkit.errors import ArnkitError

# The pull-backs of the one vjp (D_A and D_I share one): how each player weighs (restore, e_rest, g_adv, d).
WEIGHTINGS = {"encoder": (1.0, 1.0, 0.0, 0.0), "decoder": (1.0, 0.0, 1.0, 0.0), "attack_discriminator": (0.0, 0.0, 0.0, 1.0)}
TARGETS = ("restore", "e_rest", "g_adv", "d")


def data_parallel(devices: list | None = None):
    """Set keras.distribution.DataParallel over the local devices (all of them by default); call it before
    building the ARN. Returns the distribution, or None with a single device (nothing to split)."""
    import jax
    import keras

    backend.require_backend("data-parallel ARN training", ("jax",))
    devices = devices or jax.local_devices()
    if len(devices) < 2:
        return None
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    return distribution


class JaxTrainer(SteppedTrainer):
    """Trains a compiled `ARN` under the JAX backend; the state lives here between `sync()` calls."""

    backend_name = "jax"

    def __init__(self, arn: Any, *, seed: int | None = None) -> None:
        import jax

        super().__init__(arn, seed=seed)
        guide = self.guide
        self.guide_state = None if guide is None else (
            [v.value for v in guide.trainable_variables], [v.value for v in guide.non_trainable_variables])
        self.key = jax.random.PRNGKey(self.seed)
        self.distribution = _current_distribution()
        self.state = self._read_state()
        self._step = jax.jit(self._pure_step, donate_argnums=(0,))

    # ------------------------------------------------------------------------------------- state ---

    def _read_state(self) -> dict[str, dict[str, list]]:
        return {
            "trainable": {p: [v.value for v in n.trainable_variables] for p, n in self.networks.items()},
            "non_trainable": {p: [v.value for v in n.non_trainable_variables] for p, n in self.networks.items()},
            "optimizer": {p: [v.value for v in o.variables] for p, o in self.optimizers.items()},
        }

    def sync(self) -> None:
        """Write the trained state back into the ARN's Keras variables (then checkpoint or export it)."""
        for player, network in self.networks.items():
            for variable, value in zip(network.trainable_variables, self.state["trainable"][player], strict=True):
                variable.assign(value)
            for variable, value in zip(network.non_trainable_variables, self.state["non_trainable"][player],
                                       strict=True):
                variable.assign(value)
            for variable, value in zip(self.optimizers[player].variables, self.state["optimizer"][player],
                                       strict=True):
                variable.assign(value)

    def reload(self) -> None:
        """Take the state from the ARN's Keras variables again (after `arn.restore_checkpoint`)."""
        self.state = self._read_state()
        self.step = self.arn.step

    # ---------------------------------------------------------------------------------- the step ---

    def _pure_step(self, state, x_adv, x_nat, step, noise_arrays):
        import jax

        cfg = self.arn.arn_config
        key = jax.random.fold_in(self.key, step)
        batch = x_nat.shape[0]

        def noise(kind, event_shape):
            if noise_arrays is not None:
                return noise_arrays[kind]
            nonlocal key
            key, sub = jax.random.split(key)
            shape = (self.shapes.num_domains * batch, *event_shape)
            draw = jax.random.normal if kind == "normal" else jax.random.uniform
            return draw(sub, shape, "float32")

        def guide_fn(x):  # frozen: its weights enter the program as constants
            trainable, non_trainable = self.guide_state
            return self.guide.stateless_call(trainable, non_trainable, x, training=False)[0]

        def objectives(trainable):
            non_trainable = dict(state["non_trainable"])

            def apply(player, x):
                out, non_trainable[player] = self.networks[player].stateless_call(
                    trainable[player], non_trainable[player], x, training=True)
                return out

            values = forward_losses(apply, cfg, self.shapes, x_adv, x_nat, noise=noise,
                                    guide=guide_fn if self.guide is not None else None,
                                    input_gradient=_input_gradient)
            targets = player_targets(values, cfg)
            values.pop("restored")
            values.pop("leaked_rows")
            return tuple(targets[name] for name in TARGETS), (values, non_trainable)

        _, pull_back, (values, non_trainable) = jax.vjp(objectives, state["trainable"], has_aux=True)
        pulled = {player: pull_back(tuple(np.float32(w) for w in WEIGHTINGS[player]))[0]
                  for player in ("encoder", "decoder", "attack_discriminator")}
        pulled["image_discriminator"] = pulled["attack_discriminator"]  # one pull-back serves both discriminators
        grads = {player: pulled[player][player] for player in PLAYERS}
        trainable, optimizer = {}, {}
        for player in PLAYERS:
            trainable[player], optimizer[player] = self.optimizers[player].stateless_apply(
                state["optimizer"][player], grads[player], state["trainable"][player])
        new_state = {"trainable": trainable, "non_trainable": non_trainable, "optimizer": optimizer}
        return new_state, {name: values[name] for name in values}

    def train_step(self, x_adv, x_nat, *, noise: dict[str, np.ndarray] | None = None) -> dict[str, float]:
        """One simultaneous update of the four players; returns the batch's loss values.

        noise: optional {"normal": (D*B, *latent), "uniform": (D*B,)} in place of the seeded draws (tests feed
        both backends the same noise)."""
        self.arn._check_batch(np.asarray(x_adv).reshape(np.shape(x_adv)), np.asarray(x_nat))
        x_adv, x_nat = self._place(np.asarray(x_adv, np.float32)), self._place(np.asarray(x_nat, np.float32))
        self.state, values = self._step(self.state, x_adv, x_nat, np.int32(self.step), noise)
        self.step += 1
        return {name: float(value) for name, value in values.items()}

    def _place(self, array: np.ndarray):
        """Split a batch over the devices of the DataParallel distribution (one device: as it is)."""
        if self.distribution is None:
            return array
        import jax

        layout = self.distribution.get_data_layout(array.shape)
        if array.shape[0] % len(self.distribution.device_mesh.devices.reshape(-1)):
            raise ArnkitError(f"--batch-size {array.shape[0]} does not split over "
                              f"{self.distribution.device_mesh.devices.size} devices; use a multiple of it")
        return jax.device_put(array, layout.backend_layout)


def _input_gradient(fn, x):
    """d sum(fn(x)) / dx, still differentiable with respect to fn's weights (D_I's gradient penalty)."""
    import jax
    import jax.numpy as jnp

    return jax.grad(lambda inputs: jnp.sum(fn(inputs)))(x)


def _current_distribution():
    import keras

    distribution = keras.distribution.distribution()
    return distribution if isinstance(distribution, keras.distribution.DataParallel) else None
