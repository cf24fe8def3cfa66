"""The single-channel Conv2D input gradient of arnkit.attacks.input_gradients equals TensorFlow's own."""

import numpy as np
import pytest
import tensorflow as tf

from arnkit.attacks import input_gradients as ig


def _gradients(x, kernel, padding, *, fast, eager):
    def compute():
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([x, kernel])
            y = tf.nn.conv2d(x, kernel, 1, padding)
            loss = tf.reduce_sum(tf.sin(y))  # a non-constant upstream gradient
        return tape.gradient(loss, x), tape.gradient(loss, kernel)

    run = compute if eager else tf.function(compute)
    if fast:
        with ig.fast_input_gradients():
            return run()
    return run()


@pytest.mark.parametrize("kernel_hw", [(3, 3), (5, 5), (2, 2), (4, 3), (1, 1)])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("eager", [False, True])
def test_input_and_kernel_gradients_match_stock(kernel_hw, padding, eager):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((3, 9, 8, 1)), tf.float32)
    kernel = tf.constant(rng.normal(size=(*kernel_hw, 1, 5)), tf.float32)
    stock = _gradients(x, kernel, padding, fast=False, eager=eager)
    fast = _gradients(x, kernel, padding, fast=True, eager=eager)
    for s, f in zip(stock, fast, strict=True):
        assert s.shape == f.shape
        np.testing.assert_allclose(f.numpy(), s.numpy(), rtol=1e-5, atol=1e-5)


def test_the_fast_route_is_taken_only_for_single_channel_inputs(monkeypatch):
    taken = []
    real = ig.conv2d_input_gradient
    monkeypatch.setattr(ig, "conv2d_input_gradient", lambda *a, **k: taken.append(1) or real(*a, **k))
    rng = np.random.default_rng(1)
    counts = []
    for channels in (1, 3):
        x = tf.constant(rng.random((2, 6, 6, channels)), tf.float32)
        kernel = tf.constant(rng.normal(size=(3, 3, channels, 4)), tf.float32)
        stock = _gradients(x, kernel, "SAME", fast=False, eager=False)[0]
        fast = _gradients(x, kernel, "SAME", fast=True, eager=False)[0]
        np.testing.assert_allclose(fast.numpy(), stock.numpy(), rtol=1e-5, atol=1e-5)
        counts.append(len(taken))
    assert counts[0] > 0 and counts[1] == counts[0]


def test_registry_is_restored_after_the_block_even_on_error():
    entries = ig._registry()
    assert entries is not None, "TensorFlow moved its gradient registry: the swap silently does nothing"
    stock = entries["Conv2D"]["type"]
    with pytest.raises(RuntimeError):
        with ig.fast_input_gradients():
            with ig.fast_input_gradients():  # re-entrant
                assert entries["Conv2D"]["type"] is ig._conv2d_gradient
            assert entries["Conv2D"]["type"] is ig._conv2d_gradient
            raise RuntimeError("boom")
    assert entries["Conv2D"]["type"] is stock


def test_pgd_on_lenet_gives_the_same_images_with_and_without_the_fast_gradient():
    import keras

    from arnkit.attacks.pgd import sign_gradient_descent
    from arnkit.models import build

    keras.utils.set_random_seed(0)
    model = build("lenet", (28, 28, 1), 10)
    rng = np.random.default_rng(2)
    x = tf.constant(rng.random((8, 28, 28, 1)), tf.float32)
    y = tf.constant(rng.integers(0, 10, 8), tf.int64)

    def grad(fast):
        @tf.function
        def g(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.nn.sparse_softmax_cross_entropy_with_logits(y, model(x, training=False))
            return tape.gradient(loss, x)
        if fast:
            with ig.fast_input_gradients():
                return g(x)
        return g(x)

    np.testing.assert_allclose(grad(True).numpy(), grad(False).numpy(), rtol=1e-4, atol=1e-7)
    adv = sign_gradient_descent(model, x, x, y, eps=0.3, step_size=0.01, steps=5, ascend=True).numpy()
    assert np.all(np.abs(adv - x.numpy()) <= 0.3 + 1e-6)
