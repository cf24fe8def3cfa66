"""`arnkit target train`."""

from __future__ import annotations

from typing import Annotated

import typer

from arnkit_cli.common import (
    JsonOpt,
    SeedOpt,
    WorkspaceOpt,
    emit_json,
    handle_errors,
    make_progress,
    portable,
    stderr,
    table,
)

target_app = typer.Typer(help="Target classifiers (the models the defense protects).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(target_app, name="target")


@target_app.command("train")
@portable
@handle_errors
def train(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name (see `arnkit datasets`).")] = "mnist",
    model: Annotated[str | None, typer.Option("--model", "-m", help="Zoo model; default: the dataset's.")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs; default: the dataset's recipe.")] = None,
    seed: SeedOpt = 0,
    force: Annotated[bool, typer.Option("--force", help="Retrain even if a cached target exists.")] = False,
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Train the target classifier and cache it in the workspace (reused when it exists)."""
    from arnkit.pipeline.target import train_target

    result = train_target(dataset, model, epochs=epochs, seed=seed, workspace=workspace, force=force,
                          progress=make_progress(json_out))
    if json_out:
        emit_json(result.to_dict())
        return
    stderr.print(table(f"target {result.model} on {result.dataset}", ["test accuracy", "epochs", "seconds",
                                                                       "reused", "path"],
                       [[result.test_accuracy, result.epochs, result.train_seconds, result.reused, result.path]]))


train.command_name = "target train"
