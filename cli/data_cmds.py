"""`arnkit datasets` and `arnkit data import`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from arnkit_cli.common import JsonOpt, WorkspaceOpt, emit_json, handle_errors, stderr, table

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
    stderr.print(table("datasets", ["name", "available", "shape", "classes", "eps", "note"], [
        [r["name"], "yes" if r["available"] else "no", "x".join(map(str, r["shape"])), r["classes"],
         round(r["eps"], 4), r["reason"] or r["description"]] for r in rows]))


@data_app.command("import")
@handle_errors
def import_data(
    name: Annotated[str, typer.Argument(help="Dataset to import: cifar10 or lisa.")],
    path: Annotated[Path, typer.Argument(help=(
        "What you already have: cifar-10-python.tar.gz for cifar10; for lisa DOA's release "
        "(a .tar/.tar.gz/.zip of its LISA/ folder, or the folder)."))],
    force: Annotated[bool, typer.Option("--force", help="lisa: rebuild even if this content was imported before.")] = False,
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Import a dataset you already have (cifar10 archive, LISA release), so it loads offline."""
    from arnkit.pipeline.datasets import import_dataset

    result = import_dataset(name, path, workspace=workspace, force=force)
    if json_out:
        emit_json(result)
    elif "counts" in result:
        counts = result["counts"]
        how = "reused (same source as before)" if result["reused"] else f"built in {result['seconds']:.1f} s"
        stderr.print(f"imported {result['dataset']}: {counts['train']:,} train / {counts['test']:,} test, "
                     f"{result['classes']} classes, {how} -> {result['path']}", highlight=False)
    else:
        stderr.print(f"imported {result['dataset']} -> {result['path']}", highlight=False)
