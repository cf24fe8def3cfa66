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
