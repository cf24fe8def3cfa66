"""Adaptive-attack wrappers: compose (white box through a defense), BPDA and EOT (Athalye et al. 2018)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from arnkit import attacks
from arnkit.attacks.adaptive import BPDA, EOT, compose
from arnkit.errors import ArnkitError


def round_quantizer(x):
    return tf.round(x * 4.0) / 4.0


def numpy_quantizer(x):
    """A defense TensorFlow cannot differentiate at all: the gradient is None."""
    return tf.numpy_function(lambda a: (np.round(a * 4.0) / 4.0).astype(np.float32), [x], tf.float32)


class GaussianNoise(keras.layers.Layer):
    """A randomized pre-processor: fresh noise on every call, in training and at test time alike."""

    def call(self, x, training=None):
        return tf.clip_by_value(x + tf.random.normal(tf.shape(x), stddev=0.3), 0.0, 1.0)


def _input_gradient(model, x, y):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=model(x)))
    return tape.gradient(loss, x, unconnected_gradients=tf.UnconnectedGradients.ZERO).numpy()


@pytest.fixture()
def batch(synthetic_data):
    return synthetic_data[2][:16], synthetic_data[3][:16]


@pytest.mark.parametrize("defense", [round_quantizer, numpy_quantizer, keras.layers.AveragePooling2D(3, 1, "same")])
def test_compose_and_bpda_forward_equal_classifier_of_defense(tiny_classifier, batch, defense):
    x, _ = batch
    expected = tiny_classifier(defense(tf.constant(x))).numpy()
    np.testing.assert_allclose(compose(defense, tiny_classifier)(x).numpy(), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(BPDA(defense, tiny_classifier)(x).numpy(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("defense", [round_quantizer, numpy_quantizer])
def test_bpda_gets_a_gradient_where_the_composed_model_is_masked(tiny_classifier, batch, defense):
    x, y = batch
    masked = _input_gradient(compose(defense, tiny_classifier), x, y)
    assert np.all(masked == 0.0)  # the classic gradient-masking case
    grad = _input_gradient(BPDA(defense, tiny_classifier), x, y)
    assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0.0
    # identity backward pass: the classifier's gradient evaluated at the defended image
    at_defended = _input_gradient(tiny_classifier, defense(tf.constant(x)).numpy(), y)
    np.testing.assert_allclose(grad, at_defended, rtol=1e-5, atol=1e-7)


def test_bpda_uses_a_custom_backward_approximation(tiny_classifier, batch):
    x, y = batch
    identity = _input_gradient(BPDA(round_quantizer, tiny_classifier), x, y)
    halved = _input_gradient(BPDA(round_quantizer, tiny_classifier, backward=lambda t: 0.5 * t), x, y)
    np.testing.assert_allclose(halved, 0.5 * identity, rtol=1e-5, atol=1e-8)


def _sign_pgd(model, x, y, eps=0.3, step=0.01, steps=40):
    """A plain L-inf PGD (no random start) that tolerates a masked (None) gradient."""
    x0 = tf.constant(x)
    x_adv = x0
    for _ in range(steps):
        with tf.GradientTape() as tape:
            tape.watch(x_adv)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=model(x_adv)))
        grad = tape.gradient(loss, x_adv, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        x_adv = tf.clip_by_value(tf.clip_by_value(x_adv + step * tf.sign(grad), x0 - eps, x0 + eps), 0.0, 1.0)
    return x_adv.numpy()


def test_pgd_through_bpda_defeats_a_quantizer_that_masks_gradients(tiny_classifier, synthetic_data):
    x, y = synthetic_data[2][:64], synthetic_data[3][:64]
    defended = compose(numpy_quantizer, tiny_classifier)
    assert np.mean(np.argmax(defended(x).numpy(), -1) == y) > 0.9
    # through the composed model PGD gets no signal and leaves the images as they are
    stuck = _sign_pgd(defended, x, y)
    assert np.array_equal(stuck, x)
    adv = _sign_pgd(BPDA(numpy_quantizer, tiny_classifier), x, y)
    assert np.mean(np.argmax(defended(adv).numpy(), -1) != y) >= 0.9


def test_registry_pgd_runs_through_bpda_and_eot(tiny_classifier, synthetic_data):
    x, y = synthetic_data[2][:64], synthetic_data[3][:64]
    result = attacks.make("pgd_n", dataset="mnist")(BPDA(round_quantizer, tiny_classifier), x, y, seed=0)
    assert result.success_rate >= 0.9
    assert np.abs(result.x_adv - x).max() <= 0.3 + 1e-6
    # the success reported is that of the defended model
    pred = np.argmax(tiny_classifier(round_quantizer(tf.constant(result.x_adv))).numpy(), -1)
    np.testing.assert_array_equal(pred, result.pred)
    noisy = EOT(compose(GaussianNoise(), tiny_classifier), samples=4)
    assert attacks.make("pgd_n", dataset="mnist", steps=10)(noisy, x[:16], y[:16], seed=0).x_adv.shape == x[:16].shape


def _true_logit_gradient(model, x, y):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tf.gather(model(x), y, batch_dims=1))
    return tape.gradient(loss, x).numpy()


@pytest.mark.parametrize("parallel", [True, False])
def test_eot_reduces_gradient_variance_of_a_randomized_defense(tiny_classifier, synthetic_data, parallel):
    tf.random.set_seed(0)
    x, y = synthetic_data[2][:4], synthetic_data[3][:4]
    noisy = compose(GaussianNoise(), tiny_classifier)

    def spread(samples):
        model = EOT(noisy, samples=samples, parallel=parallel)
        return np.stack([_true_logit_gradient(model, x, y) for _ in range(8)]).var(axis=0).mean()

    single, averaged = spread(1), spread(16)
    assert single > 0.0
    # A loss linear in the logits has as gradient the mean of 16 independent draws: 1/16 of the variance
    # (measured 15.7-16.4x over four seeds); shared noise between draws would leave it near 1x.
    assert 8.0 < single / averaged < 32.0


@pytest.mark.parametrize("parallel", [True, False])
def test_eot_averages_logits(tiny_classifier, batch, parallel):
    x, _ = batch
    expected = tiny_classifier(x).numpy()
    np.testing.assert_allclose(EOT(tiny_classifier, samples=3, parallel=parallel)(x).numpy(), expected,
                               rtol=1e-5, atol=1e-5)
    noisy = compose(GaussianNoise(), tiny_classifier)
    tf.random.set_seed(1)
    out = EOT(noisy, samples=5, parallel=parallel)(x).numpy()
    assert out.shape == expected.shape and np.all(np.isfinite(out))
    assert not np.allclose(out, expected)


def test_wrappers_reject_bad_arguments(tiny_classifier):
    with pytest.raises(ArnkitError, match="samples"):
        EOT(tiny_classifier, samples=0)
    with pytest.raises(ArnkitError, match="defense"):
        compose("blur", tiny_classifier)
    with pytest.raises(ArnkitError, match="backward"):
        BPDA(round_quantizer, tiny_classifier, backward=3)


def test_composed_model_under_a_free_batch_dimension(tiny_classifier, synthetic_data):
    """Attacks trace with an unknown batch size (CW compacts its batch): the classifier's logits keep their
    own shape, and a numpy defense gets the image shape back."""
    import tensorflow as tf

    from arnkit.attacks.adaptive import BPDA, compose

    _, _, x, _, _ = synthetic_data
    median = lambda t: tf.numpy_function(lambda a: a.copy(), [t], tf.float32)  # noqa: E731  (shape-less defense)
    for model in (compose(median, tiny_classifier), BPDA(median, tiny_classifier)):
        fn = tf.function(lambda t, m=model: m(t, training=False),
                         input_signature=[tf.TensorSpec([None, *x.shape[1:]], tf.float32)])
        logits = fn(tf.constant(x[:5]))
        assert tuple(logits.shape) == (5, 4)
