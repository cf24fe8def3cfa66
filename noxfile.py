"""nox sessions: tests, lint, notebooks, bench. `nox -s tests` mirrors CI."""

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("python", "-m", "pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "arnkit", "cli", "tests", "bench", "noxfile.py")


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
