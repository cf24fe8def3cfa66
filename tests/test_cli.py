"""The CLI frame, through typer's CliRunner."""

import json
import os

import pytest
from typer.testing import CliRunner

from arnkit_cli.main import app

runner = CliRunner()


def invoke(*args, workspace=None):
    argv = list(args) + (["--workspace", str(workspace)] if workspace else [])
    return runner.invoke(app, argv)


def test_version_and_help():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.startswith("arnkit ")
    result = invoke("--help")
    assert result.exit_code == 0 and "target" in result.stdout and "datasets" in result.stdout


def test_datasets_json(tmp_path):
    result = invoke("datasets", "--json", workspace=tmp_path)
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)["datasets"]}
    assert rows["mnist"]["available"] is True and rows["cifar10"]["available"] is False
    assert rows["mnist"]["shape"] == [28, 28, 1] and rows["lisa"]["classes"] == 16


def test_target_train_json_then_reuse(tmp_path):
    first = invoke("target", "train", "--dataset", "synthetic", "--epochs", "1", "--json", workspace=tmp_path)
    assert first.exit_code == 0, first.output
    record = json.loads(first.stdout)
    assert record["reused"] is False and record["dataset"] == "synthetic" and record["model"] == "lenet"
    assert 0.0 <= record["test_accuracy"] <= 1.0 and len(record["fingerprint"]) == 16
    assert os.path.exists(record["path"])
    second = invoke("target", "train", "--dataset", "synthetic", "--epochs", "1", "--json", workspace=tmp_path)
    again = json.loads(second.stdout)
    assert again["reused"] is True and again["path"] == record["path"]
    assert again["fingerprint"] == record["fingerprint"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["target", "train", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["target", "train", "--dataset", "synthetic", "--target", "alexnet"], "unknown model 'alexnet'"),
        (["target", "train", "--dataset", "cifar10"], "arnkit data import cifar10"),
        (["data", "import", "lisa", "/nonexistent.tar.gz"], "LISA data not found: /nonexistent.tar.gz"),
        (["data", "import", "imagenet", "/nonexistent.tar.gz"], "knows cifar10, lisa, got 'imagenet'"),
    ],
)
def test_user_mistakes_give_one_red_line(tmp_path, args, message):
    result = invoke(*args, workspace=tmp_path)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.output.strip().count("\n") <= 2  # one logical line (may wrap)
    assert not (tmp_path / "targets").exists() or not list((tmp_path / "targets").iterdir())


def test_unwritable_workspace_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke("target", "train", "--dataset", "synthetic", "--epochs", "1", workspace=blocker)
    assert result.exit_code == 1 and "not writable" in result.output and "Traceback" not in result.output
