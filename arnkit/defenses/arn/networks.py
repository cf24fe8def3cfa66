"""The four networks of ARN (Zhou et al., ICML 2021, Section 3): encoder E, decoder G, attack
discriminator D_A and image discriminator D_I.

Backend-agnostic: only `keras.layers` / `keras.ops`, so a trained pre-processor loads and runs under the
TensorFlow, JAX and torch backends. Each network is a functional model wrapped in a registered class
whose `get_config` holds only its constructor arguments, so `.keras` files round-trip.

Shapes. Images are NHWC in [0,1]. E zero-pads the input to a multiple of 8 (28x28 -> 32x32; 32x32 stays),
halves it three times with stride-2 convolutions and returns a VAE-style posterior (mu, logvar) as a
*feature map* of shape (H'/8, W'/8, latent_channels): 4x4xL for MNIST, CIFAR-10 and LISA. A spatial latent
keeps where things are, which the restoration needs; D_A flattens it (the `reference` preset's
4x4x128 = 2048 values match the official code's 2048-d latent). G mirrors E with transposed convolutions,
ends in a sigmoid (arnkit images live in [0,1]) and crops the padding away, so G(E(x)) has x's shape.

Generators (`GENERATORS`, `ARNConfig.generator`): "paper" is the above. "residual_unet" (beyond the paper, opt-in)
restores residually, clip(x + G(E(x)), 0, 1), and G also reads E's three strided feature maps and the padded image
through U-Net skip connections, as HGD's denoiser (Liao et al., CVPR 2018) does: E then returns
(mu, logvar, image, f1, f2, f3) and G takes [latent, image, f1, f2, f3]. `restore(encoder, decoder, x)` runs either.

Example::

    widths = PRESETS["default"]
    encoder = Encoder(image_shape=(28, 28, 1), widths=widths.encoder, latent_channels=widths.latent_channels)
    decoder = Decoder(image_shape=(28, 28, 1), widths=widths.encoder, latent_channels=widths.latent_channels)
    mu, logvar = encoder(x)
    restored = decoder(mu)          # (N, 28, 28, 1) in [0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from arnkit.errors import ArnkitError

GENERATORS = ("paper", "residual_unet")
DOWNSAMPLING = 8  # three stride-2 convolutions in E, three stride-2 transposed convolutions in G
LEAK = 0.2  # LeakyReLU slope of the official code


@dataclass(frozen=True)
class ARNWidths:
    """Channel widths of the four networks. `encoder` lists E's four conv widths; G mirrors them."""

    encoder: tuple[int, int, int, int]
    latent_channels: int
    attack_hidden: tuple[int, ...]
    image_widths: tuple[int, ...]
    image_hidden: int


PRESETS: dict[str, ARNWidths] = {
    # The official code's widths (conv 128-256-512-1024, a 2048-value latent, D_A 1024-256-64,
    # D_I conv 32-64-128-256 + fc 512). 7-9 s per step at batch 64 x K=2 on 2 CPU cores: a GPU preset.
    "reference": ARNWidths((128, 256, 512, 1024), 128, (1024, 256, 64), (32, 64, 128, 256), 512),
    # Sized for CPUs: about 0.14-0.29 s per paper-objective step at batch 64 x K=2 on 2 shared cores
    # (bench/bench_arn_step.py), so 8-10 minutes train ~2,000-4,000 steps (2-4 MNIST epochs). On MNIST
    # with PGD_N + PGD_T seen, 1,577 steps restored 88% accuracy under PGD_N. 4x4x16 = 256 latent values.
    "default": ARNWidths((16, 32, 64, 128), 16, (128, 32), (16, 32, 64), 128),
    # Twice the width: about 3x the cost of "default"; 512 latent values.
    "large": ARNWidths((32, 64, 128, 256), 32, (256, 64), (32, 64, 128), 256),
    # For tests only.
    "tiny": ARNWidths((4, 8, 8, 16), 4, (16,), (4, 8), 8),
}


def get_preset(name: str) -> ARNWidths:
    try:
        return PRESETS[name]
    except KeyError:
        raise ArnkitError(f"unknown ARN width preset '{name}'; choose one of: {', '.join(PRESETS)}") from None


def padded_size(size: int) -> int:
    """The smallest multiple of DOWNSAMPLING that is >= size."""
    return -(-size // DOWNSAMPLING) * DOWNSAMPLING


def _padding(image_shape: tuple[int, int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    pads = []
    for size in image_shape[:2]:
        extra = padded_size(size) - size
        pads.append((extra // 2, extra - extra // 2))
    return pads[0], pads[1]


def latent_shape(image_shape: tuple[int, int, int], latent_channels: int) -> tuple[int, int, int]:
    """Shape of E's output map (one example) for images of `image_shape`."""
    h, w = (padded_size(s) // DOWNSAMPLING for s in image_shape[:2])
    return (h, w, latent_channels)


def _check_image_shape(image_shape) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < 1 or min(shape[:2]) < DOWNSAMPLING:
        raise ArnkitError(
            f"ARN needs images of shape (height, width, channels) with height and width >= {DOWNSAMPLING}, "
            f"got {shape}"
        )
    return shape


def _check_generator(generator: str) -> str:
    if generator not in GENERATORS:
        raise ArnkitError(f"unknown ARN generator '{generator}'; choose one of: {', '.join(GENERATORS)}")
    return generator


def _norm_act(x, name: str, synchronized: bool):
    # The convolutions before BatchNorm have no bias: BN cancels it, and Adam would turn its
    # round-off-sized gradient into full-size random steps.
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=synchronized, name=f"{name}_bn")(x)
    return layers.LeakyReLU(negative_slope=LEAK, name=f"{name}_act")(x)


class _AutoencoderHalf(keras.Model):
    """What E and G share: the constructor arguments they keep, and the config built from them."""

    def _remember(self, image_shape, widths, latent_channels, sync_batchnorm, generator) -> None:
        self.image_shape = image_shape
        self.widths = widths
        self.latent_channels = int(latent_channels)
        self.sync_batchnorm = bool(sync_batchnorm)
        self.generator = generator

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable, "image_shape": list(self.image_shape),
                  "widths": list(self.widths), "latent_channels": self.latent_channels,
                  "sync_batchnorm": self.sync_batchnorm}
        if self.generator != "paper":  # written only when set: files of the paper's G stay byte-for-byte the same
            config["generator"] = self.generator
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="arnkit")
class Encoder(_AutoencoderHalf):
    """E: image -> (mu, logvar), each of shape latent_shape(image_shape, latent_channels).

    Strided 4x4 convolutions + BatchNorm + LeakyReLU(0.2), then two 3x3 convolution heads (VAE style, as in
    the official code). The training loop samples z = mu + exp(logvar / 2) * eps; inference uses mu.
    """

    def __init__(self, *, image_shape=(28, 28, 1), widths=(16, 32, 64, 128), latent_channels: int = 16,
                 sync_batchnorm: bool = False, generator: str = "paper", **kwargs):
        image_shape = _check_image_shape(image_shape)
        generator = _check_generator(generator)
        widths = tuple(int(w) for w in widths)
        if len(widths) != 4:
            raise ArnkitError(f"ARN encoder widths need 4 values, got {widths}")
        inputs = keras.Input(shape=image_shape, name="image")
        padded = x = layers.ZeroPadding2D(_padding(image_shape), name="pad")(inputs)
        features = []
        for i, width in enumerate(widths[:3]):
            x = layers.Conv2D(width, 4, strides=2, padding="same", use_bias=False, name=f"down{i + 1}")(x)
            x = _norm_act(x, f"down{i + 1}", sync_batchnorm)
            features.append(x)
        x = layers.Conv2D(widths[3], 3, padding="same", use_bias=False, name="mid")(x)
        x = _norm_act(x, "mid", sync_batchnorm)
        mu = layers.Conv2D(latent_channels, 3, padding="same", name="mu")(x)
        logvar = layers.Conv2D(latent_channels, 3, padding="same", name="logvar")(x)
        skips = [padded, *features] if generator == "residual_unet" else []
        super().__init__(inputs=inputs, outputs=[mu, logvar, *skips], **kwargs)
        self._remember(image_shape, widths, latent_channels, sync_batchnorm, generator)


@keras.saving.register_keras_serializable(package="arnkit")
class Decoder(_AutoencoderHalf):
    """G: latent map -> image in [0,1] of `image_shape`; mirrors the encoder with 4x4 stride-2 transposed convs."""

    def __init__(self, *, image_shape=(28, 28, 1), widths=(16, 32, 64, 128), latent_channels: int = 16,
                 sync_batchnorm: bool = False, generator: str = "paper", **kwargs):
        image_shape = _check_image_shape(image_shape)
        generator = _check_generator(generator)
        widths = tuple(int(w) for w in widths)
        if len(widths) != 4:
            raise ArnkitError(f"ARN decoder widths need 4 values, got {widths}")
        latent = keras.Input(shape=latent_shape(image_shape, latent_channels), name="latent")
        x = layers.Conv2D(widths[3], 3, padding="same", use_bias=False, name="mid")(latent)
        x = _norm_act(x, "mid", sync_batchnorm)
        if generator == "residual_unet":
            inputs, outputs = self._residual_unet(latent, x, image_shape, widths, sync_batchnorm)
        else:
            for i, width in enumerate(reversed(widths[:3])):
                x = layers.Conv2DTranspose(width, 4, strides=2, padding="same", use_bias=False,
                                           name=f"up{i + 1}")(x)
                x = _norm_act(x, f"up{i + 1}", sync_batchnorm)
            x = layers.Conv2D(image_shape[2], 3, padding="same", name="to_image")(x)
            x = layers.Activation("sigmoid", dtype="float32", name="to_unit_range")(x)
            inputs, outputs = latent, layers.Cropping2D(_padding(image_shape), name="crop")(x)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self._remember(image_shape, widths, latent_channels, sync_batchnorm, generator)

    @staticmethod
    def _residual_unet(latent, x, image_shape, widths, sync_batchnorm):
        """HGD-style: each up step concatenates E's feature map of the same size; the last conv predicts a
        correction added to the padded input, clipped to [0, 1] (ReLU with max 1 is that clip, and saves)."""
        side = [padded_size(s) for s in image_shape[:2]]
        image = keras.Input(shape=(*side, image_shape[2]), name="skip_image")
        features = [keras.Input(shape=(side[0] >> (i + 1), side[1] >> (i + 1), widths[i]), name=f"skip{i + 1}")
                    for i in range(3)]
        for i, width in enumerate(reversed(widths[:3])):
            x = layers.Concatenate(name=f"skip{3 - i}_join")([x, features[2 - i]])
            x = layers.Conv2DTranspose(width, 4, strides=2, padding="same", use_bias=False, name=f"up{i + 1}")(x)
            x = _norm_act(x, f"up{i + 1}", sync_batchnorm)
        x = layers.Concatenate(name="image_join")([x, image])
        # Zero-initialised: at init G is exactly the identity on [0, 1] images, so the restoration starts from
        # "change nothing" (the adversarial input, MSE = the perturbation) instead of a random sigmoid image,
        # and learns the correction, as HGD's denoiser learns the negative noise.
        delta = layers.Conv2D(image_shape[2], 3, padding="same", kernel_initializer="zeros",
                              bias_initializer="zeros", dtype="float32", name="to_correction")(x)
        restored = layers.Add(name="residual")([image, delta])
        restored = layers.ReLU(max_value=1.0, dtype="float32", name="to_unit_range")(restored)
        return [latent, image, *features], layers.Cropping2D(_padding(image_shape), name="crop")(restored)


@keras.saving.register_keras_serializable(package="arnkit")
class AttackDiscriminator(keras.Model):
    """D_A: latent map -> `num_domains` attack-type logits; an MLP with LeakyReLU(0.2) over the flattened map."""

    def __init__(self, *, latent_shape=(4, 4, 16), num_domains: int = 2, hidden=(128, 32), **kwargs):
        latent_shape = tuple(int(s) for s in latent_shape)
        hidden = tuple(int(h) for h in hidden)
        if num_domains < 2:
            raise ArnkitError(f"the attack discriminator needs at least 2 attack types, got {num_domains}")
        inputs = keras.Input(shape=latent_shape, name="latent")
        x = layers.Flatten(name="flatten")(inputs)
        for i, width in enumerate(hidden):
            x = layers.Dense(width, name=f"fc{i + 1}")(x)
            x = layers.LeakyReLU(negative_slope=LEAK, name=f"fc{i + 1}_act")(x)
        logits = layers.Dense(num_domains, dtype="float32", name="logits")(x)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.latent_shape = latent_shape
        self.num_domains = int(num_domains)
        self.hidden = hidden

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "latent_shape": list(self.latent_shape),
                "num_domains": self.num_domains, "hidden": list(self.hidden)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="arnkit")
class ImageDiscriminator(keras.Model):
    """D_I: image -> one logit (natural vs restored); 4x4 stride-2 convs + LeakyReLU, then an MLP head."""

    def __init__(self, *, image_shape=(28, 28, 1), widths=(16, 32, 64), hidden: int = 128, **kwargs):
        image_shape = _check_image_shape(image_shape)
        widths = tuple(int(w) for w in widths)
        inputs = keras.Input(shape=image_shape, name="image")
        x = inputs
        for i, width in enumerate(widths):
            x = layers.Conv2D(width, 4, strides=2, padding="same", name=f"down{i + 1}")(x)
            x = layers.LeakyReLU(negative_slope=LEAK, name=f"down{i + 1}_act")(x)
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(int(hidden), name="fc")(x)
        x = layers.LeakyReLU(negative_slope=LEAK, name="fc_act")(x)
        logit = layers.Dense(1, dtype="float32", name="logit")(x)
        super().__init__(inputs=inputs, outputs=logit, **kwargs)
        self.image_shape = image_shape
        self.widths = widths
        self.hidden = int(hidden)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "image_shape": list(self.image_shape),
                "widths": list(self.widths), "hidden": self.hidden}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def split_encoding(outputs) -> tuple[object, object, list]:
    """(mu, logvar, skips) of E's outputs; skips is empty for the paper's generator."""
    mu, logvar, *skips = outputs
    return mu, logvar, list(skips)


def decoder_inputs(latent, skips: list):
    """What G takes: the latent alone (the paper's G) or [latent, *skips] (the residual U-Net)."""
    return [latent, *skips] if skips else latent


def restore(encoder, decoder, x, *, training: bool = False):
    """The pre-processor's map x -> G(mu(E(x))) for either generator (inference uses mu, no sampling)."""
    mu, _, skips = split_encoding(encoder(x, training=training))
    return decoder(decoder_inputs(mu, skips), training=training)


def build_networks(image_shape, num_domains: int, preset: str = "default", *, sync_batchnorm: bool = False,
                   generator: str = "paper") -> tuple[Encoder, Decoder, AttackDiscriminator, ImageDiscriminator]:
    """E, G, D_A, D_I for `image_shape` with the widths of `preset` and G of kind `generator`."""
    image_shape = _check_image_shape(image_shape)
    w = get_preset(preset)
    encoder = Encoder(image_shape=image_shape, widths=w.encoder, latent_channels=w.latent_channels,
                      sync_batchnorm=sync_batchnorm, generator=generator, name="encoder")
    decoder = Decoder(image_shape=image_shape, widths=w.encoder, latent_channels=w.latent_channels,
                      sync_batchnorm=sync_batchnorm, generator=generator, name="decoder")
    attack_discriminator = AttackDiscriminator(latent_shape=latent_shape(image_shape, w.latent_channels),
                                               num_domains=num_domains, hidden=w.attack_hidden,
                                               name="attack_discriminator")
    image_discriminator = ImageDiscriminator(image_shape=image_shape, widths=w.image_widths, hidden=w.image_hidden,
                                             name="image_discriminator")
    return encoder, decoder, attack_discriminator, image_discriminator
