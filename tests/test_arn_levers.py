"""Opt-in ARN levers of issue 29: the residual U-Net generator (`ARNConfig.generator`), the multi-family
adaptive step (`ARNConfig.adaptive_families`) and the EMA of the restorer's weights (`ARNConfig.ema`). Tiny preset, synthetic data, a random tiny target."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from arn_fixtures import guide_model  # noqa: E402

from arnkit.defenses.arn import ARN, ARNConfig, export_preprocessor, load_defense, save_defense  # noqa: E402
from arnkit.defenses.arn.config import ADAPTIVE_FAMILIES  # noqa: E402
from arnkit.defenses.arn.families import patch_mask  # noqa: E402
from arnkit.errors import ArnkitError  # noqa: E402

BUDGETS = {"adaptive_l2_eps": 2.0, "adaptive_flow_eps": 1.0, "adaptive_patch": 6}




def make_arn(guide=None, seed=0, **changes) -> ARN:
    keras.utils.set_random_seed(seed)
    arn = ARN(image_shape=(28, 28, 1), num_attacks=2, guide=guide,
              config=ARNConfig.for_dataset("mnist", preset="tiny", seed=seed, **changes))
    arn.compile()
    return arn


# ------------------------------------------------------------------------------------------ generator ---

@pytest.fixture(scope="module")
def unet_file(tmp_path_factory, pairs):
    """(path of a saved residual U-Net pre-processor after two training steps, inputs, its outputs on them)."""
    x_adv, x_nat = pairs
    arn = make_arn(generator="residual_unet")
    for _ in range(2):
        logs = arn.train_step({"adversarial": x_adv, "natural": x_nat})
    assert all(np.isfinite(float(v)) for v in logs.values())
    pre = export_preprocessor(arn)
    x = x_adv[:6, 1].numpy()
    out = np.asarray(pre(x))
    np.testing.assert_allclose(out, np.asarray(arn(x)), atol=1e-6)  # the export is the training model's map
    assert np.max(np.abs(out - x)) > 1e-5, "two steps did not move the generator off the identity"
    return save_defense(pre, tmp_path_factory.mktemp("unet") / "arn.keras"), x, out


def test_residual_unet_starts_as_the_identity_and_keeps_the_paper_files_unchanged(pairs):
    # Zero-initialised correction: G(E(x)) == x at init, so training starts from "change nothing".
    x = pairs[0][:4, 1].numpy()
    unet = make_arn(generator="residual_unet")
    np.testing.assert_allclose(np.asarray(unet(x)), x, atol=1e-7)
    assert len(unet.encoder.outputs) == 6  # mu, logvar, the padded image and three feature maps for the skips
    paper = make_arn()
    assert not np.allclose(np.asarray(paper(x)), x, atol=1e-2)  # the paper's sigmoid G is not
    # The paper's networks and configs write no generator key: their files and run ids stay as they were.
    assert "generator" not in paper.encoder.get_config() and "generator" not in paper.decoder.get_config()
    assert "generator" not in paper.arn_config.to_dict()
    assert unet.arn_config.to_dict()["generator"] == "residual_unet"


def test_residual_unet_exports_and_reloads_under_safe_mode(unet_file):
    path, x, expected = unet_file
    loaded = load_defense(path)  # keras.saving.load_model(..., safe_mode=True)
    np.testing.assert_array_equal(np.asarray(loaded(x)), expected)
    assert loaded.get_layer("decoder").generator == "residual_unet"


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_residual_unet_file_runs_under_jax_and_torch(unet_file, tmp_path, backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed: that backend was not checked")
    path, x, expected = unet_file
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import sys, numpy as np, keras
        assert keras.backend.backend() == {backend!r}
        from arnkit.defenses.arn import load_defense
        model = load_defense({str(path)!r})
        out = keras.ops.convert_to_numpy(model(np.load({str(tmp_path / "x.npy")!r})))
        np.save({str(tmp_path / "out.npy")!r}, out)
        assert "tensorflow" not in sys.modules, "loading the defense imported TensorFlow"
    """)
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-5)


def test_unknown_generator_is_one_line():
    with pytest.raises(ArnkitError, match=r"unknown ARN generator 'unet'; choose one of: paper, residual_unet$"):
        ARNConfig(generator="unet")


# ----------------------------------------------------------------------------------- adaptive families ---

def crafted(arn, name, x, seed=(3, 4)):
    labels = tf.argmax(arn._guide.value(x, training=False), axis=-1)
    return np.asarray(arn.craft_family(name, x, labels, tf.constant(seed, tf.int64)))


def within_budget(name: str, adv: np.ndarray, x: np.ndarray) -> None:
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    change = adv - x
    if name.startswith("pgd_linf"):
        assert np.abs(change).max() <= 0.3 + 1e-6
    elif name == "pgd_l2":
        assert np.sqrt((change ** 2).sum(axis=(1, 2, 3))).max() <= 2.0 + 1e-4
    elif name == "flow":
        # Bilinear resampling at shifts of at most 1 pixel: every pixel lies between the smallest and the largest
        # value of its 3x3 neighbourhood in the natural image.
        low = -tf.nn.max_pool2d(-x, 3, 1, "SAME").numpy()
        high = tf.nn.max_pool2d(x, 3, 1, "SAME").numpy()
        assert (adv >= low - 1e-5).all() and (adv <= high + 1e-5).all()
    else:  # patch: every changed pixel of an image inside one 6x6 square
        for image_change in np.abs(change[..., 0]) > 1e-7:
            rows, cols = np.nonzero(image_change)
            assert rows.max() - rows.min() < 6 and cols.max() - cols.min() < 6


@pytest.mark.parametrize("name", list(ADAPTIVE_FAMILIES))
def test_each_family_is_crafted_against_the_current_weights_within_its_budget(pairs, name):
    x = pairs[1][:6]
    arn = make_arn(guide_model(), adaptive_share=0.5, adaptive_steps=3, adaptive_families=(name,), **BUDGETS)
    first = crafted(arn, name, x)
    assert first.shape == x.shape
    within_budget(name, first, x.numpy())
    assert np.abs(first - x.numpy()).max() > 1e-3  # not the natural batch
    np.testing.assert_array_equal(crafted(arn, name, x), first)  # same weights, same seed: same examples
    for variable in arn.encoder.trainable_variables + arn.decoder.trainable_variables:
        variable.assign(variable * 1.5)
    moved = crafted(arn, name, x)
    within_budget(name, moved, x.numpy())
    assert not np.allclose(moved, first, atol=1e-4)  # new defense weights, new examples


def test_the_family_draw_is_reproducible_for_a_seed():
    families = tuple(ADAPTIVE_FAMILIES)

    def draws(seed):
        arn = make_arn(guide_model(), seed=seed, adaptive_share=0.5, adaptive_families=families, **BUDGETS)
        return [int(arn.draw_family()) for _ in range(20)]

    first = draws(3)
    assert draws(3) == first
    assert set(first) <= set(range(len(families))) and len(set(first)) >= 3  # really drawn, all in range
    assert draws(4) != first


def test_a_multi_family_step_trains(pairs):
    x_adv, x_nat = pairs
    arn = make_arn(guide_model(), adaptive_share=0.5, adaptive_steps=2,
                   adaptive_families=("pgd_l2", "flow", "patch"), **BUDGETS)
    before = [np.array(w) for w in arn.decoder.trainable_variables]
    logs = arn.train_step({"adversarial": x_adv, "natural": x_nat})
    assert all(np.isfinite(float(v)) for v in logs.values()) and float(logs["adaptive"]) > 0
    assert any(not np.array_equal(b, np.array(w)) for b, w in zip(before, arn.decoder.trainable_variables, strict=True))
    # Only runs with families write them: the ids of adaptive runs from before the option stay.
    saved = arn.arn_config.to_dict()
    assert saved["adaptive_families"] == ["pgd_l2", "flow", "patch"]
    assert ARNConfig.from_dict(saved) == arn.arn_config
    assert "adaptive_families" not in ARNConfig(adaptive_share=1.0).to_dict()


def test_the_patch_is_a_square_on_grayscale_and_of_any_shape_on_colour():
    seed = tf.constant([1, 2], tf.int64)
    gray = patch_mask(tf.zeros((8, 28, 28, 1)), 6, seed).numpy()
    assert (gray.sum(axis=(1, 2, 3)) == 36).all()
    colour = patch_mask(tf.zeros((16, 32, 32, 3)), 7, seed).numpy()
    heights = {int(m[..., 0].any(axis=1).sum()) for m in colour}
    assert len(heights) > 1 and all(3 <= h <= 14 for h in heights)


def test_bad_family_options_are_one_line():
    cases = [
        ({"adaptive_share": 0.5, "adaptive_families": ("pgd_linf", "fgsm")},
         "unknown adaptive attack family 'fgsm'; choose from: pgd_linf, pgd_linf_targeted, pgd_l2, flow, patch"),
        ({"adaptive_families": ("pgd_linf",)}, "adaptive_families needs adaptive training: set adaptive_share > 0"),
        ({"adaptive_share": 0.5, "adaptive_families": ("flow",)}, "adaptive family 'flow' needs adaptive_flow_eps > 0"),
    ]
    for changes, message in cases:
        with pytest.raises(ArnkitError) as refused:
            ARNConfig(**changes)
        assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_train_takes_the_family_budgets_from_the_dataset(tmp_path):
    from arnkit.data import budgets
    from arnkit.defenses.arn.recipe import arn_config
    from arnkit.runs.context import RunContext

    ctx = RunContext.build("synthetic", workspace=tmp_path, seed=0)
    config, _ = arn_config(ctx, n_steps=10, width="tiny", objective="paper", learning_rate=None, lr_schedule=None,
                           guide_weight=None, adaptive=True, ablate=(),
                           config_overrides={"adaptive_families": "pgd_l2,flow,patch", "generator": "residual_unet"})
    assert config.adaptive_families == ("pgd_l2", "flow", "patch") and config.generator == "residual_unet"
    assert (config.adaptive_l2_eps, config.adaptive_flow_eps, config.adaptive_patch) == (
        budgets.SYNTHETIC.l2_eps, budgets.SYNTHETIC.flow_eps, budgets.SYNTHETIC.patch)
    assert budgets.derived(0.6, (28, 28, 1)).l2_eps == pytest.approx(2 * budgets.MNIST.l2_eps)  # scaled with eps


# -------------------------------------------------------------------------------- EMA of the weights ---

def test_ema_averages_the_restorer_and_the_export_carries_the_averages(pairs, tmp_path):
    x_adv, x_nat = pairs
    m = 0.75
    arn = make_arn(ema=m)
    raw = []
    for _ in range(2):
        arn.train_step({"adversarial": x_adv, "natural": x_nat})
        raw.append({p: [np.array(v) for v in getattr(arn, p).trainable_variables]
                    for p in ("encoder", "decoder", "attack_discriminator")})
    # Keras's optimizer EMA: the first step copies the weights, then average = m * average + (1 - m) * weights.
    checkpoint = arn.save_checkpoint(tmp_path / "checkpoint.npz")
    assert arn.use_averaged_weights()
    for player in ("encoder", "decoder"):
        for now, first, second in zip(getattr(arn, player).trainable_variables, raw[0][player], raw[1][player],
                                      strict=True):
            np.testing.assert_allclose(np.array(now), m * first + (1 - m) * second, rtol=1e-5, atol=1e-7)
    moved = sum(not np.allclose(a, b) for a, b in zip(raw[0]["decoder"], raw[1]["decoder"], strict=True))
    assert moved > 0, "the second step moved no weight: the average would equal the raw weights"
    # The discriminators are never deployed and are not averaged.
    for now, last in zip(arn.attack_discriminator.trainable_variables, raw[1]["attack_discriminator"], strict=True):
        np.testing.assert_array_equal(np.array(now), last)
    x = x_adv[:4, 1].numpy()
    path = save_defense(export_preprocessor(arn), tmp_path / "arn.keras")
    np.testing.assert_allclose(np.asarray(load_defense(path)(x)), np.asarray(arn(x)), atol=1e-6)
    # The checkpoint holds the raw weights and the averages: a resumed run averages on from where it stopped.
    resumed = make_arn(ema=m, seed=3).restore_checkpoint(checkpoint)
    for now, last in zip(resumed.decoder.trainable_variables, raw[1]["decoder"], strict=True):
        np.testing.assert_array_equal(np.array(now), last)
    assert resumed.use_averaged_weights()
    np.testing.assert_allclose(np.asarray(resumed(x)), np.asarray(arn(x)), atol=1e-6)


def test_ema_is_opt_in_and_checked():
    assert "ema" not in ARNConfig().to_dict()  # run ids of runs without EMA are unchanged
    assert ARNConfig(ema=0.999).to_dict()["ema"] == 0.999
    assert not make_arn().use_averaged_weights()
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ArnkitError) as refused:
            ARNConfig(ema=bad)
        assert "ARN ema must be in [0, 1) (0 = off; 0.999 is typical)" in str(refused.value)
