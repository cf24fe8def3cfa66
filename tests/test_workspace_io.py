"""Workspace paths, content addressing, atomic writes and safe model loading."""

import os
import pickle
import stat

import numpy as np
import pytest

from arnkit.errors import ArnkitError
from arnkit.io import atomic_path, load_model, save_model, write_json_atomic
from arnkit.workspace import Workspace, spec_key


def test_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("ARNKIT_WORKSPACE", str(tmp_path / "env"))
    assert Workspace.resolve().root == (tmp_path / "env").resolve()
    assert Workspace.resolve(tmp_path / "flag").root == (tmp_path / "flag").resolve()
    monkeypatch.delenv("ARNKIT_WORKSPACE")
    assert Workspace.resolve().root.name == ".arnkit"


def test_artifacts_are_content_addressed(tmp_path):
    ws = Workspace.resolve(tmp_path)
    a = ws.artifact("targets", "mnist-lenet", {"epochs": 4, "seed": 0}, "keras")
    b = ws.artifact("targets", "mnist-lenet", {"seed": 0, "epochs": 4}, ".keras")
    c = ws.artifact("targets", "mnist-lenet", {"seed": 1, "epochs": 4}, "keras")
    assert a == b and a != c and a.suffix == ".keras"
    assert spec_key({"x": 1}) != spec_key({"x": 2})


def test_atomic_writes_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    # A workspace shared by a group, or a report served from it, must be readable as a plain open() makes it.
    mask = os.umask(0o022)
    os.umask(mask)
    write_json_atomic(tmp_path / "r.json", {"a": 1})
    with atomic_path(tmp_path / "m.keras") as tmp:
        tmp.write_bytes(b"x")
    for name in ("r.json", "m.keras"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask, name


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("boom")
    assert not target.exists() and os.listdir(tmp_path) == []
    write_json_atomic(target, {"a": np.float32(1.5)})
    assert target.read_text().strip().startswith("{") and os.listdir(tmp_path) == ["out.json"]


def test_workspace_that_cannot_be_created_is_refused_even_as_root(tmp_path):
    # Permission bits do not stop root (CI runs as root), but nobody can create a folder under a regular
    # file: the workspace below is impossible for every user, so this test means the same everywhere.
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    workspace = blocker / "ws"
    with pytest.raises(ArnkitError, match=r"ws is not writable \(.+\); pass --workspace DIR"):
        Workspace.resolve(workspace).dir("targets")
    with pytest.raises(ArnkitError, match="cannot write"):
        write_json_atomic(workspace / "targets" / "x.json", {})

    from typer.testing import CliRunner

    from arnkit_cli.main import app

    result = CliRunner().invoke(app, ["train", "--dataset", "synthetic", "--workspace", str(workspace)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith("error: workspace ") and f"({blocker} is a file)" in lines[0], lines[0]
    assert blocker.read_text() == "keep me" and os.listdir(tmp_path) == ["file"]  # nothing lost, nothing made


def test_unwritable_workspace(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ArnkitError, match="not writable.*--workspace"):
        Workspace.resolve(blocker).dir("targets")
    with pytest.raises(ArnkitError, match="cannot write"):
        write_json_atomic(blocker / "x.json", {})


def _tiny_model():
    import keras

    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])


def test_keras_round_trip(tmp_path):
    model = _tiny_model()
    path = save_model(model, tmp_path / "m.keras")
    again = load_model(path)
    x = np.ones((3, 4), np.float32)
    np.testing.assert_allclose(model(x), again(x), atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]


def test_refuses_h5_pickle_corrupt_and_missing(tmp_path):
    import h5py

    h5 = tmp_path / "legacy.h5"
    with h5py.File(h5, "w") as handle:
        handle.attrs["model_config"] = "{}"
    with pytest.raises(ArnkitError, match="legacy HDF5"):
        load_model(h5)
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps({"weights": [1, 2]}))
    with pytest.raises(ArnkitError, match="pickle"):
        load_model(pkl)
    bad = tmp_path / "bad.keras"
    bad.write_bytes(os.urandom(256))
    with pytest.raises(ArnkitError, match="not a valid .keras"):
        load_model(bad)
    with pytest.raises(ArnkitError, match="not found"):
        load_model(tmp_path / "nope.keras")
