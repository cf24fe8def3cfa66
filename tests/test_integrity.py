"""Integrity of cached artifacts (issue 31): a changed target, a tampered adversarial set, a damaged JSON record
and two processes building one set. Each asserts the one line, the exit status, and that no wrong number was
printed. One tiny synthetic workspace is built once; every test works on its own copy of it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from arnkit import data
from arnkit.io import building
from arnkit_cli.main import app

ARNKIT = str(Path(sys.executable).with_name("arnkit"))
EVALUATE = ("evaluate", "--dataset", "synthetic", "--defense", "none", "--attack", "fgsm", "--limit", "16",
            "--no-sanity", "--json")


def invoke(*args: str, workspace: Path):
    return CliRunner().invoke(app, [*args, "--workspace", str(workspace)])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A workspace holding the synthetic target and one FGSM set of 16 test images, and what evaluate said."""
    root = tmp_path_factory.mktemp("integrity")
    out = invoke(*EVALUATE, workspace=root)
    assert out.exit_code == 0, out.output
    return root, json.loads(out.stdout)


@pytest.fixture
def ws(built, tmp_path):
    root, first = built
    copy = tmp_path / "ws"
    shutil.copytree(root, copy)
    return copy, first


def _target(ws: Path) -> Path:
    (path,) = (ws / "targets").glob("synthetic-lenet-*.keras")
    return path


def _fgsm_set(ws: Path) -> Path:
    (path,) = (ws / "adversarial").glob("synthetic-test-fgsm-*.h5")
    return path


def _errors(result: dict) -> dict[str, float]:
    return {row["label"]: row["error"] for row in result["rows"]}


def _listing(ws: Path) -> set[str]:
    return {str(p.relative_to(ws)) for p in ws.rglob("*") if "data" not in p.parts}


# ----------------------------------------------------------------------------------- a swapped target ---

def test_swapped_target_file_is_refused_and_never_reuses_old_pools(ws):
    ws, first = ws
    target = _target(ws)
    other = invoke("target", "train", "--dataset", "synthetic", "--seed", "1", "--json", workspace=ws)
    assert other.exit_code == 0, other.output
    shutil.copyfile(json.loads(other.stdout)["path"], target)  # another model's file under the target's name
    before = _listing(ws)

    out = invoke(*EVALUATE, workspace=ws)
    assert out.exit_code == 1
    assert f"target {target} was changed after arnkit trained it (its sha256 differs" in out.output
    assert "rerun `arnkit target train --rebuild`" in out.output
    assert out.stdout == "" and "Traceback" not in out.output  # no table, no JSON, no number
    assert _listing(ws) == before  # no evaluation written, no pool crafted against the other model

    # A record written before the sha256 existed: the fingerprint of the weights actually loaded catches it.
    record_path = target.with_suffix(".json")
    record = json.loads(record_path.read_text())
    record.pop("sha256")
    record_path.write_text(json.dumps(record))
    out = invoke(*EVALUATE, workspace=ws)
    assert out.exit_code == 1
    assert f"its weights' fingerprint is not {first['target']['fingerprint']}, the record's" in out.output
    assert out.stdout == "" and _listing(ws) == before

    # The fix it names works: the target is retrained, and the numbers are the first run's again.
    fixed = invoke("target", "train", "--dataset", "synthetic", "--rebuild", "--json", workspace=ws)
    assert fixed.exit_code == 0, fixed.output
    assert json.loads(fixed.stdout)["reused"] is False
    again = invoke(*EVALUATE, workspace=ws)
    assert again.exit_code == 0, again.output
    result = json.loads(again.stdout)
    assert result["target"]["fingerprint"] == json.loads(fixed.stdout)["fingerprint"]
    assert _errors(result)["clean"] == _errors(first)["clean"]


# ------------------------------------------------------------------------------ tampered pool labels ---

@pytest.mark.parametrize("with_hash", [True, False], ids=["hashed", "older-file"])
def test_tampered_set_labels_are_detected_and_the_set_crafted_again(ws, with_hash):
    ws, first = ws
    path = _fgsm_set(ws)
    with h5py.File(path, "r+") as handle:
        labels = handle["labels"][()]
        handle["labels"][...] = (labels + 1) % 10  # still valid HDF5; every label now wrong
        if not with_hash:
            del handle.attrs["content_sha256"]  # a set written before the hash: the dataset check catches it

    out = invoke(*EVALUATE, workspace=ws)
    assert out.exit_code == 0, out.output
    line = ("was changed after it was crafted (its arrays do not match their sha256); crafting it again"
            if with_hash else
            "does not match the dataset (16 labels differ from the dataset's at the stored indices); crafting it again")
    assert f"adversarial set {path}" in out.output and line in out.output
    assert _errors(json.loads(out.stdout)) == _errors(first)  # the rebuilt set gives the true number
    _, y_test, _ = data.load_arrays("synthetic", "test", limit=16)
    with h5py.File(path, "r") as handle:
        assert np.array_equal(handle["labels"][()], y_test) and "content_sha256" in handle.attrs


# ---------------------------------------------------------------------------------- damaged records ---

def test_corrupt_defense_record_is_one_line_in_evaluate(ws):
    ws, _ = ws
    record = ws / "defenses" / "synthetic-arn-0123456789ab.d" / "record.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"key": "arn", "defense_path": ')  # cut off mid-write by hand
    before = _listing(ws)
    args = list(EVALUATE)
    args[args.index("--defense") + 1] = "none,arn"
    out = invoke(*args, workspace=ws)
    assert out.exit_code == 1
    assert f"defense record {record} is damaged (not valid JSON: " in out.output
    assert "delete it or rerun with --rebuild" in out.output
    assert "Traceback" not in out.output and "JSONDecodeError" not in out.output
    assert out.stdout == "" and _listing(ws) == before  # nothing trained over it, no number


def test_corrupt_target_json_is_one_line_and_rebuild_fixes_it(ws):
    ws, first = ws
    record = _target(ws).with_suffix(".json")
    record.write_text("{\x00garbage")
    out = invoke(*EVALUATE, workspace=ws)
    assert out.exit_code == 1
    assert f"target record {record} is damaged (not valid JSON: " in out.output
    assert "delete it or rerun with --rebuild" in out.output
    assert out.stdout == "" and "Traceback" not in out.output
    fixed = invoke("target", "train", "--dataset", "synthetic", "--rebuild", "--json", workspace=ws)
    assert fixed.exit_code == 0, fixed.output
    assert json.loads(record.read_text())["sha256"]


# ------------------------------------------------------------------------------------ the workspace lock ---

def test_two_concurrent_crafts_build_the_set_once(ws):
    ws, _ = ws
    path = _fgsm_set(ws)
    path.unlink()  # a fresh set to craft; its name is fixed by the spec, so the test can hold its lock first
    attack = [ARNKIT, "attack", "--dataset", "synthetic", "--attack", "fgsm", "--limit", "16", "--workspace",
              str(ws), "--json"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    logs = [ws.parent / f"stderr{i}.txt" for i in range(2)]
    waiting = f"waiting for {path.name} (another arnkit process is building it)"
    with building(path):  # a third builder: both processes must wait for it
        procs = [subprocess.Popen(attack, env=env, stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
                 for log in logs]
        deadline = time.monotonic() + 120
        while not all(waiting in log.read_text() for log in logs):
            assert time.monotonic() < deadline, [log.read_text()[-2000:] for log in logs]
            assert all(p.poll() is None for p in procs), [log.read_text()[-2000:] for log in logs]
            time.sleep(0.2)
        assert not path.exists()
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [log.read_text()[-2000:] for log in logs]
    results = [json.loads(out) for out in outs]
    assert sorted(r["reused"] for r in results) == [False, True]  # crafted once, then reused
    assert results[0]["undefended_error"] == results[1]["undefended_error"]
    crafts = [len(re.findall(r"fgsm on synthetic/test[^:\n]*: started", log.read_text())) for log in logs]
    assert sorted(crafts) == [0, 1], crafts  # one process crafted; the other waited and reused
    with h5py.File(path, "r") as handle:  # the file is whole and intact
        assert len(handle["labels"]) == 16 and handle.attrs["content_sha256"]


def test_changed_defense_file_is_refused_before_it_loads(tmp_path):
    from arnkit.defenses import registry
    from arnkit.errors import ArnkitError
    from arnkit.io import sha256_file
    from arnkit.runs.defense_record import DefenseRecord

    folder = tmp_path / "defenses" / "synthetic-arn-0123456789ab.d"
    folder.mkdir(parents=True)
    exported = folder / "arn.keras"
    exported.write_bytes(b"the file arnkit exported")
    raw = {"key": "arn", "kind": "preprocessor", "dataset": "synthetic", "defense_path": str(exported),
           "defense_sha256": sha256_file(exported)}
    (folder / "record.json").write_text(json.dumps(raw))
    exported.write_bytes(b"another file under its name")
    with pytest.raises(ArnkitError, match=r"was changed after arnkit trained it \(its sha256 differs from its "
                                          r"record's\); delete .*synthetic-arn-0123456789ab.d to train it again"):
        registry.load_record(DefenseRecord.from_dict(raw))
    with pytest.raises(ArnkitError, match="was changed after arnkit trained it"):
        registry.load_file(folder)


def test_a_lock_removed_while_waiting_is_taken_again(tmp_path):
    """`arnkit runs prune` may remove a stale lock file; a process waiting on the removed file must then lock
    the file now at that path, or a third process could build alongside it."""
    import fcntl
    import threading

    from arnkit.io import building

    artifact = tmp_path / "set.h5"
    lock = tmp_path / "set.h5.lock"
    first_holds, second_holds, release_second = threading.Event(), threading.Event(), threading.Event()

    def second() -> None:
        with building(artifact):
            second_holds.set()
            release_second.wait(10)

    with building(artifact):
        first_holds.set()
        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(0.3)  # the waiter is blocked on the old file
        lock.unlink()  # what prune does to a lock it finds free
    assert second_holds.wait(10)
    fd = os.open(lock, os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):  # the second holds the file that is at the path now
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
        release_second.set()
        waiter.join(10)
