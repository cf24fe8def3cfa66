"""Physically-realizable attacks: RP2 sticker masks (Eykholt et al. 2018) and ROA (Wu et al. 2020)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from arnkit import attacks
from arnkit.attacks.masks import MASK_FRACTIONS, MASKS, SOURCES, make_mask
from arnkit.attacks.roa import ROA
from arnkit.attacks.rp2 import RP2, random_views
from arnkit.attacks.sticker import StickerPatch
from arnkit.errors import ArnkitError

SHAPES = [(28, 28, 1), (32, 32, 3)]
STICKERS = ("ap1", "ap2", "ap3", "ap4")
RP2_MASKS = Path(__file__).resolve().parents[2] / "shared" / "data" / "rp2-masks"


# -- masks ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES + [(64, 64, 3)])
@pytest.mark.parametrize("name", list(MASKS))
def test_mask_is_binary_nonempty_and_near_its_documented_size(name, shape):
    mask = make_mask(name, shape[:2], shape[2])
    assert mask.shape == (shape[0], shape[1], 1) and mask.dtype == np.float32
    assert set(np.unique(mask)) == {0.0, 1.0}
    for corner in (mask[0, 0], mask[0, -1], mask[-1, 0], mask[-1, -1]):
        assert corner == 0.0
    assert abs(mask.mean() - MASK_FRACTIONS[name]) <= 0.25 * MASK_FRACTIONS[name]


def test_sticker_shapes_are_doas_four_masks():
    """Pixel counts and connected pieces of DOA's sign/mask/ files at 32x32 (binarized at 0.5)."""
    pixels = {name: int(make_mask(name, (32, 32)).sum()) for name in STICKERS}
    assert pixels == {"ap1": 30, "ap2": 49, "ap3": 45, "ap4": 29}
    pieces = {name: ndimage.label(make_mask(name, (32, 32))[..., 0])[0].max() for name in STICKERS}
    assert pieces == {"ap1": 4, "ap2": 1, "ap3": 1, "ap4": 3}
    assert SOURCES["ap1"] == "mask_l1loss_uniform_rectangles.png"
    assert [SOURCES[f"ap{i}"] for i in (2, 3, 4)] == ["maskdone4.jpg", "maskdone5.jpg", "maskdone6.jpg"]


@pytest.mark.skipif(not (RP2_MASKS / "mask_l1loss_uniform_rectangles.png").is_file(), reason="no ../shared/data")
def test_ap1_is_rp2s_sticker_file_pixel_for_pixel():
    from PIL import Image

    with Image.open(RP2_MASKS / "mask_l1loss_uniform_rectangles.png") as image:
        reference = np.asarray(image.convert("L"), np.float32) / 255.0 > 0.5
    assert np.array_equal(make_mask("ap1", (32, 32))[..., 0] > 0, reference)


def test_sticker_masks_scale_by_nearest_neighbour():
    small = make_mask("ap3", (32, 32))[..., 0]
    big = make_mask("ap3", (64, 64))[..., 0]
    assert np.array_equal(big, np.kron(small, np.ones((2, 2), np.float32)))


@pytest.mark.parametrize("shape", SHAPES)
def test_masks_differ_and_stickers_lie_on_the_sign(shape):
    masks = {name: make_mask(name, shape[:2], shape[2])[..., 0] > 0 for name in MASKS}
    names = list(masks)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            iou = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
            assert iou < 0.5, (a, b, iou)


def test_user_masks_are_validated():
    custom = np.zeros((28, 28), np.float32)
    custom[5:9, 5:9] = 1.0
    assert make_mask(custom, (28, 28), 1).shape == (28, 28, 1)
    with pytest.raises(ArnkitError, match="does not fit"):
        make_mask(custom, (32, 32), 3)
    with pytest.raises(ArnkitError, match=r"\[0, 1\]"):
        make_mask(custom * 2.0, (28, 28), 1)
    with pytest.raises(ArnkitError, match="all zeros"):
        make_mask(np.zeros((28, 28)), (28, 28), 1)
    with pytest.raises(ArnkitError, match="unknown mask"):
        RP2(mask="ap9")


# -- shared checks ---------------------------------------------------------------------------------------
def _check_outputs(x, x_before, result):
    assert np.array_equal(x, x_before), "the attack modified its input in place"
    assert result.x_adv.shape == x.shape and result.x_adv.dtype == np.float32
    assert np.all(np.isfinite(result.x_adv))
    assert result.x_adv.min() >= 0.0 and result.x_adv.max() <= 1.0


@pytest.fixture(scope="module")
def color_classifier(synthetic_data):
    """A tiny LeNet on 32x32x3 colour versions of the synthetic set (4 classes)."""
    import keras

    from arnkit.models import build

    def colorize(x):
        padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
        return np.concatenate([padded, 0.6 * padded, 1.0 - padded], axis=-1).astype(np.float32)

    x_train, y_train, x_test, y_test, meta = synthetic_data
    keras.utils.set_random_seed(0)
    model = build("lenet", (32, 32, 3), meta.num_classes, width=8, hidden=32)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(colorize(x_train), y_train, epochs=4, batch_size=64, verbose=0)
    x, y = colorize(x_test[:48]), y_test[:48]
    assert np.mean(np.argmax(model.predict(x, verbose=0), -1) == y) > 0.9
    return model, x, y


# -- RP2 -------------------------------------------------------------------------------------------------
def test_rp2_and_sticker_registry_entries():
    attack = attacks.make("rp2", dataset="lisa")
    assert isinstance(attack, RP2) and attack.mask == "octagon"
    assert attack.steps == 500 and attack.lr == 0.01 and attack.norm_weight == 0.02
    for key in STICKERS:
        attack = attacks.make(key, dataset="lisa")
        assert isinstance(attack, StickerPatch) and attack.mask == key and attack.params()["mask"] == key
        assert (attack.steps, attack.step_size, attack.random_start) == (100, 0.1, True)
        assert attack.distance == "patch" and not attack.has_eps and not attack.targeted
        assert attacks.get(key).applies_to("lisa") and not attacks.get(key).applies_to("mnist")
    assert attacks.make("rp2", dataset="mnist").steps < 500


def test_patches_are_refused_for_other_datasets_in_one_line():
    from arnkit import data
    from arnkit.pipeline.evaluate import attack_specs
    from arnkit.pipeline.train import parse_seen

    with pytest.raises(ArnkitError, match="'ap1' is for lisa images, not mnist") as info:
        parse_seen("pgd_n,ap1", "mnist")
    assert "\n" not in str(info.value)
    with pytest.raises(ArnkitError, match="'ap5'"):
        parse_seen("ap1,ap5", "lisa")
    assert parse_seen("ap3,ap4", "lisa") == ["ap3", "ap4"]
    assert not any(s.key.startswith("ap") for s in attack_specs("all", data.info("mnist")))
    lisa_keys = {s.key for s in attack_specs("all", data.info("lisa"))}
    assert {"ap1", "ap2", "ap3", "ap4", "rp2", "roa", "pgd_n"} <= lisa_keys


def test_rp2_octagon_fools_tiny_classifier_and_stays_in_mask(tiny_classifier, synthetic_data):
    x, y = synthetic_data[2][:64], synthetic_data[3][:64]
    x_before = x.copy()
    result = RP2(mask="octagon", steps=60)(tiny_classifier, x, y, seed=0)
    _check_outputs(x, x_before, result)
    outside = make_mask("octagon", (28, 28))[..., 0] == 0
    assert np.array_equal(result.x_adv[:, outside], x[:, outside])  # exactly unchanged off the mask
    assert result.success_rate >= 0.9


@pytest.mark.parametrize("mask", STICKERS)
def test_stickers_change_only_sticker_pixels_on_color_images(color_classifier, mask):
    model, x, y = color_classifier
    x, y = x[:16], y[:16]
    x_before = x.copy()
    result = StickerPatch(mask=mask, steps=10)(model, x, y, seed=0)
    _check_outputs(x, x_before, result)
    inside = make_mask(mask, (32, 32))[..., 0] > 0
    assert np.array_equal(result.x_adv[:, ~inside], x[:, ~inside])
    assert np.abs(result.x_adv[:, inside] - x[:, inside]).max() > 0.05


def test_rp2_octagon_fools_color_classifier(color_classifier):
    model, x, y = color_classifier
    result = RP2(mask="octagon", steps=60)(model, x, y, seed=0)
    assert result.success_rate >= 0.9


def test_rp2_targeted_and_user_mask(tiny_classifier, synthetic_data):
    x, y = synthetic_data[2][:32], synthetic_data[3][:32]
    custom = np.zeros((28, 28), np.float32)
    custom[2:26, 2:26] = 1.0
    result = RP2(mask=custom, steps=50, targeted=True)(tiny_classifier, x, y, seed=1)
    assert np.all(result.target != y)
    assert np.array_equal(result.x_adv[:, custom == 0], x[:, custom == 0])
    assert result.success_rate >= 0.7


def test_rp2_is_deterministic_given_seed(tiny_classifier, synthetic_data):
    x, y = synthetic_data[2][:8], synthetic_data[3][:8]
    attack = RP2(mask="ap2", steps=5, eot_samples=2)
    first = attack(tiny_classifier, x, y, seed=3).x_adv
    assert np.array_equal(first, attack(tiny_classifier, x, y, seed=3).x_adv)
    assert not np.array_equal(first, attack(tiny_classifier, x, y, seed=4).x_adv)


def test_random_views_are_seeded_and_identity_at_zero_range():
    images = tf.random.stateless_uniform([4, 32, 32, 3], [0, 0])
    seed = tf.constant([1, 2], tf.int64)
    ranges = [tf.constant(v) for v in (0.1, 0.1, 5.0, 0.05, 0.0625)]
    views = random_views(images, seed, *ranges)
    assert np.array_equal(views.numpy(), random_views(images, seed, *ranges).numpy())
    assert np.abs(views.numpy() - images.numpy()).mean() > 0.01
    identity = random_views(images, seed, *[tf.constant(0.0)] * 5)
    np.testing.assert_allclose(identity.numpy(), images.numpy(), atol=1e-5)


# -- ROA -------------------------------------------------------------------------------------------------
def _planted_model(rows: slice, cols: slice, shape=(28, 28, 1)):
    """Two classes: logit 1 grows with the brightness of one region only; a black image is class 0."""
    import keras

    weights = np.zeros((*shape, 2), np.float32)
    weights[rows, cols, :, 1] = 1.0
    model = keras.Sequential([keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(2)])
    model.layers[-1].set_weights([weights.reshape(-1, 2), np.array([4.0, 0.0], np.float32)])
    return model


@pytest.mark.parametrize("search", ["exhaustive", "gradient"])
def test_roa_placement_finds_the_planted_region(search):
    model = _planted_model(slice(10, 16), slice(18, 24))  # on the stride-2 grid of a 6x6 rectangle
    x = np.zeros((3, 28, 28, 1), np.float32)
    y = np.zeros(3, np.int64)
    attack = ROA(width=6, height=6, stride=2, search=search, steps=0)
    assert attack.locate(model, x, y).tolist() == [[10, 18]] * 3
    x_adv = attack(model, x, y).x_adv
    expected = np.zeros_like(x)
    expected[:, 10:16, 18:24] = 0.5
    assert np.array_equal(x_adv, expected)


def test_roa_changes_only_one_rectangle(color_classifier):
    model, x, y = color_classifier
    x, y = x[:16], y[:16]
    x_before = x.copy()
    attack = attacks.make("roa", dataset="lisa")
    assert (attack.width, attack.height, attack.stride, attack.steps, attack.step_size) == (7, 7, 2, 30, 0.01)
    assert attack.distance == "patch" and not attack.has_eps
    result = attack(model, x, y, seed=0)
    _check_outputs(x, x_before, result)
    for before, after in zip(x, result.x_adv, strict=True):
        rows, cols = np.nonzero(np.any(before != after, axis=-1))
        assert len(rows) > 0
        assert rows.max() - rows.min() < 7 and cols.max() - cols.min() < 7


@pytest.mark.parametrize("search, floor", [("exhaustive", 0.6), ("gradient", 0.3)])
def test_roa_fools_tiny_classifiers(tiny_classifier, color_classifier, synthetic_data, search, floor):
    x, y = synthetic_data[2][:48], synthetic_data[3][:48]
    # The synthetic class marks are 8x8 squares: a 10x10 gray rectangle alone fools almost nothing (measured
    # 0-2%), the signed steps inside it do the work.
    attack = ROA(width=10, height=10, stride=2, search=search)
    model, xc, yc = color_classifier
    for clf, images, labels in ((tiny_classifier, x, y), (model, xc, yc)):
        assert attack(clf, images, labels, seed=0).success_rate >= floor


def test_roa_rejects_a_rectangle_larger_than_the_image(tiny_classifier, synthetic_data):
    x, y = synthetic_data[2][:2], synthetic_data[3][:2]
    with pytest.raises(ArnkitError, match="does not fit"):
        ROA(width=40, height=7)(tiny_classifier, x, y)
    with pytest.raises(ArnkitError, match="search"):
        ROA(search="random")


# -- sticker patches (DOA's attack) ------------------------------------------------------------------------
def _sticker_region_model(mask: np.ndarray):
    """Two classes; logit 1 = brightness summed over the sticker's pixels minus a bias: only they can flip it."""
    import keras

    weights = np.zeros((32, 32, 3, 2), np.float32)
    weights[mask[..., 0] > 0, :, 1] = 1.0
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    model.layers[-1].set_weights([weights.reshape(-1, 2), np.array([0.6 * weights[..., 1].sum(), 0.0], np.float32)])
    return model


def test_sticker_step_is_a_signed_step_from_a_random_start():
    mask = make_mask("ap2", (32, 32))
    model = _sticker_region_model(mask)
    x = np.zeros((4, 32, 32, 3), np.float32)
    y = np.zeros(4, np.int64)
    start = StickerPatch(mask="ap2", steps=0)(model, x, y, seed=0).x_adv
    inside = mask[..., 0] > 0
    assert np.array_equal(start[:, ~inside], x[:, ~inside])
    assert 0.3 < start[:, inside].mean() < 0.7  # uniform [0, 1) start on the sticker only
    one = StickerPatch(mask="ap2", steps=1)(model, x, y, seed=0)
    # one signed step of .1 raises every sticker pixel (the loss falls as they brighten), clipped at 1
    np.testing.assert_allclose(one.x_adv[:, inside], np.minimum(start[:, inside] + 0.1, 1.0), atol=1e-6)
    done = StickerPatch(mask="ap2", steps=10)(model, x, y, seed=0)
    assert done.success.all() and np.array_equal(done.x_adv[:, ~inside], x[:, ~inside])
    unstarted = StickerPatch(mask="ap2", steps=0, random_start=False)(model, x, y, seed=0).x_adv
    assert np.array_equal(unstarted, x)


def test_sticker_is_deterministic_given_seed_and_fools_a_color_classifier(color_classifier):
    model, x, y = color_classifier
    attack = StickerPatch(mask="ap3", steps=5)
    first = attack(model, x[:8], y[:8], seed=3).x_adv
    assert np.array_equal(first, attack(model, x[:8], y[:8], seed=3).x_adv)
    assert not np.array_equal(first, attack(model, x[:8], y[:8], seed=4).x_adv)
    with pytest.raises(ArnkitError, match="unknown mask 'ap9'"):
        StickerPatch(mask="ap9")
    with pytest.raises(ArnkitError, match="step_size"):
        StickerPatch(step_size=0.0)
