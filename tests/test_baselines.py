"""The baselines' own behaviour (the registry contract test covers what they share): HGD's guided loss,
DOA's rectangles, AT_PGD's robustness, APE-GAN's two players, and their bad-input lines."""

import json

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from arnkit import data
from arnkit.defenses import apeg, hgd
from arnkit.defenses.doa import parse_rectangle, train_doa
from arnkit.errors import ArnkitError
from arnkit_cli.main import app


def _pairs(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x_nat = data.load_arrays("synthetic", "train", limit=n)[0]
    x_adv = np.clip(x_nat + rng.uniform(-0.3, 0.3, x_nat.shape), 0, 1).astype(np.float32)
    return x_adv, x_nat


def test_hgd_loss_is_the_targets_and_only_the_denoiser_learns(tiny_classifier):
    meta = data.info("synthetic")
    target = tiny_classifier
    x_adv, x_nat = _pairs()
    trainer = hgd.build_trainer(meta, target, 0, width=4, learning_rate=1e-2, guide="logits")
    net = trainer.preprocessor
    restored = net(x_adv, training=False)
    loss = float(hgd.hgd_loss(target, restored, x_nat))
    by_hand = np.mean(np.abs(np.asarray(target(restored)) - np.asarray(target(x_nat))))
    assert loss == pytest.approx(float(by_hand), rel=1e-5)
    # The loss is the target's: doubling the target's last layer doubles its logits and so the loss.
    doubled = keras.models.clone_model(target)
    doubled.set_weights([*target.get_weights()[:-2], *(2 * w for w in target.get_weights()[-2:])])
    assert float(hgd.hgd_loss(doubled, restored, x_nat)) == pytest.approx(2 * loss, rel=1e-4)
    # Its gradient reaches every denoiser weight; training moves the denoiser and never the frozen target.
    import tensorflow as tf

    with tf.GradientTape() as tape:
        value = hgd.hgd_loss(target, net(x_adv, training=True), x_nat)
    grads = tape.gradient(value, net.trainable_variables)
    assert all(g is not None for g in grads) and sum(float(tf.reduce_sum(tf.abs(g))) for g in grads) > 0
    target_before = [w.copy() for w in target.get_weights()]
    net_before = [w.copy() for w in net.get_weights()]
    for _ in range(3):
        out = trainer.step(tf.constant(x_adv), tf.constant(x_nat))
    assert np.isfinite(float(out["loss"]))
    for before, after in zip(target_before, target.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    assert any(not np.allclose(b, a) for b, a in zip(net_before, net.get_weights(), strict=True))


def test_hgd_feature_guide_and_a_missing_layer(tiny_classifier):
    conv = next(layer.name for layer in tiny_classifier.layers if "conv" in layer.name)
    features = hgd.guide_model(tiny_classifier, conv)
    assert features.output_shape == tiny_classifier.get_layer(conv).output.shape
    with pytest.raises(ArnkitError, match="the target has no layer 'pool9'; pass --guide-layer logits or one of"):
        hgd.guide_model(tiny_classifier, "pool9")
    with pytest.raises(ArnkitError, match="multiples of 4"):
        hgd.denoiser((30, 30, 3))


def test_apeg_generator_restores_images_and_both_players_learn():
    import tensorflow as tf

    meta = data.info("synthetic")
    x_adv, x_nat = _pairs(32)
    trainer = apeg.build_trainer(meta, None, 0, width=8, learning_rate=2e-3)
    g = trainer.preprocessor
    out = np.asarray(g(x_adv, training=False))
    assert out.shape == x_adv.shape and out.min() >= 0.0 and out.max() <= 1.0
    before = [np.asarray(v).copy() for v in trainer.variables]
    first = trainer.step(tf.constant(x_adv), tf.constant(x_nat))
    for _ in range(40):
        last = trainer.step(tf.constant(x_adv), tf.constant(x_nat))
    assert float(last["mse"]) < float(first["mse"])  # the 0.7 MSE term pulls G(x_adv) towards x
    changed = [not np.allclose(b, np.asarray(v)) for b, v in zip(before, trainer.variables, strict=True)]
    n_g = len(g.weights)
    assert any(changed[:n_g]) and any(changed[n_g:])  # the generator and the discriminator both moved


def test_doa_examples_stay_inside_their_rectangle(tiny_classifier, monkeypatch):
    """DOA's per-batch examples (captured from its training loop) differ from the image only inside one
    rectangle of the requested HxW."""
    import arnkit.defenses.classifier_training as loop

    captured = {}

    def capture(key, dataset, craft, **kwargs):
        captured.update(craft=craft, **kwargs)
        return {}

    monkeypatch.setattr(loop, "fine_tune_target", capture)
    train_doa("synthetic", roa="9x5", attack_steps=5)
    assert captured["options"]["roa"] == "9x5" and captured["label"] == "doa_9x5"
    x_adv, x = _pairs(8, seed=1)
    y = np.argmax(np.asarray(tiny_classifier(x)), -1).astype(np.int32)
    out = np.asarray(captured["craft"](tiny_classifier, x, y, np.random.default_rng(0)))
    for image, adv in zip(x, out, strict=True):
        rows, cols = np.nonzero(np.abs(adv - image)[..., 0] > 1e-7)
        assert len(rows) > 0
        assert rows.max() - rows.min() + 1 <= 9 and cols.max() - cols.min() + 1 <= 5
        assert len(rows) <= 9 * 5


def test_roa_shape_bad_input_is_one_line():
    with pytest.raises(ArnkitError, match="--roa 40x3 does not fit 28x28 images"):
        parse_rectangle("40x3", (28, 28, 1), (7, 7))
    with pytest.raises(ArnkitError, match="--roa takes HxW in pixels"):
        parse_rectangle("7by7", (28, 28, 1), (7, 7))
    assert parse_rectangle(None, (32, 32, 3), (7, 7)) == (7, 7)
    assert parse_rectangle("9x5", (32, 32, 3), (7, 7)) == (9, 5)


def test_at_pgd_raises_robust_accuracy_over_the_clean_model(tmp_path):
    """PGD at eps .2 fools the clean synthetic target on about half the images; AT_PGD at that budget resists."""
    from arnkit.defenses.at_pgd import train_at_pgd
    from arnkit.pipeline.evaluate import evaluate

    record = train_at_pgd("synthetic", epochs=3, eps=0.2, attack_steps=7, step_size=0.05, eval_limit=16,
                          workspace=tmp_path)
    result = evaluate("synthetic", "pgd_n@0.2", defenses=f"none,{record['defense_path']}", limit=128,
                      workspace=tmp_path, sanity_checks=False)
    error = {(r["defense"], r["label"]): r["error"] for r in result["rows"]}
    assert error[("none", "pgd_n@0.2")] >= 25.0, error
    assert error[("at_pgd", "pgd_n@0.2")] <= error[("none", "pgd_n@0.2")] - 20.0, error
    assert error[("at_pgd", "clean")] <= 5.0, error


def test_train_cli_refuses_flags_of_another_recipe_and_lists_the_registry(tmp_path):
    runner = CliRunner()
    wrong = runner.invoke(app, ["train", "--defense", "at_pgd", "--seen", "pgd_n", "--workspace", str(tmp_path)])
    assert wrong.exit_code == 1
    assert "--seen does not apply to --defense at_pgd; it takes --epochs, --eps, --attack-steps, --step-size" \
        in wrong.output
    step = runner.invoke(app, ["train", "--defense", "doa", "--step-size", "0.1", "--workspace", str(tmp_path)])
    assert step.exit_code == 1 and "--step-size does not apply to --defense doa" in step.output
    select = runner.invoke(app, ["train", "--defense", "hgd", "--select-val", "64", "--workspace", str(tmp_path)])
    assert select.exit_code == 1 and "--select-val does not apply to --defense hgd" in select.output
    negative = runner.invoke(app, ["train", "--defense", "doa", "--select-val", "-1", "--workspace", str(tmp_path)])
    assert negative.exit_code == 1 and "--select-val must be >= 0 (0 = keep the last epoch), got -1" in negative.output
    unknown = runner.invoke(app, ["train", "--defense", "madry", "--workspace", str(tmp_path)])
    assert unknown.exit_code == 1 and "unknown defense 'madry'; known defenses: none, arn, at_pgd" in unknown.output
    width = runner.invoke(app, ["train", "--defense", "apeg", "--width", "large", "-d", "synthetic",
                                "--workspace", str(tmp_path)])
    assert width.exit_code == 1 and "APE-GAN --width takes a number of channels" in width.output
    assert not (tmp_path / "targets").exists()  # refused before any work
    listing = runner.invoke(app, ["defenses", "--dataset", "lisa", "--json"])
    assert listing.exit_code == 0
    rows = {row["key"]: row for row in json.loads(listing.stdout)}
    assert set(rows) == {"arn", "at_pgd", "doa", "apeg", "hgd"}
    assert rows["apeg"]["kind"] == "preprocessor" and rows["doa"]["kind"] == "classifier"
    assert rows["hgd"]["defaults"]["seen"] == ["ap1", "ap2"] and rows["at_pgd"]["defaults"]["eps"] == pytest.approx(8 / 255)


@pytest.mark.parametrize("key", ["apeg", "hgd"])
def test_preprocessor_baseline_resumes_to_the_same_weights(tmp_path, monkeypatch, key):
    """Stopped right after its first checkpoint, then resumed: the weights of an uninterrupted run."""
    import arnkit.defenses.pair_training as loop
    from arnkit.io import load_model

    train = apeg.train_apeg if key == "apeg" else hgd.train_hgd
    fast = {"steps": 4, "checkpoint_every": 2, "width": 4, "batch_size": 16, "pool_size": 32, "eval_limit": 16}
    whole = train("synthetic", workspace=tmp_path / "a", **fast)
    real_save = loop._save

    def save_then_stop(variables, path, step):
        real_save(variables, path, step)
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train("synthetic", workspace=tmp_path / "b", **fast)
    monkeypatch.setattr(loop, "_save", real_save)
    resumed = train("synthetic", workspace=tmp_path / "b", **fast)
    assert resumed["resumed_from"] == 2 and whole["resumed_from"] == 0
    a, b = load_model(whole["defense_path"]), load_model(resumed["defense_path"])
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)


def test_fine_tuning_keeps_the_best_epoch_and_resumes_its_choice(tmp_path):
    """With `select`, the exported classifier is the epoch with the lowest held-out score (not the last), the
    record lists every epoch's score, and a run interrupted after that epoch resumes to the same choice."""
    from arnkit.defenses import registry
    from arnkit.defenses.classifier_training import fine_tune_target
    from arnkit.presets import TargetRecipe

    recipe = TargetRecipe(epochs=3, learning_rate=5e-2, batch_size=64)
    scripted = {1: 5.0, 2: 1.0, 3: 3.0}  # epoch -> held-out error: epoch 2 is the best, epoch 3 is the last
    seen_weights = {}

    def select(model):
        epoch = len(seen_weights) + 1
        seen_weights[epoch] = [w.copy() for w in model.get_weights()]
        return scripted[epoch]

    calls = {"n": 0}

    def craft_then_stop(model, x, y, rng):  # noise examples; the run dies on epoch 3's first batch
        calls["n"] += 1
        if len(seen_weights) == 2:
            raise KeyboardInterrupt
        return np.clip(x + rng.uniform(-0.2, 0.2, x.shape), 0, 1).astype(np.float32)

    kwargs = dict(recipe=recipe, epochs=3, options={"probe": 1}, seen=["pgd_n"], title="probe", train_limit=256,
                  eval_limit=16, workspace=tmp_path, select=select)
    with pytest.raises(KeyboardInterrupt):
        fine_tune_target("at_pgd", "synthetic", craft_then_stop, **kwargs)
    assert sorted(seen_weights) == [1, 2]

    def craft(model, x, y, rng):
        return np.clip(x + rng.uniform(-0.2, 0.2, x.shape), 0, 1).astype(np.float32)

    record = fine_tune_target("at_pgd", "synthetic", craft, **kwargs)
    assert record["resumed_from_epoch"] == 2 and sorted(seen_weights) == [1, 2, 3]
    assert record["selected_epoch"] == 2 and record["epoch_scores"] == [5.0, 1.0, 3.0]
    defense, _ = registry.load_file(tmp_path / record["defense_path"], "synthetic")
    exported = defense.model.get_weights()
    for best, got in zip(seen_weights[2], exported, strict=True):
        np.testing.assert_array_equal(best, got)
    assert any(not np.array_equal(a, b) for a, b in zip(seen_weights[3], exported, strict=True))


def test_doa_selects_its_epoch_on_validation_roa(tmp_path):
    record = train_doa("synthetic", roa="5x5", epochs=2, attack_steps=2, train_limit=128, eval_limit=16,
                       workspace=tmp_path, select_val=32, dropout=0.0)
    assert record["options"]["select_val"] == 32 and record["selected_epoch"] in (1, 2)
    assert record["options"]["dropout"] == 0.0
    scores = record["epoch_scores"]
    assert len(scores) == 2 and all(0.0 <= s <= 100.0 for s in scores)
    assert scores[record["selected_epoch"] - 1] == min(scores)
    with pytest.raises(ArnkitError, match="--select-val 500 is more than the 64 validation images of synthetic"):
        train_doa("synthetic", roa="5x5", epochs=1, attack_steps=1, train_limit=64, workspace=tmp_path,
                  select_val=500)


def test_fine_tuning_can_switch_the_targets_dropout_off():
    """DOA's LISA network has no dropout; `dropout=0` fine-tunes arnkit's LISA-CNN the same way: every Dropout
    layer's rate is replaced, so a training-mode forward pass is the inference one."""
    from arnkit.defenses.classifier_training import fine_tune_target, set_dropout
    from arnkit.models.lisa_cnn import lisa_cnn

    model = lisa_cnn((32, 32, 3), 16, width=8, dropout=0.5)
    x = np.random.default_rng(0).uniform(0, 1, (8, 32, 32, 3)).astype(np.float32)
    assert not np.allclose(np.asarray(model(x, training=True)), np.asarray(model(x, training=False)))
    assert set_dropout(model, 0.0) == 1
    np.testing.assert_allclose(np.asarray(model(x, training=True)), np.asarray(model(x, training=False)), rtol=1e-6)
    with pytest.raises(ArnkitError, match=r"dropout must be in \[0, 1\), got 1.0"):
        fine_tune_target("doa", "synthetic", None, recipe=None, epochs=1, options={}, seen=["roa"], title="x",
                         dropout=1.0)
