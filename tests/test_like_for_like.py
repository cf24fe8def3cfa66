"""Like for like with the paper (issue 30): the budgets data give Tables 1-2 the paper's budgets, and LISA's
sticker patches AP1-AP4 run as DOA's `physical_attack.py` ran them. The expected values are read from
`arnkit.data.budgets` (the one place they are written, with their sources) and checked on the attack
instances the pipeline builds; the DOA step itself is checked against its closed form on a linear model."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from arnkit import attacks, data
from arnkit.attacks.masks import STICKERS, make_mask
from arnkit.attacks.sticker import StickerPatch
from arnkit.data import budgets
from arnkit.errors import ArnkitError
from arnkit.evaluation.plan import attack_specs

ROOT = Path(__file__).resolve().parents[1]


# -- FWA on MNIST: the paper's eps 0.3 and eps' 0.4 -----------------------------------------------------------
def test_fwa_n_is_crafted_at_the_papers_default_budget_on_mnist():
    mnist = data.info("mnist")
    assert budgets.MNIST.fwa_eps == mnist.eps == 0.3  # Section 4.1's default budget, not FWA's own 0.5
    assert attacks.make("fwa_n", dataset="mnist").eps == budgets.MNIST.fwa_eps
    # the FWA_N eps' column of Table 2 is the dataset's raised budget, 0.4 on MNIST
    (raised,) = attack_specs(f"fwa_n@{mnist.eps_raised:g}", mnist)
    assert mnist.eps_raised == 0.4 and raised.label == "fwa_n@0.4" and raised.params == {"eps": 0.4}
    assert attacks.make("fwa_n", dataset="mnist", **raised.params).eps == 0.4


def test_fwas_own_budget_is_the_named_variant_fwa_n_at_05():
    (authors,) = attack_specs("fwa_n@0.5", data.info("mnist"))
    assert authors.label == "fwa_n@0.5" and attacks.make("fwa_n", dataset="mnist", **authors.params).eps == 0.5
    # the derivation rule still reproduces MNIST's row, FWA's budget included
    assert budgets.derived(0.3, (28, 28, 1)) == budgets.MNIST


# -- LISA's AP1-AP4 as DOA ran them -----------------------------------------------------------------------
def test_doa_sticker_settings_are_doas_physical_attack():
    """DOA's physical_attack.py: Adam(lr=0.1, eps=1e-08) made afresh per iteration, -CE over batch_size=1148,
    the default middle of its iterations [10, 100, 1000], the final noise returned."""
    assert dict(budgets.DOA_STICKER) == {"steps": 100, "step_size": 0.1, "loss": "ce", "adam_eps": 1e-8,
                                         "loss_mean_over": 1148, "keep_best": False}
    assert data.info("lisa").split_sizes["test"] == budgets.DOA_STICKER["loss_mean_over"]


@pytest.mark.parametrize("key", STICKERS)
def test_lisa_sticker_attacks_use_the_aligned_settings(key):
    attack = attacks.make(key, dataset="lisa")
    assert isinstance(attack, StickerPatch) and attack.mask == key and not attack.targeted
    params = attack.params()
    assert {name: params[name] for name in budgets.DOA_STICKER} == dict(budgets.DOA_STICKER)
    assert attack.random_start  # DOA starts from uniform noise on the mask
    # mask scale: LISA's images are the masks' own 32x32 grid, so each sticker is DOA's file pixel for pixel
    shape = data.info("lisa").shape
    assert shape[:2] == (32, 32)
    np.testing.assert_array_equal(attack.mask_for(shape), make_mask(key, (32, 32)))


def _linear_sign_model(bias: float):
    """Two classes on 32x32x3: logit 0 = bias, logit 1 = the sum of the AP2 sticker's pixels (all channels)."""
    import keras

    weights = np.zeros((32, 32, 3, 2), np.float32)
    weights[make_mask("ap2", (32, 32))[..., 0] > 0, :, 1] = 1.0
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    model.layers[-1].set_weights([weights.reshape(-1, 2), np.array([bias, 0.0], np.float32)])
    return model


# bias 11.375: p_1 / 1148 is about Adam's 1e-8, half a step; bias 25: a confident sign, the step stalls.
@pytest.mark.parametrize(("bias", "mean_over", "adam_eps"),
                         [(11.375, 1148, 1e-8), (25.0, 1148, 1e-8), (11.375, 1, 1e-8), (25.0, 1148, 0.0)])
def test_one_doa_step_is_a_fresh_adam_step_on_the_batch_mean(bias, mean_over, adam_eps):
    x = np.zeros((2, 32, 32, 3), np.float32)
    y = np.zeros(2, np.int64)
    attack = StickerPatch(mask="ap2", steps=1, random_start=False, loss="ce", adam_eps=adam_eps,
                          loss_mean_over=mean_over, keep_best=False)
    out = attack(_linear_sign_model(bias), x, y, seed=0).x_adv
    # d(-CE(y=0))/dx on a sticker pixel is -p_1; a fresh Adam moves it by lr * g / (|g| + eps), g = p_1 / N
    p1 = 1.0 / (1.0 + np.exp(bias))
    g = p1 / mean_over
    expected = 0.1 * g / (g + adam_eps)
    inside = make_mask("ap2", (32, 32))[..., 0] > 0
    np.testing.assert_allclose(out[:, inside], expected, rtol=2e-3, atol=1e-9)
    assert np.array_equal(out[:, ~inside], x[:, ~inside])


def test_doa_loss_stalls_where_arnkits_signed_step_does_not():
    """The same confident sign: DOA's setting barely moves it, arnkit's stronger one takes full signed steps."""
    x = np.zeros((2, 32, 32, 3), np.float32)
    y = np.zeros(2, np.int64)
    model = _linear_sign_model(25.0)
    doa = attacks.make("ap2", dataset="lisa", steps=3, random_start=False)(model, x, y, seed=0)
    strong = StickerPatch(mask="ap2", steps=3, random_start=False)(model, x, y, seed=0)
    inside = make_mask("ap2", (32, 32))[..., 0] > 0
    assert doa.x_adv[:, inside].max() < 1e-3
    np.testing.assert_allclose(strong.x_adv[:, inside], 0.3, atol=1e-6)


def test_bad_sticker_settings_are_refused_in_one_line():
    with pytest.raises(ArnkitError, match="unknown sticker loss 'mse'; choose one of ce, not_label"):
        StickerPatch(loss="mse")
    with pytest.raises(ArnkitError, match="adam_eps must be >= 0"):
        StickerPatch(adam_eps=-1.0)
    with pytest.raises(ArnkitError, match="loss_mean_over must be >= 1"):
        StickerPatch(loss_mean_over=0)


# -- the re-run script ------------------------------------------------------------------------------------
def test_like_for_like_script_lists_every_affected_row():
    script = ROOT / "bench" / "like_for_like.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)

    def plan(**env: str) -> list[str]:
        return subprocess.run(["bash", str(script), "MNIST_WS", "LISA_WS"], cwd=ROOT,
                              env={"DRY_RUN": "1", "PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True,
                              check=True).stdout.splitlines()

    lines = plan()
    assert all(line.startswith("arnkit ") for line in lines)  # a dry run runs nothing
    assert any("evaluate --dataset mnist" in line and "--defense none,<the rows of MNIST_WS/bench-baselines.json>"
               in line and "--attack fwa_n,fwa_n@0.4,fwa_n@0.5" in line for line in lines)
    # every evaluation names its rows: `--defense all` would score a workspace's pilots on the test split too
    assert not any("--defense all" in line for line in lines)
    lisa_evals = [line for line in lines if line.startswith("arnkit evaluate --dataset lisa")]
    assert len(lisa_evals) == 2 and all("--defense none,<run 1>,<run 2>,<run 3>,<run 4>,<run 5>,<run 6> " in line
                                        for line in lisa_evals)
    # NONE comes with every evaluation; the paper's other five LISA rows are trained, and ARN's paper recipe
    # beside its default one, so LISA's recipe is chosen on val
    lisa = "arnkit train --dataset lisa --workspace LISA_WS "
    for row in ("--seen ap1,ap2 ", "--seen ap1,ap2 --recipe paper ", "--defense at_pgd ",
                "--defense apeg --seen ap1,ap2 ", "--defense doa --roa 9x5 ", "--defense doa --roa 7x7 "):
        assert any(line.startswith(lisa + row) for line in lines), row
    # no training command scores more than 16 test images: the test split is scored once, at the end
    assert all("--eval-limit 16" in line for line in lines if line.startswith("arnkit train"))
    evals = [line for line in lines if line.startswith("arnkit evaluate --dataset lisa")]
    assert [e.split("--split ")[1].split()[0] for e in evals] == ["val", "test"]
    assert all("--attack ap1,ap2,ap3,ap4" in e and "--limit 0" in e for e in evals)
    longer = [line for line in plan(LONG="1") if line.startswith("arnkit evaluate --dataset lisa")]
    assert len(longer) == 3 and "--split test" in longer[2] and "--iterations 1000" in longer[2]
    assert not any("lisa" in line for line in plan(PART="mnist"))
    assert not any("mnist" in line for line in plan(PART="lisa"))


def test_doas_own_lisa_schedule_is_recorded_and_lisas_default_is_its_30_epoch_run_chosen_on_val():
    """phattacks sign/experiment/sticker_retrain.py: Adam lr .01 (its StepLR of 100 epochs never fires), batch 256,
    ROA 30 steps of .01, stride 2, 5 candidate windows. bench/doa_lr_pilot.py starts from it; its README's 5
    epochs wrecked our LISA-CNN on val, so LISA's default is 30 epochs with the best val epoch kept and dropout
    off (the pilot's best row on val, docs/results-lisa.md)."""
    from arnkit import presets
    from arnkit.runs.target import optimizer_for

    own = presets.DOA_OWN_LISA
    assert (own.optimizer, own.learning_rate, own.epochs, own.batch_size, own.schedule) == ("adam", 0.01, 5, 256,
                                                                                           "constant")
    doa = presets.get("lisa").doa
    assert (doa.attack_steps, doa.step_size, doa.stride, doa.candidates) == (30, 0.01, 2, 5)
    assert doa.recipe == replace(own, epochs=30) and (doa.select_val, doa.dropout) == (381, 0.0)
    # The other datasets keep the CPU schedule and select nothing (their run folders are unchanged).
    assert presets.get("mnist").doa.select_val == 0 and presets.get("mnist").doa.dropout is None
    optimizer = optimizer_for(doa.recipe, total_steps=100)
    assert float(optimizer.learning_rate) == pytest.approx(0.01)  # constant: no schedule object
    assert doa.recipe.to_dict()["schedule"] == "constant"
    with pytest.raises(ArnkitError, match="unknown schedule 'cosin'"):
        presets.TargetRecipe(epochs=1, schedule="cosin")


def test_at_pgd_schedule_pilot_parses_its_grid_and_refuses_a_bad_entry_in_one_line():
    import importlib.util

    spec = importlib.util.spec_from_file_location("at_pgd_schedule", Path(__file__).resolve().parents[1] / "bench" / "at_pgd_schedule.py")
    pilot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pilot)
    assert pilot.parse_schedules("4:10:0.04, 3:40:0.01,") == [(4, 10, 0.04), (3, 40, 0.01)]
    assert pilot.parse_schedules("10:10:0.0157:0.0627") == [(10, 10, 0.0157, 0.0627)]  # LISA's eps given
    for bad in ("4:10", "four:10:0.04", "4:10:x", "4:10:0.04:0.3:1"):
        with pytest.raises(SystemExit, match=r"bad schedule .*EPOCHS:STEPS:STEP_SIZE\[:EPS\]") as raised:
            pilot.parse_schedules(bad)
        assert "\n" not in str(raised.value)
    # The choice: lowest deciding error (LISA: the mean of its AP columns, not the saturated worst case), clean
    # breaking ties; rows lacking the column (another dataset's) are never chosen.
    rows = [{"epochs": 10, "val": {"clean": 3.0, "ap1": 40.0, "ap2": 80.0, "worst case": 99.0}},
            {"epochs": 20, "val": {"clean": 2.0, "ap1": 60.0, "ap2": 60.0, "worst case": 98.0}},
            {"epochs": 5, "val": {"clean": 1.0, "ap1": 50.0, "ap2": 80.0, "worst case": 90.0}},
            {"epochs": 1, "val": {"clean": 0.5, "pgd_n": 1.0}}]
    assert pilot.decider(rows[2], ("ap1", "ap2")) == 65.0 and pilot.decider(rows[3], ("ap1", "ap2")) is None
    assert pilot.chosen(rows, ("ap1", "ap2"))["epochs"] == 20  # ties 10 on the mean; clean decides
    assert pilot.chosen(rows, ("worst case",))["epochs"] == 5
    assert pilot.chosen(rows, ("pgd_n",))["epochs"] == 1 and pilot.chosen([], ("pgd_n",)) is None
    assert pilot.SCORED["lisa"][1] == ("ap1", "ap2", "ap3", "ap4")


def test_mnist_at_pgd_default_is_the_schedule_chosen_on_val():
    """bench/at_pgd_schedule.py on the first 1,000 val images (docs/benchmarks.md): PGD-10 of .04 for 10 epochs
    had the lowest PGD_N error of the four schedules; LISA and colour datasets keep their own row."""
    from arnkit import presets

    at = presets.get("mnist").at_pgd
    assert (at.recipe.epochs, at.eps, at.attack_steps, at.step_size) == (10, 0.3, 10, 0.04)
    assert (at.recipe.optimizer, at.recipe.learning_rate) == ("adam", 5e-4)
    # LISA: 20 epochs of the colour schedule, chosen on its 381 val images (docs/results-lisa.md); CIFAR-10 keeps 10
    lisa, cifar = presets.get("lisa").at_pgd, presets.get("cifar10").at_pgd
    assert (lisa.recipe.epochs, lisa.eps, lisa.attack_steps, lisa.step_size) == (20, 8 / 255, 10, 2 / 255)
    assert lisa.recipe.optimizer == cifar.recipe.optimizer == "sgd" and cifar.recipe.epochs == 10


def test_baselines_rows_are_named_by_path_and_a_missing_record_is_one_line(tmp_path):
    """bench/train_mnist_baselines.py --paths: NONE and the trained rows in Table order, the evaluations' list."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_mnist_baselines",
                                                  ROOT / "bench" / "train_mnist_baselines.py")
    rows = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rows)
    with pytest.raises(SystemExit, match="bench-baselines.json is missing; train the rows first") as raised:
        rows.paths(str(tmp_path))
    assert "\n" not in str(raised.value)
    (tmp_path / "bench-baselines.json").write_text(json.dumps({
        "machine": {}, "HGD_PP": {"defense_path": "defenses/h.d/hgd.keras"},
        "ARN_PP": {"defense_path": "defenses/a.d/arn.keras"}}))
    assert rows.paths(str(tmp_path)) == "none,defenses/a.d/arn.keras,defenses/h.d/hgd.keras"
