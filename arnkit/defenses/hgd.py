"""HGD, the High-level representation Guided Denoiser (Liao, Liang, Dong, Pang, Hu & Zhu, CVPR 2018,
arXiv:1712.02976): a U-Net denoiser D predicts a residual, x_hat = clip(x + D(x), 0, 1), and is trained so
that the frozen target sees the same high-level representation on the denoised adversarial image as on the
clean one:

    L = mean |f_l(x_hat_adv) - f_l(x)|_1,   f_l = the target's logits (LGD) or one layer's output (FGD)

Only D's weights move: the target is called with training=False and its variables are not differentiated.

Where arnkit differs from the original (a 5-stage DUNET on 299x299 ImageNet images): two stride-2 stages,
with skip connections, sized by the dataset's preset (`arnkit.presets`, `hgd`) for 2 CPU cores; the
training pairs are the seen pools ARN trains on (`--seen pgd_n,pgd_t` is the paper's PP variant,
`--seen ddn_n,pgd_n` its DP).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arnkit.defenses.pair_training import PairTrainer, built_optimizer, channels, train_pair_defense
from arnkit.errors import ArnkitError
from arnkit.progress import Progress
from arnkit.runs.context import RunContext

LOGITS = "logits"


def denoiser(shape: tuple[int, ...], width: int = 32) -> Any:
    """U-Net: two conv blocks per scale (3x3, BN, ReLU), stride-2 downsampling, upsampling with skips; a 1x1
    conv gives the residual."""
    import keras
    from keras import layers

    if len(shape) != 3 or shape[0] % 4 or shape[1] % 4:
        raise ArnkitError(f"HGD needs images whose height and width are multiples of 4 (two stride-2 stages), "
                          f"got {tuple(shape)}")

    def block(h: Any, filters: int, stride: int = 1) -> Any:
        for s in (stride, 1):
            h = layers.Conv2D(filters, 3, strides=s, padding="same", use_bias=False)(h)
            h = layers.ReLU()(layers.BatchNormalization()(h))
        return h

    inputs = keras.Input(shape=tuple(shape), name="image")
    e1 = block(inputs, width)
    e2 = block(e1, 2 * width, stride=2)
    bottom = block(e2, 4 * width, stride=2)
    d2 = block(layers.Concatenate()([layers.UpSampling2D(interpolation="bilinear")(bottom), e2]), 2 * width)
    d1 = block(layers.Concatenate()([layers.UpSampling2D(interpolation="bilinear")(d2), e1]), width)
    residual = layers.Conv2D(shape[-1], 1, name="residual")(d1)
    # ReLU capped at 1 is clip(., 0, 1) with a built-in layer, so the file loads under safe_mode anywhere.
    outputs = layers.ReLU(max_value=1.0, name="restored")(layers.Add()([inputs, residual]))
    return keras.Model(inputs, outputs, name="hgd_denoiser")


def guide_model(target: Any, guide: str) -> Any:
    """The target's representation HGD matches: its logits, or the output of layer `guide` (FGD)."""
    import keras

    if guide == LOGITS:
        return target
    names = [layer.name for layer in target.layers]
    if guide not in names:
        raise ArnkitError(f"the target has no layer '{guide}'; pass --guide-layer logits or one of: {', '.join(names)}")
    return keras.Model(target.inputs, target.get_layer(guide).output, name=f"guide_{guide}")


def hgd_loss(guide: Any, restored: Any, x_nat: Any) -> Any:
    """Mean L1 distance between the frozen guide's outputs on the denoised and on the clean images."""
    import tensorflow as tf

    return tf.reduce_mean(tf.abs(guide(restored, training=False) - tf.stop_gradient(guide(x_nat, training=False))))


def build_trainer(meta: Any, target: Any, seed: int, *, width: int, learning_rate: float, guide: str
                  ) -> PairTrainer:
    import keras
    import tensorflow as tf

    represent = guide_model(target, guide)
    net = denoiser(tuple(meta.shape), width)
    optimizer = built_optimizer(keras.optimizers.Adam(learning_rate), net.trainable_variables)

    def step(x_adv: Any, x_nat: Any) -> dict[str, Any]:
        with tf.GradientTape() as tape:
            loss = hgd_loss(represent, net(x_adv, training=True), x_nat)
        grads = tape.gradient(loss, net.trainable_variables)  # the target's variables are never differentiated
        optimizer.apply_gradients(zip(grads, net.trainable_variables, strict=True))
        return {"loss": loss}

    return PairTrainer(preprocessor=net, variables=[*net.weights, *optimizer.variables], step=step)


def train_hgd(dataset: str = "mnist", *, seen: str | list[str] | None = None, steps: int | None = None,
              batch_size: int | None = None, width: int | str | None = None, learning_rate: float | None = None,
              guide_layer: str = LOGITS, pool_size: int | None = None, checkpoint_every: int = 250,
              resume: bool = True, eval_limit: int = 1000, seed: int = 0, workspace: str | Path | None = None,
              progress: Progress | None = None, context: RunContext | None = None) -> dict[str, Any]:
    """Train HGD on the seen pools (defaults: `arnkit.presets`, `hgd`); `guide_layer` is "logits" (LGD) or a layer
    name of the target (FGD). Export the denoiser; return the record."""
    ctx = context or RunContext.build(dataset, workspace=workspace, seed=seed, progress=progress)
    preset = ctx.preset.hgd
    width = channels(width, preset.width, "HGD")
    learning_rate = preset.learning_rate if learning_rate is None else float(learning_rate)
    if not learning_rate > 0:
        raise ArnkitError(f"HGD needs learning_rate > 0, got {learning_rate}")

    def build(meta: Any, target: Any, seed: int) -> PairTrainer:
        return build_trainer(meta, target, seed, width=width, learning_rate=learning_rate, guide=str(guide_layer))

    options = {"width": width, "learning_rate": learning_rate, "guide_layer": str(guide_layer)}
    return train_pair_defense("hgd", ctx.dataset, build, seen=seen, steps=preset.steps if steps is None else steps,
                              batch_size=preset.batch_size if batch_size is None else batch_size,
                              pool_size=pool_size, options=options, checkpoint_every=checkpoint_every,
                              resume=resume, eval_limit=eval_limit,
                              context=ctx)
