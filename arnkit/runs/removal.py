"""Removing what a workspace holds, safely: `remove` (by id, refused while another record references it) and
`prune` (what nothing needs: temp files of killed writes, stale locks, checkpoints of finished runs, empty run
folders; damaged artifacts and unreferenced adversarial sets when asked).

Every deletion goes through `_delete`, which touches only paths inside the workspace and never follows a
symlink: a link is removed as a link, and a folder is removed without descending into links.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arnkit.errors import ArnkitError
from arnkit.runs.inventory import (
    ARTIFACT_NAME,
    DAMAGED,
    KINDS,
    LOCK_SUFFIX,
    RUN_RECORD,
    UNFINISHED,
    inventory,
    is_temp,
    referrers,
    tree_size,
)
from arnkit.workspace import Workspace

# A temp file or an empty run folder younger than this may belong to a write or a run in progress right now.
GRACE_SECONDS = 600
CHECKPOINTS = ("checkpoint.npz", "checkpoints")  # a run's resume state: useless once record.json is written


@dataclass(frozen=True)
class Removal:
    path: Path
    reason: str
    size: int

    def to_dict(self, root: Path) -> dict[str, Any]:
        return {"path": _relative(self.path, root), "reason": self.reason, "size": self.size}


def remove(ws: Workspace, ids: list[str], *, force: bool = False, dry_run: bool = False) -> list[Removal]:
    """Remove the artifacts `ids` with their sidecars. An unknown id, or one that an artifact not removed here
    still references (unless `force`), is one line, before anything is removed."""
    if not ids:
        raise ArnkitError("name at least one artifact to remove; `arnkit runs list` shows the ids")
    items = inventory(ws)
    by_id = {a.id: a for a in items}
    chosen = [by_id.get(_normalize(i, ws)) for i in ids]
    unknown = [i for i, item in zip(ids, chosen, strict=True) if item is None]
    if unknown:
        raise ArnkitError(f"no artifact {unknown[0]!r} in workspace {ws.root}; `arnkit runs list` shows the ids")
    leaving = {a.id for a in chosen if a}
    for item in chosen:
        assert item is not None  # checked above
        # Even --force does not pull files from under a build that holds the artifact's lock right now.
        if any(p.name.endswith(LOCK_SUFFIX) and _lock_held(p) for p in item.files):
            raise ArnkitError(f"{item.id} is being built by another process (its lock is held); wait for it to "
                              "finish, then remove it")
    if not force:
        users = referrers(items)
        for item in chosen:
            assert item is not None
            kept = [r for r in users.get(item.id, []) if r not in leaving]
            if kept:
                more = f" (and {len(kept) - 1} more)" if len(kept) > 1 else ""
                raise ArnkitError(f"{item.id} is still referenced by {kept[0]}{more}; remove that first, or pass "
                                  "--force to remove it anyway")
    plan = [Removal(p, f"{item.id}", tree_size(p)) for item in chosen if item for p in item.files]
    return _carry_out(ws, plan, dry_run)


def prune(ws: Workspace, *, damaged: bool = False, unreferenced: bool = False, dry_run: bool = False,
          now: float | None = None) -> list[Removal]:
    """Remove what nothing needs (see the module doc); `dry_run` only lists it."""
    now = time.time() if now is None else now
    plan: list[Removal] = []
    for folder in _kind_folders(ws):
        for path in _walk(folder):
            if is_temp(path.name) and now - _mtime(path) >= GRACE_SECONDS and not _lock_held_for(path):
                plan.append(Removal(path, "temp file of an interrupted write", tree_size(path)))
            elif path.name.endswith(LOCK_SUFFIX) and path.is_file() and not _lock_held(path):
                plan.append(Removal(path, "stale lock (no process holds it)", tree_size(path)))
    items = inventory(ws)
    users = referrers(items)
    for item in items:
        if item.status == DAMAGED and damaged:
            plan.extend(Removal(p, f"damaged: {item.problem}", tree_size(p)) for p in item.files)
        elif item.kind == "adversarial" and unreferenced and item.status != DAMAGED and not users.get(item.id):
            plan.extend(Removal(p, "adversarial set that no record references", tree_size(p)) for p in item.files)
        elif item.kind == "defenses" and item.path.is_dir() and not item.path.is_symlink():
            if item.status != UNFINISHED and (item.path / RUN_RECORD).is_file():
                plan.extend(Removal(item.path / name, "checkpoint of a finished run", tree_size(item.path / name))
                            for name in CHECKPOINTS if (item.path / name).exists())
            elif not any(item.path.iterdir()) and now - _mtime(item.path) >= GRACE_SECONDS:
                plan.append(Removal(item.path, "empty run folder", 0))
    seen: set[Path] = set()
    unique = [r for r in plan if not (r.path in seen or seen.add(r.path))]
    return _carry_out(ws, unique, dry_run)


# ------------------------------------------------------------------------------------------ helpers ---

def _normalize(text: str, ws: Workspace) -> str:
    """An id as listed, or a path of (or inside) an artifact: `targets/x-<hash>.keras` -> `targets/x-<hash>`."""
    path = Path(text)
    try:
        parts = path.resolve().relative_to(ws.root).parts if path.is_absolute() else path.parts
    except ValueError:
        return text
    if len(parts) >= 2 and parts[0] in KINDS:
        if parts[0] == "data":
            return f"data/{parts[2] if parts[1:2] == ('user',) and len(parts) > 2 else parts[1]}"
        match = ARTIFACT_NAME.match(parts[1])
        return f"{parts[0]}/{match['stem'] if match else parts[1]}"
    return text


def _carry_out(ws: Workspace, plan: list[Removal], dry_run: bool) -> list[Removal]:
    for removal in plan:
        _check_inside(ws, removal.path)  # all before any: a bad path removes nothing
    if not dry_run:
        for removal in plan:
            _delete(removal.path)
    return plan


def _check_inside(ws: Workspace, path: Path) -> None:
    """The path's folder, links resolved, must lie inside the workspace: a kind folder that is a link to
    elsewhere is refused rather than emptied."""
    root = ws.root.resolve()
    parent = path.parent.resolve()
    if parent != root and root not in parent.parents:
        raise ArnkitError(f"{path} lies outside the workspace {root}; nothing was removed")


def _delete(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)  # rmtree removes links inside as links; it refuses a top-level link (checked above)


def _kind_folders(ws: Workspace) -> list[Path]:
    return [ws.root / k for k in KINDS if k != "data" and (ws.root / k).is_dir()
            and not (ws.root / k).is_symlink()]


def _walk(folder: Path) -> list[Path]:
    """The kind folder's entries and one level inside its `.d` run folders (where run records and checkpoints
    are written atomically too)."""
    out = []
    for entry in sorted(folder.iterdir()):
        out.append(entry)
        if entry.is_dir() and not entry.is_symlink():
            out.extend(sorted(entry.iterdir()))
    return out


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


def _lock_held(path: Path) -> bool:
    """Whether some process holds this lock file (an flock on it, or a live pid written in it)."""
    try:
        import fcntl
    except ImportError:  # no flock here: keep every lock rather than guess
        return True
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        text = os.read(fd, 64).decode(errors="replace").strip()
    finally:
        os.close(fd)
    return text.isdigit() and _pid_alive(int(text))


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_held_for(temp: Path) -> bool:
    """A temp file `.<stem>.XXXXXXXX.<ext>` beside a held `<stem>.<ext>.lock` or `<stem>.lock` is a write in
    progress."""
    stem = temp.name[1:].rsplit(".", 2)[0]
    return any(_lock_held(lock) for lock in temp.parent.glob(f"{stem}*{LOCK_SUFFIX}") if lock.is_file())


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
