"""Physically-realizable attacks: RP2 sticker masks (Eykholt et al. 2018) and ROA (Wu et al. 2020)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from arnkit import attacks
from arnkit.attacks.masks import MASK_FRACTIONS, MASKS, make_mask
from arnkit.attacks.roa import ROA
from arnkit.attacks.rp2 import RP2, random_views
from arnkit.errors import ArnkitError

SHAPES = [(28, 28, 1), (32, 32, 3)]
STICKERS = ("ap1", "ap2", "ap3")


# -- masks ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", list(MASKS))
def test_mask_is_binary_nonempty_and_near_its_documented_size(name, shape):
    mask = make_mask(name, shape[:2], shape[2])
    assert mask.shape == (shape[0], shape[1], 1) and mask.dtype == np.float32
    assert set(np.unique(mask)) == {0.0, 1.0}
    # within the image: the corners stay clean (the sign is an octagon, stickers sit on it)
    for corner in (mask[0, 0], mask[0, -1], mask[-1, 0], mask[-1, -1]):
        assert corner == 0.0
    assert abs(mask.mean() - MASK_FRACTIONS[name]) <= 0.2 * MASK_FRACTIONS[name]


@pytest.mark.parametrize("shape", SHAPES)
def test_sticker_layouts_match_the_docstring(shape):
    h, w, c = shape
    components = {name: ndimage.label(make_mask(name, (h, w), c)[..., 0])[0] for name in STICKERS}
    counts = {name: labels.max() for name, labels in components.items()}
    assert counts == {"ap1": 2, "ap2": 4, "ap3": 1}
    # ap2: four small stickers of 3-5% of the image each
    sizes = np.bincount(components["ap2"].ravel())[1:] / (h * w)
    assert np.all((sizes >= 0.03) & (sizes <= 0.05)), sizes
    # ap1: horizontal bars (wider than tall); ap3: a filled square below the centre
    for part in ndimage.find_objects(components["ap1"]):
        assert part[1].stop - part[1].start > 2 * (part[0].stop - part[0].start)
    (rows, cols), = ndimage.find_objects(components["ap3"])
    assert rows.stop - rows.start == cols.stop - cols.start
    assert (rows.start + rows.stop) / 2 > h / 2


@pytest.mark.parametrize("shape", SHAPES)
def test_masks_differ_and_stickers_lie_on_the_sign(shape):
    masks = {name: make_mask(name, shape[:2], shape[2])[..., 0] > 0 for name in MASKS}
    names = list(masks)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            iou = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
            assert iou < 0.5, (a, b, iou)
    for name in STICKERS:
        assert not np.any(masks[name] & ~masks["octagon"])


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
def test_rp2_registry_entries_and_contract():
    for key, mask in (("rp2", "octagon"), ("ap1", "ap1"), ("ap2", "ap2"), ("ap3", "ap3")):
        attack = attacks.make(key, dataset="lisa")
        assert isinstance(attack, RP2) and attack.mask == mask
        assert attack.steps == 500 and attack.lr == 0.01 and attack.norm_weight == 0.02
        assert attack.distance == "patch" and not attack.has_eps and not attack.targeted
        assert attack.params()["mask"] == mask
    assert attacks.make("ap1", dataset="mnist").steps < 500


def test_rp2_octagon_fools_tiny_classifier_and_stays_in_mask(tiny_classifier, synthetic_data):
    x, y = synthetic_data[2][:64], synthetic_data[3][:64]
    x_before = x.copy()
    result = RP2(mask="octagon", steps=60)(tiny_classifier, x, y, seed=0)
    _check_outputs(x, x_before, result)
    outside = make_mask("octagon", (28, 28))[..., 0] == 0
    assert np.array_equal(result.x_adv[:, outside], x[:, outside])  # exactly unchanged off the mask
    assert result.success_rate >= 0.9


@pytest.mark.parametrize("mask", STICKERS)
def test_rp2_stickers_change_only_sticker_pixels_on_color_images(color_classifier, mask):
    model, x, y = color_classifier
    x, y = x[:16], y[:16]
    x_before = x.copy()
    result = RP2(mask=mask, steps=10)(model, x, y, seed=0)
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
