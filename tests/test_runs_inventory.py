"""`arnkit runs`: list, rm and prune a workspace built by real commands (issue 31).

One tiny workspace is built once (`arnkit train --defense apeg --seen fgsm` on the synthetic set, ~20 s, then
an `arnkit attack` set nothing references); each test that changes files works on its own copy of it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arnkit_cli.main import app

runner = CliRunner()
OLD = time.time() - 3600  # older than removal.GRACE_SECONDS: not a write in progress


def invoke(*args: str, workspace: Path):
    return runner.invoke(app, [*args, "--workspace", str(workspace)])


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("runs") / "ws"
    train = invoke("train", "--dataset", "synthetic", "--defense", "apeg", "--seen", "fgsm", "--steps", "1",
                   "--pool-size", "16", "--batch-size", "8", "--eval-limit", "8", "--json", workspace=ws)
    assert train.exit_code == 0, train.output
    attack = invoke("attack", "--attack", "fgsm", "--dataset", "synthetic", "--limit", "4", "--json", workspace=ws)
    assert attack.exit_code == 0, attack.output
    return ws


@pytest.fixture()
def ws(built, tmp_path) -> Path:
    copy = tmp_path / "ws"
    shutil.copytree(built, copy, symlinks=True)
    return copy


def listed(workspace: Path, *args: str) -> list[dict]:
    result = invoke("runs", "list", "--json", *args, workspace=workspace)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def one(rows: list[dict], prefix: str) -> dict:
    found = [r for r in rows if r["id"].startswith(prefix)]
    assert len(found) == 1, [r["id"] for r in rows]
    return found[0]


def test_list_shows_each_kind_with_size_date_and_provenance(built):
    rows = listed(built)
    assert {r["kind"] for r in rows} == {"targets", "adversarial", "defenses", "evaluations"}
    assert len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        assert row["status"] == "ok", row
        assert row["size"] > 0 and re.fullmatch(r"\d+(\.\d)? (B|KiB|MiB|GiB)", row["size_human"])
        assert abs(datetime.fromisoformat(row["date"]).timestamp() - time.time()) < 3600
        assert row["provenance"]["dataset"] == "synthetic"
    target = one(rows, "targets/synthetic-lenet-")
    assert len(target["fingerprint"]) == 16 and target["provenance"]["model"] == "lenet"
    pool = one(rows, "adversarial/synthetic-train-fgsm-")
    assert pool["provenance"]["target_fingerprint"] == target["fingerprint"]
    assert pool["provenance"]["n"] == 16 and pool["provenance"]["params"]["eps"] > 0
    defense = one(rows, "defenses/synthetic-apeg-fgsm-")
    assert defense["references"] == sorted([pool["id"], target["id"]])
    assert defense["referenced_by"] == [one(rows, "evaluations/")["id"]]
    lone = [r for r in rows if r["kind"] == "adversarial" and r["provenance"]["n"] == 4]
    assert len(lone) == 1 and lone[0]["referenced_by"] == []

    # The table goes to stdout, whole ids and all (they are what `runs rm` takes).
    table = invoke("runs", "list", workspace=built)
    assert table.exit_code == 0 and table.stderr == ""
    for row in rows:
        assert row["id"] in table.stdout and row["size_human"] in table.stdout
    assert "synthetic · split train · attack fgsm" in table.stdout and "lenet" in table.stdout
    # `arnkit runs` alone lists too; --kind filters.
    bare = invoke("runs", workspace=built)
    assert bare.exit_code == 0 and target["id"] in bare.stdout
    only = listed(built, "--kind", "adversarial")
    assert {r["kind"] for r in only} == {"adversarial"} and len(only) == 3
    unknown = invoke("runs", "list", "--kind", "pools", workspace=built)
    assert unknown.exit_code == 1 and "unknown kind 'pools'" in unknown.output


def test_rm_of_a_referenced_set_is_refused_then_forced(ws):
    rows = listed(ws)
    pool, defense = one(rows, "adversarial/synthetic-train-fgsm-"), one(rows, "defenses/")
    refused = invoke("runs", "rm", pool["id"], workspace=ws)
    assert refused.exit_code == 1
    assert refused.output.strip().splitlines() == [
        f"error: {pool['id']} is still referenced by {defense['id']}; remove that first, or pass --force to "
        "remove it anyway"]
    assert "is still referenced by defenses/" in refused.output
    assert Path(pool["path"]).is_file(), "a refused rm removed the file"

    forced = invoke("runs", "rm", pool["id"], "--force", workspace=ws)
    assert forced.exit_code == 0, forced.output
    assert not Path(pool["path"]).exists() and "freed" in forced.stdout
    assert pool["id"] not in {r["id"] for r in listed(ws)}


def test_rm_takes_the_sidecars_and_refuses_an_unknown_id(ws):
    rows = listed(ws)
    target = one(rows, "targets/")
    lock = Path(target["path"] + ".lock")
    lock.touch()
    refused = invoke("runs", "rm", target["id"], workspace=ws)
    assert refused.exit_code == 1 and "(and 4 more)" in refused.output  # 3 sets, the defense, the evaluation
    with open(lock) as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a process building it right now: not even --force removes it
        busy = invoke("runs", "rm", target["id"], "--force", workspace=ws)
    assert busy.exit_code == 1 and "is being built by another process" in busy.output
    assert Path(target["path"]).is_file()
    removed = invoke("runs", "rm", target["id"], "--force", "--json", workspace=ws)
    assert removed.exit_code == 0, removed.output
    gone = {entry["path"] for entry in json.loads(removed.stdout)["removed"]}
    stem = Path(target["path"]).stem
    assert gone == {f"targets/{stem}.keras", f"targets/{stem}.json", f"targets/{stem}.keras.lock"}
    assert list((ws / "targets").iterdir()) == []

    missing = invoke("runs", "rm", "targets/nothing-0123456789ab", workspace=ws)
    assert missing.exit_code == 1 and "no artifact 'targets/nothing-0123456789ab'" in missing.output

    # An artifact and everything referencing it can go in one call; a path works as an id.
    lone = next(r for r in rows if r["kind"] == "adversarial" and not r["referenced_by"])
    relative = os.path.relpath(lone["path"], ws)
    assert invoke("runs", "rm", relative, workspace=ws).exit_code == 0
    assert not Path(lone["path"]).exists()


def test_rm_never_follows_a_symlink_out_of_the_workspace(ws, tmp_path):
    outside = tmp_path / "precious.h5"
    outside.write_bytes(b"not yours")
    link = ws / "adversarial" / "synthetic-test-evil-0123456789ab.h5"
    link.symlink_to(outside)
    row = one(listed(ws), "adversarial/synthetic-test-evil-")
    assert row["status"] == "damaged" and "symlink" in row["problem"]
    result = invoke("runs", "rm", row["id"], workspace=ws)
    assert result.exit_code == 0, result.output
    assert not link.is_symlink() and outside.read_bytes() == b"not yours"


def plant(ws: Path) -> dict[str, Path]:
    """A temp file of a killed atomic write, a stale lock, and what a build in progress has: a lock that it holds
    (see the prune test) with an old temp file beside it, and a fresh temp file."""
    target = next((ws / "targets").glob("*.keras"))
    building = "synthetic-lenet-0123456789ab"
    paths = {
        "temp": target.parent / f".{target.stem}.k3j_9x0a.keras",
        "stale": ws / "adversarial" / "synthetic-train-fgsm-000000000000.h5.lock",
        "held": target.parent / f"{building}.keras.lock",
        "held_temp": target.parent / f".{building}.q1w2e3r4.keras",
        "fresh": target.parent / f".{target.stem}.zz9_8y7b.keras",
    }
    for path in paths.values():
        path.write_bytes(b"x" * 10)
    for old in ("temp", "held_temp"):
        os.utime(paths[old], (OLD, OLD))
    return paths


def test_prune_dry_run_removes_nothing(ws):
    paths = plant(ws)
    checkpoint = next((ws / "defenses").glob("*.d/checkpoint.npz"))
    before = sorted(p for p in ws.rglob("*"))
    result = invoke("runs", "prune", "--dry-run", workspace=ws)
    assert result.exit_code == 0, result.output
    assert sorted(p for p in ws.rglob("*")) == before
    assert f"would remove targets/{paths['temp'].name}" in result.stdout
    assert "would remove adversarial/synthetic-train-fgsm-000000000000.h5.lock" in result.stdout
    assert f"{checkpoint.parent.name}/checkpoint.npz" in result.stdout and "would free" in result.stdout


def test_prune_removes_a_planted_temp_file_and_a_stale_lock(ws):
    paths = plant(ws)
    checkpoint = next((ws / "defenses").glob("*.d/checkpoint.npz"))
    checkpoint_size = checkpoint.stat().st_size
    with open(paths["held"]) as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a build in progress holds it: prune must leave it and its temp file
        result = invoke("runs", "prune", "--json", workspace=ws)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    reasons = {entry["path"]: entry["reason"] for entry in report["removed"]}
    planted = {
        f"targets/{paths['temp'].name}": "temp file of an interrupted write",
        "adversarial/synthetic-train-fgsm-000000000000.h5.lock": "stale lock (no process holds it)",
        str(checkpoint.relative_to(ws)): "checkpoint of a finished run",
    }
    assert {path: reasons.get(path) for path in planted} == planted
    # The builds that made this workspace left their (empty, released) locks: stale too, and nothing else.
    left_by_builds = set(reasons) - set(planted)
    assert left_by_builds and all(p.endswith(".lock") and reasons[p] == planted[
        "adversarial/synthetic-train-fgsm-000000000000.h5.lock"] for p in left_by_builds)
    assert report["bytes"] == 10 + 10 + checkpoint_size
    assert not paths["temp"].exists() and not paths["stale"].exists() and not checkpoint.exists()
    assert paths["held"].exists() and paths["held_temp"].exists() and paths["fresh"].exists()
    building = one(listed(ws), "targets/synthetic-lenet-0123456789ab")
    assert building["status"] == "unfinished" and "only a lock" in building["problem"]
    assert all(r["status"] == "ok" for r in listed(ws) if r["id"] != building["id"]), "prune broke an artifact"
    # The build let its lock go: now the lock and its temp file are stale. Unreferenced sets go only when asked.
    rows = listed(ws)
    lone = next(r for r in rows if r["kind"] == "adversarial" and not r["referenced_by"])
    again = invoke("runs", "prune", "--unreferenced", workspace=ws)
    assert again.exit_code == 0 and "adversarial set that no record references" in again.stdout
    assert not paths["held"].exists() and not paths["held_temp"].exists() and paths["fresh"].exists()
    assert {r["id"] for r in listed(ws)} == {r["id"] for r in rows} - {lone["id"], building["id"]}


def test_damaged_record_lists_as_damaged(ws):
    record = next((ws / "defenses").glob("*.d/record.json"))
    record.write_text('{"dataset": "synthetic", "pools": [')  # cut mid-write by hand
    target_json = next((ws / "targets").glob("*.json"))
    target_json.write_text("[1, 2]")
    result = invoke("runs", "list", workspace=ws)
    assert result.exit_code == 0 and "Traceback" not in result.output
    assert "damaged" in result.stdout and "record.json is not valid JSON (line 1, column" in result.stdout
    rows = listed(ws)
    defense, target = one(rows, "defenses/"), one(rows, "targets/")
    assert defense["status"] == "damaged" and target["status"] == "damaged"
    assert "holds a list, not a record" in target["problem"]
    # Only --damaged removes them.
    assert "damaged:" not in invoke("runs", "prune", workspace=ws).stdout and record.exists()
    pruned = invoke("runs", "prune", "--damaged", workspace=ws)
    assert pruned.exit_code == 0 and "damaged: record.json is not valid JSON" in pruned.stdout
    assert not record.parent.exists() and not target_json.exists()


def test_workspace_before_the_subcommand_is_refused(built):
    result = runner.invoke(app, ["runs", "--workspace", str(built), "rm", "targets/x-0123456789ab"])
    assert result.exit_code == 1 and "put --workspace, --kind and --json after `runs rm`" in result.output


def test_listing_needs_no_tensorflow(built):
    """A listing is file reads: it must not pay (or need) the ~10 s TensorFlow import."""
    import subprocess
    import sys

    code = ("import sys; from typer.testing import CliRunner; from arnkit_cli.main import app; "
            f"r = CliRunner().invoke(app, ['runs', 'list', '--workspace', {str(built)!r}]); "
            "print(r.exit_code, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["0", "False", "False"], out.stdout + out.stderr


def test_a_copied_workspace_uses_its_own_defense_and_target(built, tmp_path):
    """Records store paths relative to the workspace, so a copy whose original is gone still finds (and reuses,
    without training again) its own defense and target; an old record's absolute paths are re-rooted."""
    copy = tmp_path / "moved"
    shutil.copytree(built, copy, symlinks=True)
    record_path = next((copy / "defenses").glob("synthetic-*.d/record.json"))
    stored = json.loads(record_path.read_text())
    assert not os.path.isabs(stored["defense_path"]) and not os.path.isabs(stored["target_path"])
    # An older arnkit wrote absolute paths of the original workspace; the copy must not need the original.
    stored["defense_path"] = str(built / stored["defense_path"]).replace(str(built), "/gone/ws")
    record_path.write_text(json.dumps(stored))
    result = invoke("evaluate", "--dataset", "synthetic", "--defense", "none,apeg", "--attack", "fgsm",
                    "--limit", "8", "--json", workspace=copy)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [d["name"] for d in out["defenses"]][:2] == ["none", "apeg"]
    assert len(list((copy / "defenses").glob("synthetic-*.d"))) == 1  # reused, not trained again
    assert not any(str(built) in str(v) for v in out["defenses"])
