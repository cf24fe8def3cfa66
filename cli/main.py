"""`arnkit`: the Typer app. Each command parses options, calls ONE library function, renders the result."""

from __future__ import annotations

import os
from typing import Annotated

# TF's C++ layer logs benign grappler/oneDNN "errors" at level 2; real failures surface as exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import typer

import arnkit
from arnkit_cli import attack_cmds, data_cmds, detect_cmds, evaluate_cmds, runs_cmds, target_cmds, train_cmds
from arnkit_cli.common import STATE

app = typer.Typer(
    name="arnkit",
    help="Defend image classifiers against seen and unseen adversarial attacks (ARN, ICML 2021).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"arnkit {arnkit.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks for errors.")] = False,
) -> None:
    STATE["verbose"] = verbose


data_cmds.register(app)
target_cmds.register(app)
attack_cmds.register(app)
train_cmds.register(app)
detect_cmds.register(app)
evaluate_cmds.register(app)
runs_cmds.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
