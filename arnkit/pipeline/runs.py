"""`arnkit runs`: list, remove and prune what a workspace holds (arnkit.runs.inventory / removal)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arnkit.errors import ArnkitError
from arnkit.runs.inventory import KINDS, human_size, inventory, referrers
from arnkit.runs.removal import Removal, prune, remove
from arnkit.workspace import Workspace


def list_runs(workspace: str | Path | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    """One dict per artifact (id, kind, size, date, status, provenance, references both ways), sorted by id."""
    ws = Workspace.resolve(workspace)
    kinds = KINDS
    if kind is not None:
        wanted = kind.strip().lower()
        # `target`, `defense`... name the same kinds as the folders do.
        matches = [k for k in KINDS if k == wanted or k.rstrip("s") == wanted.rstrip("s")]
        if not matches:
            raise ArnkitError(f"unknown kind {kind!r}; choose one of: {', '.join(KINDS)}")
        kinds = tuple(matches)
    if not ws.root.is_dir():
        raise ArnkitError(f"workspace {ws.root} does not exist; pass --workspace DIR or set ARNKIT_WORKSPACE")
    items = inventory(ws)  # all kinds, even when filtered: references cross kinds
    users = referrers(items)
    return [item.to_dict(users.get(item.id, [])) for item in items if item.kind in kinds]


def remove_runs(ids: list[str], workspace: str | Path | None = None, *, force: bool = False,
                dry_run: bool = False) -> dict[str, Any]:
    """`arnkit runs rm ID...`: the removed paths and the bytes freed."""
    ws = Workspace.resolve(workspace)
    return _summary(ws, remove(ws, ids, force=force, dry_run=dry_run), dry_run)


def prune_runs(workspace: str | Path | None = None, *, damaged: bool = False, unreferenced: bool = False,
               dry_run: bool = False) -> dict[str, Any]:
    """`arnkit runs prune`: what was (or, with dry_run, would be) removed, and the bytes freed."""
    ws = Workspace.resolve(workspace)
    if not ws.root.is_dir():
        raise ArnkitError(f"workspace {ws.root} does not exist; pass --workspace DIR or set ARNKIT_WORKSPACE")
    return _summary(ws, prune(ws, damaged=damaged, unreferenced=unreferenced, dry_run=dry_run), dry_run)


def _summary(ws: Workspace, removals: list[Removal], dry_run: bool) -> dict[str, Any]:
    freed = sum(r.size for r in removals)
    return {"workspace": str(ws.root), "dry_run": dry_run, "removed": [r.to_dict(ws.root) for r in removals],
            "bytes": freed, "freed": human_size(freed)}
