"""Adaptive ARN training (`arnkit train --adaptive`, ARNConfig.adaptive_*): white-box examples crafted on the fly
against the current pre-processor + target, their gradients, the record and the export. Tiny preset, synthetic data."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from arn_fixtures import guide_model  # noqa: E402

from arnkit.defenses.arn import ARN, ARNConfig  # noqa: E402
from arnkit.errors import ArnkitError  # noqa: E402


def make_arn(guide=None, **changes) -> ARN:
    keras.utils.set_random_seed(0)
    config = ARNConfig.for_dataset("mnist", preset="tiny", adaptive_share=0.5, adaptive_steps=3, **changes)
    arn = ARN(image_shape=(28, 28, 1), num_attacks=2, config=config, guide=guide)
    arn.compile()
    return arn


def crafted(arn, x):
    state = np.array(arn.seed_generator.state)
    out = np.asarray(arn.craft_adaptive(x))
    arn.seed_generator.state.assign(state)
    return out


def target_loss(arn, guide, x, labels):
    logits = guide(arn(x, training=False), training=False)
    return float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)))


def test_adaptive_examples_are_crafted_against_the_current_preprocessor(pairs):
    _, x = pairs
    guide = guide_model()
    arn = make_arn(guide)
    first = crafted(arn, x)
    assert first.shape == (8, 28, 28, 1)  # ceil(0.5 * 16) rows
    assert np.max(np.abs(first - x.numpy()[:8])) <= 0.3 + 1e-6 and first.min() >= 0 and first.max() <= 1
    labels = tf.argmax(guide(x[:8], training=False), axis=-1)
    # PGD through G(E(.)) + target raises the target's loss over the natural images.
    assert target_loss(arn, guide, first, labels) > target_loss(arn, guide, x[:8], labels)
    assert np.array_equal(crafted(arn, x), first)  # same weights, same noise: same examples
    for variable in arn.decoder.trainable_variables:
        variable.assign(variable * 1.5)
    moved = crafted(arn, x)
    assert not np.allclose(moved, first, atol=1e-3)  # new pre-processor weights, new examples


@pytest.mark.parametrize("update", ["both", "encoder", "decoder"])
def test_adaptive_gradients_equal_each_players_own_loss_gradient(pairs, update):
    """With the leaked examples fixed, compute_gradients gives d/dE of L_E (+ the adaptive term unless only G
    learns from it) and d/dG of L_G (+ the adaptive term unless only E does); D_A and D_I never see them."""
    x_adv, x_nat = pairs
    guide = guide_model()
    arn = make_arn(guide, sample_latent=False, guide_weight=1.0, adaptive_update=update)
    guide_before = [np.array(w) for w in guide.weights]
    state = np.array(arn.seed_generator.state)
    # The training-mode forward pass moves BatchNorm's statistics, which the inference-mode attack reads.
    statistics = [np.array(w) for w in arn.weights]
    grads, logs = arn.compute_gradients(x_adv, x_nat)
    arn.seed_generator.state.assign(state)
    for w, value in zip(arn.weights, statistics, strict=True):
        w.assign(value)
    x_leak = arn.craft_adaptive(x_nat)
    cfg = arn.arn_config
    with tf.GradientTape(persistent=True) as tape:
        v = arn._forward_losses(x_adv, x_nat, x_leak)
        restore = cfg.mse_weight * v["mse"] + cfg.guide_weight * v["guide"]
        leak_e = v["adaptive"] if update in ("both", "encoder") else 0.0
        leak_g = v["adaptive"] if update in ("both", "decoder") else 0.0
        l_e = restore + leak_e + cfg.lambda1 * v["att"] + cfg.lambda2 * v["nor"]
        l_g = restore + leak_g + cfg.theta * v["adv"]
    assert float(v["adaptive"]) > 0 and float(logs["adaptive"]) == pytest.approx(float(v["adaptive"]), rel=1e-5)
    expected = {
        "encoder": tape.gradient(l_e, arn.encoder.trainable_variables),
        "decoder": tape.gradient(l_g, arn.decoder.trainable_variables),
        "attack_discriminator": tape.gradient(v["da"], arn.attack_discriminator.trainable_variables),
        "image_discriminator": tape.gradient(v["di"], arn.image_discriminator.trainable_variables),
    }
    for player, want in expected.items():
        for got, ref in zip(grads[player], want, strict=True):
            ref = np.zeros(got.shape, np.float32) if ref is None else np.asarray(ref)
            np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-4, atol=1e-6, err_msg=player)
    for before, w in zip(guide_before, guide.weights, strict=True):
        np.testing.assert_array_equal(before, np.array(w))  # the target is attacked and read, never trained


def test_one_adaptive_step_trains_and_the_non_adaptive_config_keeps_its_run_id(pairs):
    x_adv, x_nat = pairs
    arn = make_arn(guide_model())
    logs = arn.train_step({"adversarial": x_adv, "natural": x_nat})
    assert all(np.isfinite(float(value)) for value in logs.values()) and float(logs["adaptive"]) > 0
    plain = ARNConfig.for_dataset("mnist").to_dict()
    assert not any(name.startswith("adaptive") for name in plain)
    leaky = ARNConfig.for_dataset("mnist", adaptive_share=1.0).to_dict()
    assert leaky["adaptive_share"] == 1.0 and ARNConfig.from_dict(leaky).adaptive_step == pytest.approx(0.15)


def test_adaptive_without_a_target_and_bad_settings_are_one_clear_error(pairs):
    x_adv, x_nat = pairs
    arn = make_arn(None)
    with pytest.raises(ArnkitError, match=r"build ARN\(\.\.\., guide=classifier\)"):
        arn.compute_gradients(x_adv, x_nat)
    for bad, message in [({"adaptive_share": 1.5}, "adaptive_share must be in"),
                         ({"adaptive_share": float("nan")}, "adaptive_share must be in"),
                         ({"adaptive_share": 0.5, "adaptive_steps": 0}, "adaptive_steps must be >= 1"),
                         ({"adaptive_share": 0.5, "adaptive_update": "discriminators"}, "unknown ARN adaptive_update")]:
        with pytest.raises(ArnkitError, match=message):
            ARNConfig(**bad)


def test_adaptive_run_record_export_and_bad_input(tmp_path):
    from typer.testing import CliRunner

    from arnkit import data
    from arnkit.defenses import registry
    from arnkit.defenses.files import HEADER
    from arnkit.pipeline.evaluate import resolve_defenses
    from arnkit.pipeline.train import train_defense
    from arnkit.progress import NullProgress
    from arnkit.workspace import Workspace
    from arnkit_cli.main import app

    fast = {"dataset": "synthetic", "seen": "fgsm,pgd_n", "width": "tiny", "pool_size": 64, "batch_size": 16,
            "eval_limit": 32, "checkpoint_every": 2, "steps": 3}
    plain = train_defense(workspace=tmp_path, **fast)
    record = train_defense(workspace=tmp_path, adaptive=True, **fast)
    leak = record["adaptive"]
    assert leak == {"share": 0.5, "steps": 5, "eps": 0.3, "step_size": 0.0, "update": "both", "guide_weight": None}
    assert record["options"]["adaptive"] == leak and record["label"] == "arn_adaptive_fgsm+pgd_n"
    assert record["config"]["adaptive_share"] == 0.5 and record["final_losses"]["adaptive"] > 0
    with zipfile.ZipFile(record["defense_path"]) as archive:
        assert json.loads(archive.read(HEADER))["adaptive"] == leak
    defense, loaded = registry.load_file(record["defense_path"], "synthetic")
    assert loaded.options["adaptive"] == leak and defense.kind == "preprocessor"
    x = np.random.default_rng(0).uniform(size=(2, 28, 28, 1)).astype("float32")
    assert np.asarray(defense.model(x)).shape == x.shape
    assert plain["defense_path"] != record["defense_path"] and "adaptive" not in plain["options"]
    # `--defense arn` means the plain run, though the adaptive one is newer.
    chosen = resolve_defenses("arn", data.info("synthetic"), Workspace.resolve(tmp_path), seed=0, progress=NullProgress(),
                              target_fingerprint=record["target_fingerprint"])
    assert [r.path for r in chosen] == [plain["defense_path"]]
    again = train_defense(workspace=tmp_path, adaptive=True, **fast)
    assert again["reused"] is True and again["defense_path"] == record["defense_path"]
    bad = CliRunner().invoke(app, ["train", "--dataset", "synthetic", "--defense", "at_pgd", "--adaptive",
                                   "--workspace", str(tmp_path)])
    assert bad.exit_code == 1 and "robust classifier" in bad.output and len(bad.output.strip().splitlines()) == 1
