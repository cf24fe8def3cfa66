"""Shared CLI plumbing: error handling, JSON output, option types, rich progress."""

from __future__ import annotations

import functools
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
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
from arnkit_cli import tf_log

# Results (tables, "saved ...") go to stdout, so `arnkit attacks | head` shows the table; diagnostics, warnings
# and progress go to stderr; with --json, stdout carries the JSON object alone.
stdout = Console()
stderr = Console(stderr=True)
STATE = {"verbose": False}
HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", help="Artifact folder (default: $ARNKIT_WORKSPACE or ~/.arnkit)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object on stdout (and nothing "
                                                     "else there).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives the same numbers.")]


def handle_errors(func):
    """Turn an ArnkitError (a user mistake) into one red line and exit code 1; --verbose shows the traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            _preflight(kwargs, func)
            if getattr(wrapper, "needs_tensorflow", True):
                _check_backend(wrapper)
            return func(*args, **kwargs)
        except ModuleNotFoundError as exc:
            if exc.name not in TF_MODULES:
                raise
            if STATE["verbose"]:
                traceback.print_exc()
            # A path of a portable command that only TensorFlow runs (a TF-only attack, say).
            stderr.print(f"[bold red]error:[/] this use of `arnkit {_command(wrapper)}` needs TensorFlow "
                         f"({exc.name} is not installed): pip install 'arnkit\\[tf]'", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except ArnkitError as exc:
            if STATE["verbose"]:
                traceback.print_exc()
            stderr.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            stderr.print("[red]interrupted[/]; finished artifacts are kept, rerun to resume")
            raise typer.Exit(130) from None

    return wrapper


TF_MODULES = ("tensorflow", "tensorflow_datasets", "cleverhans")


def portable(func):
    """Mark a command that runs under the JAX and torch backends too (without TensorFlow installed)."""
    func.backends = ("tensorflow", "jax", "torch")
    return func


def _command(wrapper) -> str:
    return getattr(wrapper, "command_name", wrapper.__name__.replace("_", " "))


def _check_backend(wrapper) -> None:
    """Import TensorFlow quietly on its backend; on another, refuse in one line unless the command is portable."""
    from arnkit import backend

    # backend.name() imports Keras, which on its TensorFlow backend is THE TensorFlow import: quiet it first.
    tf_log.import_keras()
    current = backend.name()
    if current not in getattr(wrapper, "backends", ("tensorflow",)):
        backend.require_tensorflow(f"`arnkit {_command(wrapper)}`")


def _preflight(kwargs: dict[str, Any], func: Any = None) -> None:
    """Fail fast (before the seconds-long TF import) when the command's dataset is unknown or not on disk, a
    progress setting is off, or an option cannot work (`option_checks`: counts, limits, names, output paths)."""
    _progress_settings()
    if isinstance(kwargs.get("dataset"), str):
        from arnkit import data
        from arnkit.workspace import Workspace

        # The workspace's data folder holds the user's imported datasets, so a name is looked up there too.
        reason = data.availability(kwargs["dataset"], Workspace.resolve(kwargs.get("workspace")).data_dir)
        if reason is not None:
            raise ArnkitError(reason)
    from arnkit_cli.option_checks import check_options

    check_options(kwargs, typed=_typed(kwargs, func))


def _typed(kwargs: dict[str, Any], func: Any) -> set[str]:
    """The options whose value differs from the command's default: only those can be "too large" for a split
    (a default is clamped to the data it runs on)."""
    import inspect

    if func is None:
        return set(kwargs)
    params = inspect.signature(func).parameters
    return {name for name, value in kwargs.items() if name not in params or params[name].default != value}


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


PROGRESS_ENV = "ARNKIT_PROGRESS"
PROGRESS_MODES = ("auto", "rich", "plain", "off")
PLAIN_INTERVAL_ENV = "ARNKIT_PROGRESS_INTERVAL"


def make_progress(json_out: bool = False):
    """The progress display for this process: a rich bar on a terminal, plain lines in a log.

    rich's live bar prints nothing until a task ends when stderr is not a terminal, so a `nohup` or CI log
    would stay empty for an hour; plain lines go out at a steady rate instead. `--json` keeps stdout for the
    JSON object either way (progress goes to stderr). $ARNKIT_PROGRESS = auto | rich | plain | off."""
    mode, interval = _progress_settings()
    if mode == "off":
        return RichProgress(enabled=False)
    if mode == "auto":
        mode = "rich" if stderr.is_terminal else "plain"
    if mode == "rich":
        return RichProgress(enabled=not json_out)
    return PlainProgress(interval=interval)


def _progress_settings() -> tuple[str, float]:
    """($ARNKIT_PROGRESS, $ARNKIT_PROGRESS_INTERVAL), checked: a typo is one clear line, before any work."""
    mode = os.environ.get(PROGRESS_ENV, "auto").strip().lower() or "auto"
    if mode not in PROGRESS_MODES:
        raise ArnkitError(f"{PROGRESS_ENV}={mode!r} is not a progress mode; use one of: {', '.join(PROGRESS_MODES)}")
    raw = os.environ.get(PLAIN_INTERVAL_ENV, "30")
    try:
        interval = float(raw)
    except ValueError:
        interval = float("nan")
    if not interval >= 0:
        raise ArnkitError(f"{PLAIN_INTERVAL_ENV} must be a number of seconds >= 0, got {raw!r}")
    return mode, interval


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"


class PlainProgress:
    """arnkit's Progress protocol as plain lines on stderr: one when a phase starts, then at most one every
    `interval` seconds (step, rate, ETA and up to four losses), and one when it ends."""

    def __init__(self, interval: float = 30.0, stream=None, clock=time.monotonic) -> None:
        self.interval = max(float(interval), 0.0)
        self._stream = stream
        self._clock = clock
        self._task: str | None = None

    def _print(self, line: str) -> None:
        stream = self._stream or sys.stderr
        stream.write(f"[arnkit {time.strftime('%H:%M:%S')}] {line}\n")
        stream.flush()

    def start(self, task: str, total: int | None) -> None:
        self.finish()
        self._task, self._total, self._done = task, total, 0
        self._started = self._last = self._clock()
        self._first: tuple[float, int] | None = None  # (time, done) at the first advance
        self._print(f"{task}: started" + (f", {total} to do" if total else ""))

    def advance(self, amount: int = 1, **info: float) -> None:
        if self._task is None:
            return
        self._done += amount
        now = self._clock()
        first = self._first
        if first is None:
            self._first = (now, self._done)
        if now - self._last < self.interval:
            return
        self._last = now
        # The rate counts from the first advance: it leaves out graph tracing before it and, in a resumed run,
        # the steps that the opening advance(start_step) says were done earlier.
        if first is not None and now > first[0] and self._done > first[1]:
            rate = (self._done - first[1]) / (now - first[0])
        else:
            elapsed = now - self._started
            rate = self._done / elapsed if elapsed > 0 else 0.0
        parts = [f"{self._task}: {self._done}" + (f"/{self._total} ({100 * self._done / self._total:.0f}%)"
                                                  if self._total else "")]
        parts.append(f"{rate:.3g}/s")
        if self._total and rate > 0:
            parts.append(f"ETA {_duration(max(self._total - self._done, 0) / rate)}")
        # Losses first (keras hands logs over alphabetically: "adv" would come before "e_loss").
        shown = sorted(info.items(), key=lambda kv: "loss" not in kv[0])[:4]
        parts.extend(f"{k}={v:.4g}" for k, v in shown)
        self._print(" ".join(parts))

    def note(self, line: str) -> None:
        self._print(line)

    def finish(self) -> None:
        if self._task is None:
            return
        elapsed = self._clock() - self._started
        self._print(f"{self._task}: done, {self._done} in {_duration(elapsed)}")
        self._task = None


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

    def note(self, line: str) -> None:
        """A diagnostic line, above the live bar when one runs (with --json or progress off too: it is stderr)."""
        console = self._progress.console if self._progress is not None else stderr
        console.print(line, highlight=False, soft_wrap=True, markup=False)

    def advance(self, amount: int = 1, **info: float) -> None:
        if self._progress is None:
            return
        text = " ".join(f"{k}={v:.4g}" for k, v in list(info.items())[:4])
        self._progress.update(self._task, advance=amount, info=text)

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


DefenseKindOpt = Annotated[
    str | None,
    typer.Option("--defense-kind", help="What a --defense file without an arnkit header is: preprocessor or "
                                        "classifier (default: a pre-processor, when its shapes and [0, 1] outputs "
                                        "fit one).")]

# ------------------------------------------------------------------------------------ --target (yours) ---

TargetOpt = Annotated[
    str | None,
    typer.Option("--target", help="Your own Keras 3 classifier (a .keras path: images NHWC in [0, 1] -> logits or "
                                  "probabilities) instead of the workspace's zoo target."),
]
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def names_a_file(value: str) -> bool:
    """A --target / --defense value is a file (a path, or a model file's name), not a registry key: the same
    rule in every command, decided without importing Keras."""
    return value.lower().endswith(MODEL_SUFFIXES) or "/" in value or os.sep in value or Path(value).is_file()


def split_target(target: str | None) -> tuple[str | None, Path | None]:
    """--target: (zoo model name, None) or (None, path of the user's .keras)."""
    if target is None:
        return None, None
    return (None, Path(target)) if names_a_file(target) else (target, None)


def deprecated_alias(old: str, value: Any, new: str, current: Any) -> Any:
    """An old option's value, with a one-line note naming its new spelling; both at once is one error line."""
    if value is None:
        return current
    if current is not None:
        raise ArnkitError(f"{old} is the old spelling of {new}; pass only {new}")
    stderr.print(f"note: {old} is deprecated and will be removed; use {new} {value}", highlight=False,
                 soft_wrap=True)
    return value
InputScaleOpt = Annotated[
    float | None,
    typer.Option("--input-scale", help="With --target: feed it x * SCALE (255 for a model trained on [0, 255]).")]
TargetOutputOpt = Annotated[
    bool | None,
    typer.Option("--logits/--probabilities", help="With --target: what it outputs (default: detected; "
                                                  "probabilities are attacked through their logits).")]


def target_options(target: str | Path | None, input_scale: float | None, logits: bool | None) -> dict[str, Any]:
    """The pipeline's keyword arguments for a user's target; --input-scale / --logits alone are one line, and
    so is a zoo model name where the command takes only a file."""
    if isinstance(target, str):
        zoo, target = split_target(target)
        if zoo is not None:
            raise ArnkitError(f"--target {zoo}: a zoo model name is taken by `arnkit target train` and `arnkit "
                              "evaluate` (cross-model); here --target is your own classifier: pass its .keras path")
    if target is None:
        if input_scale is not None or logits is not None:
            raise ArnkitError("--input-scale, --logits and --probabilities describe your --target; add --target "
                              "PATH.keras")
        return {}
    return {"target": target, "input_scale": input_scale,
            "target_output": None if logits is None else ("logits" if logits else "probabilities")}


def shows_target_warnings(func):
    """Print each warning about a user's target (arnkit.runs.target_record.TargetWarning: accuracy near chance)
    as one yellow line when it is raised, before the long work; other warnings go their usual way."""
    import warnings

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from arnkit.runs.target_record import TargetWarning

        with warnings.catch_warnings():
            python_show = warnings.showwarning

            def show(message, category, filename, lineno, file=None, line=None):
                if not issubclass(category, TargetWarning):
                    return python_show(message, category, filename, lineno, file, line)
                stderr.print(f"[bold yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)

            warnings.showwarning = show
            warnings.simplefilter("always", TargetWarning)
            return func(*args, **kwargs)

    return wrapper


# ------------------------------------------------------------------------------------- help display ---

def flags_take_no_value() -> None:
    """typer's rich help labels every flag `<bool>` (`--json <bool>`), which reads as an option that takes a
    value, and `--json true` is then refused: show flags with no type, as its plain help does."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "arnkit_flags", False):
        return

    def display_type_rich(self, ctx):
        return None if getattr(self, "is_flag", False) else shown(self, ctx)

    display_type_rich.arnkit_flags = True
    TyperOption.display_type_rich = display_type_rich
