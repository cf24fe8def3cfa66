"""`arnkit datasets`: which datasets exist and whether each is available right now (no network)."""

from __future__ import annotations

import contextlib
import sys
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
    for meta in data.user_datasets(data_dir):  # the user's, imported into this workspace
        reason = data.availability(meta.name, data_dir)
        rows.append({
            "name": meta.name, "available": reason is None, "reason": reason or "", "shape": list(meta.shape),
            "classes": meta.num_classes, "splits": meta.split_sizes, "eps": meta.eps, "eps_raised": meta.eps_raised,
            "default_model": meta.default_model, "description": meta.description, "user": True,
        })
    return rows


IMPORTABLE = ("cifar10", "lisa")
USER_KINDS = ("folder", "npz")  # the user's own images: arnkit.data.user_import


def import_user_dataset(
    kind: str, path: str | Path, *, name: str, workspace: str | Path | None = None, eps: float | None = None,
    size: str | None = None, test_fraction: float = 0.2, force: bool = False,
) -> dict[str, Any]:
    """`arnkit data import folder|npz PATH --name NAME`: the user's images as a dataset of the workspace (see
    arnkit.data.user_import for the rules); the result says which eps was picked and why."""
    from arnkit.data.user_import import import_folder, import_npz
    from arnkit.errors import ArnkitError

    data_dir = Workspace.resolve(workspace).data_dir
    if kind == "folder":
        return import_folder(path, data_dir, name=name, eps=eps, size=size, test_fraction=test_fraction,
                             force=force)
    if kind == "npz":
        if size is not None:
            raise ArnkitError("--size applies to `arnkit data import folder`; resize the arrays before saving the npz")
        return import_npz(path, data_dir, name=name, eps=eps, force=force)
    raise ArnkitError(f"unknown import kind '{kind}'; choose one of: {', '.join(USER_KINDS)}")


def import_dataset(
    dataset: str, path: str | Path, *, workspace: str | Path | None = None, force: bool = False
) -> dict[str, Any]:
    """Import an archive (or, for lisa, a folder) the user already has into the workspace's data folder, offline.

    cifar10: `cifar-10-python.tar.gz`, always re-imported. lisa: DOA's release (see `arnkit.data.lisa_import`),
    reused when the same content was imported before unless `force`.
    """
    from arnkit.errors import ArnkitError

    name = dataset.lower()
    if name not in IMPORTABLE:
        raise ArnkitError(f"`arnkit data import` knows {', '.join(IMPORTABLE)}, got '{dataset}'; pass one of those, "
                          f"or {' / '.join(f'`{k} PATH --name NAME`' for k in USER_KINDS)} for your own images")
    data_dir = Workspace.resolve(workspace).data_dir
    if name == "lisa":
        from arnkit.data.lisa_import import import_lisa

        return import_lisa(Path(path), data_dir, force=force)
    from arnkit.data.importers import import_cifar10

    with contextlib.redirect_stdout(sys.stderr):  # TFDS prints its notices to stdout; keep it for --json
        folder = import_cifar10(Path(path), data_dir)
    return {"dataset": "cifar10", "path": str(folder)}
