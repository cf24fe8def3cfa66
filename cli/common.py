"""Shared CLI plumbing: error handling, JSON output, option types, rich progress."""

from __future__ import annotations

import functools
import json
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from arnkit.errors import ArnkitError

stderr = Console(stderr=True)
STATE = {"verbose": False}

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", help="Artifact folder (default: $ARNKIT_WORKSPACE or ~/.arnkit)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object on stdout.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives the same numbers.")]


def import_tensorflow_quietly() -> None:
    """Import TF/Keras with fd 2 silenced: TF's C++ layer prints banners before its log level applies."""
    if "tensorflow" in sys.modules or STATE["verbose"]:
        return
    import os

    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def handle_errors(func):
    """Turn an ArnkitError (a user mistake) into one red line and exit code 1; --verbose shows the traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            _preflight(kwargs)
            if getattr(func, "needs_tensorflow", True):
                import_tensorflow_quietly()
            return func(*args, **kwargs)
        except ArnkitError as exc:
            if STATE["verbose"]:
                traceback.print_exc()
            stderr.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            stderr.print("[red]interrupted[/]; finished artifacts are kept, rerun to resume")
            raise typer.Exit(130) from None

    return wrapper


def _preflight(kwargs: dict[str, Any]) -> None:
    """Fail fast (before the seconds-long TF import) when the command's dataset is unknown or not on disk."""
    if isinstance(kwargs.get("dataset"), str):
        from arnkit import data
        from arnkit.workspace import Workspace

        reason = data.availability(kwargs["dataset"], Workspace.resolve(kwargs.get("workspace")).data_dir)
        if reason is not None:
            raise ArnkitError(reason)


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, sort_keys=True, default=_default) + "\n")


def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(type(obj).__name__)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    out = Table(title=title)
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
    return out


class RichProgress:
    """Fills arnkit's Progress protocol with a rich progress bar on stderr."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task = None

    def start(self, task: str, total: int | None) -> None:
        if not self.enabled:
            return
        self.finish()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=stderr, transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(task, total=total, info="")

    def advance(self, amount: int = 1, **info: float) -> None:
        if self._progress is None:
            return
        text = " ".join(f"{k}={v:.4g}" for k, v in list(info.items())[:4])
        self._progress.update(self._task, advance=amount, info=text)

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
