"""`arnkit target train` and `arnkit target check`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from arnkit.errors import ArnkitError
from arnkit_cli.common import (
    InputScaleOpt,
    JsonOpt,
    SeedOpt,
    TargetOutputOpt,
    WorkspaceOpt,
    deprecated_alias,
    emit_json,
    handle_errors,
    make_progress,
    portable,
    shows_target_warnings,
    split_target,
    stdout,
    table,
    target_options,
)

target_app = typer.Typer(help="Target classifiers (the models the defense protects).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(target_app, name="target")


@target_app.command("train")
@portable
@handle_errors
def train(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name (see `arnkit datasets`).")] = "mnist",
    target: Annotated[str | None, typer.Option(
        "--target", help="Zoo model to train (lenet, vgg16, ...); default: the dataset's.")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs; default: the dataset's recipe.")] = None,
    seed: SeedOpt = 0,
    force: Annotated[bool, typer.Option("--force", "--rebuild", help=(
        "Retrain even if a cached target exists (the fix for a changed or damaged target file)."))] = False,
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
    model: Annotated[str | None, typer.Option("--model", hidden=True, help="Old spelling of --target.")] = None,
) -> None:
    """Train the target classifier and cache it in the workspace (reused when it exists)."""
    from arnkit.pipeline.target import train_target

    model, path = split_target(deprecated_alias("--model", model, "--target", target))
    if path is not None:
        raise ArnkitError(f"--target {path}: your own classifier is trained by you, not by `arnkit target train`; "
                          f"check it with `arnkit target check --target {path}`")
    result = train_target(dataset, model, epochs=epochs, seed=seed, workspace=workspace, force=force,
                          progress=make_progress(json_out))
    if json_out:
        emit_json(result.to_dict())
        return
    stdout.print(table(f"target {result.model} on {result.dataset}", ["test accuracy", "epochs", "seconds",
                                                                       "reused", "path"],
                       [[result.test_accuracy, result.epochs, result.train_seconds, result.reused, result.path]]))


train.command_name = "target train"


@target_app.command("check")
@portable
@handle_errors
@shows_target_warnings
def check(
    target: Annotated[Path, typer.Option("--target", help="Your Keras 3 classifier (.keras): images NHWC in "
                                                          "[0, 1] -> logits or probabilities.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name (see `arnkit datasets`).")] = "mnist",
    input_scale: InputScaleOpt = None,
    logits: TargetOutputOpt = None,
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Load your classifier (safe_mode), check it against the dataset (input shape, classes, accuracy on the
    first test images) and show how it will be attacked and the fingerprint that keys its artifacts. Writes
    nothing; pass the same --target to train, attack, evaluate and detect."""
    from arnkit.pipeline.target import check_target

    options = target_options(target, input_scale, logits)
    result = check_target(dataset, options["target"], input_scale=options["input_scale"],
                          target_output=options["target_output"], workspace=workspace,
                          progress=make_progress(json_out))
    if json_out:
        emit_json(result.to_dict())
        return
    user = result.user or {}
    stdout.print(table(f"your target on {result.dataset}", [
        "attacked through", "input scale", "accuracy", "test images", "fingerprint"], [[
            user.get("output"), user.get("input_scale"), result.test_accuracy, user.get("checked_images"),
            result.fingerprint]]))
    stdout.print(f"checked {user.get('source', result.path)}", highlight=False, soft_wrap=True)


check.command_name = "target check"
