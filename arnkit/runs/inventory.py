"""What a workspace holds: one `Artifact` per target, adversarial set, defense run, evaluation, detection and
imported dataset, with its size, date, provenance read from its record, and who references whom.

    items = inventory(Workspace.resolve(root))      # sorted by id; a record that cannot be read is `damaged`
    referrers(items)["adversarial/mnist-train-pgd_n-0123456789ab"]   # -> ids whose records name it

Nothing here writes; `runs.removal` removes what this finds. Records are read defensively: a listing must show a
broken workspace (that is when a user needs it most), so no read error escapes as a traceback.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from arnkit.workspace import Workspace

# The workspace's folders of cached artifacts, in listing order; `data` holds the imported datasets.
KINDS = ("targets", "adversarial", "defenses", "evaluations", "detection", "data")
# Outputs that nothing is built from: a record naming one (a defense naming its closing report) is a link to a
# result, not a dependency, so it never blocks removal.
LEAF_KINDS = frozenset({"evaluations", "detection"})
# `<name>-<hash>.<ext>` (workspace.artifact: 12 hex; a user's model file: 16 hex of its fingerprint).
ARTIFACT_NAME = re.compile(r"^(?P<stem>.+?-[0-9a-f]{12,16})(?P<ext>\..+)$")
# io.atomic_path's temp files: `.<stem>.<8 chars of mkstemp>.<suffix>` beside the final file.
TEMP_NAME = re.compile(r"^\.(?P<stem>.+)\.[a-z0-9_]{8}\.[A-Za-z0-9]+$")
LOCK_SUFFIX = ".lock"
RUN_RECORD = "record.json"
EVALUATION_RECORD = "results.json"
USER_DATASETS = "user"
USER_DATASET_RECORD = "dataset.json"
FINGERPRINT = re.compile(r"^[0-9a-f]{16}$")

OK, DAMAGED, UNFINISHED = "ok", "damaged", "unfinished"


@dataclass
class Artifact:
    """One thing a workspace holds: its main path plus the sidecars that go with it (records, locks, images)."""

    id: str  # `kind/name-hash`: the main file's or folder's name without its extension
    kind: str
    path: Path
    files: list[Path]  # everything removed with it (the main path first)
    size: int
    mtime: float
    status: str = OK
    problem: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None  # what other records name it by (a target's or a defense's fingerprint)
    record: Any = None  # the parsed record (not listed)
    references: set[str] = field(default_factory=set)  # ids this artifact's record names

    @property
    def date(self) -> str:
        return datetime.fromtimestamp(self.mtime).astimezone().isoformat(timespec="seconds")

    def to_dict(self, referenced_by: list[str] | None = None) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "path": str(self.path), "size": self.size,
                "size_human": human_size(self.size), "date": self.date, "status": self.status,
                "problem": self.problem, "provenance": self.provenance, "fingerprint": self.fingerprint,
                "references": sorted(self.references), "referenced_by": referenced_by or [],
                "files": [str(p) for p in self.files]}


def human_size(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # unreachable: GiB ends the loop


def inventory(ws: Workspace, kinds: tuple[str, ...] = KINDS) -> list[Artifact]:
    """Every artifact of the workspace (of `kinds`), sorted by id, with `references` resolved to ids."""
    items: list[Artifact] = []
    for kind in KINDS:
        folder = ws.root / kind
        if kind in kinds and folder.is_dir() and not folder.is_symlink():
            items.extend(_data_items(folder) if kind == "data" else _kind_items(kind, folder))
    _resolve_references(items, ws)
    return sorted(items, key=lambda a: a.id)


def referrers(items: list[Artifact]) -> dict[str, list[str]]:
    """id -> the sorted ids of the artifacts whose records reference it."""
    out: dict[str, list[str]] = {a.id: [] for a in items}
    for item in items:
        for ref in item.references:
            out.setdefault(ref, []).append(item.id)
    return {k: sorted(v) for k, v in out.items()}


def is_temp(name: str) -> bool:
    return TEMP_NAME.match(name) is not None


def tree_size(path: Path) -> int:
    """Bytes under `path` (symlinks count as themselves, never followed)."""
    if not path.is_dir() or path.is_symlink():
        return path.lstat().st_size if path.exists() or path.is_symlink() else 0
    total = 0
    for top, _dirs, names in os.walk(path, followlinks=False):
        for name in names:
            try:
                total += (Path(top) / name).lstat().st_size
            except OSError:
                continue
    return total


def tree_mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


# ----------------------------------------------------------------------------------------- per kind ---

def _kind_items(kind: str, folder: Path) -> Iterator[Artifact]:
    """Group a kind's folder entries by `<name>-<hash>`: the main file or `.d` folder plus its sidecars."""
    groups: dict[str, list[Path]] = {}
    for entry in sorted(folder.iterdir()):
        if is_temp(entry.name):
            continue  # a write in progress or left by a killed one: prune's business, not an artifact
        match = ARTIFACT_NAME.match(entry.name)
        stem = match["stem"] if match else entry.name.split(".")[0] or entry.name
        groups.setdefault(stem, []).append(entry)
    for stem, paths in groups.items():
        yield _artifact(kind, stem, paths)


MAIN_SUFFIXES = {"targets": ".keras", "adversarial": ".h5", "defenses": ".d", "evaluations": ".d",
                 "detection": ".json"}


def _artifact(kind: str, stem: str, paths: list[Path]) -> Artifact:
    main_suffix = MAIN_SUFFIXES[kind]
    main = next((p for p in paths if p.name == stem + main_suffix), None)
    files = ([main] if main else []) + [p for p in paths if p != main]
    item = Artifact(id=f"{kind}/{stem}", kind=kind, path=main or paths[0], files=files,
                    size=sum(tree_size(p) for p in paths), mtime=max(tree_mtime(p) for p in paths))
    if main is None:
        if all(p.name.endswith(LOCK_SUFFIX) for p in paths):
            item.status, item.problem = UNFINISHED, "only a lock: being built, or left by a killed build"
        else:
            item.status, item.problem = DAMAGED, f"its {main_suffix} is missing"
        return item
    if main.is_symlink():
        item.status, item.problem = DAMAGED, "a symlink, not a file of the workspace"
        return item
    READERS[kind](item, main, paths)
    return item


def _read_json(path: Path) -> tuple[Any, str]:
    """(record, "") or (None, the one-line reason it cannot be read)."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None, f"{path.name} is missing"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{path.name} cannot be read ({exc.__class__.__name__})"
    except json.JSONDecodeError as exc:
        return None, f"{path.name} is not valid JSON (line {exc.lineno}, column {exc.colno})"
    if not isinstance(record, dict):
        return None, f"{path.name} holds a {type(record).__name__}, not a record"
    return record, ""


def _take_record(item: Artifact, path: Path) -> dict[str, Any] | None:
    record, problem = _read_json(path)
    if record is None:
        item.status, item.problem = DAMAGED, problem
    item.record = record
    return record


def _pick(record: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: record[k] for k in keys if record.get(k) not in (None, "", [], {})}


def _read_target(item: Artifact, main: Path, paths: list[Path]) -> None:
    sidecar = main.with_suffix(".json")
    if not sidecar.exists():
        item.provenance = {"note": "no record (a model file you passed in)"}
        return
    record = _take_record(item, sidecar)
    if record is not None:
        item.fingerprint = record.get("fingerprint")
        item.provenance = _pick(record, "dataset", "model", "seed", "fingerprint", "epochs", "test_accuracy")


def _read_adversarial(item: Artifact, main: Path, paths: list[Path]) -> None:
    try:
        import h5py

        with h5py.File(main, "r") as handle:
            attrs = {key: _decode(value) for key, value in handle.attrs.items()}
            count = int(handle["indices"].shape[0])
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError, KeyError, ValueError... for a broken file
        item.status, item.problem = DAMAGED, f"{main.name} is not a readable adversarial set ({exc.__class__.__name__})"
        return
    item.record = attrs
    item.provenance = {**_pick(attrs, "dataset", "split", "attack", "seed", "target_fingerprint"), "n": count}
    params = attrs.get("params")
    if isinstance(params, dict) and params:
        item.provenance["params"] = params


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value.item() if hasattr(value, "item") and getattr(value, "shape", None) == () else value


def _read_defense(item: Artifact, main: Path, paths: list[Path]) -> None:
    if not (main / RUN_RECORD).exists():
        item.status = UNFINISHED
        has_checkpoint = any(main.iterdir()) if main.is_dir() else False
        item.problem = ("no record.json yet: a run in progress or stopped; rerun to resume" if has_checkpoint
                        else "empty run folder: a run that stopped before its first checkpoint")
        return
    record = _take_record(item, main / RUN_RECORD)
    if record is not None:
        item.fingerprint = record.get("defense_fingerprint")
        item.provenance = _pick(record, "dataset", "label", "seen", "steps", "seed", "target_fingerprint")


def _read_evaluation(item: Artifact, main: Path, paths: list[Path]) -> None:
    record = _take_record(item, main / EVALUATION_RECORD)
    if record is not None:
        item.provenance = _pick(record, "dataset", "threat_model", "n", "seed")
        defenses = record.get("defenses")
        if isinstance(defenses, list):
            item.provenance["defenses"] = [d.get("name") for d in defenses if isinstance(d, dict)]


def _read_detection(item: Artifact, main: Path, paths: list[Path]) -> None:
    record = _take_record(item, main)
    if record is not None:
        item.provenance = _pick(record, "dataset", "method", "attack", "seed", "target_fingerprint", "auc")


READERS = {"targets": _read_target, "adversarial": _read_adversarial, "defenses": _read_defense,
           "evaluations": _read_evaluation, "detection": _read_detection}


def _data_items(folder: Path) -> Iterator[Artifact]:
    """Imported datasets: each `data/user/NAME/` (a dataset.json) and each other folder of `data/` (TFDS's)."""
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink() or not entry.is_dir():
            continue
        if entry.name != USER_DATASETS:
            yield Artifact(id=f"data/{entry.name}", kind="data", path=entry, files=[entry], size=tree_size(entry),
                           mtime=tree_mtime(entry), provenance={"note": "imported (TFDS files)"})
            continue
        for user in sorted(p for p in entry.iterdir() if p.is_dir() and not p.is_symlink()):
            item = Artifact(id=f"data/{user.name}", kind="data", path=user, files=[user], size=tree_size(user),
                            mtime=tree_mtime(user))
            record = _take_record(item, user / USER_DATASET_RECORD)
            if record is not None:
                item.provenance = _pick(record, "name", "shape", "counts", "eps")
            yield item


# -------------------------------------------------------------------------------------- references ---

def _resolve_references(items: list[Artifact], ws: Workspace) -> None:
    """Fill each artifact's `references`: the ids named by its record, as a path (absolute, relative, or from a
    copied workspace: matched by its `<kind>/<name>` tail), as a fingerprint, or (a dataset) by name."""
    by_id = {a.id: a for a in items}
    by_fingerprint = {a.fingerprint: a.id for a in items if a.fingerprint and FINGERPRINT.match(a.fingerprint)}
    datasets = {a.id.split("/", 1)[1]: a.id for a in items if a.kind == "data"}
    for item in items:
        if not isinstance(item.record, dict):
            continue
        for key, text in _strings(item.record):
            ref = by_fingerprint.get(text) or _id_of_path(text)
            if ref is None and key == "dataset":
                ref = datasets.get(text)
            if ref and ref != item.id and ref in by_id and by_id[ref].kind not in LEAF_KINDS:
                item.references.add(ref)


def _strings(obj: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(key, value) of every string in a nested record."""
    if isinstance(obj, str):
        yield key, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(v, str(k))
    elif isinstance(obj, list | tuple):
        for v in obj:
            yield from _strings(v, key)


def _id_of_path(text: str) -> str | None:
    if "/" not in text and os.sep not in text:
        return None
    parts = Path(text).parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] in KINDS and parts[i] != "data":
            match = ARTIFACT_NAME.match(parts[i + 1])
            return f"{parts[i]}/{match['stem'] if match else parts[i + 1]}"
    return None
