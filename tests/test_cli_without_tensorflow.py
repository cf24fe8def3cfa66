"""`arnkit` on KERAS_BACKEND=jax (and torch) with TensorFlow, TFDS and cleverhans made unimportable (as in a venv
that has only `arnkit[jax]`; `nox -s notf` builds that venv for real): the portable commands run end to end, the
others refuse in one line that names the extra to install, and `--strategy mirrored` points to DataParallel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("jax")

REPO = Path(__file__).resolve().parents[1]
BLOCKED = ("tensorflow", "tensorflow_datasets", "cleverhans")

# `python -c _CHILD REPORT arnkit-args...`: block TensorFlow, run the CLI, record at exit what got imported.
_CHILD = textwrap.dedent(f"""
    import atexit, json, sys
    for name in {BLOCKED!r}:
        sys.modules[name] = None   # import raises ImportError; importlib.util.find_spec answers None
    report, sys.argv = sys.argv[1], ["arnkit", *sys.argv[2:]]

    def record():
        import keras
        loaded = [n for n in {BLOCKED!r} if sys.modules.get(n) is not None]
        with open(report, "w") as f:
            json.dump({{"backend": keras.backend.backend(), "loaded": loaded}}, f)

    atexit.register(record)
    from arnkit_cli.main import main
    main()
""")


def arnkit(tmp_path: Path, *args: str, timeout: int = 600, backend: str = "jax"
           ) -> tuple[subprocess.CompletedProcess, dict]:
    report = tmp_path / "report.json"
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "ARNKIT_WORKSPACE": str(tmp_path / "ws"),
           "ARNKIT_PROGRESS": "plain", "COLUMNS": "200", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", _CHILD, str(report), *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=tmp_path)
    return done, (json.loads(report.read_text()) if report.exists() else {})


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("error:")]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_train_and_evaluate_run_without_tensorflow(tmp_path, backend):
    if backend == "torch":
        pytest.importorskip("torch")
    done, report = arnkit(tmp_path, "train", "--json", "--dataset", "synthetic", "--width", "tiny", "--steps", "30",
                          "--pool-size", "128", "--eval-limit", "64", backend=backend)
    assert done.returncode == 0, done.stderr[-3000:]
    assert report == {"backend": backend, "loaded": []}
    record = json.loads(done.stdout)
    assert record["steps"] == 30 and Path(record["defense_path"]).exists()
    # The closing gray-box report: ARN in front of the target beats the bare target on the seen attacks.
    for key in record["seen"]:
        errors = record["evaluation"][key]
        assert errors["arn"] < errors["none"] - 20, (key, errors)

    done, report = arnkit(tmp_path, "evaluate", "--json", "--dataset", "synthetic", "--attack", "pgd_n",
                          "--limit", "32", "--threat-model", "white", "--no-sanity", backend=backend)
    assert done.returncode == 0, done.stderr[-3000:]
    assert report["loaded"] == []
    white = json.loads(done.stdout)
    assert white["threat_model"] == "white" and white["n"] == 32
    errors = {(row["defense"], row["attack"]): row["error"] for row in white["rows"]}
    # PGD breaks the bare target; white box through G(E(x)) it breaks most of the protected one as well.
    assert errors["none", "pgd_n"] >= 90.0 and errors["arn", "pgd_n"] >= 50.0, errors


def test_tensorflow_only_commands_refuse_in_one_line(tmp_path):
    for args in (["detect", "--dataset", "synthetic"],
                 ["attack", "--dataset", "synthetic", "--attack", "cw_n", "--limit", "8"]):
        done, report = arnkit(tmp_path, *args, timeout=300)
        assert done.returncode == 1, (args, done.stderr[-2000:])
        lines = error_lines(done)
        assert len(lines) == 1, done.stderr[-2000:]
        assert "needs TensorFlow" in lines[0] and "pip install 'arnkit[tf]'" in lines[0], lines[0]
        assert "Traceback" not in done.stderr
        assert report["loaded"] == []


def test_tf_distribute_strategy_under_jax_points_to_data_parallel(tmp_path):
    done, _ = arnkit(tmp_path, "train", "--dataset", "synthetic", "--width", "tiny", "--steps", "2",
                     "--pool-size", "64", "--strategy", "mirrored", timeout=300)
    assert done.returncode == 1
    lines = error_lines(done)
    assert len(lines) == 1 and "--strategy dataparallel" in lines[0] and "DataParallel" in lines[0], done.stderr
    pytest.importorskip("torch")
    done, _ = arnkit(tmp_path, "train", "--dataset", "synthetic", "--width", "tiny", "--steps", "2",
                     "--pool-size", "64", "--strategy", "dataparallel", timeout=300, backend="torch")
    assert done.returncode == 1
    lines = error_lines(done)
    assert len(lines) == 1 and "KERAS_BACKEND=torch drop --strategy" in lines[0], done.stderr
