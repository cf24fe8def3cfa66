"""ARN defense core: losses (Eq. 1-6 and the official-code variants), networks, Algorithm 1 train_step,
distribution, checkpoints and the exported pre-processor. Tiny preset, synthetic 28x28x1 data."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from arnkit.defenses.arn import (  # noqa: E402
    ARN,
    ARNConfig,
    export_preprocessor,
    load_defense,
    losses,
    save_defense,
    training_dataset,
    unpack_batch,
)
from arnkit.errors import ArnkitError  # noqa: E402

LN = math.log


def tiny_config(**changes) -> ARNConfig:
    return ARNConfig.for_dataset("mnist", preset="tiny", **changes)


@pytest.fixture(scope="module")
def pairs():
    """32 synthetic images and two fake 'attacks' of them: Gaussian noise and sign noise."""
    from arnkit import data

    x, _, _ = data.load_arrays("synthetic", "train", limit=32)
    rng = np.random.default_rng(0)
    noisy = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    signed = np.clip(x + 0.15 * np.sign(rng.normal(size=x.shape)), 0, 1)
    return np.stack([noisy, signed], axis=1).astype(np.float32), x


def batch_of(pairs, n=16):
    x_adv, x_nat = pairs
    return {"adversarial": tf.constant(x_adv[:n]), "natural": tf.constant(x_nat[:n])}


def make_arn(seed=0, image_shape=(28, 28, 1), **changes) -> ARN:
    keras.utils.set_random_seed(seed)
    arn = ARN(image_shape=image_shape, num_attacks=2, config=tiny_config(**changes))
    arn.compile()
    return arn


def snapshot(variables):
    """Copies of the values (TF may share a variable's buffer with the array numpy() returns)."""
    return [np.array(v, copy=True).copy() for v in variables]


def weights(model):
    return snapshot(model.weights)


# ----------------------------------------------------------------------------------- losses, by hand ---

def test_l_da_and_l_att_by_hand():
    # domain 0: logits (0, ln 3) -> p = (1/4, 3/4), label 0;  domain 1: (ln 3, 0) -> (3/4, 1/4), label 1
    logits = np.array([[[0.0, LN(3)]], [[LN(3), 0.0]]], np.float32)
    assert float(losses.l_da(logits)) == pytest.approx(LN(4), rel=1e-5)
    assert float(losses.l_att(logits)) == pytest.approx(-(LN(0.25) + LN(0.75)) / 2, rel=1e-5)
    # at D_A's uniform prediction L_att reaches its minimum log K
    assert float(losses.l_att(np.zeros((3, 4, 3), np.float32))) == pytest.approx(LN(3), rel=1e-6)
    # a confident correct D_A has a small L_DA
    assert float(losses.l_da(np.array([[[9.0, -9.0]], [[-9.0, 9.0]]], np.float32))) < 1e-6


def test_l_nor_by_hand():
    # type 0: points +1, -1 (no posterior spread) -> mean 0, variance 1 -> KL 0
    assert float(losses.l_nor(np.array([[[1.0], [-1.0]]], np.float32))) == pytest.approx(0.0, abs=1e-6)
    # type 0: mu = 1, 1 with variance 1 -> N(1, 1): KL = 0.5 (1 + 1 - 1 - 0) = 0.5
    # type 1: mu = 0, 0 with variance 4 -> N(0, 4): KL = 0.5 (4 - 1 - ln 4) = 1.5 - ln 2
    mu = np.array([[[1.0], [1.0]], [[0.0], [0.0]]], np.float32)
    logvar = np.array([[[0.0], [0.0]], [[LN(4)], [LN(4)]]], np.float32)
    expected = (0.5 + (1.5 - LN(2))) / 2
    assert float(losses.l_nor(mu, logvar)) == pytest.approx(expected, rel=1e-5)
    # summing over "replicas" that hold copies of the same batch leaves the moments unchanged
    assert float(losses.l_nor(mu, logvar, all_sum=lambda t: 2 * t)) == pytest.approx(expected, rel=1e-5)


def test_l_mse_by_hand():
    natural = np.array([[[[1.0], [0.0]]], [[[0.0], [0.0]]]], np.float32)  # N=2 images of 1x2x1
    restored = np.stack([natural + 0.5, natural]).astype(np.float32)  # k=0 off by 0.5 per pixel, k=1 exact
    # sum_k mean_n sum_pixels: k=0 -> 2 * 0.25 = 0.5 per image; k=1 -> 0
    assert float(losses.l_mse(restored, natural)) == pytest.approx(0.5, rel=1e-6)
    assert float(losses.l_mse_reference(restored, natural)) == pytest.approx(0.25 / 2, rel=1e-6)


def test_l_guide_by_hand():
    natural = np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 2.0]], np.float32)  # N=2 examples, 3 classes
    restored = np.stack([natural + np.array([0.3, -0.3, 0.0], np.float32), natural]).astype(np.float32)
    # k=0: every example off by (0.3, 0.3, 0) -> mean |.| over classes 0.2, mean over examples 0.2; k=1: 0
    assert float(losses.l_guide(restored, natural)) == pytest.approx(0.2, rel=1e-6)


def test_guide_weight_is_opt_in_and_keeps_old_run_ids():
    plain = ARNConfig.for_dataset("mnist")
    assert plain.guide_weight == 0.0 and "guide_weight" not in plain.to_dict()  # ids of earlier runs unchanged
    guided = plain.replace(guide_weight=5.0)
    assert guided.to_dict()["guide_weight"] == 5.0
    assert ARNConfig.from_dict(guided.to_dict()) == guided and ARNConfig.from_dict(plain.to_dict()) == plain
    with pytest.raises(ArnkitError, match="guide_weight must be >= 0"):
        ARNConfig(guide_weight=-1.0)


def test_l_di_and_l_adv_by_hand():
    real = np.array([[LN(3)]], np.float32)  # D_I(real) = 3/4
    fake = np.array([[[LN(3)]], [[-LN(3)]]], np.float32)  # D_I(fake) = 3/4 and 1/4
    # sum_k [-log(1 - D(fake_k)) - log D(real)] = (ln 4 + ln 4/3) + (ln 4/3 + ln 4/3)
    assert float(losses.l_di(real, fake)) == pytest.approx(LN(4) + 3 * LN(4 / 3), rel=1e-5)
    # -sum_k log D(fake_k) = ln 4/3 + ln 4
    assert float(losses.l_adv(fake)) == pytest.approx(LN(4 / 3) + LN(4), rel=1e-5)
    assert float(losses.l_di_bce(real, fake)) == pytest.approx(LN(4 / 3) + (LN(4) + LN(4 / 3)) / 2, rel=1e-5)
    assert float(losses.l_adv_bce(fake)) == pytest.approx((LN(4 / 3) + LN(4)) / 2, rel=1e-5)


def test_reference_bce_and_kl_by_hand():
    logits = np.full((2, 1, 2), LN(3), np.float32)  # every sigmoid = 3/4
    # D_A: one-hot targets -> per entry -ln 3/4 (target 1) or -ln 1/4 (target 0)
    assert float(losses.l_da_bce(logits)) == pytest.approx((LN(4 / 3) + LN(4)) / 2, rel=1e-5)
    # E: targets 1/2 everywhere
    assert float(losses.l_att_bce(logits)) == pytest.approx(-(0.5 * LN(0.75) + 0.5 * LN(0.25)), rel=1e-5)
    mu = np.array([[1.0, 0.0]], np.float32)
    logvar = np.array([[0.0, LN(2)]], np.float32)
    # -0.5 [(1 + 0 - 1 - 1) + (1 + ln 2 - 0 - 2)] = 0.5 + 0.5 (1 - ln 2)
    assert float(losses.l_nor_reference(mu, logvar)) == pytest.approx(0.5 + 0.5 * (1 - LN(2)), rel=1e-5)


def test_gradient_penalty_by_hand():
    # D(x) = sum(w * x): its input gradient is w; per-pixel channel norms 5, 1, 1, 0 -> (4^2 + 0 + 0 + 1) / 4
    w = tf.constant(np.array([[[[3, 4], [0, 1]], [[0.6, 0.8], [0, 0]]]], np.float32))

    def critic(x, training=False):
        return tf.reduce_sum(x * w, axis=[1, 2, 3])

    real = tf.ones((3, 2, 2, 2))
    fake = tf.zeros((3, 2, 2, 2))
    gp = losses.gradient_penalty(critic, real, fake, tf.constant([0.1, 0.5, 0.9]))
    assert float(gp) == pytest.approx(17 / 4, rel=1e-4)


# ------------------------------------------------------------------------------------------ config ---

def test_config_section_4_1_weights_and_validation():
    mnist = ARNConfig.for_dataset("mnist")
    assert (mnist.lambda1, mnist.lambda2, mnist.theta, mnist.mse_weight) == (0.1, 0.01, 0.1, 1.0)
    for name in ("cifar10", "CIFAR-10", "lisa"):
        c = ARNConfig.for_dataset(name)
        assert (c.lambda1, c.lambda2, c.theta) == (100.0, 10.0, 100.0)
    ref = ARNConfig.for_dataset("mnist", objective="reference")
    assert (ref.mse_weight, ref.lambda1, ref.lambda2, ref.theta, ref.gp_weight) == (200.0, 0.5, 1e-6, 0.01, 30.0)
    assert ref.include_natural and (mnist.learning_rate, mnist.beta_1, mnist.beta_2) == (1e-4, 0.5, 0.999)
    assert ARNConfig.from_dict(mnist.to_dict()) == mnist
    with pytest.raises(ArnkitError, match="objective"):
        ARNConfig(objective="nope")
    with pytest.raises(ArnkitError, match="preset"):
        ARNConfig(preset="huge")
    with pytest.raises(ArnkitError, match="dataset"):
        ARNConfig.for_dataset("imagenet")
    with pytest.raises(ArnkitError, match="lambda1"):
        ARNConfig(lambda1=-1.0)
    assert mnist.lr_schedule == "constant"
    with pytest.raises(ArnkitError, match="lr_schedule"):
        ARNConfig(lr_schedule="step")
    with pytest.raises(ArnkitError, match="lr_decay_steps"):
        ARNConfig(lr_schedule="cosine")


def test_cosine_schedule_follows_the_step_count_and_ends_at_zero(pairs):
    arn = make_arn(learning_rate=1e-3, lr_schedule="cosine", lr_decay_steps=4)
    b = batch_of(pairs, 8)
    rates = []
    for _ in range(4):
        rates.append([float(getattr(arn, o).learning_rate) for o in ("e_optimizer", "g_optimizer",
                                                                       "da_optimizer", "di_optimizer")])
        arn.train_step(b)
    # Half cosine from 1e-3: steps 0..3 -> 1e-3 * (1 + cos(pi * s / 4)) / 2; every player on the same rate.
    expected = [1e-3 * (1 + math.cos(math.pi * s / 4)) / 2 for s in range(4)]
    np.testing.assert_allclose(rates, np.repeat(np.array(expected)[:, None], 4, axis=1), rtol=1e-5)
    assert float(arn.e_optimizer.learning_rate) == pytest.approx(0.0, abs=1e-12)
    # Past the decay the rate stays 0: a step moves no trainable weight.
    before = snapshot(arn.encoder.trainable_variables + arn.decoder.trainable_variables)
    arn.train_step(b)
    after = snapshot(arn.encoder.trainable_variables + arn.decoder.trainable_variables)
    for x, y in zip(before, after, strict=True):
        np.testing.assert_array_equal(x, y)
    assert make_arn(learning_rate=1e-3).e_optimizer.learning_rate.numpy() == pytest.approx(1e-3)


# ---------------------------------------------------------------------------------------- training ---

def test_one_train_step_changes_all_four_networks(pairs):
    arn = make_arn()
    players = [arn.encoder, arn.decoder, arn.attack_discriminator, arn.image_discriminator]
    before = [snapshot(net.trainable_variables) for net in players]
    logs = arn.train_step(batch_of(pairs))
    assert all(np.isfinite(float(v)) for v in logs.values())
    for net, old in zip(players, before, strict=True):
        changed = [not np.array_equal(a, np.array(v)) for a, v in zip(old, net.trainable_variables, strict=True)]
        assert all(changed), f"{net.name}: {changed.count(False)} of {len(changed)} variables did not move"
    assert arn.step == 1


def test_attack_discriminator_learns_on_fixed_features(pairs):
    arn = make_arn(sample_latent=False, include_natural=True)
    b = batch_of(pairs)
    x_in = tf.reshape(tf.transpose(b["adversarial"], [1, 0, 2, 3, 4]), (-1, 28, 28, 1))
    x_in = tf.concat([x_in, b["natural"]], 0)
    mu, _ = arn.encoder(x_in, training=True)  # fixed features (batch statistics)
    d_a = arn.attack_discriminator
    optimizer = keras.optimizers.Adam(1e-2)

    def loss():
        return losses.l_da(tf.reshape(d_a(mu), (3, 16, 3)))

    start = float(loss())
    for _ in range(60):
        with tf.GradientTape() as tape:
            value = loss()
        optimizer.apply_gradients(zip(tape.gradient(value, d_a.trainable_variables), d_a.trainable_variables,
                                      strict=True))
    assert float(loss()) < 0.7 * start


def _mean_entropy(arn, b):
    x_in = tf.reshape(tf.transpose(b["adversarial"], [1, 0, 2, 3, 4]), (-1, 28, 28, 1))
    mu, _ = arn.encoder(x_in, training=True)
    p = tf.nn.softmax(arn.attack_discriminator(mu))
    return float(-tf.reduce_mean(tf.reduce_sum(p * tf.math.log(p + 1e-12), -1)))


def test_encoder_att_step_pushes_attack_discriminator_toward_uniform(pairs):
    # E trained on L_att alone (no MSE, no L_nor); K = 2 attack types, natural images left out (default).
    arn = make_arn(sample_latent=False, mse_weight=0.0, use_nor=False)
    b = batch_of(pairs)
    gradients = tf.function(arn.compute_gradients)
    d_opt = keras.optimizers.Adam(3e-3)
    for _ in range(30):  # make D_A confident first
        grads, _ = gradients(b["adversarial"], b["natural"])
        d_opt.apply_gradients(zip(grads["attack_discriminator"], arn.attack_discriminator.trainable_variables,
                                  strict=True))
    before = _mean_entropy(arn, b)
    e_opt = keras.optimizers.Adam(3e-3)
    for _ in range(10):
        grads, _ = gradients(b["adversarial"], b["natural"])
        e_opt.apply_gradients(zip(grads["encoder"], arn.encoder.trainable_variables, strict=True))
    after = _mean_entropy(arn, b)
    assert before < 0.9 * LN(2), "D_A did not become confident; the test would prove nothing"
    assert after > before + 0.05


def _perturb(net, seed):
    rng = np.random.default_rng(seed)
    for v in net.trainable_variables:
        v.assign(np.array(v) + rng.normal(0, 0.5, v.shape).astype(np.float32))


def _tiny_guide():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(x)))


@pytest.mark.parametrize("objective, changes", [
    ("paper", {}), ("paper", {"use_adv": False}), ("paper", {"use_att": False, "use_nor": False}),
    ("reference", {}), ("paper", {"guide_weight": 2.0}),
])
def test_compute_gradients_equal_each_players_own_loss_gradient(pairs, objective, changes):
    """The shared backward passes of compute_gradients give exactly dL_E/dE (Eq. 7), dL_G/dG (Eq. 8),
    dL_DA/dD_A (Eq. 1) and dL_DI/dD_I (Eq. 5), each taken here the plain way, one tape per player
    (plus guide_weight * L_guide in L_E and L_G when the opt-in guide is on)."""
    b = batch_of(pairs, 8)
    guide = _tiny_guide() if changes.get("guide_weight") else None
    arn = make_arn(sample_latent=False, objective=objective, **changes)
    arn._guide.value = guide
    guide_weights = [np.array(w) for w in guide.weights] if guide else []
    noise_state = np.array(arn.seed_generator.state)
    grads, _ = arn.compute_gradients(b["adversarial"], b["natural"])
    arn.seed_generator.state.assign(noise_state)  # the same gradient-penalty interpolation below
    cfg = arn.arn_config
    with tf.GradientTape(persistent=True) as tape:
        v = arn._forward_losses(b["adversarial"], b["natural"])
        restore = cfg.mse_weight * v["mse"] + cfg.guide_weight * v["guide"]
        l_e = restore + (cfg.lambda1 * v["att"] if cfg.use_att else 0.0) + (
            cfg.lambda2 * v["nor"] if cfg.use_nor else 0.0)
        l_g = restore + (cfg.theta * v["adv"] if cfg.use_adv else 0.0)
        l_di = v["di"] + cfg.gp_weight * v["gp"]
    expected = {
        "encoder": tape.gradient(l_e, arn.encoder.trainable_variables),
        "decoder": tape.gradient(l_g, arn.decoder.trainable_variables),
        "attack_discriminator": tape.gradient(v["da"], arn.attack_discriminator.trainable_variables),
        "image_discriminator": tape.gradient(l_di, arn.image_discriminator.trainable_variables),
    }
    for player, want in expected.items():
        assert len(grads[player]) == len(want)
        for got, ref in zip(grads[player], want, strict=True):
            ref = np.zeros(got.shape, np.float32) if ref is None else np.asarray(ref)
            np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-4, atol=1e-6, err_msg=player)
    if guide is not None:
        assert float(v["guide"]) > 0
        assert len(arn.trainable_variables) == sum(len(getattr(arn, p).trainable_variables) for p in expected)
        for before, w in zip(guide_weights, guide.weights, strict=True):
            np.testing.assert_array_equal(before, np.array(w))  # the classifier is read, never trained
    else:
        assert float(v["guide"]) == 0.0


def test_guide_weight_without_a_classifier_is_one_clear_error(pairs):
    b = batch_of(pairs, 8)
    arn = make_arn(guide_weight=1.0)
    with pytest.raises(ArnkitError, match=r"guide_weight > 0 needs the target classifier: build ARN\(\.\.\., guide="):
        arn.compute_gradients(b["adversarial"], b["natural"])


@pytest.mark.parametrize("switch, player, opponent", [
    ("use_att", "encoder", "attack_discriminator"),
    ("use_adv", "decoder", "image_discriminator"),
])
def test_ablation_switch_cuts_the_opponent_out_of_the_gradient(pairs, switch, player, opponent):
    b = batch_of(pairs, 8)
    for enabled in (True, False):
        arn = make_arn(sample_latent=False, **{switch: enabled})
        first, _ = arn.compute_gradients(b["adversarial"], b["natural"])
        _perturb(getattr(arn, opponent), 1)
        second, _ = arn.compute_gradients(b["adversarial"], b["natural"])
        same = all(np.allclose(a, c, atol=1e-7) for a, c in zip(first[player], second[player], strict=True))
        assert same is (not enabled), f"{switch}={enabled}: {player}'s gradient depends on {opponent}: {not same}"


def test_use_nor_false_drops_the_normalisation_term(pairs):
    b = batch_of(pairs, 8)
    grads = {}
    for label, changes in {"off": {"use_nor": False}, "zero": {"lambda2": 0.0}, "on": {}}.items():
        arn = make_arn(sample_latent=False, **changes)
        grads[label], values = arn.compute_gradients(b["adversarial"], b["natural"])
        if label == "off":
            cfg = arn.arn_config
            assert float(values["e_loss"]) == pytest.approx(
                cfg.mse_weight * float(values["mse"]) + cfg.lambda1 * float(values["att"]), rel=1e-6)
            assert float(values["nor"]) > 0
    assert all(np.allclose(a, c, atol=1e-7) for a, c in zip(grads["off"]["encoder"], grads["zero"]["encoder"],
                                                            strict=True))
    assert not all(np.allclose(a, c, atol=1e-7) for a, c in zip(grads["off"]["encoder"], grads["on"]["encoder"],
                                                                strict=True))


def test_reference_objective_step_is_finite(pairs):
    arn = make_arn(objective="reference")
    assert arn.num_domains == 3 and arn.attack_discriminator.num_domains == 3
    logs = arn.train_step(batch_of(pairs, 8))
    values = {k: float(v) for k, v in logs.items()}
    assert all(np.isfinite(v) for v in values.values()), values
    assert values["gp"] > 0 and values["nor"] > 0


def test_fit_on_a_dataset_and_batch_forms(pairs):
    x_adv, x_nat = pairs
    arn = make_arn()
    history = arn.fit(training_dataset(x_adv, x_nat, batch_size=16), epochs=1, verbose=0, shuffle=False)
    assert set(history.history) >= {"e_loss", "g_loss", "da_loss", "di_loss", "mse", "att", "nor", "adv"}
    assert arn.step == 2
    for form in ((x_adv, x_nat), ((x_adv, x_nat),), ((x_adv, x_nat), None, None)):
        a, n = unpack_batch(form)
        assert a is x_adv and n is x_nat
    with pytest.raises(ArnkitError, match="expected batches"):
        arn.train_step({"adversarial": x_adv[:, :1], "natural": x_nat})
    with pytest.raises(ArnkitError, match="natural"):
        unpack_batch({"adv": x_adv})
    with pytest.raises(ArnkitError, match="line up"):
        training_dataset(x_adv[:4], x_nat[:5])


# ------------------------------------------------------------------------------------------ export ---

@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_exported_preprocessor_shape_and_range(shape):
    arn = make_arn(image_shape=shape)
    rng = np.random.default_rng(0)
    x = rng.random((5, *shape), dtype=np.float32)
    arn.train_step({"adversarial": tf.constant(np.stack([x, x], 1)), "natural": tf.constant(x)})
    pre = export_preprocessor(arn)
    out = np.asarray(pre(x))
    assert out.shape == x.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_allclose(out, np.asarray(arn(x)), atol=1e-6)  # same map as the training model's call


@pytest.fixture(scope="module")
def saved_preprocessor(tmp_path_factory, pairs):
    """(path of an exported, saved pre-processor after one training step, inputs, its outputs on them)."""
    arn = make_arn()
    arn.train_step(batch_of(pairs))
    pre = export_preprocessor(arn)
    path = save_defense(pre, tmp_path_factory.mktemp("export") / "arn.keras")
    x = pairs[0][:6, 0]
    return path, x, np.asarray(pre(x))


def test_export_round_trip(saved_preprocessor):
    path, x, expected = saved_preprocessor
    loaded = load_defense(path)
    np.testing.assert_allclose(np.asarray(loaded(x)), expected, atol=1e-6)
    assert loaded.get_layer("encoder").sync_batchnorm is False


BACKEND_ENV = {"jax": {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}, "torch": {"KERAS_BACKEND": "torch"}}


@pytest.mark.slow  # a JAX or torch subprocess: 10-35 s on 2 shared cores
@pytest.mark.parametrize("backend", sorted(BACKEND_ENV))
def test_exported_file_loads_under_another_backend(saved_preprocessor, tmp_path, backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (pip install 'arnkit[{backend}]'): that backend was not checked")
    path, x, expected = saved_preprocessor
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import sys, numpy as np, keras
        assert keras.backend.backend() == {backend!r}
        from keras import ops
        from arnkit.defenses.arn import load_defense
        model = load_defense({str(path)!r})
        np.save({str(tmp_path / "out.npy")!r}, ops.convert_to_numpy(model(np.load({str(tmp_path / "x.npy")!r}))))
        assert "tensorflow" not in sys.modules, "loading the defense imported TensorFlow"
    """)
    done = _run_script(script, env=BACKEND_ENV[backend], timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-5)


# ------------------------------------------------------------------------------------- checkpoints ---

@pytest.mark.parametrize("schedule", [{}, {"lr_schedule": "cosine", "lr_decay_steps": 4}],
                         ids=["constant", "cosine"])
def test_checkpoint_resume_continues_identically(tmp_path, pairs, schedule):
    x_adv, x_nat = pairs
    batches = [{"adversarial": tf.constant(x_adv[i:i + 8]), "natural": tf.constant(x_nat[i:i + 8])}
               for i in range(0, 32, 8)]
    straight = make_arn(seed=0, **schedule)
    for b in batches:
        straight.train_step(b)

    first = make_arn(seed=0, **schedule)
    for b in batches[:2]:
        first.train_step(b)
    path = first.save_checkpoint(tmp_path / "ckpt.npz")
    resumed = make_arn(seed=5, **schedule)  # different initial weights: everything must come from the checkpoint
    resumed.restore_checkpoint(path)
    assert resumed.step == 2
    # A cosine schedule resumes mid-decay, from the restored iteration count.
    assert float(resumed.e_optimizer.learning_rate) == pytest.approx(float(first.e_optimizer.learning_rate))
    for b in batches[2:]:
        resumed.train_step(b)
    assert resumed.step == 4
    for net in ("encoder", "decoder", "attack_discriminator", "image_discriminator"):
        for a, b in zip(weights(getattr(straight, net)), weights(getattr(resumed, net)), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5, err_msg=net)

    rebuilt = ARN.from_checkpoint(path)
    assert rebuilt.step == 2 and rebuilt.arn_config == first.arn_config
    np.testing.assert_array_equal(weights(rebuilt.decoder)[0], weights(first.decoder)[0])


def test_corrupt_or_foreign_checkpoint_raises_arnkit_error(tmp_path, pairs):
    arn = make_arn()
    path = arn.save_checkpoint(tmp_path / "ckpt.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ArnkitError, match="truncated or corrupt"):
        arn.restore_checkpoint(truncated)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ArnkitError):
        arn.restore_checkpoint(garbage)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, meta=np.array(json.dumps({"format": "something-else"})))
    with pytest.raises(ArnkitError, match="not an ARN checkpoint"):
        arn.restore_checkpoint(foreign)
    with pytest.raises(ArnkitError, match="not found"):
        arn.restore_checkpoint(tmp_path / "missing.npz")
    other = make_arn(image_shape=(32, 32, 3))
    with pytest.raises(ArnkitError, match="build the ARN to match"):
        other.restore_checkpoint(path)


# ------------------------------------------------------------------------------------ distribution ---

_MIRRORED = """
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from arnkit import data
from arnkit.defenses.arn import ARN, ARNConfig, training_dataset
x, _, _ = data.load_arrays("synthetic", "train", limit=48)
rng = np.random.default_rng(0)
x_adv = np.stack([np.clip(x + rng.normal(0, .1, x.shape), 0, 1), np.clip(x - .1, 0, 1)], 1).astype("float32")
def run(strategy):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        arn = ARN(num_attacks=2, config=ARNConfig.for_dataset("mnist", preset="tiny", sync_batchnorm=True))
        arn.compile(*(keras.optimizers.SGD(1e-4) for _ in range(4)))
    arn.fit(training_dataset(x_adv, x, batch_size=16, shuffle=False), epochs=1, verbose=0, shuffle=False)
    assert arn.step == 3
    return [np.array(v, copy=True) for net in (arn.encoder, arn.decoder, arn.attack_discriminator,
                                                arn.image_discriminator) for v in net.weights]
keras.utils.set_random_seed(0)
start = [np.array(v, copy=True) for v in ARN(num_attacks=2, config=ARNConfig(preset="tiny")).weights]
one = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
two = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
print("MOVED", max(float(np.abs(a - b).max()) for a, b in zip(one, start, strict=True)))
print("MAXDIFF", max(float(np.abs(a - b).max()) for a, b in zip(one, two, strict=True)))
"""


def _run_script(script, env=None, timeout=240):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow  # a subprocess with 2 logical CPUs: 20-40 s on 2 shared cores
def test_mirrored_strategy_matches_one_device():
    # SGD, not Adam: Adam turns round-off-sized differences of near-zero gradient entries (the order of the
    # cross-replica sums differs from one device's) into steps of +-lr, which would hide what is tested here:
    # that per-replica losses, synchronised BatchNorm, global-batch noise and cross-replica L_nor moments
    # add up to the one-device gradient. Missing the 1/replicas scaling alone moves weights by ~1e-3.
    done = _run_script(_MIRRORED)
    assert done.returncode == 0, done.stderr[-3000:]
    moved = float(done.stdout.split("MOVED")[-1].split()[0])
    diff = float(done.stdout.split("MAXDIFF")[-1])
    assert moved > 1e-4, "training did not move the weights; the comparison would prove nothing"
    assert diff < 1e-5, f"2 replicas drifted from 1 device by {diff}"


_WORKER = """
import json, os, sys, numpy as np, tensorflow as tf
import keras
from arnkit import data
from arnkit.defenses.arn import ARN, ARNConfig, training_dataset
strategy = tf.distribute.MultiWorkerMirroredStrategy()
x, _, _ = data.load_arrays("synthetic", "train", limit=32)
x_adv = np.stack([x, np.clip(x + .1, 0, 1)], 1).astype("float32")
ds = training_dataset(x_adv, x, batch_size=16, shuffle=False)
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
ds = ds.with_options(options)
with strategy.scope():
    keras.utils.set_random_seed(0)
    arn = ARN(num_attacks=2, config=ARNConfig.for_dataset("mnist", preset="tiny"))
    arn.compile()
history = arn.fit(ds, epochs=1, verbose=0, shuffle=False)
checksum = sum(float(np.abs(np.array(v)).sum()) for v in arn.encoder.weights)
print("STEPS", arn.step, "CHECKSUM", repr(checksum), "LOSS", history.history["e_loss"][-1], flush=True)
"""


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow  # two worker processes: 35-50 s on 2 shared cores
def test_multi_worker_mirrored_strategy_on_localhost():
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen([sys.executable, "-c", _WORKER], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=240)
            outputs.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for code, out, err in outputs:
        assert code == 0, err[-3000:]
        assert "STEPS 2" in out, out
        assert np.isfinite(float(out.split("LOSS")[-1]))
    # synchronous training: both workers hold the same weights
    checksums = [float(out.split("CHECKSUM")[-1].split()[0]) for _, out, _ in outputs]
    assert checksums[0] == pytest.approx(checksums[1], rel=1e-6)
