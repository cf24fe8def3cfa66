"""ARN's training step on TensorFlow, JAX and torch: one fixed batch gives the same losses and updated weights;
30-step JAX and torch runs make the losses fall; on both, 2 + 2 steps across a checkpoint give the weights of 4;
JAX data parallel over 2 (virtual CPU) devices changes nothing.

The JAX and torch sides run in subprocesses (tests/backend_runs/arn_step.py): Keras picks its backend once per
process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

pytest.importorskip("jax")

from arnkit.defenses.arn import ARN, ARNConfig, read_checkpoint  # noqa: E402

SCRIPT = Path(__file__).parent / "backend_runs" / "arn_step.py"
B, K = 8, 2


def run_backend(mode: str, folder: Path, *, devices: int = 1, backend: str = "jax") -> None:
    """Run arn_step.py MODE on `backend` (jax or torch) in a child process."""
    if backend == "torch":
        pytest.importorskip("torch")
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu"}
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    done = subprocess.run([sys.executable, str(SCRIPT), mode, str(folder)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def tiny_guide() -> keras.Model:
    keras.utils.set_random_seed(1)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def prepare(folder: Path, config: ARNConfig, *, guide: keras.Model | None):
    """An ARN, its initial checkpoint, one batch and its noise, written to `folder` for the JAX side."""
    keras.utils.set_random_seed(0)
    arn = ARN(image_shape=(28, 28, 1), num_attacks=K, config=config, guide=guide)
    arn.compile()
    # Start from trained-looking BatchNorm statistics and optimizer moments, not only from zeros.
    rng = np.random.default_rng(0)
    for player in ("encoder", "decoder"):
        for variable in getattr(arn, player).non_trainable_variables:
            shift = rng.uniform(0.5, 1.5, variable.shape) if "variance" in variable.path else rng.normal(0, .1, variable.shape)
            variable.assign(shift.astype("float32"))
    arn.save_checkpoint(folder / "initial.npz")
    if guide is not None:
        guide.save(folder / "guide.keras")
    x_nat = rng.uniform(size=(B, 28, 28, 1)).astype(np.float32)
    x_adv = np.clip(x_nat[:, None] + rng.uniform(-.3, .3, (B, K, 28, 28, 1)), 0, 1).astype(np.float32)
    domains = arn.num_domains
    normal = rng.normal(size=(domains * B, 4, 4, arn.encoder.latent_channels)).astype(np.float32)
    uniform = rng.uniform(size=(domains * B,)).astype(np.float32)
    np.savez(folder / "batch.npz", x_adv=x_adv, x_nat=x_nat, normal=normal, uniform=uniform)
    return arn, x_adv, x_nat, {"normal": normal, "uniform": uniform}


def tf_step(arn, x_adv, x_nat, noise) -> dict[str, float]:
    import tensorflow as tf

    values = arn.apply_step(x_adv, x_nat, noise=lambda kind, _shape: tf.constant(noise[kind]))
    return {name: float(value) for name, value in values.items() if np.ndim(value) == 0}


CONFIGS = {
    # MNIST's default recipe: the paper objective with logit guidance (needs the target classifier).
    "paper+guide": (dict(objective="paper", guide_weight=1.0), True),
    # The official code's objective: BCE losses, natural images as a domain, the WGAN-GP penalty.
    "reference": (dict(objective="reference"), False),
    # EMA of E's and G's weights (issue 29's lever): the averages are optimizer variables, checked like the rest.
    "paper+ema": (dict(objective="paper", ema=0.9), False),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_tf_jax_and_torch_agree_on_one_batch(tmp_path, name):
    overrides, with_guide = CONFIGS[name]
    config = ARNConfig.for_dataset("mnist", preset="tiny", **overrides)
    arn, x_adv, x_nat, noise = prepare(tmp_path, config, guide=tiny_guide() if with_guide else None)
    tf_losses = tf_step(arn, x_adv, x_nat, noise)
    arn.save_checkpoint(tmp_path / "tf.npz")
    if with_guide:
        assert tf_losses["guide"] > 0
    if name == "reference":
        assert tf_losses["gp"] > 0
    _, initial = read_checkpoint(tmp_path / "initial.npz")
    _, after_tf = read_checkpoint(tmp_path / "tf.npz")
    for other in ("jax", "torch"):
        run_backend("step", tmp_path, backend=other)
        other_losses = json.loads((tmp_path / f"{other}.json").read_text())["losses"]
        for loss in ("e_loss", "g_loss", "da_loss", "di_loss", "mse", "att", "nor", "adv", "gp", "guide"):
            assert other_losses[loss] == pytest.approx(tf_losses[loss], rel=1e-4, abs=1e-5), (other, loss)
        _, after_other = read_checkpoint(tmp_path / f"{other}.npz")
        assert after_tf.keys() == after_other.keys()
        moved = 0
        for key in after_tf:
            if key.startswith("seed_generator"):
                continue  # TF drew nothing from it (fixed noise); neither do JAX (keys fold in the step) nor torch
            tf_value, other_value = after_tf[key].astype(np.float64), after_other[key].astype(np.float64)
            moved += int(not np.allclose(tf_value, initial[key]))
            # Float round-off only: every weight, BatchNorm statistic and Adam moment (the moments are the
            # gradient and its square) agrees to 1e-4 of its tensor's scale (measured: under 1e-5).
            scale = np.abs(tf_value).max()
            assert np.abs(other_value - tf_value).max() <= 1e-4 * scale + 1e-9, (other, key)
        assert moved > 20  # the step changed weights, statistics and optimizer state on both backends


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_losses_fall_over_30_tiny_steps(tmp_path, backend):
    run_backend("fall", tmp_path, backend=backend)
    result = json.loads((tmp_path / f"fall-{backend}.json").read_text())
    history = result["history"]
    assert result["step"] == 30 and len(history) == 30
    first, last = history[:5], history[-5:]
    for loss in ("mse", "g_loss", "e_loss"):
        before, after = np.mean([h[loss] for h in first]), np.mean([h[loss] for h in last])
        assert after < 0.8 * before, (loss, before, after)
    assert all(np.isfinite(h[name]) for h in history for name in h)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_resumed_run_matches_an_uninterrupted_one(tmp_path, backend):
    run_backend("resume", tmp_path, backend=backend)
    _, straight = read_checkpoint(tmp_path / f"resume-{backend}-straight.npz")
    _, resumed = read_checkpoint(tmp_path / f"resume-{backend}-resumed.npz")
    assert straight.keys() == resumed.keys()
    for key in straight:
        if key.startswith("seed_generator"):
            continue
        assert np.allclose(straight[key], resumed[key], rtol=1e-5, atol=1e-6), key


def test_jax_data_parallel_matches_one_device(tmp_path):
    config = ARNConfig.for_dataset("mnist", preset="tiny")
    prepare(tmp_path, config, guide=None)
    run_backend("step", tmp_path)
    run_backend("dp", tmp_path, devices=2)
    single = json.loads((tmp_path / "jax.json").read_text())
    split = json.loads((tmp_path / "dp.json").read_text())
    assert split["devices"] == 2
    for loss, value in single["losses"].items():
        assert split["losses"][loss] == pytest.approx(value, rel=1e-4, abs=1e-5), loss
    _, one = read_checkpoint(tmp_path / "jax.npz")
    _, two = read_checkpoint(tmp_path / "dp.npz")
    for key in one:
        assert np.abs(one[key] - two[key]).max() <= 1e-4 * np.abs(one[key]).max() + 1e-9, key
