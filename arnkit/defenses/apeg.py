"""APE-GAN (Jin, Shen, Zhang, Chen & Qian, ICASSP 2019, arXiv:1707.05474): a small conv-deconv generator
G, trained against a discriminator D, maps adversarial images back to natural ones; G alone is the
pre-processor.

    G: conv 3x3/2 (w) -> conv 3x3/2 (2w) -> deconv 4x4/2 (w) -> deconv 4x4/2 (C), BN + LeakyReLU .2 between
    D: conv 3x3/2 (w) -> conv 3x3/2 (2w) -> conv 3x3/2 (4w) -> dense 1 (a logit), BN + LeakyReLU .2 between
    L_G = 0.7 * MSE(G(x_adv), x) + 0.3 * BCE(D(G(x_adv)), real)
    L_D = BCE(D(x), real) + BCE(D(G(x_adv)), fake)

Where arnkit differs from the original: the output is a sigmoid (images in [0, 1]) instead of a tanh on
[-1, 1]; D ends in a logit rather than a sigmoid (the same loss, computed stably); the base width comes from
the dataset's preset (`arnkit.presets`, `apeg`), scaled for 2 CPU cores. The training pairs are the seen
pools ARN trains on (`--seen pgd_n,pgd_t` is the paper's PP variant, `--seen ddn_n,pgd_n` its DP).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arnkit.defenses.pair_training import PairTrainer, built_optimizer, channels, train_pair_defense
from arnkit.errors import ArnkitError
from arnkit.progress import Progress
from arnkit.runs.context import RunContext

MSE_WEIGHT, ADVERSARIAL_WEIGHT = 0.7, 0.3


def _check_shape(shape: tuple[int, ...], name: str) -> None:
    if len(shape) != 3 or shape[0] % 4 or shape[1] % 4:
        raise ArnkitError(f"{name} needs images whose height and width are multiples of 4 (two stride-2 stages), "
                          f"got {tuple(shape)}")


def generator(shape: tuple[int, ...], width: int = 32) -> Any:
    import keras
    from keras import layers

    _check_shape(shape, "APE-GAN")
    inputs = keras.Input(shape=tuple(shape), name="image")
    h = inputs
    for layer in (layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False),
                  layers.Conv2D(2 * width, 3, strides=2, padding="same", use_bias=False),
                  layers.Conv2DTranspose(width, 4, strides=2, padding="same", use_bias=False)):
        h = layers.LeakyReLU(0.2)(layers.BatchNormalization()(layer(h)))
    outputs = layers.Conv2DTranspose(shape[-1], 4, strides=2, padding="same", activation="sigmoid",
                                     name="restored")(h)
    return keras.Model(inputs, outputs, name="apeg_generator")


def discriminator(shape: tuple[int, ...], width: int = 32) -> Any:
    import keras
    from keras import layers

    inputs = keras.Input(shape=tuple(shape), name="image")
    h = layers.LeakyReLU(0.2)(layers.Conv2D(width, 3, strides=2, padding="same")(inputs))
    for filters in (2 * width, 4 * width):
        h = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False)(h)
        h = layers.LeakyReLU(0.2)(layers.BatchNormalization()(h))
    outputs = layers.Dense(1, name="logit")(layers.Flatten()(h))
    return keras.Model(inputs, outputs, name="apeg_discriminator")


def build_trainer(meta: Any, target: Any, seed: int, *, width: int, learning_rate: float) -> PairTrainer:
    """APE-GAN's two players and their alternating step (D on real vs restored, then G)."""
    import keras
    import tensorflow as tf

    g, d = generator(tuple(meta.shape), width), discriminator(tuple(meta.shape), width)
    # Adam with beta1 = .5, as in the original (and DCGAN).
    opt_g = built_optimizer(keras.optimizers.Adam(learning_rate, beta_1=0.5), g.trainable_variables)
    opt_d = built_optimizer(keras.optimizers.Adam(learning_rate, beta_1=0.5), d.trainable_variables)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)

    def step(x_adv: Any, x_nat: Any) -> dict[str, Any]:
        with tf.GradientTape() as tape:
            restored = g(x_adv, training=True)
            real, fake = d(x_nat, training=True), d(restored, training=True)
            loss_d = bce(tf.ones_like(real), real) + bce(tf.zeros_like(fake), fake)
        opt_d.apply_gradients(zip(tape.gradient(loss_d, d.trainable_variables), d.trainable_variables, strict=True))
        with tf.GradientTape() as tape:
            restored = g(x_adv, training=True)
            fake = d(restored, training=True)
            mse = tf.reduce_mean(tf.square(restored - x_nat))
            loss_g = MSE_WEIGHT * mse + ADVERSARIAL_WEIGHT * bce(tf.ones_like(fake), fake)
        opt_g.apply_gradients(zip(tape.gradient(loss_g, g.trainable_variables), g.trainable_variables, strict=True))
        return {"loss_g": loss_g, "loss_d": loss_d, "mse": mse}

    variables = [*g.weights, *d.weights, *opt_g.variables, *opt_d.variables]
    return PairTrainer(preprocessor=g, variables=variables, step=step)


def train_apeg(dataset: str = "mnist", *, seen: str | list[str] | None = None, steps: int | None = None,
               batch_size: int | None = None, width: int | str | None = None, learning_rate: float | None = None,
               pool_size: int | None = None, checkpoint_every: int = 250, resume: bool = True,
               eval_limit: int = 1000, seed: int = 0, workspace: str | Path | None = None,
               progress: Progress | None = None, context: RunContext | None = None) -> dict[str, Any]:
    """Train APE-GAN on the seen pools (defaults: `arnkit.presets`, `apeg`); export G; return the record."""
    ctx = context or RunContext.build(dataset, workspace=workspace, seed=seed, progress=progress)
    preset = ctx.preset.apeg
    width = channels(width, preset.width, "APE-GAN")
    learning_rate = preset.learning_rate if learning_rate is None else float(learning_rate)
    if not learning_rate > 0:
        raise ArnkitError(f"APE-GAN needs learning_rate > 0, got {learning_rate}")

    def build(meta: Any, target: Any, seed: int) -> PairTrainer:
        return build_trainer(meta, target, seed, width=width, learning_rate=learning_rate)

    options = {"width": width, "learning_rate": learning_rate, "mse_weight": MSE_WEIGHT,
               "adversarial_weight": ADVERSARIAL_WEIGHT}
    return train_pair_defense("apeg", ctx.dataset, build, seen=seen, steps=preset.steps if steps is None else steps,
                              batch_size=preset.batch_size if batch_size is None else batch_size,
                              pool_size=pool_size, options=options, checkpoint_every=checkpoint_every,
                              resume=resume, eval_limit=eval_limit,
                              context=ctx)
