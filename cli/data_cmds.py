"""`arnkit datasets` and `arnkit data import`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from arnkit.errors import ArnkitError
from arnkit_cli.common import JsonOpt, WorkspaceOpt, emit_json, handle_errors, stderr, stdout, table

data_app = typer.Typer(help="Manage datasets that are not embedded.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    datasets.needs_tensorflow = False
    app.command("datasets")(handle_errors(datasets))
    app.add_typer(data_app, name="data")


def datasets(workspace: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """List every dataset and whether it is available right now."""
    from arnkit.pipeline.datasets import list_datasets

    rows = list_datasets(workspace)
    if json_out:
        emit_json({"datasets": rows})
        return
    stdout.print(table("datasets", ["name", "available", "shape", "classes", "eps", "note"], [
        [r["name"], "yes" if r["available"] else "no", "x".join(map(str, r["shape"])), r["classes"],
         round(r["eps"], 4), r["reason"] or r["description"]] for r in rows]))


@data_app.command("import")
@handle_errors
def import_data(
    kind: Annotated[str, typer.Argument(metavar="WHAT", help=(
        "What to import: cifar10 or lisa (their archives), or your own images: folder (class subfolders of "
        "PNG/JPEG) or npz (arrays x_train, y_train, x_test, y_test)."))],
    path: Annotated[Path, typer.Argument(help=(
        "What you already have: cifar-10-python.tar.gz for cifar10; for lisa DOA's release "
        "(a .tar/.tar.gz/.zip of its LISA/ folder, or the folder); for folder PATH/train/<class>/* and "
        "PATH/test/<class>/*, or PATH/<class>/* (split by --test-fraction); for npz the .npz file."))],
    name: Annotated[str | None, typer.Option("--name", help="folder/npz: the dataset's name (--dataset NAME).")] = None,
    eps: Annotated[float | None, typer.Option("--eps", help=(
        "folder/npz: the L-inf attack budget in [0,1] pixel units (default by channel count: 0.3 grayscale, "
        "8/255 RGB)."))] = None,
    size: Annotated[str | None, typer.Option("--size", help="folder: resize every image to HxW (e.g. 32x32).")] = None,
    test_fraction: Annotated[float, typer.Option("--test-fraction", help=(
        "folder without train/ and test/: the share of each class held out for test (seeded).")) ] = 0.2,
    force: Annotated[bool, typer.Option("--force", help=(
        "lisa: rebuild even if this content was imported before; folder/npz: replace a dataset of that name."))] = False,
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Import a dataset you already have (cifar10 archive, LISA release, your own images), so it loads offline."""
    from arnkit.pipeline.datasets import USER_KINDS, import_dataset, import_user_dataset

    if kind.lower() in USER_KINDS:
        if not name:
            raise ArnkitError(f"`arnkit data import {kind.lower()}` needs --name NAME, the name you will pass as "
                              "--dataset")
        result = import_user_dataset(kind.lower(), path, name=name, workspace=workspace, eps=eps, size=size,
                                     test_fraction=test_fraction, force=force)
        if json_out:
            emit_json(result)
            return
        counts, shape = result["counts"], "x".join(map(str, result["shape"]))
        stdout.print(f"imported {result['dataset']}: {counts['train']:,} train / {counts['test']:,} test, "
                     f"{result['num_classes']} classes, {shape} -> {result['path']}", highlight=False)
        how = "pass --eps to change it" if result["eps_default"] else "as given"
        stdout.print(f"attack budget eps {result['eps']:.4g}: {result['eps_rule']} ({how})", highlight=False)
        if "warning" in result:
            stderr.print(f"[yellow]warning:[/] {result['warning']}", highlight=False)
        return
    if name is not None or eps is not None or size is not None:
        raise ArnkitError("--name, --eps and --size apply to `arnkit data import folder|npz`, not to "
                          f"{kind}; drop them")
    result = import_dataset(kind, path, workspace=workspace, force=force)
    if json_out:
        emit_json(result)
    elif "counts" in result:
        counts = result["counts"]
        how = "reused (same source as before)" if result["reused"] else f"built in {result['seconds']:.1f} s"
        stdout.print(f"imported {result['dataset']}: {counts['train']:,} train / {counts['test']:,} test, "
                     f"{result['classes']} classes, {how} -> {result['path']}", highlight=False)
    else:
        stdout.print(f"imported {result['dataset']} -> {result['path']}", highlight=False)
