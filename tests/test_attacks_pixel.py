"""Pixel-constrained attacks: FGSM, PGD, MIM (L-inf), Carlini-Wagner L2, DDN (L2).

Small models from conftest: `tiny_classifier` on the 4-class synthetic set, `mnist_tiny` (a small LeNet on real
MNIST). Reduced step counts keep the file fast; the full paper settings run behind `-m slow`.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from arnkit import attacks
from arnkit.attacks import cw as cw_module
from arnkit.attacks.base import norms
from arnkit.attacks.cw import ARN_MNIST, CarliniWagnerL2, _update_constants
from arnkit.attacks.ddn import DDN
from arnkit.attacks.mim import MIM
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
    cw = attacks.make("cw_n", dataset="mnist")  # ARN's objective and search; a shorter schedule (see cw.py)
    assert (cw.steps, cw.confidence, cw.initial_const, cw.learning_rate, cw.binary_search_steps) == (
        60, 1.0, 1.0, 0.2, 4)
    cw_arn = attacks.make("cw_n", dataset="mnist", **ARN_MNIST)
    assert (cw_arn.steps, cw_arn.confidence, cw_arn.initial_const, cw_arn.learning_rate,
            cw_arn.binary_search_steps) == (500, 1.0, 1.0, 1e-2, 4)
    cw_cifar = attacks.make("cw_n", dataset="cifar10")
    assert (cw_cifar.steps, cw_cifar.learning_rate) == (100, 1e-2)
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


@pytest.mark.parametrize("attack", [PGD(eps=0.0), FGSM(eps=0.0), PGD(eps=0.0, targeted=True), MIM(eps=0.0)])
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


def test_mim_fools_an_undefended_model(mnist):
    """MIM at MNIST's eps .3 (the paper's 10 steps of eps/10, decay 1) fools the tiny model on most digits."""
    model, x, y = mnist
    mim = attacks.make("mim_n", dataset="mnist")
    assert (mim.eps, mim.steps, mim.step_size, mim.decay) == pytest.approx((0.3, 10, 0.03, 1.0))
    result = mim(model, x, y, seed=0)
    assert result.success_rate >= 0.9, result.success_rate
    assert norms(x, result.x_adv)["linf"].max() <= 0.3 + 1e-6
    hit = attacks.make("mim_t", dataset="mnist")(model, x, y, seed=0)
    assert np.all(hit.target != y) and hit.success_rate >= 0.7, hit.success_rate


def test_mim_is_cleverhans_per_batch(mnist):
    """Batching changes nothing: MIM's gradient normalization is per example. step_size follows eps/steps."""
    from cleverhans.tf2.attacks.momentum_iterative_method import momentum_iterative_method

    model, x, y = mnist
    x, y = x[:40], y[:40]
    ours = MIM(eps=0.2, steps=5, decay=0.5, batch_size=16)(model, x, y).x_adv
    theirs = momentum_iterative_method(model, tf.constant(x), eps=0.2, eps_iter=0.04, nb_iter=5, norm=np.inf,
                                       clip_min=0.0, clip_max=1.0, y=tf.constant(y), decay_factor=0.5).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert MIM(eps=0.4, steps=8).step_size == pytest.approx(0.05)
    with pytest.raises(ArnkitError, match="steps"):
        MIM(steps=0)
    with pytest.raises(ArnkitError, match="decay"):
        MIM(decay=-1.0)


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


class _PixelwiseModel:
    """logits_k = sum_p tanh(a_kp * x_p + b_kp): elementwise ops and per-example sums only, so its outputs (and
    gradients) do not depend on the batch size bit for bit, unlike conv / matmul kernels."""

    def __init__(self, shape: tuple[int, ...], classes: int = 4) -> None:
        rng = np.random.default_rng(0)
        self.a = tf.constant(rng.normal(0.0, 3.0, (classes, *shape)), tf.float32)
        self.b = tf.constant(rng.normal(0.0, 0.3, (classes, *shape)), tf.float32)

    def __call__(self, x, training=False):
        return tf.reduce_sum(tf.tanh(self.a[None] * tf.convert_to_tensor(x)[:, None] + self.b[None]), axis=[2, 3, 4])


def test_cw_abort_early_per_example_equals_one_image_at_a_time(synthetic, monkeypatch):
    """Each example's Adam trajectory depends on that example only, so dropping stalled examples from the batch
    (compaction) must give exactly what attacking each image alone gives, and the batch must actually shrink."""
    _, x, _ = synthetic
    x = x[:12]
    model = _PixelwiseModel(x.shape[1:])
    y = np.argmax(model(x).numpy(), -1)
    work = []
    adam_steps = cw_module._adam_steps

    def spy(model, x, *args):
        work.append((int(x.shape[0]), args[-2]))  # (examples, iterations) of this chunk
        return adam_steps(model, x, *args)

    monkeypatch.setattr(cw_module, "_adam_steps", spy)
    settings = {"steps": 100, "learning_rate": 0.1, "binary_search_steps": 3}
    batched = CarliniWagnerL2(**settings)(model, x, y)
    sizes = [size for size, _ in work]
    assert sizes[0] == 12 and min(sizes) < 12, "no example left the batch: nothing was compacted"
    assert sum(size * n for size, n in work) < 0.9 * 12 * 100 * 3  # per-example abort saved work
    alone = CarliniWagnerL2(**settings, batch_size=1)(model, x, y)
    np.testing.assert_allclose(batched.x_adv, alone.x_adv, atol=1e-6)
    assert batched.success_rate >= 0.9 and batched.success.any()


def test_cw_without_abort_early_runs_every_iteration(synthetic, monkeypatch):
    model, x, y = synthetic
    batch_sizes = []
    adam_steps = cw_module._adam_steps

    def spy(model, x, *args):
        batch_sizes.append(int(x.shape[0]) * args[-2])  # examples x iterations in this chunk
        return adam_steps(model, x, *args)

    monkeypatch.setattr(cw_module, "_adam_steps", spy)
    CarliniWagnerL2(steps=30, binary_search_steps=2, abort_early=False)(model, x[:8], y[:8])
    assert sum(batch_sizes) == 8 * 30 * 2


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
    result = attacks.make("cw_n", dataset="mnist", **ARN_MNIST)(model, x[:100], y[:100])
    assert result.success_rate >= 0.99


@pytest.mark.slow
def test_cw_default_schedule_matches_arn_settings(mnist):
    """The MNIST default (60 steps at lr .2) must succeed as often as ARN's 500 steps at lr 1e-2 with a mean L2
    at most 10% larger (measured on the paper LeNet: 1.65 vs 1.57)."""
    model, x, y = mnist
    x, y = x[:64], y[:64]
    fast = attacks.make("cw_n", dataset="mnist")(model, x, y)
    arn = attacks.make("cw_n", dataset="mnist", **ARN_MNIST)(model, x, y)
    assert fast.success_rate >= arn.success_rate >= 0.99
    both = fast.success & arn.success
    fast_l2, arn_l2 = norms(x, fast.x_adv)["l2"][both].mean(), norms(x, arn.x_adv)["l2"][both].mean()
    assert fast_l2 <= 1.10 * arn_l2, (fast_l2, arn_l2)


@pytest.mark.parametrize("cls", [PGD, FGSM])
def test_bfloat16_precision_is_a_valid_attack_about_as_strong_as_float32(mnist, cls):
    model, x, y = mnist
    x, y = x[:48], y[:48]
    weights = [w.copy() for w in model.get_weights()]
    full = cls(eps=0.3).__call__(model, x, y, seed=0)
    low = cls(eps=0.3, precision="bfloat16")(model, x, y, seed=0)
    assert low.params["precision"] == "bfloat16" and full.params["precision"] == "float32"
    assert low.x_adv.dtype == np.float32 and np.all(np.isfinite(low.x_adv))
    assert norms(x, low.x_adv)["linf"].max() <= 0.3 + 1e-6
    assert low.x_adv.min() >= 0.0 and low.x_adv.max() <= 1.0
    # Scored by the float32 model: the bfloat16 gradients still find (nearly) the same adversarial examples.
    assert low.success_rate >= full.success_rate - 0.05
    assert not np.array_equal(low.x_adv, full.x_adv)  # the twin really ran in another precision
    for before, after in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)  # the model itself is untouched


def test_bfloat16_twin_follows_the_models_current_weights(mnist):
    from arnkit.attacks.precision import bfloat16_twin

    model, x, _ = mnist
    twin = bfloat16_twin(model)
    convs = [layer for layer in twin.layers if layer.weights]
    assert convs and all(layer.compute_dtype == "bfloat16" for layer in convs)
    assert all(layer.compute_dtype == "float32" for layer in model.layers if layer.weights)
    np.testing.assert_allclose(np.asarray(twin(x[:8]), np.float32), model.predict(x[:8], verbose=0), atol=0.5)
    old = [w.copy() for w in model.get_weights()]
    model.set_weights([w * 0.5 for w in old])
    try:
        again = bfloat16_twin(model)
        assert again is twin
        np.testing.assert_array_equal(again.get_weights()[0], model.get_weights()[0])
    finally:
        model.set_weights(old)


def test_bad_precision_is_one_clear_error(mnist):
    model, x, y = mnist
    with pytest.raises(ArnkitError, match="unknown precision 'half'; choose one of: float32, bfloat16"):
        PGD(precision="half")
    composed = lambda images: model(images)  # noqa: E731 - a plain callable cannot be cloned
    with pytest.raises(ArnkitError, match="needs a Keras model to clone"):
        PGD(eps=0.3, steps=2, precision="bfloat16")(composed, x[:4], y[:4])
