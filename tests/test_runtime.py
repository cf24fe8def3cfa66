"""oneDNN on by default on every x86-64 CPU, and results that agree with TensorFlow's Eigen kernels.

`TF_ENABLE_ONEDNN_OPTS` is read when TensorFlow is imported, so each setting runs in its own subprocess."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np
import pytest

X86 = platform.machine().lower() in {"x86_64", "amd64"}


def _python(code: str, env_changes: dict[str, str | None], timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


_STATUS = """
import os, arnkit, tensorflow
from arnkit import runtime
print(os.environ.get("TF_ENABLE_ONEDNN_OPTS"), runtime.onednn_enabled(), runtime.describe()["cpu_isa"])
"""


@pytest.mark.skipif(not X86, reason="oneDNN is preferred on x86-64 only")
def test_importing_arnkit_turns_onednn_on_unless_the_user_chose():
    var, enabled, isa = _python(_STATUS, {"TF_ENABLE_ONEDNN_OPTS": None}).stdout.split()
    assert var == "1" and enabled == "True" and isa in {"avx512", "avx2", "avx", "other"}
    var, enabled, _ = _python(_STATUS, {"TF_ENABLE_ONEDNN_OPTS": "0"}).stdout.split()
    assert var == "0" and enabled == "False"  # the user's choice wins


def test_prefer_onednn_is_a_no_op_once_tensorflow_is_imported(monkeypatch):
    import tensorflow  # noqa: F401

    from arnkit import runtime

    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    assert runtime.prefer_onednn() is None and "TF_ENABLE_ONEDNN_OPTS" not in os.environ
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert runtime.prefer_onednn() == "0"


# One PGD run and one ARN step from fixed weights and data; every result saved for comparison.
_KERNELS = """
import sys, numpy as np, arnkit, keras, tensorflow as tf
from arnkit import data, runtime
from arnkit.attacks import make
from arnkit.defenses.arn import ARN, ARNConfig
from arnkit.models import build
x, y, meta = data.load_arrays("synthetic", "test", limit=64)
keras.utils.set_random_seed(0)
model = build("lenet", meta.shape, meta.num_classes, width=8, hidden=32)
xt, yt = tf.constant(x), tf.constant(y)
with tf.GradientTape() as tape:
    tape.watch(xt)
    loss = keras.losses.sparse_categorical_crossentropy(yt, model(xt), from_logits=True)
input_grad = tape.gradient(loss, xt).numpy()
attack = make("pgd_n", dataset="mnist", steps=10)
crafted = attack(model, x, y, seed=0)
pgd = crafted.x_adv
keras.utils.set_random_seed(0)
arn = ARN(image_shape=meta.shape, num_attacks=2, config=ARNConfig(preset="default", learning_rate=1e-3))
arn.compile()
batch = {"adversarial": tf.constant(np.stack([pgd[:32], np.clip(x[:32] + .1, 0, 1)], 1)),
         "natural": tf.constant(x[:32])}
grads, values = arn.compute_gradients(batch["adversarial"], batch["natural"])
logs = arn.train_step(batch)
out = {"onednn": np.array(runtime.onednn_enabled()), "input_grad": input_grad, "pgd": pgd, "x": x,
       "eps": np.array(attack.eps), "pgd_pred": crafted.pred}
out.update({f"loss_{k}": np.array(float(v)) for k, v in values.items()})
for player, gs in grads.items():
    for i, g in enumerate(gs):
        out[f"grad_{player}_{i}"] = g.numpy()
for i, w in enumerate(arn.weights):
    out[f"weight_{i}"] = np.asarray(w)
np.savez(sys.argv[1] if len(sys.argv) > 1 else "out.npz", **out)
"""


@pytest.mark.slow  # two subprocesses with TensorFlow: ~30 s
def test_onednn_and_eigen_agree_on_pgd_and_an_arn_step(tmp_path):
    results = {}
    for flag in ("0", "1"):
        path = tmp_path / f"onednn{flag}.npz"
        _python(_KERNELS.replace('sys.argv[1] if len(sys.argv) > 1 else "out.npz"', repr(str(path))),
                {"TF_ENABLE_ONEDNN_OPTS": flag})
        results[flag] = dict(np.load(path))
    eigen, onednn = results["0"], results["1"]
    assert not bool(eigen["onednn"])
    if not bool(onednn["onednn"]):
        pytest.skip("this TensorFlow build has no oneDNN kernels")

    def rel(a, b):
        return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-12))

    # Input gradients (what every attack follows): equal to float32 round-off.
    assert rel(eigen["input_grad"], onednn["input_grad"]) < 1e-4
    # PGD images: sign steps amplify round-off only where a gradient entry is ~0, so nearly every pixel is
    # bit-for-bit or round-off equal, and none leaves the eps ball.
    np.testing.assert_array_equal(eigen["x"], onednn["x"])  # same clean images: the comparison is fair
    eps = float(eigen["eps"])
    assert eps == 0.3, eps  # MNIST's PGD budget; the ball checked below is that one
    for run in (eigen, onednn):
        assert float(np.abs(run["pgd"] - run["x"]).max()) <= eps + 1e-6
        assert float(run["pgd"].min()) >= 0.0 and float(run["pgd"].max()) <= 1.0
        assert float(np.abs(run["pgd"] - run["x"]).mean()) > 0.05  # the attack moved the images at all
    diff = np.abs(eigen["pgd"] - onednn["pgd"])
    assert float(np.mean(diff > 1e-5)) < 0.01, float(np.mean(diff > 1e-5))
    assert float(diff.mean()) < 1e-3, float(diff.mean())  # the few pixels that differ are few, not large
    # What the attack decides: the model's label on each adversarial image, nearly always the same.
    assert float(np.mean(eigen["pgd_pred"] == onednn["pgd_pred"])) >= 0.95
    # One ARN step: every loss term, every player's gradient, then the weights after the Adam update.
    for key in (k for k in eigen if k.startswith("loss_")):
        assert np.isclose(eigen[key], onednn[key], rtol=1e-4, atol=1e-6), (key, eigen[key], onednn[key])
    worst = max(rel(eigen[k], onednn[k]) for k in eigen if k.startswith("grad_") and np.any(eigen[k]))
    assert worst < 1e-3, worst
    # Adam's first step is ~lr * sign(g): a gradient entry within round-off of 0 may step either way (2 lr).
    weights = [k for k in eigen if k.startswith("weight_")]
    moved = np.concatenate([np.abs(eigen[k] - onednn[k]).ravel() for k in weights])
    assert float(moved.max()) <= 2e-3 + 1e-6 and float(np.mean(moved > 1e-5)) < 0.01
