"""The services layer (`arnkit.runs`): the run context, the target and adversarial-set services, checkpoints and
the one training-run template every recipe runs in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arnkit.errors import ArnkitError
from arnkit.runs import adversarial, checkpoints
from arnkit.runs.context import RunContext
from arnkit.runs.target import with_target
from arnkit.runs.training import FitResult, FitStep, RunFolder, RunPlan, run_training


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    """A synthetic-data context carrying its workspace target (trained once for the module)."""
    return with_target(RunContext.build("synthetic", workspace=tmp_path_factory.mktemp("ws"), seed=0))


def test_context_resolves_the_dataset_once_and_refuses_bad_names(tmp_path):
    built = RunContext.build("SYNTHETIC", workspace=tmp_path, seed=3)
    assert built.dataset == "synthetic" and built.info.shape == (28, 28, 1) and built.seed == 3
    assert built.preset.dataset == "synthetic" and built.workspace.root == tmp_path.resolve()
    assert built.target is None
    with pytest.raises(ArnkitError, match="unknown dataset 'nope'"):
        RunContext.build("nope", workspace=tmp_path)
    # LISA is never shipped: a context that needs its data says so in one line, before any work; one that
    # only needs its name and defaults does not.
    empty = tmp_path / "empty"
    with pytest.raises(ArnkitError, match="lisa"):
        RunContext.build("lisa", workspace=empty)
    assert RunContext.build("lisa", workspace=empty, require_data=False).preset.seen == ("ap1", "ap2")
    with pytest.raises(RuntimeError, match="with_target"):
        built.require_target()


def test_with_target_carries_the_cached_target(ctx):
    target = ctx.require_target()
    assert target.record.dataset == "synthetic" and target.record.seed == 0
    assert Path(target.path).exists() and len(target.fingerprint) == 16
    assert with_target(ctx) is ctx  # already carried: nothing is loaded again
    again = with_target(ctx.replace(target=None))
    assert again.require_target().fingerprint == target.fingerprint and again.target.record.reused


def test_craft_set_is_typed_cached_and_validated_before_work(ctx):
    first = adversarial.craft_set(ctx, "fgsm", split="test", limit=32)
    assert not first.reused and Path(first.path).exists() and first.attrs["path"] == first.path
    assert first.x_adv.shape == (32, 28, 28, 1) and first.attrs["target_fingerprint"] == ctx.target.fingerprint
    assert np.max(np.abs(first.x_adv - adversarial.data.load_arrays("synthetic", "test", limit=32)[0])) <= 0.3 + 1e-6
    second = adversarial.craft_set(ctx, "fgsm", split="test", limit=32)
    assert second.reused and second.path == first.path
    np.testing.assert_array_equal(second.x_adv, first.x_adv)
    summary = adversarial.describe_set(ctx, second)
    assert summary["reused"] and summary["n"] == 32 and summary["linf_max"] <= 0.3 + 1e-6
    with pytest.raises(ArnkitError, match="larger than the split"):
        adversarial.craft_set(ctx, "fgsm", split="test", limit=10**6)
    with pytest.raises(ArnkitError, match="unknown attack"):
        adversarial.check_request(ctx, "nope", split="test", limit=8, params=None)


def test_parse_seen_and_pools_align_with_the_natural_images(ctx):
    assert adversarial.parse_seen(ctx, None) == list(ctx.preset.seen)
    with pytest.raises(ArnkitError, match="twice"):
        adversarial.parse_seen(ctx, "fgsm,fgsm")
    pools = adversarial.seen_pools(ctx, ["fgsm", "pgd_n"], pool_size=48)
    x_train = adversarial.data.load_arrays("synthetic", "train", limit=48)[0]
    assert pools.x_adv.shape == (48, 2, 28, 28, 1) and pools.keys == ["fgsm", "pgd_n"]
    np.testing.assert_array_equal(pools.x_nat, x_train)
    assert len(pools.paths) == 2 and all(Path(p).exists() for p in pools.paths)


def test_checkpoints_round_trip_and_refuse_a_mismatch(tmp_path):
    path = tmp_path / "checkpoint.npz"
    arrays = [np.arange(6.0).reshape(2, 3), np.ones(4, np.float32)]
    checkpoints.save(path, "step", 7, {"v": arrays})
    step, groups = checkpoints.restore(path, "step", {"v": 2}, what="demo")
    assert step == 7 and all(np.array_equal(a, b) for a, b in zip(arrays, groups["v"], strict=True))
    with pytest.raises(ArnkitError, match=r"demo checkpoint .* unreadable .*delete it"):
        checkpoints.restore(path, "step", {"v": 3}, what="demo")
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ArnkitError, match="unreadable"):
        checkpoints.restore(path, "step", {"v": 2}, what="demo")


class _ShrinkStep(FitStep):
    """A minimal pre-processor recipe for the template: x -> 0.5 + 0.5 (x - 0.5) (a fixed contrast cut), 'fitted'
    by counting steps. It records what the template called, in order."""

    key, kind = "shrink", "preprocessor"

    def __init__(self, calls: list[str]) -> None:
        self.seen, self.pool_size, self.eval_limit, self.calls = ["fgsm"], 32, 16, calls

    def prepare(self, ctx: RunContext) -> None:
        self.calls.append("prepare")

    def plan(self, ctx: RunContext, pools: Any) -> RunPlan:
        self.calls.append("plan")
        assert pools is not None and pools.x_adv.shape[:2] == (32, 1)
        return RunPlan(label="shrink_fgsm", folder=f"{ctx.dataset}-shrink", spec={"v": 1, "seed": ctx.seed},
                       options={"factor": 0.5}, header={"note": "test"})

    def fit(self, ctx: RunContext, folder: RunFolder, pools: Any) -> FitResult:
        import keras

        self.calls.append("fit")
        inputs = keras.Input(shape=ctx.info.shape)
        model = keras.Model(inputs, keras.layers.Rescaling(0.5, offset=0.25)(inputs))
        return FitResult(model, {"loss": 0.0}, 0.01, {"resumed_from": 0})

    def export(self, model: Any, path: Path, plan: RunPlan, ctx: RunContext) -> None:
        from arnkit.defenses.files import save_defense_file

        self.calls.append("export")
        save_defense_file(model, path, key=self.key, kind=self.kind, dataset=ctx.dataset, seen=self.seen,
                          **plan.header)

    def as_defense(self, model: Any, path: Path) -> Any:
        from arnkit.defenses.base import Defense

        return Defense(self.key, self.kind, model)


def test_training_template_runs_a_fit_step_end_to_end_and_reuses_the_folder(ctx):
    import json

    from arnkit.defenses.files import read_header

    calls: list[str] = []
    record = run_training(ctx, _ShrinkStep(calls))
    assert calls == ["prepare", "plan", "fit", "export"]
    assert record["key"] == "shrink" and record["label"] == "shrink_fgsm" and not record["reused"]
    assert record["target_fingerprint"] == ctx.target.fingerprint and record["pool_size"] == 32
    assert set(record["phase_seconds"]) == {"target", "pools", "shrink", "report"}
    assert read_header(record["defense_path"])["note"] == "test"
    # The closing report: gray box, NONE beside the defense, on the seen attack and clean images.
    assert set(record["evaluation"]) == {"clean", "fgsm"}
    assert set(record["evaluation"]["fgsm"]) == {"none", "shrink"}
    assert record["target_clean_error"] == pytest.approx(record["evaluation"]["clean"]["none"] / 100)
    saved = json.loads((Path(record["defense_path"]).parent / "record.json").read_text())
    assert saved["defense_fingerprint"] == record["defense_fingerprint"]
    calls.clear()
    again = run_training(ctx, _ShrinkStep(calls))
    assert again["reused"] and again["defense_fingerprint"] == record["defense_fingerprint"]
    assert "fit" not in calls and "export" not in calls


def test_closing_report_is_the_gray_box_evaluation(ctx):
    """The training template's closing report and `arnkit evaluate --threat-model gray --no-sanity` build their
    rows with the same pieces: same folder, same rows, same record (wall times aside)."""
    import keras

    from arnkit.pipeline.evaluate import evaluate
    from arnkit.runs.defense import Defense, no_defense
    from arnkit.runs.scoring import ResolvedDefense, closing_report

    inputs = keras.Input(shape=ctx.info.shape)
    shrink = keras.Model(inputs, keras.layers.Rescaling(0.5, offset=0.25)(inputs))
    resolved = ResolvedDefense(Defense("shrink", "preprocessor", shrink), "shrink-tag", ["fgsm"])
    rows, record = closing_report(ctx, resolved, ["fgsm", "pgd_n"], limit=32)
    assert set(rows) == {"clean", "fgsm", "pgd_n"} and set(rows["fgsm"]) == {"none", "shrink"}
    assert rows["fgsm"]["none"] > rows["clean"]["none"]  # the attack works on the bare target
    same = evaluate("synthetic", "fgsm,pgd_n", defenses=[ResolvedDefense(no_defense(), "none"), resolved],
                    threat_model="gray", limit=32, sanity_checks=False, seed=0, target_seed=0,
                    workspace=ctx.workspace.root)

    def timeless(result):
        return {**result, "seconds": None, "files": None, "created": None,
                "rows": [{k: v for k, v in row.items() if k != "seconds"} for row in result["rows"]]}

    assert Path(record["files"]["json"]).parent == Path(same["files"]["json"]).parent
    assert timeless(record) == timeless(same)

    # on val (a benchmark choosing a setting): val images, the folder `arnkit evaluate --split val` uses
    val_rows, val_record = closing_report(ctx, resolved, ["fgsm", "pgd_n"], limit=32, split="val")
    val_same = evaluate("synthetic", "fgsm,pgd_n", defenses=[ResolvedDefense(no_defense(), "none"), resolved],
                        threat_model="gray", limit=32, sanity_checks=False, seed=0, target_seed=0, split="val",
                        workspace=ctx.workspace.root)
    assert val_record["split"] == "val" and record["split"] == "test"
    assert Path(val_record["files"]["json"]).parent == Path(val_same["files"]["json"]).parent
    assert Path(val_record["files"]["json"]).parent != Path(record["files"]["json"]).parent
    assert timeless(val_record) == timeless(val_same) and val_rows != rows
    too_many = ctx.info.split_sizes["val"] + 1  # checked against val's size, before any crafting
    with pytest.raises(ArnkitError, match=f"--limit {too_many} is larger than the synthetic val split"):
        closing_report(ctx, resolved, ["fgsm"], limit=too_many, split="val")
