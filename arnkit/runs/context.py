"""One run context: what a command resolved once (dataset, preset, workspace, seed, target) and passes down.

    ctx = RunContext.build("mnist", workspace=None, seed=0)      # resolves the dataset name, once
    ctx = runs.target.with_target(ctx)                            # the workspace target, trained if missing
    ctx.info.eps, ctx.preset.seen, ctx.target.fingerprint, ctx.workspace.root

Below the command layer nothing resolves a dataset name again: services take the context (or its parts).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arnkit import data, presets
from arnkit.errors import ArnkitError
from arnkit.progress import NullProgress, Progress
from arnkit.runs.target_record import Target
from arnkit.workspace import Workspace


@dataclass(frozen=True)
class RunContext:
    info: data.DatasetInfo
    preset: presets.DatasetPreset
    workspace: Workspace
    seed: int = 0
    target: Target | None = None
    # Progress is the command's sink for bars and log lines; it is shared, not part of what a run computes.
    progress: Progress = field(default_factory=NullProgress, compare=False)

    @classmethod
    def build(cls, dataset: str | data.DatasetInfo, *, workspace: str | Path | Workspace | None = None,
              seed: int = 0, progress: Progress | None = None, require_data: bool = True) -> RunContext:
        """Resolve `dataset` (a name: unknown is one line) and the workspace once. `require_data`: refuse, in one
        line with the fix, a dataset that cannot be loaded right now (before any long work)."""
        ws = workspace if isinstance(workspace, Workspace) else Workspace.resolve(workspace)
        # A user's dataset is looked up in this workspace's data folder (arnkit.data.user).
        info = dataset if isinstance(dataset, data.DatasetInfo) else data.info(dataset, ws.data_dir)
        if require_data:
            reason = data.availability(info.name, ws.data_dir)
            if reason is not None:
                raise ArnkitError(reason)
        # A built-in's row, else one derived from the info (a user's dataset: its eps, its shape).
        return cls(info=info, preset=presets.for_info(info), workspace=ws, seed=int(seed),
                   progress=progress or NullProgress())

    @property
    def dataset(self) -> str:
        return self.info.name

    def replace(self, **changes: Any) -> RunContext:
        return dataclasses.replace(self, **changes)

    def require_target(self) -> Target:
        if self.target is None:
            raise RuntimeError("this step needs the run context's target: call runs.target.with_target(ctx) first")
        return self.target
