"""`arnkit`: the Typer app. Each command parses options, calls ONE library function, renders the result."""

from __future__ import annotations

from typing import Annotated

# First: tf_log notes whether the user chose TF_CPP_MIN_LOG_LEVEL before arnkit sets it.
from arnkit_cli import tf_log

tf_log.configure(verbose=False)

import typer  # noqa: E402

import arnkit  # noqa: E402
from arnkit_cli import attack_cmds, data_cmds, detect_cmds, evaluate_cmds, runs_cmds, target_cmds, train_cmds  # noqa: E402
from arnkit_cli.common import HELP_OPTIONS, STATE, flags_take_no_value  # noqa: E402

app = typer.Typer(
    name="arnkit",
    help="Defend image classifiers against seen and unseen adversarial attacks (ARN, ICML 2021).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings=HELP_OPTIONS,
)
flags_take_no_value()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"arnkit {arnkit.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks for errors, and TensorFlow's own log.")] = False,
) -> None:
    STATE["verbose"] = verbose
    tf_log.configure(verbose)


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
