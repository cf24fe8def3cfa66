"""AutoAttack (APGD-CE, APGD-T, FAB-T, Square) and JSMA on tiny models with small iteration counts."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from arnkit import attacks
from arnkit.attacks.apgd import APGD, APGDT, checkpoints
from arnkit.attacks.autoattack import AutoAttack
from arnkit.attacks.base import norms
from arnkit.attacks.fab import FABT, project_linf_hyperplane_box
from arnkit.attacks.jsma import JSMA, best_pair, best_pair_softmax
from arnkit.attacks.square import Square
from arnkit.errors import ArnkitError

EPS = 0.3
SMALL = {
    "apgd_ce": lambda eps: APGD(eps=eps, n_iter=10),
    "apgd_t": lambda eps: APGDT(eps=eps, n_iter=10, n_target_classes=3),
    "fab_t": lambda eps: FABT(eps=eps, n_iter=10, n_target_classes=3),
    "square": lambda eps: Square(eps=eps, n_queries=300),
    "autoattack": lambda eps: AutoAttack(eps=eps, apgd_iter=10, fab_iter=10, square_queries=100,
                                         n_target_classes=3),
}


@pytest.fixture(scope="module")
def synthetic_batch(synthetic_data):
    _, _, x_test, y_test, _ = synthetic_data
    return x_test[:24], y_test[:24]


@pytest.mark.parametrize("key", list(SMALL))
def test_linf_attack_contract(key, tiny_classifier, synthetic_batch):
    x, y = synthetic_batch
    x_before = x.copy()
    result = SMALL[key](EPS)(tiny_classifier, x, y, seed=0)
    assert result.x_adv.shape == x.shape and result.x_adv.dtype == np.float32
    assert np.all(np.isfinite(result.x_adv))
    assert result.x_adv.min() >= 0.0 and result.x_adv.max() <= 1.0
    assert norms(x, result.x_adv)["linf"].max() <= EPS + 1e-6
    np.testing.assert_array_equal(x, x_before)
    # The tiny model is undefended and eps .3 is large for it: every component should fool nearly all of it.
    assert result.success_rate >= 0.9, f"{key}: {result.success_rate}"


@pytest.mark.parametrize("key", list(SMALL))
def test_eps_zero_is_identity(key, tiny_classifier, synthetic_batch):
    x, y = synthetic_batch
    result = SMALL[key](0.0)(tiny_classifier, x[:8], y[:8], seed=0)
    np.testing.assert_array_equal(result.x_adv, x[:8])


def test_checkpoints_follow_the_paper():
    # p_0 = 0, p_1 = .22, p_{j+1} = p_j + max(p_j - p_{j-1} - .03, .06): .22 .41 .57 .70 .80 .87 .93 .99
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(10) == [3, 5, 6, 7, 8, 9, 10]


def test_autoattack_is_at_least_as_strong_as_apgd_ce(mnist_tiny):
    model, x, y = mnist_tiny
    x, y = x[:40], y[:40]
    eps = 0.1  # small enough that APGD-CE alone leaves robust points for the later components
    apgd = APGD(eps=eps, n_iter=10)(model, x, y, seed=0)
    aa = AutoAttack(eps=eps, apgd_iter=10, fab_iter=10, square_queries=100, n_target_classes=3)
    result = aa(model, x, y, seed=0)
    # Same seed, same first component: every point APGD-CE fools, AutoAttack fools too (worst case per example).
    assert np.all(result.success[apgd.success])
    assert result.success_rate >= apgd.success_rate
    assert 0.2 < apgd.success_rate < 1.0
    report = result.extras["report"]
    assert report["apgd-ce"]["attacked"] == int(np.sum(~report_clean_errors(model, x, y)))
    assert sum(report[k]["fooled"] for k in report) == int(result.success.sum())
    assert norms(x, result.x_adv)["linf"].max() <= eps + 1e-6


def report_clean_errors(model, x, y):
    return np.argmax(model.predict(x, verbose=0), -1) != y


def test_autoattack_is_deterministic(tiny_classifier, synthetic_batch):
    x, y = synthetic_batch
    first = SMALL["autoattack"](EPS)(tiny_classifier, x, y, seed=3).x_adv
    second = SMALL["autoattack"](EPS)(tiny_classifier, x, y, seed=3).x_adv
    other = SMALL["autoattack"](EPS)(tiny_classifier, x, y, seed=4).x_adv
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)  # the random start depends on the seed


def test_apgd_t_with_explicit_targets_hits_them(tiny_classifier, synthetic_batch):
    x, y = synthetic_batch
    target = (y + 1) % 4
    result = APGDT(eps=EPS, n_iter=10, targeted=True)(tiny_classifier, x, y, target=target, seed=0)
    assert result.success_rate >= 0.9
    np.testing.assert_array_equal(result.success, result.pred == target)


def test_dlr_needs_enough_classes_and_falls_back_with_a_warning(synthetic_data):
    from arnkit.models import build

    _, _, x_test, y_test, meta = synthetic_data
    x = x_test[:6]
    three = build("lenet", meta.shape, 3, width=4, hidden=8)
    two = build("lenet", meta.shape, 2, width=4, hidden=8)
    with pytest.warns(UserWarning, match="targeted DLR needs at least 4 classes"):
        result = APGDT(eps=EPS, n_iter=3)(three, x, y_test[:6] % 3, seed=0)
    assert norms(x, result.x_adv)["linf"].max() <= EPS + 1e-6
    with pytest.warns(UserWarning, match="DLR needs at least 3 classes"):
        APGD(eps=EPS, n_iter=3, loss="dlr")(two, x, y_test[:6] % 2, seed=0)


class ZeroGradient:
    """The tiny model with its gradients cut: only score-based attacks can work on it."""

    def __init__(self, model):
        self.model = model
        self.output_shape = model.output_shape

    def __call__(self, x, training=False):
        return tf.stop_gradient(self.model(x, training=training))


def test_square_works_without_gradients(tiny_classifier, synthetic_batch):
    x, y = synthetic_batch
    masked = ZeroGradient(tiny_classifier)
    xt = tf.constant(x[:4])
    with tf.GradientTape() as tape:
        tape.watch(xt)
        total = tf.reduce_sum(masked(xt))
    assert tape.gradient(total, xt) is None  # no gradient at all flows
    result = Square(eps=EPS, n_queries=300)(masked, x, y, seed=0)
    assert result.success_rate >= 0.5
    assert norms(x, result.x_adv)["linf"].max() <= EPS + 1e-6


def test_fab_projection_matches_a_linear_program():
    from scipy.optimize import linprog

    rng = np.random.default_rng(0)
    n, dim = 5, 10
    point = rng.uniform(0, 1, (n, dim)).astype(np.float32)
    point[:, :2] = 0.0
    point[:, 2:4] = 1.0
    w = rng.normal(size=(n, dim)).astype(np.float32)
    c = (2 * rng.normal(size=n)).astype(np.float32)
    step = project_linf_hyperplane_box(tf.constant(point), tf.constant(w), tf.constant(c)).numpy()
    for i in range(n):
        # min t subject to |d_j| <= t, <w, d> = c, 0 <= point + d <= 1
        a_ub = np.block([[np.eye(dim), -np.ones((dim, 1))], [-np.eye(dim), -np.ones((dim, 1))]])
        lp = linprog(np.r_[np.zeros(dim), 1.0], A_ub=a_ub, b_ub=np.zeros(2 * dim), A_eq=np.r_[w[i], 0.0][None],
                     b_eq=[c[i]], bounds=[(-p, 1 - p) for p in point[i]] + [(0, None)])
        assert lp.status == 0
        assert np.abs(step[i]).max() == pytest.approx(lp.fun, abs=1e-4)
        assert w[i] @ step[i] == pytest.approx(c[i], abs=1e-4)
        assert np.all(point[i] + step[i] >= -1e-6) and np.all(point[i] + step[i] <= 1 + 1e-6)


def test_registry_builds_paper_settings():
    aa = attacks.make("aa_n", dataset="mnist")
    assert isinstance(aa, AutoAttack) and aa.eps == 0.3 and aa.apgd_iter == 100 and aa.square_queries == 5000
    assert attacks.make("aa_n", dataset="cifar10").eps == pytest.approx(8 / 255)
    assert not aa.targeted and aa.params()["version"] == "standard"
    jsma = attacks.make("jsma_t", dataset="mnist")
    assert isinstance(jsma, JSMA) and jsma.targeted and jsma.theta == 1.0 and jsma.gamma == 1.0
    with pytest.raises(ArnkitError):
        attacks.make("aa_n", targeted=True)
    with pytest.raises(ArnkitError):
        AutoAttack(version="rand")
    with pytest.raises(ArnkitError):
        JSMA(targeted=False)


def test_jsma_hits_targets_with_few_pixels(mnist_tiny):
    model, x, y = mnist_tiny
    x, y = x[:12], y[:12]
    x_before = x.copy()
    attack = JSMA()
    result = attack(model, x, y, seed=0)
    l0 = norms(x, result.x_adv)["l0"]
    print(f"JSMA target-hit rate {result.success_rate:.2f}, mean L0 {l0.mean():.1f} of 784")
    assert result.success_rate >= 0.8
    assert np.all(result.target != y)
    assert l0[result.success].mean() < 0.15 * 784
    assert np.all(l0 <= 2 * attack.max_iter(784))
    assert result.x_adv.min() >= 0.0 and result.x_adv.max() <= 1.0
    np.testing.assert_array_equal(x, x_before)
    again = JSMA()(model, x, y, seed=0)
    np.testing.assert_array_equal(result.x_adv, again.x_adv)


def test_jsma_changes_at_most_two_features_per_iteration(mnist_tiny):
    model, x, y = mnist_tiny
    attack = JSMA(gamma=0.02, jacobian="logits")  # int(784 * .02 / 2) = 7 iterations
    assert attack.max_iter(784) == 7
    result = attack(model, x[:12], y[:12], target=(y[:12] + 3) % 10)
    l0 = norms(x[:12], result.x_adv)["l0"]
    assert l0.max() <= 14
    assert l0.max() > 0  # it did move
    # theta = 1: every changed feature went to 1
    changed = np.abs(result.x_adv - x[:12]) > 1e-6
    np.testing.assert_allclose(result.x_adv[changed], 1.0)


def test_jsma_refuses_the_true_label_as_target(mnist_tiny):
    model, x, y = mnist_tiny
    with pytest.raises(ArnkitError):
        JSMA()(model, x[:4], y[:4], target=y[:4])


def test_softmax_shortcut_picks_the_same_pair_as_the_full_search():
    rng = np.random.default_rng(1)
    alpha = tf.constant(rng.normal(size=(6, 30)).astype(np.float32))
    domain = tf.constant(rng.uniform(size=(6, 30)) > 0.3)
    for increase in (True, False):
        inc = tf.constant(increase)
        p1, q1, found1 = best_pair(alpha, -alpha, domain, inc)
        p2, q2, found2 = best_pair_softmax(alpha, domain, inc)
        np.testing.assert_array_equal(found1.numpy(), found2.numpy())
        for a, b, c, d in zip(p1.numpy(), q1.numpy(), p2.numpy(), q2.numpy(), strict=True):
            assert {a, b} == {c, d}
