"""PGD_N, PGD_T and FGSM on the JAX and torch backends, checked against the TensorFlow backend.

Keras fixes its backend per process, so each backend runs `_SCRIPT` in a subprocess with KERAS_BACKEND set and
TensorFlow made unimportable: it trains a tiny seeded LeNet on the synthetic set, saves it as .keras, saves the
no-random-start PGD / FGSM images, checks the attack contract and runs the registry's `pgd_n` for MNIST. A
TensorFlow subprocess, started alongside, loads each saved model and runs the same attacks: the images must
agree up to float round-off. `nox -s backends` runs this file; the
backend list is `BACKENDS` (a backend whose package is missing is skipped).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

BACKENDS = ("jax", "torch")
REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300

# Runs in the child: `python -c _SCRIPT MODE WORKDIR`, KERAS_BACKEND set by the parent.
_SCRIPT = textwrap.dedent('''
    import json, sys, time
    from pathlib import Path

    BLOCKED = ("tensorflow", "tensorflow_datasets", "cleverhans")
    mode, work = sys.argv[1], Path(sys.argv[2])
    if mode != "reference":
        # As if TensorFlow were not installed: `import tensorflow` raises ImportError and
        # importlib.util.find_spec answers None (a meta_path finder that raises breaks torch's own probing).
        for name in BLOCKED:
            sys.modules[name] = None

    import keras
    import numpy as np

    from arnkit import attacks, data
    from arnkit.attacks.base import norms
    from arnkit.attacks.pgd import FGSM, PGD, sign_gradient_descent
    from arnkit.models import build

    EPS = 0.3
    BATCH = {"batch_size": 32}  # one batch shape throughout: JAX compiles the attack loop once
    backend = keras.backend.backend()
    x_test, y_test, meta = data.load_arrays("synthetic", "test")
    x, y = x_test[:64], y_test[:64]
    target = (y + 1) % meta.num_classes


    def fixed_attacks(model):
        """The deterministic attacks every backend must agree on (no random start)."""
        plain = PGD(eps=EPS, steps=10, step_size=0.05, random_start=False, **BATCH)(model, x, y).x_adv
        aimed = PGD(eps=EPS, steps=10, step_size=0.05, random_start=False, targeted=True, **BATCH)(
            model, x, y, target=target).x_adv
        margin = sign_gradient_descent(model, x, x, y, eps=EPS, step_size=0.05, steps=5, ascend=True,
                                       margin_kappa=2.0)
        return {"pgd": plain, "pgd_t": aimed, "margin": keras.ops.convert_to_numpy(margin),
                "fgsm": FGSM(eps=0.1, **BATCH)(model, x, y).x_adv}


    def check_contract(model):
        clean_error = float(np.mean(np.argmax(keras.ops.convert_to_numpy(model(x)), -1) != y))
        fast = {"steps": 20, "step_size": 0.03, **BATCH}
        pgd_n = attacks.make("pgd_n", dataset="synthetic", **fast)(model, x, y, seed=0)
        pgd_t = attacks.make("pgd_t", dataset="synthetic", **fast)(model, x, y, target=target, seed=0)
        fgsm = FGSM(eps=EPS, **BATCH)(model, x, y)
        assert clean_error <= 0.1, clean_error
        assert pgd_n.success_rate >= clean_error + 0.8, (clean_error, pgd_n.success_rate)
        assert pgd_t.success_rate >= 0.8, pgd_t.success_rate
        np.testing.assert_array_equal(pgd_t.pred[pgd_t.success], target[pgd_t.success])
        for result in (pgd_n, pgd_t, fgsm):
            assert result.x_adv.shape == x.shape and result.x_adv.dtype == np.float32
            assert result.x_adv.min() >= 0.0 and result.x_adv.max() <= 1.0
            assert norms(x, result.x_adv)["linf"].max() <= EPS + 1e-6
        # FGSM: every pixel that moved and was not clipped at 0 or 1 moved by exactly eps.
        delta = fgsm.x_adv - x
        free = (delta != 0) & (fgsm.x_adv > 0.0) & (fgsm.x_adv < 1.0)
        assert free.mean() > 0.3, free.mean()
        np.testing.assert_allclose(np.abs(delta[free]), EPS, atol=1e-6)
        np.testing.assert_allclose(norms(x, fgsm.x_adv)["linf"], EPS, atol=1e-6)
        # The random start repeats for a seed, changes with it, and differs between batches.
        pgd = PGD(eps=EPS, steps=3, step_size=0.01, **BATCH)
        first, again = pgd(model, x, y, seed=5).x_adv, pgd(model, x, y, seed=5).x_adv
        np.testing.assert_array_equal(first, again)
        assert not np.array_equal(first, pgd(model, x, y, seed=6).x_adv)
        assert not np.array_equal(first[:32] - x[:32], first[32:] - x[32:])
        weak = {"eps": 0.1, "steps": 3, "step_size": 0.03, **BATCH}
        one, many = PGD(**weak)(model, x, y, seed=0), PGD(**weak, restarts=3)(model, x, y, seed=0)
        assert many.success_rate >= one.success_rate
        return {"clean_error": clean_error, "pgd_n": pgd_n.success_rate, "pgd_t": pgd_t.success_rate,
                "fgsm": fgsm.success_rate}


    def train():
        x_train, y_train, _ = data.load_arrays("synthetic", "train")
        keras.utils.set_random_seed(0)
        model = build("lenet", meta.shape, meta.num_classes, width=8, hidden=32)
        model.compile(optimizer=keras.optimizers.Adam(3e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x_train, y_train, epochs=2, batch_size=64, verbose=0)
        return model


    if mode == "attack":
        model = train()
        model.save(work / f"{backend}.keras")
        np.savez(work / f"{backend}.npz", **fixed_attacks(model))
        (work / f"{backend}.ready").touch()  # the TensorFlow child may start on this model now
        report = check_contract(model)
        # The registry's paper attack (MNIST: 40 steps of .01 in eps .3, random start) with TensorFlow blocked.
        report["paper_pgd_n"] = attacks.make("pgd_n", dataset="mnist", **BATCH)(model, x, y, seed=0).success_rate
        report["tensorflow_loaded"] = any(sys.modules.get(name) is not None for name in BLOCKED)
    elif mode == "reference":  # TensorFlow, started alongside: the same attacks on each backend's saved model
        report = {"compared": []}
        for name in sys.argv[3:]:
            while not (work / f"{name}.ready").exists():
                if (work / f"{name}.gone").exists():  # that backend's child failed
                    break
                time.sleep(0.2)
            else:
                model = keras.models.load_model(work / f"{name}.keras")
                np.savez(work / f"{name}_tf.npz", **fixed_attacks(model))
                report["compared"].append(name)
    (work / f"report_{mode}_{backend}.json").write_text(json.dumps({"backend": backend, **report}))
''')


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _start(backend: str, mode: str, work: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", _SCRIPT, mode, str(work), *args], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, backend: str, mode: str, work: Path) -> dict | str:
    """The child's report, or why it failed (a string: the test that needs it fails with it)."""
    try:
        _, stderr = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return f"{mode} on {backend} ran past {TIMEOUT_S} s"
    if proc.returncode != 0:
        return f"{mode} on {backend} failed:\n{stderr[-4000:]}"
    return json.loads((work / f"report_{mode}_{backend}.json").read_text())


def _report(runs: dict, mode: str, backend: str) -> dict:
    if (mode, backend) not in runs:
        pytest.skip(f"{backend} is not installed")
    report = runs[mode, backend]
    assert isinstance(report, dict), report
    assert report["backend"] == backend
    return report


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """(mode, backend) -> report, every child started at once: on 2 cores their imports and compiles overlap,
    and the TensorFlow child waits for each backend's model."""
    work = tmp_path_factory.mktemp("backends")
    present = [b for b in BACKENDS if _installed(b)]
    procs = {("attack", b): _start(b, "attack", work) for b in present}
    if _installed("tensorflow") and present:
        procs["reference", "tensorflow"] = _start("tensorflow", "reference", work, *present)
    out: dict = {"work": work}
    for (mode, backend), proc in procs.items():
        out[mode, backend] = _finish(proc, backend, mode, work)
        if mode == "attack" and not (work / f"{backend}.ready").exists():
            (work / f"{backend}.gone").touch()
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_pgd_and_fgsm_contract(runs, backend):
    report = _report(runs, "attack", backend)
    assert report["pgd_n"] >= 0.9 and report["pgd_t"] >= 0.8, report


@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_the_tensorflow_backend(runs, backend):
    """Same weights, no random start: the backend's images are TensorFlow's up to float round-off."""
    if not _installed("tensorflow"):
        pytest.skip("tensorflow is not installed: no reference backend")
    _report(runs, "attack", backend)
    assert backend in _report(runs, "reference", "tensorflow")["compared"]
    work = runs["work"]
    ours, theirs = np.load(work / f"{backend}.npz"), np.load(work / f"{backend}_tf.npz")
    for key in ("pgd", "pgd_t", "margin", "fgsm"):
        diff = np.abs(ours[key] - theirs[key])
        # A gradient component at ~0 may get a different sign on another backend and then drift; the rest match.
        assert np.mean(diff > 1e-4) <= 0.02, (key, np.mean(diff > 1e-4))
        assert np.mean(diff.reshape(len(diff), -1).max(axis=1) > 1e-4) <= 0.2, key


@pytest.mark.parametrize("backend", BACKENDS)
def test_pgd_n_runs_with_tensorflow_blocked(runs, backend):
    """The children run with TensorFlow, tensorflow_datasets and cleverhans unimportable: nothing loaded them."""
    report = _report(runs, "attack", backend)
    assert not report["tensorflow_loaded"]
    assert report["paper_pgd_n"] >= 0.9, report
