"""Where artifacts live. Each artifact is content-addressed by the spec that produced it, so a rerun reuses it."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arnkit.errors import ArnkitError

ENV_VAR = "ARNKIT_WORKSPACE"
DEFAULT_LOCATION = Path("~/.arnkit")
# The workspace's top-level folders: a stored absolute path is re-rooted at the last of these it names.
KINDS = ("targets", "adversarial", "defenses", "evaluations", "detection", "data")


def spec_key(spec: dict[str, Any]) -> str:
    """A short stable hash of a JSON-able spec (order of keys does not matter)."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def resolve(cls, root: str | os.PathLike | None = None) -> Workspace:
        """`root`, else $ARNKIT_WORKSPACE, else ~/.arnkit."""
        chosen = root or os.environ.get(ENV_VAR) or DEFAULT_LOCATION
        return cls(Path(chosen).expanduser().resolve())

    def dir(self, kind: str) -> Path:
        """The folder for one kind of artifact, created on demand and checked writable."""
        path = self.root / kind
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArnkitError(
                f"workspace {self.root} is not writable ({exc.strerror}); pass --workspace DIR or set {ENV_VAR}"
            ) from None
        if not os.access(path, os.W_OK):
            raise ArnkitError(f"workspace {path} is not writable; pass --workspace DIR or set {ENV_VAR}")
        return path

    def artifact(self, kind: str, name: str, spec: dict[str, Any], ext: str) -> Path:
        """Path of the artifact produced by `spec`: <root>/<kind>/<name>-<hash>.<ext>."""
        return self.dir(kind) / f"{name}-{spec_key(spec)}.{ext.lstrip('.')}"

    @property
    def data_dir(self) -> Path:
        """TFDS data_dir and manual downloads for datasets that are not embedded."""
        return self.root / "data"

    # Stored records hold paths relative to the root, so a copied or moved workspace still finds its own files.
    def relative(self, path: str | os.PathLike) -> str:
        """`path` relative to the root when it lies inside it, else unchanged."""
        absolute = Path(path).expanduser()
        if not absolute.is_absolute():
            return str(path)
        try:
            return absolute.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def locate(self, stored: str | os.PathLike) -> Path:
        """Where a path read from a record lies now: a relative one under the root; an absolute one written by
        an older arnkit (or in the workspace this one was copied from) re-rooted at its workspace folder
        (`.../evaluations/x.d/grid.png` -> `<root>/evaluations/x.d/grid.png`) when that file exists here."""
        path = Path(stored)
        if not path.is_absolute():
            return self.root / path
        parts = path.parts
        for i in range(len(parts) - 1, 0, -1):
            if parts[i] in KINDS:
                here = self.root.joinpath(*parts[i:])
                if here.exists():
                    return here
                break
        return path

    def relative_paths(self, obj: Any) -> Any:
        """A copy of a JSON-able record with every absolute path inside the root made relative to it."""
        if isinstance(obj, dict):
            return {k: self.relative_paths(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.relative_paths(v) for v in obj]
        if isinstance(obj, str | Path) and os.path.isabs(str(obj)):
            return self.relative(obj)
        return obj

    def located_paths(self, obj: Any, key: str = "") -> Any:
        """A copy of a record read back, with each path field (`path`, `source`, `*_path`, `*_png`, `*_csv`,
        the values of `files`) made absolute through `locate`."""
        if isinstance(obj, dict):
            # The values of `files`, `pools`, `*_files` are paths whatever their keys.
            listing = key in ("files", "pools") or key.endswith("_files")
            return {k: self.located_paths(v, "files" if listing else k) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.located_paths(v, key) for v in obj]
        is_path = key in ("path", "files", "pools", "source") or key.endswith(("_path", "_png", "_csv"))
        if isinstance(obj, str) and obj and is_path:
            return str(self.locate(obj))
        return obj
