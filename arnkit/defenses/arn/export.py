"""Deploying a trained ARN (Zhou et al., ICML 2021): the pre-processor x -> G(E(x)).

The exported model is a plain functional Keras model made of the registered `Encoder` and `Decoder`
(networks.py, keras.layers only; with the residual U-Net generator E's skip maps feed G inside the same file): it
takes images in [0,1] NHWC and returns restored images of the same
shape in [0,1], using the posterior mean (no sampling) and BatchNorm's moving statistics. It is saved as
`.keras` and loads with safe_mode under the TensorFlow, JAX and torch backends.

Example::

    preprocessor = export_preprocessor(arn)
    save_defense(preprocessor, "arn_mnist.keras")
    defense = load_defense("arn_mnist.keras")     # works under KERAS_BACKEND=jax too
    logits = classifier(defense(x_adv))
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras

from arnkit.defenses.arn.networks import Decoder, Encoder, restore


def export_preprocessor(arn: Any, *, name: str = "arn_preprocessor") -> keras.Model:
    """A standalone x -> G(mu(E(x))) model with copies of `arn`'s trained encoder and decoder weights.

    `arn` is an ARN (or anything with `.encoder` / `.decoder` networks from networks.py). BatchNorm is
    rebuilt unsynchronised, so the file does not depend on tf.distribute or the TensorFlow backend.
    """
    encoder = Encoder.from_config({**arn.encoder.get_config(), "sync_batchnorm": False})
    decoder = Decoder.from_config({**arn.decoder.get_config(), "sync_batchnorm": False})
    encoder.set_weights(arn.encoder.get_weights())
    decoder.set_weights(arn.decoder.get_weights())
    inputs = keras.Input(shape=tuple(encoder.image_shape), name="image")
    restored = restore(encoder, decoder, inputs)
    return keras.Model(inputs, restored, name=name)


def save_defense(model: keras.Model, path: str | os.PathLike, *, dataset: str = "") -> Path:
    """Save an exported pre-processor as a `.keras` file with its defense header (kind, key), atomically."""
    from arnkit.defenses.files import save_defense_file

    return save_defense_file(model, path, key="arn", kind="preprocessor", dataset=dataset)


def load_defense(path: str | os.PathLike) -> keras.Model:
    """Load a pre-processor saved by `save_defense` (safe_mode; ArnkitError on a bad or unsafe file)."""
    from arnkit.defenses.arn import networks  # noqa: F401  (registers Encoder / Decoder for deserialisation)
    from arnkit.io import load_model

    return load_model(path)
