"""nox sessions: tests, lint, backends, notf, notebooks, gpu_smoke, bench, upgrade_pins. `nox -s tests` mirrors CI.

Every session installs through constraints.txt (the exact versions CI and the benchmarks ran); only
`upgrade_pins` resolves pyproject.toml's ranges afresh and rewrites that file."""

import os
from pathlib import Path

import nox

CONSTRAINTS = Path(__file__).resolve().parent / "constraints.txt"
PINNED = ("-c", str(CONSTRAINTS))
PINS_HEADER = """\
# Exact versions that `pip install -e ".[dev]"` resolved for CI and the benchmarks (Python 3.11, x86-64 CPU).
# Install through it: pip install -c constraints.txt -e ".[dev]"   Regenerate: nox -s upgrade_pins
# pyproject.toml keeps its ranges; this file only fixes what they resolve to.
"""


def pins_text(freeze: str) -> str:
    """constraints.txt from `pip freeze --exclude-editable` output: arnkit itself never pins itself."""
    lines = [line.strip() for line in freeze.splitlines()]
    kept = [line for line in lines if line and not line.startswith("#") and not line.lower().startswith("arnkit")]
    return PINS_HEADER + "\n".join(kept) + "\n"

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    session.install(*PINNED, "-e", ".[dev]")
    session.run("python", "-m", "pytest", "-q", *(session.posargs or ["-n", "2"]))


@nox.session
def lint(session: nox.Session) -> None:
    session.install(*PINNED, "ruff")
    session.run("ruff", "check", "arnkit", "cli", "tests", "bench", "noxfile.py")


BACKEND_TESTS = [
    "tests/test_arn_backends.py",
    "tests/test_attacks_backends.py",
    "tests/test_cli_without_tensorflow.py",
    "tests/test_gpu_bench.py",
]


@nox.session
def backends(session: nox.Session) -> None:
    """The multi-backend tests: ARN training under JAX vs TF, attacks under jax and torch, no-TF CLI."""
    session.install(*PINNED, "-e", ".[dev]")
    session.run("python", "-m", "pytest", "-q", *(session.posargs or BACKEND_TESTS))


@nox.session
def notf(session: nox.Session) -> None:
    """A venv with no TensorFlow at all: arnkit trains, attacks and evaluates MNIST under JAX."""
    session.install(*PINNED, "-e", ".[jax]", "pytest")
    session.run("python", "-c", "import importlib.util as u, sys; sys.exit(u.find_spec('tensorflow') is not None)")
    env = {"KERAS_BACKEND": "jax", "ARNKIT_WORKSPACE": str(session.create_tmp()) + "/ws"}
    session.run("arnkit", "train", "--dataset", "mnist", "--width", "tiny", "--steps", "30",
                "--pool-size", "512", "--eval-limit", "200", env=env)
    session.run("arnkit", "evaluate", "--dataset", "mnist", "--attack", "pgd_n", "--threat-model", "white",
                "--limit", "64", env=env)
    # A TF-only command answers in one line naming the extra.
    session.run("arnkit", "detect", "--method", "lid", env=env, success_codes=[1])


@nox.session
def gpu_smoke(session: nox.Session) -> None:
    """bench/gpu in its 50-step smoke mode on CPU under JAX (what a lent GPU machine runs, at tiny size)."""
    session.install(*PINNED, "-e", ".[jax]")
    session.run("bash", "bench/gpu/run.sh", "--smoke", env={"OUT": str(session.create_tmp()) + "/out"})


@nox.session
def notebooks(session: nox.Session) -> None:
    """Execute every notebook at small sizes (ARNKIT_NOTEBOOK_SMALL=1)."""
    session.install(*PINNED, "-e", ".[dev]")
    session.run("python", "notebooks/execute.py", "notebooks", env={"ARNKIT_NOTEBOOK_SMALL": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """Long benchmarks (minutes); results are recorded by hand in docs/."""
    session.install(*PINNED, "-e", ".[dev]")
    for script in session.posargs or ["bench/bench_pixel_attacks.py"]:
        session.run("python", script)


@nox.session(reuse_venv=False)
def upgrade_pins(session: nox.Session) -> None:
    """Resolve pyproject.toml's ranges in a fresh venv, rewrite constraints.txt, then run the suite on them.

    Review `git diff constraints.txt` before committing: a new JAX or TensorFlow can move the numbers in docs/.
    torch stays at pyproject's exact pin (a range would pull a multi-GB CUDA build)."""
    session.install("-e", ".[dev]")
    freeze = session.run("python", "-m", "pip", "freeze", "--exclude-editable", silent=True)
    tmp = CONSTRAINTS.with_suffix(".txt.tmp")
    tmp.write_text(pins_text(freeze))
    os.replace(tmp, CONSTRAINTS)  # atomic: a failed resolve above leaves the old pins whole
    session.log(f"wrote {CONSTRAINTS}")
    session.run("python", "-m", "pytest", "-q", *(session.posargs or ["-n", "2"]))
