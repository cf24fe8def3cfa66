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
    name: Annotated[str, typer.Argument(help="Dataset to import: cifar10.")],
    path: Annotated[Path, typer.Argument(help="The archive you already have, e.g. cifar-10-python.tar.gz.")],
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Import a dataset archive you already have, so it loads offline."""
    from arnkit.pipeline.datasets import import_dataset

    result = import_dataset(name, path, workspace=workspace)
    if json_out:
        emit_json(result)
    else:
        stderr.print(f"imported {name}: {result}")
