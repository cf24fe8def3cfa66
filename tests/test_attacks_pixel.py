"""Pixel-constrained attacks: FGSM, PGD (L-inf), Carlini-Wagner L2, DDN (L2).

Small models from conftest: `tiny_classifier` on the 4-class synthetic set, `mnist_tiny` (a small LeNet on real
MNIST). Reduced step counts keep the file fast; the full paper settings run behind `-m slow`.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from arnkit import attacks
from arnkit.attacks.base import norms
from arnkit.attacks.cw import CarliniWagnerL2, _update_constants
from arnkit.attacks.ddn import DDN
from arnkit.attacks.pgd import FGSM, PGD
from arnkit.errors import ArnkitError

# Success floors on the undefended synthetic model: one FGSM step is the weakest.
FLOORS = {"fgsm": 0.5, "pgd_n": 0.95, "pgd_t": 0.9, "cw_n": 0.95, "ddn_n": 0.95}
FAST_CW = {"steps": 100, "learning_rate": 0.1, "binary_search_steps": 3}  # converges in far fewer steps than 500x4


@pytest.fixture(scope="module")
def synthetic(tiny_classifier, synthetic_data):
    _, _, x_test, y_test, _ = synthetic_data
    return tiny_classifier, x_test[:64], y_test[:64]


@pytest.fixture(scope="module")
def mnist(mnist_tiny):
    model, x, y = mnist_tiny
    correct = np.argmax(model.predict(x, verbose=0), -1) == y
    return model, x[correct], y[correct]  # attacks are judged on images the model gets right


def _fast(key: str):
    if key.startswith("cw"):
        return attacks.make(key, dataset="synthetic", **FAST_CW)
    if key.startswith("ddn"):
        return attacks.make(key, dataset="synthetic", steps=30)
    return attacks.make(key, dataset="synthetic")


@pytest.mark.parametrize("key", ["fgsm", "pgd_n", "pgd_t", "cw_n", "ddn_n"])
def test_output_contract(synthetic, key):
    model, x, y = synthetic
    x_before = x.copy()
    attack = _fast(key)
    result = attack(model, x, y, seed=0)
    assert result.x_adv.shape == x.shape and result.x_adv.dtype == np.float32
    assert np.all(np.isfinite(result.x_adv))
    assert result.x_adv.min() >= 0.0 and result.x_adv.max() <= 1.0
    np.testing.assert_array_equal(x, x_before)  # the caller's array is not modified in place
    if attack.has_eps:
        assert norms(x, result.x_adv)["linf"].max() <= attack.eps + 1e-6
    assert result.success_rate >= FLOORS[key], f"{key} success {result.success_rate} on an undefended tiny model"


def test_registry_gives_paper_defaults():
    pgd_n = attacks.make("pgd_n", dataset="mnist")
    assert isinstance(pgd_n, PGD) and not pgd_n.targeted
    assert (pgd_n.eps, pgd_n.steps, pgd_n.step_size, pgd_n.random_start) == (0.3, 40, 0.01, True)
    assert attacks.make("pgd_t", dataset="cifar10").targeted
    assert attacks.make("pgd_t", dataset="cifar10").eps == pytest.approx(8 / 255)
    cw = attacks.make("cw_n", dataset="mnist")
    assert (cw.steps, cw.confidence, cw.initial_const, cw.learning_rate, cw.binary_search_steps) == (
        500, 1.0, 1.0, 1e-2, 4)
    assert cw.distance == "l2" and not cw.has_eps and not hasattr(cw, "eps")
    ddn = attacks.make("ddn_n", dataset="mnist")
    assert (ddn.steps, ddn.gamma, ddn.init_norm, ddn.levels, ddn.quantize) == (100, 0.05, 1.0, 256, True)
    assert "eps=0.3" in repr(pgd_n)


def test_bad_arguments_are_rejected():
    with pytest.raises(ArnkitError):
        PGD(eps=-0.1)
    with pytest.raises(ArnkitError):
        PGD(eps=30)  # a 0-255 budget
    with pytest.raises(ArnkitError):
        CarliniWagnerL2(binary_search_steps=0)
    with pytest.raises(ArnkitError):
        DDN(gamma=1.5)
    with pytest.raises(TypeError):
        PGD(epsilon=0.3)  # unknown keyword
    with pytest.raises(ArnkitError):
        attacks.make("pgd_n", epsilon=0.3)


@pytest.mark.parametrize("attack", [PGD(eps=0.0), FGSM(eps=0.0), PGD(eps=0.0, targeted=True)])
def test_zero_eps_is_identity(synthetic, attack):
    model, x, y = synthetic
    np.testing.assert_array_equal(attack(model, x, y, seed=3).x_adv, x)


def test_pgd_success_floor_and_monotone_in_eps(mnist):
    model, x, y = mnist
    rates = [PGD(eps=eps, steps=20, step_size=eps / 8 or 0.01)(model, x, y, seed=0).success_rate
             for eps in (0.0, 0.05, 0.1, 0.2, 0.3)]
    assert rates[0] == 0.0
    assert rates == sorted(rates), rates
    assert rates[-1] >= 0.95, rates
    assert FGSM(eps=0.3)(model, x, y).success_rate >= 0.5


def test_targeted_pgd_hits_the_targets(mnist):
    model, x, y = mnist
    target = (y + 3) % 10
    result = attacks.make("pgd_t", dataset="mnist")(model, x, y, target=target, seed=0)
    np.testing.assert_array_equal(result.target, target)
    assert result.success_rate >= 0.9
    np.testing.assert_array_equal(result.pred[result.success], target[result.success])
    # Random targets (the default) differ from the true label and are mostly hit too.
    auto = attacks.make("pgd_t", dataset="mnist")(model, x, y, seed=1)
    assert np.all(auto.target != y) and auto.success_rate >= 0.9


def test_pgd_is_deterministic_given_the_seed(synthetic):
    model, x, y = synthetic
    pgd = PGD(eps=0.3, steps=3, step_size=0.01, batch_size=32)  # small steps: the random start still shows
    first, again = pgd(model, x, y, seed=5).x_adv, pgd(model, x, y, seed=5).x_adv
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, pgd(model, x, y, seed=6).x_adv)
    assert not np.array_equal(first[:32], first[32:])  # batches get different random starts


def test_restarts_keep_successes(mnist):
    model, x, y = mnist
    weak = {"eps": 0.08, "steps": 5, "step_size": 0.02}
    one = PGD(**weak)(model, x, y, seed=0)
    many = PGD(**weak, restarts=4)(model, x, y, seed=0)
    assert many.success_rate >= one.success_rate
    assert norms(x, many.x_adv)["linf"].max() <= 0.08 + 1e-6


@pytest.mark.parametrize("targeted", [False, True])
def test_pgd_matches_cleverhans_without_random_start(mnist, targeted):
    """Correctness anchor: with the random start off, our loop and cleverhans's PGD take the same steps."""
    from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent

    model, x, y = mnist
    x, y = x[:96], y[:96]
    ours = PGD(eps=0.3, steps=10, step_size=0.05, random_start=False, targeted=targeted)(model, x, y, seed=1)
    labels = ours.target if targeted else y
    theirs = projected_gradient_descent(model, tf.constant(x), 0.3, 0.05, 10, np.inf, clip_min=0.0, clip_max=1.0,
                                        y=tf.constant(labels), targeted=targeted, rand_init=False).numpy()
    per_image = np.abs(theirs - ours.x_adv).reshape(len(x), -1).max(axis=1)
    # Identical up to float rounding, except where a gradient component sits at 0 and its sign may differ.
    assert np.mean(per_image > 1e-5) <= 0.05
    pred = np.argmax(model.predict(theirs, verbose=0), -1)
    their_success = np.mean(pred == labels) if targeted else np.mean(pred != labels)
    assert abs(their_success - ours.success_rate) <= 0.03


def test_fgsm_matches_cleverhans(mnist):
    from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method

    model, x, y = mnist
    ours = FGSM(eps=0.2)(model, x, y)
    theirs = fast_gradient_method(model, tf.constant(x), 0.2, np.inf, clip_min=0.0, clip_max=1.0,
                                  y=tf.constant(y)).numpy()
    np.testing.assert_allclose(ours.x_adv, theirs, atol=1e-5)


def test_cw_finds_small_l2_perturbations(mnist):
    model, x, y = mnist
    x, y = x[:48], y[:48]
    result = CarliniWagnerL2(**FAST_CW)(model, x, y)
    l2 = norms(x, result.x_adv)["l2"]
    assert result.success_rate >= 0.95
    assert np.all(l2[result.success] > 0.05)  # it actually moves
    pgd_l2 = norms(x, PGD(eps=0.3)(model, x, y).x_adv)["l2"]
    assert np.mean(l2[result.success]) < 0.6 * np.mean(pgd_l2)  # minimal-norm attack: far smaller than PGD's
    assert np.all(l2 < 6.0)


def test_cw_failures_return_the_clean_image(mnist):
    model, x, y = mnist
    x, y = x[:16], y[:16]
    result = CarliniWagnerL2(steps=2, learning_rate=1e-3, binary_search_steps=1)(model, x, y)
    assert result.success_rate < 0.5
    np.testing.assert_array_equal(result.x_adv[~result.success], x[~result.success])


def test_targeted_cw_hits_the_targets(synthetic):
    model, x, y = synthetic
    result = CarliniWagnerL2(**FAST_CW, targeted=True)(model, x[:24], y[:24], seed=0)
    assert result.success_rate >= 0.9
    np.testing.assert_array_equal(result.pred[result.success], result.target[result.success])


def test_cw_binary_search_on_c():
    found = np.array([True, False, False, True])
    const = np.array([1.0, 1.0, 4.0, 2.0], np.float32)
    lower = np.array([0.0, 0.0, 0.0, 1.0], np.float32)
    upper = np.array([1e10, 1e10, 8.0, 1e10], np.float32)
    new_const, new_lower, new_upper = _update_constants(found, const, lower, upper)
    np.testing.assert_allclose(new_upper, [1.0, 1e10, 8.0, 2.0])
    np.testing.assert_allclose(new_lower, [0.0, 1.0, 4.0, 1.0])
    np.testing.assert_allclose(new_const, [0.5, 10.0, 6.0, 1.5])  # bisect when bounded, else c x 10


def test_ddn_returns_its_best_delta(mnist):
    """DDN shrinks the norm while adversarial and grows it while not, so its final iterate sits on either side of
    the boundary; returning the last delta would leave many images correctly classified. Returning the best
    one makes every image adversarial, with a small L2 on the 256-level grid."""
    model, x, y = mnist
    x, y = x[:64], y[:64]
    result = DDN(steps=100)(model, x, y, seed=0)
    assert result.success_rate == 1.0
    l2 = norms(x, result.x_adv)["l2"]
    assert np.mean(l2) < 3.0 and np.all(l2 > 0.0)
    levels = result.x_adv * 255.0
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)  # quantized to 8-bit values
    np.testing.assert_array_equal(result.x_adv, DDN(steps=100)(model, x, y, seed=0).x_adv)  # deterministic


def test_ddn_more_steps_find_smaller_perturbations(mnist):
    model, x, y = mnist
    x, y = x[:48], y[:48]
    short, long = DDN(steps=10)(model, x, y), DDN(steps=100)(model, x, y)
    assert long.success_rate >= short.success_rate
    both = short.success & long.success
    assert both.sum() >= 10
    assert np.mean(norms(x, long.x_adv)["l2"][both]) < np.mean(norms(x, short.x_adv)["l2"][both])


@pytest.mark.slow
def test_cw_paper_settings_reach_99_percent(mnist):
    model, x, y = mnist
    result = attacks.make("cw_n", dataset="mnist")(model, x[:100], y[:100])
    assert result.success_rate >= 0.99
