"""`arnkit datasets`: which datasets exist and whether each is available right now (no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arnkit import data
from arnkit.workspace import Workspace


def list_datasets(workspace: str | Path | None = None) -> list[dict[str, Any]]:
    data_dir = Workspace.resolve(workspace).data_dir
    rows = []
    for name, source in data.SOURCES.items():
        meta = source.info
        reason = source.availability(data_dir)
        rows.append({
            "name": name, "available": reason is None, "reason": reason or "", "shape": list(meta.shape),
            "classes": meta.num_classes, "splits": meta.split_sizes, "eps": meta.eps, "eps_raised": meta.eps_raised,
            "default_model": meta.default_model, "description": meta.description,
        })
    return rows


def import_dataset(dataset: str, path: str | Path, *, workspace: str | Path | None = None) -> dict[str, Any]:
    """Import an archive the user already has into the workspace's data folder (offline)."""
    from arnkit.errors import ArnkitError

    data_dir = Workspace.resolve(workspace).data_dir
    if dataset.lower() != "cifar10":
        raise ArnkitError(f"`arnkit data import` supports cifar10 only, got '{dataset}'; "
                          "LISA is built from its manual download (see `arnkit datasets`)")
    from arnkit.data.importers import import_cifar10

    folder = import_cifar10(Path(path), data_dir)
    return {"dataset": "cifar10", "path": str(folder)}
