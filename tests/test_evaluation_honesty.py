"""Issue 30, "the evaluation's honesty": `sanity_passed` is null when nothing was checked, the ordering check
compares errors with equal restarts, every attack is checked, the gradient-free check's size and tolerance,
the DLR gradient check, a planted defense with a wrong (sign-flipped) gradient flagged, failed checks in the
cells of results.md / results.csv, and white-box crafting through the exported adaptive ARN loaded from disk."""

from __future__ import annotations

import csv
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from arnkit.defenses.base import Defense
from arnkit.evaluation import checks as checks_module
from arnkit.evaluation import sanity, tables
from arnkit.evaluation.craft import Crafter
from arnkit.pipeline.evaluate import ResolvedDefense, evaluate
from arnkit.pipeline.train import train_defense

ADAPTIVE = {"dataset": "synthetic", "seen": "fgsm,pgd_n", "width": "tiny", "pool_size": 64, "batch_size": 16,
            "eval_limit": 16, "checkpoint_every": 4, "steps": 4}
# A small SPSA budget: seconds on a few dozen images.
FAST_SPSA = {"nb_iter": 30, "spsa_samples": 32, "learning_rate": 0.05}


class SignFlipped(keras.layers.Layer):
    """A planted lying 'defense': the identity forward, the NEGATED gradient backward. Its gradient is finite
    and nonzero everywhere, so the gradient check passes; the attack walks the wrong way."""

    def call(self, x):
        @tf.custom_gradient
        def flip(v):
            return tf.identity(v), lambda dy: -dy

        return flip(x)


@pytest.fixture(scope="module")
def adaptive(tmp_path_factory):
    """A workspace with the synthetic target and one tiny `--adaptive` ARN; the in-memory ARN of its last
    checkpoint is kept to compare with the exported file."""
    root = tmp_path_factory.mktemp("honesty")
    kept = {}
    record = train_defense(workspace=root, adaptive=True, on_checkpoint=lambda step, arn: kept.update(arn=arn),
                           **ADAPTIVE)
    return root, record, kept["arn"]


def test_sanity_passed_is_null_when_no_check_ran(adaptive):
    ws, record, _ = adaptive
    honest = ResolvedDefense(Defense("identity", "preprocessor", keras.layers.Identity()), "identity-v1")
    gray = evaluate("synthetic", "fgsm", defenses=[honest], limit=16, workspace=ws)
    unchecked = evaluate("synthetic", "fgsm", defenses=[honest], threat_model="white", sanity_checks=False,
                         limit=16, workspace=ws)
    for result in (gray, unchecked):
        assert result["sanity"] == [] and result["sanity_passed"] is None
        assert json.loads(open(result["files"]["json"]).read())["sanity_passed"] is None
    # The training run's closing report (gray box, written by runs/scoring.py) checked nothing either.
    closing = json.loads(open(record["evaluation_files"]["json"]).read())
    assert closing["sanity"] == [] and closing["sanity_passed"] is None


def test_dlr_gradient_check_flags_what_cross_entropy_misses():
    x = np.random.default_rng(0).uniform(size=(16, 28, 28, 1)).astype("float32")
    dense = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    y = np.argmax(np.asarray(dense(x)), -1)
    honest = sanity.gradient_check(dense, x, y)
    assert honest.passed and set(honest.value) == {"ce", "dlr"} and "ce and dlr" in honest.expected

    # Saturated logits: softmax is exactly one-hot, so CE's gradient is 0, but the margin still moves.
    saturated = keras.Sequential([dense, keras.layers.Rescaling(1e4)])
    check = sanity.gradient_check(saturated, x, y)
    assert not check.passed and check.value["ce"]["nonzero_fraction"] == 0.0
    assert check.value["dlr"]["nonzero_fraction"] == 1.0
    assert check.detail.startswith("the ce gradient through the defense is masked")

    # A flat margin: the three top logits are constants, the rest follow x far below them. CE's gradient is
    # tiny but nonzero; DLR (max other - true) / (top - third) does not move at all.
    inputs = keras.Input((28, 28, 1))
    mean = keras.layers.GlobalAveragePooling2D()(inputs)
    top = keras.layers.Lambda(lambda m: 0.0 * m + tf.constant([[5.0, 4.0, 3.0]]))(mean)
    low = keras.layers.Lambda(lambda m: tf.tile(m, [1, 7]) - 10.0)(mean)
    flat = keras.Model(inputs, keras.layers.Concatenate()([top, low]))
    check = sanity.gradient_check(flat, x, np.zeros(16, np.int32))
    assert not check.passed and check.value["ce"]["nonzero_fraction"] == 1.0
    assert check.value["dlr"]["nonzero_fraction"] == 0.0 and "the dlr gradient" in check.detail


def test_gradient_free_check_size_and_stated_tolerance():
    assert checks_module.GRADIENT_FREE_LIMIT >= 200 and checks_module.SANITY_LIMIT == 200
    assert [sanity.tolerance_images(n) for n in (200, 64, 49, 50)] == [4, 1, 0, 1]
    ok = sanity.gradient_free_check(200, {"pgd_n": 80.0}, 80.0, survivors=40, tried=40, fooled=4,
                                    free_attack="spsa_n@0.3")
    assert ok.passed and "tolerance 2 points (4 of 200 images)" in ok.detail
    assert ok.expected == "the gradient-free attack breaks <= 2 points (4 of 200 images) the gradient attacks left correct"
    bad = sanity.gradient_free_check(200, {"pgd_n": 80.0}, 80.0, survivors=40, tried=40, fooled=5,
                                     free_attack="spsa_n@0.3")
    assert not bad.passed and bad.value["gain"] == 2.5 and bad.value["tolerance_images"] == 4
    assert bad.detail.startswith("a gradient-free attack beats the gradient attacks: gradients are masked; "
                                 "spsa_n@0.3 broke 5 of the 40 images")


def test_failed_checks_mark_every_cell_they_concern():
    rows = [{"defense": d, "label": c, "error": 10.0, "n": 8, "seen": False}
            for d in ("none", "arn") for c in ("clean", "fgsm", "pgd_n", "worst case")]
    checks = [{"defense": "arn", "attack": "every column", "columns": ["fgsm", "pgd_n", "worst case"],
               "name": "gradient", "passed": False},
              {"defense": "arn", "attack": "pgd_n", "columns": ["pgd_n"], "name": "ordering", "passed": False},
              {"defense": "arn", "attack": "fgsm", "columns": ["fgsm"], "name": "iterations", "passed": True}]
    text = tables.markdown_table(rows, checks=checks)
    assert "| arn | 10.00 | 10.00 ! | 10.00 ! | 10.00 ! |" in text and "| none | 10.00 | 10.00 | 10.00 | 10.00 |" in text
    assert "'!' arn / pgd_n: failed sanity check gradient, ordering;" in text
    failed = {(r["defense"], r["label"]): r["failed_checks"] for r in csv.DictReader(tables.csv_text(rows, checks)
                                                                                     .splitlines())}
    assert failed[("arn", "fgsm")] == "gradient" and failed[("arn", "pgd_n")] == "gradient;ordering"
    assert failed[("arn", "clean")] == "" and not any(failed[("none", c)] for c in ("fgsm", "pgd_n"))
    # A record written before `columns` existed still marks the cell its `attack` names.
    old = [{"defense": "arn", "attack": "fgsm", "name": "large_eps", "passed": False}]
    assert tables.failed_checks(old) == {("arn", "fgsm"): ["large_eps"]}


def test_planted_wrong_gradient_defense_is_flagged_on_every_attack(adaptive, monkeypatch):
    ws, _, _ = adaptive
    monkeypatch.setattr(checks_module, "GRADIENT_FREE_PARAMS", FAST_SPSA)
    crafted: list[tuple[str, str, int, float]] = []
    craft = Crafter.craft

    def recording(self, key, params, attacked, *, limit, restarts=1):
        crafted.append((key, attacked.tag, restarts, float(params.get("eps", 0.0))))
        return craft(self, key, params, attacked, limit=limit, restarts=restarts)

    monkeypatch.setattr(Crafter, "craft", recording)
    flipped = ResolvedDefense(Defense("flipped", "preprocessor", SignFlipped()), "flipped-v1")
    honest = ResolvedDefense(Defense("identity", "preprocessor", keras.layers.Identity()), "identity-v1")
    result = evaluate("synthetic", "fgsm,pgd_n", defenses=[flipped, honest], threat_model="white", limit=32,
                      restarts=2, workspace=ws)
    checks = {(c["defense"], c["attack"], c["name"]): c for c in result["sanity"]}
    # Every attack is checked, each row naming its column.
    for attack in ("fgsm", "pgd_n"):
        for name in ("iterations", "gradient_free", "ordering"):
            assert (("identity", attack, name) in checks) and (("flipped", attack, name) in checks), (attack, name)
    # The lie passes the gradient check (finite, nonzero) and is caught by the others, on both attacks.
    assert checks[("flipped", "every column", "gradient")]["passed"] is True
    assert checks[("flipped", "every column", "large_eps")]["passed"] is False
    for attack in ("fgsm", "pgd_n"):
        assert checks[("flipped", attack, "ordering")]["passed"] is False
        assert checks[("flipped", attack, "gradient_free")]["passed"] is False
    assert all(c["passed"] for c in result["sanity"] if c["defense"] == "identity"), result["sanity"]
    assert result["sanity_passed"] is False

    # The ordering check's errors all come from 2 restarts: its value and detail say so, and every proxy set
    # (BPDA, gray) was crafted with them.
    ordering = checks[("flipped", "pgd_n", "ordering")]
    assert ordering["value"]["restarts"] == 2 and "every error with 2 restarts" in ordering["detail"]
    assert ordering["value"]["white"] < ordering["value"]["bpda"]
    proxies = [r for key, tag, r, _ in crafted if key == "pgd_n" and tag.endswith("flipped-v1:bpda")]
    assert proxies and set(proxies) == {2}
    # Every table-attack set of the suite too (the large-eps check's PGD at 0.5 is its own, one-restart check).
    assert {r for key, tag, r, eps in crafted if key in ("fgsm", "pgd_n") and eps != checks_module.LARGE_EPS} == {2}

    # The gradient-free check ran on every image the gradient attacks left correct, and states its tolerance.
    free = checks[("flipped", "pgd_n", "gradient_free")]["value"]
    assert free["n"] == 32 and free["tried"] == free["survivors"] > 0 and free["fooled"] > free["tolerance_images"]
    assert "tolerance 2 points (0 of 32 images)" in checks[("flipped", "pgd_n", "gradient_free")]["detail"]

    # The failures show in the cells they concern, in results.md and results.csv.
    text = open(result["files"]["markdown"]).read()
    flipped_line = next(line for line in text.splitlines() if line.startswith("| flipped |"))
    identity_line = next(line for line in text.splitlines() if line.startswith("| identity |"))
    assert flipped_line.count(f" {tables.FLAG}") == 3  # fgsm, pgd_n, worst case; clean is not flagged
    assert tables.FLAG not in identity_line
    with open(result["files"]["csv"]) as handle:
        failed = {(r["defense"], r["label"]): r["failed_checks"].split(";") for r in csv.DictReader(handle)}
    assert set(failed[("flipped", "fgsm")]) == {"gradient_free", "large_eps", "ordering"}
    assert set(failed[("flipped", "pgd_n")]) >= {"gradient_free", "large_eps", "ordering"}
    assert failed[("flipped", "clean")] == [""] and failed[("identity", "pgd_n")] == [""]


def test_white_box_crafting_through_the_exported_adaptive_defense(adaptive):
    from arnkit.defenses import registry
    from arnkit.defenses.arn.export import export_preprocessor
    from arnkit.evaluation.resolve import load_test_images
    from arnkit.evaluation.threat_models import WHITE
    from arnkit.runs.context import RunContext
    from arnkit.runs.target import with_target

    ws, record, arn = adaptive
    defense, loaded = registry.load_file(record["defense_path"], "synthetic")
    assert loaded.options["adaptive"] and defense.kind == "preprocessor"
    ctx = with_target(RunContext.build("synthetic", workspace=ws))
    classifier = ctx.require_target().model
    x, y = load_test_images(ctx.info, ctx.workspace, 32)
    # The file on disk computes what the trained ARN computes in memory.
    np.testing.assert_allclose(np.asarray(defense.model(x)), np.asarray(export_preprocessor(arn)(x)), atol=1e-5)
    # Gradients flow through the loaded file: finite and nonzero for CE on every image (and DLR on every image
    # it classifies correctly).
    am = WHITE.attacked_model(defense, classifier, classifier_tag="t", defense_tag="loaded")
    check = sanity.gradient_check(am.model, x, y)
    assert check.passed and check.value["ce"]["nonzero_fraction"] == 1.0, check.value
    assert check.value["dlr"]["images"] == 0 or check.value["dlr"]["nonzero_fraction"] == 1.0, check.value
    # And the white-box attack through it is at least as strong as the gray-box one.
    white = evaluate("synthetic", "pgd_n", defenses=record["defense_path"], threat_model="white",
                     sanity_checks=False, limit=32, workspace=ws)
    gray = evaluate("synthetic", "pgd_n", defenses=record["defense_path"], limit=32, workspace=ws)
    error = {r["threat_model"]: r["error"] for res in (white, gray) for r in res["rows"] if r["label"] == "pgd_n"}
    assert error["white"] >= error["gray"], error
