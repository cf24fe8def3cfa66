"""One table of cases over the whole registry, one shared set of contract assertions (foolbox style).

Every registered attack must appear in FAST: a new attack is tested the day it lands."""

import numpy as np
import pytest

from arnkit import attacks
from arnkit.errors import ArnkitError

# Small budgets so the table runs in seconds on 2 cores; floors are on the tiny undefended model.
FAST = {
    "fgsm": ({}, 0.5),
    "pgd_n": ({"steps": 10, "step_size": 0.05}, 0.9),
    "pgd_t": ({"steps": 10, "step_size": 0.05}, 0.8),
    "mim_n": ({}, 0.9),
    "mim_t": ({}, 0.8),
    "spsa_n": ({"nb_iter": 30, "spsa_samples": 32, "learning_rate": 0.05}, 0.8),
    "cw_n": ({"steps": 60, "binary_search_steps": 2, "learning_rate": 0.05}, 0.8),
    "ddn_n": ({"steps": 30}, 0.8),
    "jsma_t": ({"gamma": 0.3}, 0.5),
    "aa_n": ({"apgd_iter": 10, "fab_iter": 5, "square_queries": 50, "n_target_classes": 3}, 0.9),
    "sta_n": ({"steps": 30, "search_steps": 2}, 0.6),
    "sta_t": ({"steps": 30, "search_steps": 2}, 0.5),
    "fwa_n": ({"steps": 40, "eps": 0.5}, 0.5),
    "rp2": ({"steps": 60}, 0.6),
    "ap1": ({"steps": 60}, 0.0),
    "ap2": ({"steps": 60}, 0.0),
    "ap3": ({"steps": 60}, 0.0),
    "ap4": ({"steps": 60}, 0.0),
    "roa": ({"steps": 10}, 0.2),
}
N = 32
# Fewer steps still: test_a_call_depends_only_on_its_arguments makes five calls (FAST where absent).
CHEAP = {
    "pgd_n": {"steps": 3, "step_size": 0.05},
    "pgd_t": {"steps": 3, "step_size": 0.05},
    "mim_n": {"steps": 3},
    "mim_t": {"steps": 3},
    "spsa_n": {"nb_iter": 3, "spsa_samples": 8},
    "cw_n": {"steps": 2, "binary_search_steps": 1},
    "ddn_n": {"steps": 2},
    "jsma_t": {"gamma": 0.02},
    "aa_n": {"apgd_iter": 3, "fab_iter": 2, "square_queries": 10, "n_target_classes": 2},
    "sta_n": {"steps": 2, "search_steps": 1},
    "sta_t": {"steps": 2, "search_steps": 1},
    "fwa_n": {"steps": 2, "eps": 0.5},
    "rp2": {"steps": 2},
    **{f"ap{i}": {"steps": 3} for i in range(1, 5)},
    "roa": {"steps": 1, "stride": 6},
}


def test_every_registered_attack_has_a_case():
    assert set(FAST) == set(attacks.REGISTRY)


@pytest.fixture(scope="module")
def batch(mnist_tiny):
    _, x_test, y_test = mnist_tiny
    return x_test[:N].copy(), y_test[:N].copy()


@pytest.fixture(scope="module")
def tiny_classifier(mnist_tiny):
    """Real digits: spatial attacks need strokes they can bend (the synthetic squares are too far apart)."""
    return mnist_tiny[0]


@pytest.mark.parametrize("key", sorted(FAST))
def test_attack_contract(key, tiny_classifier, batch):
    x, y = batch
    x_before = x.copy()
    params, floor = FAST[key]
    attack = attacks.make(key, dataset="mnist", **params)
    result = attack(tiny_classifier, x, y, seed=0)
    np.testing.assert_array_equal(x, x_before)  # inputs never modified
    assert result.x_adv.shape == x.shape and result.x_adv.dtype == np.float32
    assert np.all(np.isfinite(result.x_adv))
    assert result.x_adv.min() >= 0.0 and result.x_adv.max() <= 1.0
    if attack.distance == "linf":
        assert np.abs(result.x_adv - x).max() <= attack.eps + 1e-6
    assert result.success.shape == (N,) and result.success.dtype == bool
    if attack.targeted:
        assert result.target is not None and np.all(result.target != y)
        pred = np.argmax(tiny_classifier.predict(result.x_adv, verbose=0), -1)
        np.testing.assert_array_equal(result.success, pred == result.target)
    else:
        pred = np.argmax(tiny_classifier.predict(result.x_adv, verbose=0), -1)
        np.testing.assert_array_equal(result.success, pred != y)
    assert result.success_rate >= floor, f"{key}: success {result.success_rate:.2f} below floor {floor}"
    assert repr(attack).startswith(type(attack).__name__ + "(")


@pytest.mark.parametrize("key", sorted(FAST))
def test_a_call_depends_only_on_its_arguments(key, tiny_classifier, batch):
    """Calls on a used object give what fresh objects give, even overlapping ones. Call B starts inside call A
    (from its progress callback, as a second thread sharing the object would), then A runs again: a seed or
    batch counter kept on the attack would give A's later batches B's random stream."""
    x, y = batch
    x1, y1, x2, y2 = x[:6], y[:6], x[6:10], y[6:10]  # batches of 2: A has three, B two

    def make():
        return attacks.make(key, dataset="mnist", **{**CHEAP.get(key, FAST[key][0]), "batch_size": 2})

    shared = make()
    fresh_a = shared(tiny_classifier, x1, y1, seed=1).x_adv  # its first call: what a fresh object gives
    fresh_b = make()(tiny_classifier, x2, y2, seed=2).x_adv
    inner = []

    def start_b(_n):
        if not inner:  # after A's first batch
            inner.append(shared(tiny_classifier, x2, y2, seed=2).x_adv)

    first_a = shared(tiny_classifier, x1, y1, seed=1, on_batch=start_b).x_adv
    again_a = shared(tiny_classifier, x1, y1, seed=1).x_adv
    np.testing.assert_array_equal(first_a, fresh_a)
    np.testing.assert_array_equal(inner[0], fresh_b)
    np.testing.assert_array_equal(again_a, fresh_a)


@pytest.mark.parametrize("key", [k for k in sorted(FAST) if "eps" in attacks.make(k, **FAST[k][0]).params()])
def test_eps_zero_is_identity(key, tiny_classifier, batch):
    x, y = batch
    attack = attacks.make(key, dataset="mnist", **{**FAST[key][0], "eps": 0.0})
    result = attack(tiny_classifier, x, y, seed=0)
    np.testing.assert_allclose(result.x_adv, x, atol=1e-6)


def test_spsa_refuses_a_budget_too_small_to_estimate_a_gradient():
    for bad, match in (({"spsa_samples": 1}, "even integer >= 2"), ({"spsa_samples": 7}, "even integer"),
                       ({"nb_iter": 0}, "nb_iter must be"), ({"delta": 0.0}, "delta must be > 0"),
                       ({"learning_rate": -1.0}, "learning_rate must be > 0")):
        with pytest.raises(ArnkitError, match=match):
            attacks.make("spsa_n", dataset="mnist", **bad)


def test_spsa_does_not_need_gradients(tiny_classifier, batch):
    """Behind a backward pass of zeros (a planted masking layer) SPSA's success is unchanged, PGD's collapses."""
    import keras
    import tensorflow as tf

    x, y = batch
    masked = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.Lambda(tf.stop_gradient), tiny_classifier])
    spsa = attacks.make("spsa_n", dataset="mnist", **FAST["spsa_n"][0])
    pgd = attacks.make("pgd_n", dataset="mnist", **FAST["pgd_n"][0], random_start=False)
    assert spsa(masked, x, y, seed=0).success_rate >= FAST["spsa_n"][1]
    assert pgd(masked, x, y, seed=0).success_rate < 0.5


@pytest.mark.parametrize("key", ["fgsm", "pgd_n", "aa_n"])
def test_success_does_not_fall_as_eps_grows(key, tiny_classifier, batch):
    x, y = batch
    base = FAST[key][0]
    scale = (0.05, 0.15, 0.3)
    rates = [attacks.make(key, dataset="mnist", **{**base, "eps": e})(tiny_classifier, x, y, seed=0).success_rate
             for e in scale]
    assert rates == sorted(rates), rates


def test_bad_inputs_get_clear_errors(tiny_classifier, batch):
    x, y = batch
    attack = attacks.make("fgsm", dataset="mnist")
    with pytest.raises(ArnkitError, match=r"in \[0, 1\], got range \[0, 255\]; divide 0-255 images by 255"):
        attack(tiny_classifier, x * 255, y)
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ArnkitError, match="NaN"):
        attack(tiny_classifier, bad, y)
    with pytest.raises(ArnkitError, match="labels must have shape"):
        attack(tiny_classifier, x, y[:-1])
    with pytest.raises(ArnkitError, match="4-D"):
        attack(tiny_classifier, x[0], y[:1])
    with pytest.raises(ArnkitError, match="unknown attack 'pgd'.*pgd_n"):
        attacks.make("pgd")
    with pytest.raises(ArnkitError, match="targets equal the true label"):
        attacks.make("pgd_t", dataset="mnist", steps=1)(tiny_classifier, x, y, target=y)
    with pytest.raises(ArnkitError, match="bad parameter"):
        attacks.make("pgd_n", bogus=1)


def test_targeted_needs_two_classes():
    from arnkit.attacks.base import random_targets

    with pytest.raises(ArnkitError, match="at least 2 classes"):
        random_targets(np.zeros(3, np.int64), 1, seed=0)
    t = random_targets(np.arange(10) % 4, 4, seed=3)
    assert np.all(t != np.arange(10) % 4) and np.array_equal(t, random_targets(np.arange(10) % 4, 4, seed=3))
