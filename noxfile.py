"""nox sessions: tests, lint, backends, notf, notebooks, gpu_smoke, bench. `nox -s tests` mirrors CI."""

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("python", "-m", "pytest", "-q", *(session.posargs or ["-n", "2"]))


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
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
    session.install("-e", ".[dev]")
    session.run("python", "-m", "pytest", "-q", *(session.posargs or BACKEND_TESTS))


@nox.session
def notf(session: nox.Session) -> None:
    """A venv with no TensorFlow at all: arnkit trains, attacks and evaluates MNIST under JAX."""
    session.install("-e", ".[jax]", "pytest")
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
    session.install("-e", ".[jax]")
    session.run("bash", "bench/gpu/run.sh", "--smoke", env={"OUT": str(session.create_tmp()) + "/out"})


@nox.session
def notebooks(session: nox.Session) -> None:
    """Execute every notebook at small sizes (ARNKIT_NOTEBOOK_SMALL=1)."""
    session.install("-e", ".[dev]")
    session.run("python", "notebooks/execute.py", "notebooks", env={"ARNKIT_NOTEBOOK_SMALL": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """Long benchmarks (minutes); results are recorded by hand in docs/."""
    session.install("-e", ".[dev]")
    for script in session.posargs or ["bench/bench_pixel_attacks.py"]:
        session.run("python", script)
