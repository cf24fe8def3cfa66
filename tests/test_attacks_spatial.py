"""Spatially-constrained attacks: the shared warp / transport ops, stAdv (STA) and FWA."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from arnkit import attacks
from arnkit.attacks import spatial_ops as ops
from arnkit.attacks.fwa import FWA, entropic_lmo, repair_capacity, valid_offsets
from arnkit.attacks.stadv import STA, cw_margin
from arnkit.errors import ArnkitError

N_ATTACKED = 40


@pytest.fixture(scope="module")
def mnist_batch(mnist_tiny):
    """The tiny MNIST model and the first correctly classified test images."""
    model, x, y = mnist_tiny
    pred = np.argmax(model.predict(x, verbose=0), -1)
    keep = np.flatnonzero(pred == y)[:N_ATTACKED]
    return model, x[keep], y[keep]


def rng_images(shape=(2, 5, 6, 3), seed=0):
    return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


# -- flow warp -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("border", ops.BORDERS)
def test_warp_with_zero_flow_is_identity(border):
    x = rng_images()
    out = ops.flow_warp(x, np.zeros(x.shape[:3] + (2,), np.float32), border).numpy()
    np.testing.assert_array_equal(out, x)


def test_warp_with_integer_flow_shifts_the_image():
    x = rng_images()
    right = np.zeros(x.shape[:3] + (2,), np.float32)
    right[..., 1] = 1.0  # each output pixel reads its right-hand neighbour
    zeros = ops.flow_warp(x, right, "zeros").numpy()
    np.testing.assert_allclose(zeros[:, :, :-1], x[:, :, 1:], atol=1e-6)
    np.testing.assert_array_equal(zeros[:, :, -1], 0.0)
    edge = ops.flow_warp(x, right, "edge").numpy()
    np.testing.assert_allclose(edge[:, :, -1], x[:, :, -1], atol=1e-6)

    down2 = np.zeros(x.shape[:3] + (2,), np.float32)
    down2[..., 0] = 2.0
    out = ops.flow_warp(x, down2, "zeros").numpy()
    np.testing.assert_allclose(out[:, :-2], x[:, 2:], atol=1e-6)
    np.testing.assert_array_equal(out[:, -2:], 0.0)


def test_warp_is_bilinear_and_differentiable_in_the_flow():
    x = rng_images((1, 4, 4, 1))
    flow = np.zeros((1, 4, 4, 2), np.float32)
    flow[0, 1, 1] = (0.5, 0.25)  # between rows 1-2 and columns 1-2
    out = ops.flow_warp(x, flow).numpy()
    img = x[0, :, :, 0]
    expected = (0.5 * 0.75 * img[1, 1] + 0.5 * 0.25 * img[1, 2] + 0.5 * 0.75 * img[2, 1] + 0.5 * 0.25 * img[2, 2])
    assert out[0, 1, 1, 0] == pytest.approx(expected, abs=1e-6)
    flow_t = tf.constant(flow)
    with tf.GradientTape() as tape:
        tape.watch(flow_t)
        value = tf.reduce_sum(ops.flow_warp(x, flow_t))
    grad = tape.gradient(value, flow_t).numpy()
    assert np.all(np.isfinite(grad)) and np.abs(grad[0, 1, 1]).sum() > 0


def test_warp_rejects_unknown_border():
    with pytest.raises(ArnkitError, match="border"):
        ops.flow_warp(rng_images(), np.zeros((2, 5, 6, 2), np.float32), "wrap")


# -- flow smoothness -----------------------------------------------------------------------------------
def test_flow_smoothness_matches_hand_computation_on_3x3():
    flow = np.zeros((2, 3, 3, 2), np.float32)
    # example 0: only the centre moves, by (3, 4) (length 5). It has 4 neighbours and each of them has
    # the centre as a neighbour: 8 ordered pairs of length 5 -> 40.
    flow[0, 1, 1] = (3.0, 4.0)
    # example 1: horizontal displacement equal to the column index: 6 horizontally adjacent pairs
    # differ by 1 (12 ordered pairs), vertical pairs by 0 -> 12.
    flow[1, :, :, 1] = np.arange(3)[None, :]
    got = ops.flow_smoothness(flow).numpy()
    np.testing.assert_allclose(got, [40.0, 12.0], atol=1e-3)
    assert ops.flow_smoothness(np.full((1, 3, 3, 2), 0.7, np.float32)).numpy()[0] == pytest.approx(0.0, abs=1e-6)


def test_flow_smoothness_gradient_is_finite_at_zero_flow():
    flow = tf.zeros((1, 4, 4, 2))
    with tf.GradientTape() as tape:
        tape.watch(flow)
        value = tf.reduce_sum(ops.flow_smoothness(flow))
    assert np.all(np.isfinite(tape.gradient(value, flow).numpy()))


# -- transport plans ----------------------------------------------------------------------------------
def test_plan_ops_identity_adjoint_and_cost():
    x = rng_images()
    np.testing.assert_allclose(ops.plan_to_image(ops.identity_plan(x, 5), 5).numpy(), x, atol=1e-7)
    plan = rng_images((2, 5, 6, 3, 25), seed=1) * ops.transport_valid_mask(5, 6, 5)[None, :, :, None, :]
    g = rng_images(seed=2)
    lhs = tf.reduce_sum(ops.plan_to_image(plan, 5) * g).numpy()
    rhs = tf.reduce_sum(plan * ops.gather_neighbours(g, 5)).numpy()
    assert lhs == pytest.approx(rhs, rel=1e-5)
    # one unit moved diagonally from (1, 1) to (2, 2): cost sqrt(2), received at (2, 2)
    move = np.zeros((1, 4, 4, 1, 9), np.float32)
    move[0, 1, 1, 0, 8] = 1.0  # offsets row-major over [-1, 1]^2: index 8 is (+1, +1)
    assert ops.plan_cost(move, 3).numpy()[0] == pytest.approx(np.sqrt(2.0))
    assert ops.plan_to_image(move, 3).numpy()[0, 2, 2, 0] == pytest.approx(1.0)
    with pytest.raises(ArnkitError, match="odd"):
        ops.transport_offsets(4)


def test_entropic_lmo_satisfies_the_constraints():
    x = rng_images((3, 8, 8, 2), seed=3)
    grad = rng_images((3, 8, 8, 2, 25), seed=4) * 2 - 1
    valid = valid_offsets(8, 8, 5)
    mass = x.sum(axis=(1, 2, 3))
    for eps in (0.01, 0.3):
        budget = tf.constant(eps * mass, tf.float32)
        plan = entropic_lmo(tf.constant(grad), tf.constant(x), budget, valid, kernel_size=5, gamma=1e-3,
                            dual_max_iter=50, dual_tol=1e-4).numpy()
        assert plan.min() >= 0.0
        np.testing.assert_allclose(plan.sum(-1), x, rtol=1e-4, atol=1e-6)  # every pixel's mass is sent
        outside = ~valid.numpy()[None]  # (1, H, W, 1, K*K)
        assert np.all(plan[np.broadcast_to(outside, plan.shape)] == 0.0)  # nothing leaves the image
        cost = ops.plan_cost(plan, 5).numpy()
        assert np.all(cost <= eps * mass * (1 + 1e-4))
        assert np.all(cost >= 0.5 * eps * mass)  # the budget is used (the gradient rewards moving)


def test_repair_capacity_caps_pixels_and_keeps_mass():
    plan = np.zeros((1, 3, 3, 1, 9), np.float32)
    plan[0, 1, 1, 0, 4] = 0.8  # the centre keeps 0.8
    plan[0, 0, 1, 0, 7] = 0.6  # the pixel above sends 0.6 down to the centre
    plan[0, 1, 0, 0, 5] = 0.6  # the pixel to the left sends 0.6 right to the centre
    repaired = repair_capacity(tf.constant(plan), 3, rounds=3).numpy()
    received = ops.plan_to_image(repaired, 3).numpy()
    assert received.max() <= 1.0 + 1e-6
    np.testing.assert_allclose(repaired.sum(-1), plan.sum(-1), atol=1e-6)  # sources keep their mass
    assert ops.plan_cost(repaired, 3).numpy()[0] <= ops.plan_cost(plan, 3).numpy()[0]
    assert received[0, 1, 1, 0] == pytest.approx(1.0, abs=1e-6)


# -- STA -----------------------------------------------------------------------------------------------
def test_cw_margin_signs():
    logits = tf.constant([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    np.testing.assert_allclose(cw_margin(logits, tf.constant([0, 0]), False).numpy(), [2.0, -2.0])
    np.testing.assert_allclose(cw_margin(logits, tf.constant([1, 1]), True).numpy(), [2.0, -1.0])


def check_contract(result, x, x_before):
    assert result.x_adv.shape == x.shape and result.x_adv.dtype == np.float32
    assert np.all(np.isfinite(result.x_adv))
    assert result.x_adv.min() >= 0.0 and result.x_adv.max() <= 1.0
    np.testing.assert_array_equal(x, x_before)  # the input was not modified in place


def test_sta_untargeted_contract_success_and_flow_norms(mnist_batch):
    model, x, y = mnist_batch
    x_before = x.copy()
    attack = STA(steps=30, search_steps=2, batch_size=32)
    assert attack.distance == "spatial" and not attack.has_eps
    result = attack(model, x, y, seed=0)
    check_contract(result, x, x_before)
    assert result.success_rate >= 0.9
    flow = result.extras["flow"]
    assert flow.shape == (len(x),)
    assert np.all(flow[result.success] > 0) and np.all(flow[~result.success] == 0)
    np.testing.assert_array_equal(result.x_adv[~result.success], x[~result.success])


def test_sta_targeted_hits_targets(mnist_batch):
    model, x, y = mnist_batch
    target = (y + 1) % 10
    result = STA(targeted=True, steps=40, search_steps=3)(model, x, y, target=target, seed=0)
    assert result.success_rate >= 0.9
    np.testing.assert_array_equal(result.pred[result.success], target[result.success])


def test_sta_failures_return_the_clean_image(mnist_batch):
    model, x, y = mnist_batch
    attack = STA(steps=1, search_steps=1, learning_rate=1e-4)
    result = attack(model, x[:16], y[:16], seed=0)
    assert (~result.success).sum() >= 8
    np.testing.assert_array_equal(result.x_adv[~result.success], x[:16][~result.success])


def test_sta_is_deterministic_and_flow_loss_decreases_with_search(mnist_batch):
    model, x, y = mnist_batch
    first = STA(steps=20, search_steps=1)(model, x[:12], y[:12], seed=3)
    second = STA(steps=20, search_steps=1)(model, x[:12], y[:12], seed=3)
    np.testing.assert_array_equal(first.x_adv, second.x_adv)
    short, long = STA(steps=20, search_steps=1), STA(steps=20, search_steps=3)
    run_short = short(model, x[:12], y[:12])
    run_long = long(model, x[:12], y[:12])
    both = run_short.success & run_long.success
    assert both.sum() >= 6
    # the search keeps the smoothest success, so more search steps never give a rougher flow
    assert np.all(run_long.extras["flow"][both] <= run_short.extras["flow"][both] + 1e-4)


def test_sta_rejects_bad_arguments():
    with pytest.raises(ArnkitError):
        STA(steps=0)
    with pytest.raises(ArnkitError, match="border"):
        STA(border="wrap")
    with pytest.raises(TypeError):
        STA(epsilon=0.3)


# -- FWA -----------------------------------------------------------------------------------------------
def test_fwa_contract_success_and_budget(mnist_batch):
    model, x, y = mnist_batch
    x_before = x.copy()
    attack = FWA(eps=0.5, steps=60)
    assert attack.distance == "wasserstein" and attack.has_eps
    result = attack(model, x, y, seed=0)
    check_contract(result, x, x_before)
    assert result.success_rate >= 0.85
    mass = x.sum(axis=(1, 2, 3))
    assert np.all(result.extras["wasserstein"] <= 0.5 * (1 + 1e-4))
    assert np.all(result.extras["transport_cost"] <= 0.5 * mass * (1 + 1e-4))
    # independent of the reported plan: a unit of mass moved costs >= 1 and changes L1 by <= 2
    l1 = np.abs(result.x_adv - x).sum(axis=(1, 2, 3))
    assert np.all(l1 <= 2 * 0.5 * mass * (1 + 1e-3))
    # without capacity repair only clipping at 1 can remove mass
    assert np.all(result.x_adv.sum(axis=(1, 2, 3)) <= mass * (1 + 1e-5))


def test_fwa_with_capacity_conserves_mass(mnist_batch):
    model, x, y = mnist_batch
    attack = FWA(eps=0.3, steps=20, capacity=True, early_stop=False)
    result = attack(model, x[:10], y[:10], seed=0)
    mass = x[:10].sum(axis=(1, 2, 3))
    np.testing.assert_allclose(result.x_adv.sum(axis=(1, 2, 3)), mass, rtol=1e-3)
    assert np.all(result.extras["transport_cost"] <= 0.3 * mass * (1 + 1e-4))
    assert np.abs(result.x_adv - x[:10]).sum() > 0  # it did move mass


def test_fwa_zero_eps_is_identity(mnist_batch):
    model, x, y = mnist_batch
    result = FWA(eps=0.0, steps=5)(model, x[:8], y[:8])
    np.testing.assert_array_equal(result.x_adv, x[:8])
    assert not result.success.any()


def test_fwa_success_grows_with_eps_and_is_deterministic(mnist_batch):
    model, x, y = mnist_batch
    rates = [FWA(eps=eps, steps=30)(model, x, y).success_rate for eps in (0.02, 0.1, 0.5)]
    assert rates[0] <= rates[1] <= rates[2] and rates[2] > rates[0]
    a = FWA(eps=0.1, steps=10)(model, x[:8], y[:8], seed=1)
    b = FWA(eps=0.1, steps=10)(model, x[:8], y[:8], seed=1)
    np.testing.assert_array_equal(a.x_adv, b.x_adv)


def test_fwa_targeted_and_registry(mnist_batch):
    model, x, y = mnist_batch
    target = (y + 3) % 10
    # targeted needs a larger budget than untargeted (eps .5 hits ~40% of targets on this model)
    result = FWA(eps=1.0, steps=60, targeted=True)(model, x[:16], y[:16], target=target[:16])
    assert result.success_rate >= 0.7
    np.testing.assert_array_equal(result.pred[result.success], target[:16][result.success])
    assert attacks.make("fwa_n", dataset="cifar10").params()["capacity"] is True
    assert attacks.make("fwa_n", dataset="mnist").eps == 0.3  # the ARN paper's budget (FWA's own is 0.5)
    assert attacks.make("sta_t", dataset="mnist").targeted
    with pytest.raises(ArnkitError):
        FWA(kernel_size=4)
    with pytest.raises(ArnkitError, match="bad parameter"):
        attacks.make("fwa_n", epsilon=0.5)
