"""ARN training (Zhou et al., ICML 2021, Algorithm 1) as a Keras model with a custom `train_step`.

The model, its checkpoints and the forward pass (`forward.py`) are backend-agnostic; `train_step` / `fit`
is the TensorFlow step (GradientTape, tf.distribute, tf.data), and `jax_training.JaxTrainer` runs the same
step under KERAS_BACKEND=jax (one jitted function, keras.distribution.DataParallel over local devices).

Data. One batch is x_adv (B, K, H, W, C) -- each of B natural images with its K seen-attack versions,
aligned, so the attack type of x_adv[:, k] is k -- and x_nat (B, H, W, C). Give `fit` a tf.data.Dataset of
dicts {"adversarial": x_adv, "natural": x_nat} (`training_dataset` builds one); tuples
(x_adv, x_nat) and ((x_adv, x_nat),) are accepted as well.

Example::

    arn = ARN(image_shape=(28, 28, 1), num_attacks=2, config=ARNConfig.for_dataset("mnist"))
    arn.compile()                                   # four Adam(1e-4, 0.5, 0.999) optimizers
    arn.fit(training_dataset(x_adv, x_nat, batch_size=64), epochs=5)
    preprocessor = export_preprocessor(arn)         # x -> G(E(x)), in [0, 1]

Distributed training: build and compile the model inside `strategy.scope()`; the per-replica losses are
divided by `num_replicas_in_sync`, BatchNorm is synchronised across replicas and the latent noise is
drawn for the global batch, so N replicas give the same weights as one device.
"""

from __future__ import annotations

import functools
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import keras
import numpy as np

from arnkit import backend
from arnkit.defenses.arn.config import ARNConfig
from arnkit.defenses.arn.forward import Shapes, forward_losses, player_targets
from arnkit.defenses.arn.networks import build_networks, restore
from arnkit.defenses.arn.stepping import AVERAGED_PLAYERS, OPTIMIZERS, PLAYERS
from arnkit.errors import ArnkitError
from arnkit.io import atomic_path

LOSS_NAMES = ("e_loss", "g_loss", "da_loss", "di_loss", "mse", "att", "nor", "adv", "gp", "guide", "adaptive")
CHECKPOINT_FORMAT = "arnkit-arn-checkpoint"
CHECKPOINT_VERSION = 1


def learning_rate_schedule(config: ARNConfig) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The Adam learning rate of `config`: a float, or a schedule of the optimizer's iteration count."""
    if config.lr_schedule == "cosine":
        # alpha=0: the rate reaches 0 at lr_decay_steps (the run's last step) and stays there.
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=config.lr_decay_steps,
                                                      alpha=0.0)
    return config.learning_rate


def unpack_batch(data: Any) -> tuple[Any, Any]:
    """(x_adv, x_nat) from a dict {"adversarial", "natural"}, a pair, or a pair wrapped as (x,) / (x, y, w)."""
    if isinstance(data, dict):
        try:
            return data["adversarial"], data["natural"]
        except KeyError:
            raise ArnkitError(
                f"an ARN batch dict needs keys 'adversarial' and 'natural', got {sorted(data)}"
            ) from None
    if isinstance(data, (tuple, list)):
        if len(data) >= 1 and isinstance(data[0], (tuple, list, dict)):
            return unpack_batch(data[0])
        if len(data) == 2:
            return data[0], data[1]
    raise ArnkitError(
        "an ARN batch must be {'adversarial': x_adv (B, K, H, W, C), 'natural': x_nat (B, H, W, C)}; "
        "build the dataset with arnkit.defenses.arn.training_dataset"
    )


def training_dataset(x_adv, x_nat, *, batch_size: int = 64, shuffle: bool = True, seed: int = 0,
                     drop_remainder: bool = False) -> Any:
    """A tf.data.Dataset of {"adversarial": (B, K, H, W, C), "natural": (B, H, W, C)} batches.

    x_adv: an array (N, K, H, W, C) or a list of K arrays (N, H, W, C), aligned with x_nat (N, H, W, C).
    """
    import tensorflow as tf

    if isinstance(x_adv, (list, tuple)):
        x_adv = np.stack([np.asarray(a, dtype=np.float32) for a in x_adv], axis=1)
    x_adv = np.asarray(x_adv, dtype=np.float32)
    x_nat = np.asarray(x_nat, dtype=np.float32)
    if x_adv.ndim != 5 or x_nat.ndim != 4 or x_adv.shape[0] != x_nat.shape[0] or x_adv.shape[2:] != x_nat.shape[1:]:
        raise ArnkitError(
            f"adversarial examples {x_adv.shape} and natural images {x_nat.shape} do not line up; expected "
            "(N, K, H, W, C) and (N, H, W, C) with the same N, H, W, C"
        )
    ds = tf.data.Dataset.from_tensor_slices({"adversarial": x_adv, "natural": x_nat})
    if shuffle:
        ds = ds.shuffle(min(len(x_nat), 10_000), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


@keras.saving.register_keras_serializable(package="arnkit")
class ARN(keras.Model):
    """The adversarial noise removing network: E, G, D_A and D_I trained together (Algorithm 1).

    image_shape: (H, W, C) of the images. num_attacks: K, the number of seen attack types.
    config: an ARNConfig (or its dict); defaults to the paper's MNIST setting.
    guide: the target classifier (images -> logits), needed only to train with config.guide_weight > 0 or
        adaptively (config.adaptive_share > 0: the white-box examples are crafted through it).
    Calling the model maps images to restored images G(mu(x)) (inference, no sampling).
    """

    def __init__(self, *, image_shape=(28, 28, 1), num_attacks: int = 2, config: ARNConfig | dict | None = None,
                 guide: Any = None, **kwargs):
        super().__init__(**kwargs)
        if config is None:
            config = ARNConfig()
        elif isinstance(config, dict):
            config = ARNConfig.from_dict(config)
        if int(num_attacks) < 1 or (int(num_attacks) < 2 and not config.include_natural):
            raise ArnkitError(
                f"ARN needs at least 2 attack domains to tell apart, got num_attacks={num_attacks} "
                f"with include_natural={config.include_natural}; add a seen attack or include natural images"
            )
        self.arn_config = config
        self._guide = _Untracked(guide)  # the classifier of config.guide_weight; not part of ARN's weights
        self.image_shape = tuple(int(s) for s in image_shape)
        self.num_attacks = int(num_attacks)
        self.num_domains = self.num_attacks + int(config.include_natural)
        sync = config.sync_batchnorm
        if sync is None:
            # Under JAX one jitted program sees the global batch, so BatchNorm statistics are global already.
            sync = backend.is_tensorflow() and _replicas_now() > 1
        (self.encoder, self.decoder, self.attack_discriminator,
         self.image_discriminator) = build_networks(self.image_shape, self.num_domains, config.preset,
                                                    sync_batchnorm=bool(sync), generator=config.generator)
        self.seed_generator = keras.random.SeedGenerator(config.seed, name="arn_seed")
        self._trackers = [keras.metrics.Mean(name=name) for name in LOSS_NAMES]
        self.built = True

    # ------------------------------------------------------------------------------------------ keras ---

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "image_shape": list(self.image_shape),
                "num_attacks": self.num_attacks, "config": self.arn_config.to_dict()}

    def call(self, inputs, training=False):
        return restore(self.encoder, self.decoder, inputs, training=training)

    @property
    def metrics(self):
        return list(self._trackers)

    def compile(self, e_optimizer=None, g_optimizer=None, da_optimizer=None, di_optimizer=None, **kwargs):
        """One optimizer per player (default Adam(config.learning_rate, config.beta_1, config.beta_2), the
        rate following config.lr_schedule).

        Optimizers are created and built inside the model's distribution strategy scope; pass your own
        only if they were created inside that scope too. Other kwargs go to keras.Model.compile
        (jit_compile defaults to False: XLA was 3-5x slower for this step on CPUs).
        """
        kwargs.setdefault("optimizer", None)  # no shared optimizer: each player has its own
        kwargs.setdefault("jit_compile", False)
        super().compile(**kwargs)
        cfg = self.arn_config
        given = dict(zip(OPTIMIZERS, (e_optimizer, g_optimizer, da_optimizer, di_optimizer), strict=True))
        with _strategy_scope(self):
            for (attr, optimizer), player in zip(given.items(), PLAYERS, strict=True):
                if optimizer is None:
                    # EMA (opt-in) on the deployed players only: the discriminators' averages would never be used.
                    averaged = cfg.ema > 0 and player in AVERAGED_PLAYERS
                    optimizer = keras.optimizers.Adam(learning_rate=learning_rate_schedule(cfg),
                                                      beta_1=cfg.beta_1, beta_2=cfg.beta_2, name=attr,
                                                      use_ema=averaged, ema_momentum=cfg.ema if averaged else 0.99)
                optimizer.build(getattr(self, player).trainable_variables)
                setattr(self, attr, optimizer)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras (3.15, TF backend) builds models symbolically before fit under a strategy, first averaging
        # one batch across replicas; MultiWorkerMirroredStrategy cannot reduce a dict batch and fails.
        # Nothing here needs that build: the networks are built in __init__, the optimizers in compile,
        # and there is no compiled loss or metric.
        return

    def use_averaged_weights(self) -> bool:
        """Copy the EMA of E's and G's weights (config.ema > 0) into the networks, at the end of training, so
        the exported restorer carries them; a no-op (False) when EMA is off. The optimizers keep averaging from
        the copied values, so call this once, after the last checkpoint."""
        if not self.arn_config.ema:
            return False
        for player, attr in zip(PLAYERS, OPTIMIZERS, strict=True):
            if player in AVERAGED_PLAYERS:
                getattr(self, attr).finalize_variable_values(getattr(self, player).trainable_variables)
        return True

    @property
    def step(self) -> int:
        """Training steps taken so far (the encoder optimizer's iteration count)."""
        return int(keras.ops.convert_to_numpy(self.e_optimizer.iterations)) if hasattr(self, "e_optimizer") else 0

    # ------------------------------------------------------------------------------------- training ---

    def train_step(self, data):
        # Algorithm 1 of the paper, one iteration:
        # 1. Take the mini-batch: x_adv (B, K, ...) holds each natural image's K seen-attack versions,
        #    x_nat (B, ...) the natural images (plus x_nat as domain K+1 when include_natural).
        # 2. Forward the examples through E, sample z, and compute L_DA (Eq. 1), L_att (Eq. 2), L_nor (Eq. 3).
        # 3. Forward z through G and compute L_mse (Eq. 4), L_adv (Eq. 6) and L_DI (Eq. 5).
        # 4. Update E with L_E = L_mse + lambda1 L_att + lambda2 L_nor (Eq. 7) and G with
        #    L_G = L_mse + theta L_adv (Eq. 8).
        # 5. Update D_A with L_DA and D_I with L_DI. All four gradients come from the same forward pass
        #    (simultaneous updates), so step 5 uses the losses computed in steps 2-3, as in Algorithm 1.
        import tensorflow as tf

        x_adv, x_nat = unpack_batch(data)                                              # 1
        values = self.apply_step(x_adv, x_nat)                                        # 2-5
        for tracker in self._trackers:
            tracker.update_state(values[tracker.name])
        logs = {tracker.name: tracker.result() for tracker in self._trackers}
        if _multi_worker(self.distribute_strategy):
            # Keras averages multi-worker logs over axis 0, which a scalar does not have.
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def fit(self, *args, **kwargs):
        if not backend.is_tensorflow():
            raise ArnkitError(f"ARN.fit is the TensorFlow training step; under KERAS_BACKEND={backend.name()} train "
                              "with arnkit.defenses.arn.trainer_for(arn).fit(batches, steps)")
        return super().fit(*args, **kwargs)

    def apply_step(self, x_adv, x_nat, noise: Any = None) -> dict[str, Any]:
        """One simultaneous update of the four players on one batch (TensorFlow); returns the loss values."""
        grads, values = self.compute_gradients(x_adv, x_nat, noise=noise)              # 2, 3
        for player, attr in zip(PLAYERS, OPTIMIZERS, strict=True):                     # 4 (E, G), 5 (D_A, D_I)
            variables = getattr(self, player).trainable_variables
            getattr(self, attr).apply_gradients(zip(grads[player], variables, strict=True))
        return values

    def compute_gradients(self, x_adv, x_nat, noise: Any = None) -> tuple[dict[str, list], dict[str, Any]]:
        """Gradients of each player's loss for its own weights, and the loss values, for one batch
        (TensorFlow backend; jax_training.JaxTrainer is the JAX one).

        Under a strategy each replica's mean losses are divided by num_replicas_in_sync, so the summed
        replica gradients equal the global-batch gradient. noise: optional `noise(kind, event_shape)` in
        place of the seeded draws (tests feed both backends the same noise).
        """
        import tensorflow as tf

        replicas = self.distribute_strategy.num_replicas_in_sync
        cfg = self.arn_config
        x_leak = self.craft_adaptive(tf.convert_to_tensor(x_nat, tf.float32)) if cfg.adaptive else None
        with tf.GradientTape(persistent=True) as tape:
            values = self._forward_losses(x_adv, x_nat, x_leak, noise=noise)
            # The targets must be formed inside the tape, or the tape cannot trace them back.
            targets = {name: value / replicas for name, value in player_targets(values, cfg).items()}
        restored = values.pop("restored")
        leaked_rows = values.pop("leaked_rows")
        e_vars = self.encoder.trainable_variables
        g_vars = self.decoder.trainable_variables
        da_vars = self.attack_discriminator.trainable_variables
        di_vars = self.image_discriminator.trainable_variables
        # L_mse and L_adv reach G's weights only through the restored images, and L_adv must not reach E
        # (Eq. 7 has no L_adv). So: take both losses' gradients at the restored images, then go back through
        # G once for its weights (upstream dL_mse + theta dL_adv) and once to E (upstream dL_mse only;
        # L_mse here includes the opt-in guide term).
        # Two separate passes for L_E and L_adv would compute G's filter gradients twice: in a profile of
        # the default step G's backward was half of the step's time.
        g_restore = _gradient(tape, targets["restore"], [restored])[0]
        g_adv = _gradient(tape, targets["g_adv"], [restored])[0]
        # adaptive_update: the leaked examples' rows of dL_restore reach only the players that learn from them.
        g_restore_g, g_restore_e = g_restore, g_restore
        if leaked_rows is not None and cfg.adaptive_update != "both":
            keep = tf.reshape(1.0 - leaked_rows, [-1, 1, 1, 1])
            if cfg.adaptive_update == "encoder":
                g_restore_g = g_restore * keep
            else:
                g_restore_e = g_restore * keep
        decoder_grads = _gradient(tape, restored, g_vars, output_gradients=g_restore_g + g_adv)
        with tape:  # one scalar whose E-gradient is J^T dL_mse + d(L_att, L_nor)/dE (graph-mode tapes reject a
            # list of targets with output gradients)
            e_surrogate = tf.reduce_sum(tf.stop_gradient(g_restore_e) * restored) + targets["e_rest"]
        encoder_grads = _gradient(tape, e_surrogate, e_vars)
        # L_DA depends on D_I's weights not at all and L_DI on D_A's not at all: one pass for both.
        d_grads = _gradient(tape, targets["d"], da_vars + di_vars)
        del tape
        grads = {
            "encoder": encoder_grads,
            "decoder": decoder_grads,
            "attack_discriminator": d_grads[: len(da_vars)],
            "image_discriminator": d_grads[len(da_vars):],
        }
        reported = {name: values[name] for name in LOSS_NAMES}
        return grads, reported

    def _forward_losses(self, x_adv, x_nat, x_leak=None, noise: Any = None) -> dict[str, Any]:
        """The shared forward pass (forward.forward_losses) with this model's networks, on TensorFlow."""
        import tensorflow as tf

        x_adv = tf.convert_to_tensor(x_adv, tf.float32)
        x_nat = tf.convert_to_tensor(x_nat, tf.float32)
        self._check_batch(x_adv, x_nat)
        batch = tf.shape(x_nat)[0]
        if noise is None:
            def noise(kind, event_shape):
                return self._global_noise(batch, kind, tf.constant(event_shape, tf.int32))
        guide = self._guide.value
        return forward_losses(lambda player, x: getattr(self, player)(x, training=True), self.arn_config,
                              Shapes(self.image_shape, self.num_domains), x_adv, x_nat, noise=noise,
                              guide=None if guide is None else (lambda x: guide(x, training=False)),
                              x_leak=x_leak, all_sum=self._all_sum(),
                              replicas=self.distribute_strategy.num_replicas_in_sync)

    def craft_adaptive(self, x_nat):
        """White-box PGD against the *current* pre-processor + the frozen target, for the first
        ceil(adaptive_share * B) natural images: the examples the leaked-defense attacker would send now.
        With config.adaptive_families, one family drawn for this batch (`draw_family`, `craft_family`) instead.

        Untargeted, against the target's predicted label on the natural image; a random start in the eps-ball
        (noise drawn for the global batch, so replicas do not change it); BatchNorm in inference mode."""
        import tensorflow as tf

        cfg = self.arn_config
        guide = self._guide.value
        if guide is None:
            raise ArnkitError("adaptive ARN training crafts white-box examples through the pre-processor and the "
                              "target classifier: build ARN(..., guide=classifier)")
        batch = tf.shape(x_nat)[0]
        leaked = tf.cast(tf.math.ceil(cfg.adaptive_share * tf.cast(batch, tf.float32)), tf.int32)
        x = x_nat[:leaked]
        labels = tf.stop_gradient(tf.argmax(guide(x, training=False), axis=-1))
        if cfg.adaptive_families:
            index, seed = self.draw_family(), self.seed_generator.next()
            branches = [functools.partial(self.craft_family, name, x, labels, seed) for name in cfg.adaptive_families]
            return tf.stop_gradient(tf.switch_case(index, branches))
        eps, step = float(cfg.adaptive_eps), float(cfg.adaptive_step)
        replicas = self.distribute_strategy.num_replicas_in_sync
        replica_id = tf.distribute.get_replica_context().replica_id_in_sync_group
        noise = tf.random.stateless_uniform(tf.concat([[replicas * leaked], self.image_shape], axis=0),
                                            seed=self.seed_generator.next(), minval=-eps, maxval=eps)
        x_adv = tf.clip_by_value(x + noise[replica_id * leaked:(replica_id + 1) * leaked], 0.0, 1.0)
        for _ in range(int(cfg.adaptive_steps)):
            with tf.GradientTape() as tape:
                tape.watch(x_adv)
                logits = guide(self(x_adv, training=False), training=False)
                loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
            grad = tape.gradient(loss, x_adv)
            x_adv = tf.clip_by_value(x + tf.clip_by_value(x_adv + step * tf.sign(grad) - x, -eps, eps), 0.0, 1.0)
        return tf.stop_gradient(x_adv)

    def draw_family(self):
        """This batch's adaptive family: an index into config.adaptive_families, drawn from the model's seed
        generator (seeded by config.seed, saved in checkpoints), so a run and its resumption draw the same ones."""
        import tensorflow as tf

        count = len(self.arn_config.adaptive_families)
        return tf.random.stateless_uniform([], seed=self.seed_generator.next(), maxval=count, dtype=tf.int32)

    def craft_family(self, name: str, x, labels, seed):
        """Family `name`'s white-box examples of x (families.py) against the current E, G and the frozen target,
        BatchNorm in inference mode. Its random draws are this replica's own (not the global batch's)."""
        from arnkit.defenses.arn import families

        guide = self._guide.value
        return families.craft(name, lambda z: guide(self(z, training=False), training=False), x, labels,
                              cfg=self.arn_config, seed=seed)

    def _check_batch(self, x_adv, x_nat) -> None:
        adv_shape, nat_shape = tuple(x_adv.shape), tuple(x_nat.shape)
        expected = (self.num_attacks, *self.image_shape)
        if len(adv_shape) != 5 or adv_shape[1:] != expected or len(nat_shape) != 4 or nat_shape[1:] != self.image_shape:
            raise ArnkitError(
                f"ARN was built for {self.num_attacks} attacks on {self.image_shape} images: expected batches "
                f"x_adv (B, {', '.join(map(str, expected))}) and x_nat (B, {', '.join(map(str, self.image_shape))}), "
                f"got {adv_shape} and {nat_shape}"
            )

    def _global_noise(self, batch, kind: str, event_shape):
        """Noise for this replica's rows of the *global* batch, laid out domain-major (D*B, *event_shape).

        Every replica draws the same global tensor from the same seed and keeps its own slice, so the noise
        an example gets does not depend on how many replicas share the batch.
        """
        import tensorflow as tf

        replicas = self.distribute_strategy.num_replicas_in_sync
        replica_id = tf.distribute.get_replica_context().replica_id_in_sync_group
        seed = self.seed_generator.next()
        shape = tf.concat([[replicas * batch, self.num_domains], event_shape], axis=0)
        draw = tf.random.stateless_normal if kind == "normal" else tf.random.stateless_uniform
        noise = draw(shape, seed=seed)
        mine = noise[replica_id * batch: (replica_id + 1) * batch]  # (B, D, ...)
        rank = len(mine.shape)
        mine = tf.transpose(mine, [1, 0, *range(2, rank)])  # (D, B, ...)
        return tf.reshape(mine, tf.concat([[-1], event_shape], axis=0))

    def _all_sum(self):
        import tensorflow as tf

        if self.distribute_strategy.num_replicas_in_sync == 1:
            return None
        context = tf.distribute.get_replica_context()
        return lambda t: context.all_reduce(tf.distribute.ReduceOp.SUM, t)

    # ---------------------------------------------------------------------------------- checkpoints ---

    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        """Write weights, BatchNorm statistics, the four optimizer states, the step count and the RNG state
        to one `.npz` file, atomically (a crash leaves the previous checkpoint intact)."""
        self._require_compiled("save a checkpoint")
        path = Path(path)
        arrays: dict[str, np.ndarray] = {}
        for group, variables in self._checkpoint_groups().items():
            for i, variable in enumerate(variables):
                arrays[f"{group}/{i:05d}"] = np.asarray(keras.ops.convert_to_numpy(variable.value))
        meta = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "image_shape": list(self.image_shape),
                "num_attacks": self.num_attacks, "config": self.arn_config.to_dict(), "step": self.step}
        arrays["meta"] = np.array(json.dumps(meta))
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        return path

    def restore_checkpoint(self, path: str | os.PathLike) -> ARN:
        """Load a checkpoint written by `save_checkpoint` into this model (compiling it first if needed)."""
        meta, arrays = read_checkpoint(path)
        if tuple(meta["image_shape"]) != self.image_shape or meta["num_attacks"] != self.num_attacks:
            raise ArnkitError(
                f"checkpoint {Path(path).name} is for {meta['num_attacks']} attacks on {tuple(meta['image_shape'])} "
                f"images, this ARN for {self.num_attacks} on {self.image_shape}; build the ARN to match "
                "(ARN.from_checkpoint does)"
            )
        if not hasattr(self, "e_optimizer"):
            self.compile()
        for group, variables in self._checkpoint_groups().items():
            stored = sorted(k for k in arrays if k.startswith(group + "/"))
            if len(stored) != len(variables):
                raise ArnkitError(
                    f"checkpoint {Path(path).name} holds {len(stored)} {group} variables, this ARN has "
                    f"{len(variables)}; it was made with another width preset, objective or learning-rate "
                    "schedule: load it with ARN.from_checkpoint, which rebuilds the run's own config"
                )
            for key, variable in zip(stored, variables, strict=True):
                value = arrays[key]
                if tuple(value.shape) != tuple(variable.shape):
                    raise ArnkitError(
                        f"checkpoint {Path(path).name}: {group} variable {variable.path} has shape {value.shape}, "
                        f"expected {tuple(variable.shape)}; it was made with another width preset"
                    )
                variable.assign(value.astype(variable.dtype))
        return self

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike) -> ARN:
        """A compiled ARN rebuilt from the checkpoint's own shape and config, with its state restored."""
        meta, _ = read_checkpoint(path)
        arn = cls(image_shape=meta["image_shape"], num_attacks=meta["num_attacks"],
                  config=ARNConfig.from_dict(meta["config"]))
        arn.compile()
        return arn.restore_checkpoint(path)

    def _checkpoint_groups(self) -> dict[str, list]:
        groups = {player: list(getattr(self, player).weights) for player in PLAYERS}
        for attr in OPTIMIZERS:
            groups[attr] = list(getattr(self, attr).variables)
        groups["seed_generator"] = [self.seed_generator.state]
        return groups

    def _require_compiled(self, action: str) -> None:
        if not hasattr(self, "e_optimizer"):
            raise ArnkitError(f"compile the ARN before you {action} (arn.compile())")


def _replicas_now() -> int:
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync if tf.distribute.has_strategy() else 1


def _strategy_scope(model):
    """The model's tf.distribute scope on TensorFlow; on JAX the keras.distribution in force already applies."""
    import contextlib

    return model.distribute_strategy.scope() if backend.is_tensorflow() else contextlib.nullcontext()


def _multi_worker(strategy) -> bool:
    import tensorflow as tf

    in_multi_worker_mode = getattr(strategy.extended, "_in_multi_worker_mode", None)
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and bool(
        in_multi_worker_mode and in_multi_worker_mode())


class _Untracked:
    """Holds an object out of Keras's attribute tracking (a model held here adds no weights to ARN)."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _gradient(tape, target, sources, output_gradients=None) -> list:
    """tape.gradient with zeros for sources the target does not depend on (e.g. an ablated term).
    (Not UnconnectedGradients.ZERO: it builds the zeros from `source.dtype`, a string on Keras 3 variables.)"""
    import tensorflow as tf

    grads = tape.gradient(target, sources, output_gradients=output_gradients)
    return [tf.zeros_like(s) if g is None else g for g, s in zip(grads, sources, strict=True)]


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """(metadata, arrays) of an ARN checkpoint; ArnkitError if it is missing, corrupt or not a checkpoint."""
    path = Path(path)
    if not path.exists():
        raise ArnkitError(f"ARN checkpoint not found: {path}; check the path")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ArnkitError(
            f"{path.name} is not a readable ARN checkpoint ({type(exc).__name__}); it may be truncated or "
            "corrupt: resume from an earlier checkpoint or retrain"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise ArnkitError(f"{path.name} is not an ARN checkpoint; pass a file written by ARN.save_checkpoint")
    if meta.get("version", 0) > CHECKPOINT_VERSION:
        raise ArnkitError(f"{path.name} was written by a newer arnkit (format {meta['version']}); upgrade arnkit")
    return meta, arrays
