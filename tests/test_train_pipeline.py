"""`arnkit train` orchestration on the synthetic set: pools, checkpoints, resume, export, bad input."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from arnkit import adversarial_store
from arnkit.errors import ArnkitError
from arnkit.pipeline.train import parse_seen, train_defense
from arnkit_cli.main import app

FAST = {"dataset": "synthetic", "seen": "fgsm,pgd_n", "width": "tiny", "pool_size": 128, "batch_size": 32,
        "eval_limit": 64, "checkpoint_every": 4}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    ws = tmp_path_factory.mktemp("train")
    return ws, train_defense(steps=8, workspace=ws, **FAST)


def test_run_record_defense_and_pools(run):
    ws, record = run
    assert record["seen"] == ["fgsm", "pgd_n"] and record["steps"] == 8 and record["reused"] is False
    assert set(record["evaluation"]) == {"clean", "fgsm", "pgd_n"}
    for row in record["evaluation"].values():
        assert 0.0 <= row["none"] <= 100.0 and 0.0 <= row["arn"] <= 100.0
    for path in record["pools"]:
        pool = adversarial_store.load(path)
        assert pool.attrs["split"] == "train" and len(pool.indices) == 128
    from arnkit import defenses

    restore = defenses.load(record["defense_path"])
    x = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype("float32")
    out = np.asarray(restore(x))
    assert out.shape == x.shape and out.min() >= 0.0 and out.max() <= 1.0
    again = train_defense(steps=8, workspace=ws, **FAST)
    assert again["reused"] is True and again["defense_path"] == record["defense_path"]


@pytest.mark.parametrize("lr_schedule", ["constant", "cosine"])
def test_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path, monkeypatch, lr_schedule):
    import shutil
    from pathlib import Path

    from arnkit.defenses.arn import ARN

    # Same workspace for both runs, so both see the very same target and pools.
    straight = train_defense(steps=8, workspace=tmp_path, lr_schedule=lr_schedule, **FAST)
    # A cosine schedule spans the run: it decays over the 8 steps, to 0 at the end.
    assert straight["config"]["lr_schedule"] == lr_schedule
    assert straight["config"]["lr_decay_steps"] == (8 if lr_schedule == "cosine" else 0)
    a = ARN.from_checkpoint(straight["defense_path"].replace("arn.keras", "checkpoint.npz"))
    shutil.rmtree(Path(straight["defense_path"]).parent)
    real_save = ARN.save_checkpoint

    def save_then_die(self, path):
        real_save(self, path)
        raise KeyboardInterrupt  # the process is killed right after the first checkpoint (step 4)

    monkeypatch.setattr(ARN, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_defense(steps=8, workspace=tmp_path, lr_schedule=lr_schedule, **FAST)
    monkeypatch.setattr(ARN, "save_checkpoint", real_save)
    resumed = train_defense(steps=8, workspace=tmp_path, lr_schedule=lr_schedule, **FAST)
    assert resumed["resumed_from"] == 4
    b = ARN.from_checkpoint(resumed["defense_path"].replace("arn.keras", "checkpoint.npz"))
    assert a.step == b.step == 8
    final_lr = 0.0 if lr_schedule == "cosine" else 1e-3
    assert float(b.e_optimizer.learning_rate) == pytest.approx(final_lr, abs=1e-9)
    for wa, wb in zip(a.encoder.get_weights() + a.decoder.get_weights(),
                      b.encoder.get_weights() + b.decoder.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, atol=1e-5)


def test_corrupt_checkpoint_is_reported(tmp_path):
    from pathlib import Path

    record = train_defense(steps=4, workspace=tmp_path, **FAST)
    run_dir = Path(record["defense_path"]).parent
    (run_dir / "arn.keras").unlink()
    (run_dir / "record.json").unlink()
    (run_dir / "checkpoint.npz").write_bytes(b"garbage, not a checkpoint")
    with pytest.raises(ArnkitError, match="checkpoint"):
        train_defense(steps=4, workspace=tmp_path, **FAST)


def test_bad_seen_lists():
    with pytest.raises(ArnkitError, match="unknown attack 'pgd'"):
        parse_seen("pgd,pgd_t", "mnist")
    with pytest.raises(ArnkitError, match="at least 1 seen attack"):
        parse_seen(" , ", "mnist")
    with pytest.raises(ArnkitError, match="twice"):
        parse_seen("pgd_n,pgd_n", "mnist")
    assert parse_seen(None, "lisa") == ["ap1", "ap2"] and parse_seen(None, "mnist") == ["pgd_n", "pgd_t"]


def test_pool_shape_mismatch_is_refused(tmp_path, monkeypatch):
    """A cached pool file whose images no longer have the dataset's shape is refused when it is reused."""
    from arnkit.pipeline import train as train_module

    train_module.seen_pools(FAST["dataset"], FAST["seen"].split(","), pool_size=FAST["pool_size"], seed=0,
                            workspace=tmp_path)
    real_load = adversarial_store.load

    def wrong_shape(path, **kwargs):
        adv = real_load(path, **kwargs)
        adv.x_adv = adv.x_adv[:, :20, :20, :]
        return adv

    monkeypatch.setattr(adversarial_store, "load", wrong_shape)
    with pytest.raises(ArnkitError, match="shape"):
        train_module.train_defense(steps=2, workspace=tmp_path, **FAST)


def test_cli_train_json(run):
    ws, record = run
    result = CliRunner().invoke(app, ["train", "--dataset", "synthetic", "--seen", "fgsm,pgd_n", "--width", "tiny",
                                      "--pool-size", "128", "--batch-size", "32", "--eval-limit", "64", "--steps", "8",
                                      "--workspace", str(ws), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["defense_path"] == record["defense_path"]
    bad = CliRunner().invoke(app, ["train", "--dataset", "synthetic", "--seen", "nope", "--workspace", str(ws)])
    assert bad.exit_code == 1 and "unknown attack 'nope'" in bad.output
    bad = CliRunner().invoke(app, ["train", "--dataset", "synthetic", "--lr-schedule", "linear", "--workspace", str(ws)])
    assert bad.exit_code == 1 and "linear" in bad.output and len(bad.output.strip().splitlines()) == 1


def test_cli_guide_weight_trains_a_separate_guided_run(run):
    ws, record = run
    result = CliRunner().invoke(app, ["train", "--dataset", "synthetic", "--seen", "fgsm,pgd_n", "--width", "tiny",
                                      "--pool-size", "128", "--batch-size", "32", "--eval-limit", "64", "--steps", "8",
                                      "--guide-weight", "2", "--workspace", str(ws), "--json"])
    assert result.exit_code == 0, result.output
    guided = json.loads(result.stdout)
    assert guided["config"]["guide_weight"] == 2.0 and "guide_weight" not in record["config"]
    assert guided["defense_path"] != record["defense_path"] and guided["reused"] is False
    assert guided["final_losses"]["guide"] > 0 and record["final_losses"]["guide"] == 0
    bad = CliRunner().invoke(app, ["train", "--dataset", "synthetic", "--guide-weight", "-1", "--workspace", str(ws)])
    assert bad.exit_code == 1 and "guide_weight must be >= 0" in bad.output


def test_record_names_each_phase_and_the_runtime_and_snapshots_follow_the_checkpoints(tmp_path):
    seen_steps, snapshots = [], []

    def snapshot(step, arn):
        seen_steps.append(step)
        snapshots.append([np.array(w) for w in arn.encoder.weights])

    record = train_defense(steps=8, workspace=tmp_path, on_checkpoint=snapshot, **FAST)
    phases = record["phase_seconds"]
    assert list(phases) == ["target", "pools", "arn", "report"]
    assert all(seconds > 0 for seconds in phases.values())
    assert sum(phases.values()) >= record["train_seconds"] and phases["arn"] >= record["train_seconds"]
    runtime = record["runtime"]
    assert runtime["tensorflow"] and isinstance(runtime["onednn"], bool) and runtime["cpus"] >= 1
    assert runtime["cpu_isa"] in {"avx512", "avx2", "avx", "other"}
    # The pools and the target carry the same provenance.
    assert adversarial_store.load(record["pools"][0]).attrs["runtime"]["onednn"] == runtime["onednn"]
    target_record = json.loads(open(record["target_path"].replace(".keras", ".json")).read())
    assert target_record["runtime"]["cpu_isa"] == runtime["cpu_isa"]
    # checkpoint_every=4 over 8 steps: two snapshots, of different weights, after steps 4 and 8.
    assert seen_steps == [4, 8]
    assert any(not np.array_equal(a, b) for a, b in zip(*snapshots, strict=True))
