"""The typed record every trained defense leaves in its run folder (`record.json`), whatever its recipe.

    record = DefenseRecord.from_dict(read_record(path))
    record.key, record.kind, record.defense_path, record.seen, record.options["ablate"]
    write_json_atomic(path, record.to_dict())

The fields every caller reads are typed; whatever else a trainer reports (losses, timings, its closing
evaluation) rides along in `extra` and comes back flat in `to_dict()`, so `record.json` stays one flat
JSON object that older tools and `jq` read as before.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from arnkit.errors import ArnkitError
from arnkit.io import read_json_record, sha256_file
from arnkit.workspace import Workspace

Kind = Literal["preprocessor", "classifier"]
KINDS: tuple[str, ...] = ("preprocessor", "classifier")


@dataclass
class DefenseRecord:
    key: str  # the recipe that trained it (`arnkit.defenses.registry.REGISTRY`)
    kind: Kind
    dataset: str
    defense_path: str  # the exported .keras file
    defense_fingerprint: str = ""
    target_fingerprint: str = ""  # the classifier it was trained for
    seen: list[str] = field(default_factory=list)  # attacks it saw in training (the seen/unseen split)
    options: dict[str, Any] = field(default_factory=dict)  # what tells two runs of one recipe apart
    seed: int = 0
    arnkit_version: str = ""
    record_path: str = ""  # where it was read from (not written)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        typed = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("extra",)}
        typed["seen"], typed["options"] = list(self.seen), dict(self.options)
        if not typed["record_path"]:
            typed.pop("record_path")
        return {**self.extra, **typed}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DefenseRecord:
        """Read a record; one written before the registry (an ARN run) gets key 'arn', kind 'preprocessor'."""
        if not isinstance(raw, dict) or "defense_path" not in raw:
            raise ArnkitError("not a defense record (no defense_path); point at an `arnkit train` run folder "
                              "or its exported .keras file")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {name: raw[name] for name in names if name in raw}
        values.setdefault("key", "arn")
        values.setdefault("kind", "preprocessor")
        values.setdefault("dataset", "")
        if values["kind"] not in KINDS:
            raise ArnkitError(f"defense record has kind '{values['kind']}'; expected one of {', '.join(KINDS)}")
        if "options" not in raw and values["key"] == "arn":  # pre-registry ARN records kept these at top level
            values["options"] = {name: raw[name] for name in ("ablate", "width", "objective", "steps") if name in raw}
        values["seen"] = [str(k) for k in values.get("seen", [])]
        values["seed"] = int(values.get("seed", 0) or 0)
        return cls(**values, extra={k: v for k, v in raw.items() if k not in names})

    def check_file(self) -> None:
        """Refuse, in one line, an exported file that is not the one this record describes (its sha256,
        recorded when it was trained; records written before the hash existed are not checked)."""
        recorded = self.extra.get("defense_sha256")
        if recorded and Path(self.defense_path).exists() and sha256_file(self.defense_path) != recorded:
            folder = Path(self.record_path).parent if self.record_path else Path(self.defense_path).parent
            raise ArnkitError(f"defense {self.defense_path} was changed after arnkit trained it (its sha256 "
                              f"differs from its record's); delete {folder} to train it again")

    def matches(self, **filters: Any) -> bool:
        """True when every filter holds; None means any. `seen` compares in order, list options as sets."""
        for name, wanted in filters.items():
            if wanted is None:
                continue
            if name in ("target_fingerprint", "dataset", "key", "kind"):
                have = getattr(self, name)
            elif name == "seen":
                have, wanted = list(self.seen), list(wanted)
            else:
                have = self.options.get(name)
            if isinstance(wanted, list | tuple) and name != "seen":
                have, wanted = sorted(have or []), sorted(wanted)
            if have != wanted:
                return False
        return True


def read_record(record_path: str | Path) -> dict[str, Any]:
    """A run folder's `record.json` (`<root>/defenses/<run>.d/record.json`), its paths made absolute in the
    workspace it is read from: stored relative to the root, or absolute by an older arnkit (or in the workspace
    this one was copied from), so a copied or moved workspace finds its own files. A damaged file is one line."""
    record_path = Path(record_path)
    raw = read_json_record(record_path, "defense record")
    if not isinstance(raw, dict):
        return raw
    folders = record_path.resolve().parents
    located = Workspace(folders[min(2, len(folders) - 1)]).located_paths(raw)
    exported = Path(str(located.get("defense_path", "")))
    beside = record_path.parent / exported.name
    if not exported.exists() and beside.is_file():  # a run folder moved on its own, out of its workspace
        located["defense_path"] = str(beside)
    return located


def write_record(record_path: str | Path, record: dict[str, Any]) -> Path:
    """Write a run's record atomically, every path inside the workspace relative to its root."""
    from arnkit.io import write_json_atomic

    record_path = Path(record_path)
    return write_json_atomic(record_path, Workspace(record_path.resolve().parents[2]).relative_paths(record))
