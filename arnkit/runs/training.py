"""ONE training-run template for every defense recipe: target -> pools -> fit (atomic checkpoints, resume) ->
export -> record -> gray-box closing report. A recipe supplies only its `FitStep`: how to build and fit its
networks, what keys its run folder and what it adds to the record.

    record = run_training(ctx, step)     # a dict: the run folder's record.json (reused when finished)

The run folder is `<workspace>/defenses/<plan.folder>-<hash of plan.spec>.d/` holding `<key>.keras` (the
exported defense), `record.json` and the recipe's `checkpoint.npz`. A finished folder is reused as it is; an
unfinished one resumes from its checkpoint (the recipe's `fit` reads `folder.checkpoint`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import arnkit
from arnkit import runtime
from arnkit.data import splits
from arnkit.errors import ArnkitError
from arnkit.fingerprint import model_fingerprint
from arnkit.io import building, sha256_file
from arnkit.runs.adversarial import Pools, seen_pools
from arnkit.runs.context import RunContext
from arnkit.runs.defense_record import read_record, write_record
from arnkit.runs.scoring import ResolvedDefense, closing_report
from arnkit.runs.target import with_target


@dataclass(frozen=True)
class RunPlan:
    """What a recipe decided once the target (and pools) are known."""

    label: str  # the record's label, e.g. "arn_pgd_n+pgd_t"
    folder: str  # the run folder's stem, e.g. "mnist-arn-pgd_n-pgd_t"
    spec: dict[str, Any]  # what keys the run folder (the target's fingerprint included)
    options: dict[str, Any]  # what tells two runs of one recipe apart (recorded)
    header: dict[str, Any] = field(default_factory=dict)  # extra fields of the exported file's header


@dataclass
class FitResult:
    model: Any  # what is exported: images -> images (pre-processor) or images -> logits (classifier)
    losses: dict[str, float]
    seconds: float  # wall time of the fit itself
    record: dict[str, Any] = field(default_factory=dict)  # the recipe's own record fields (resumed_from, ...)


@dataclass(frozen=True)
class RunFolder:
    path: Path
    key: str

    @property
    def defense_path(self) -> Path:
        return self.path / f"{self.key}.keras"

    @property
    def record_path(self) -> Path:
        return self.path / "record.json"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.npz"

    def finished(self) -> dict[str, Any] | None:
        """The record of a finished run, else None; a damaged record, or an exported file that is not the
        recorded one, is one line (a defense is not rebuilt behind the user's back)."""
        if self.defense_path.exists() and self.record_path.exists():
            raw = read_record(self.record_path)
            recorded = raw.get("defense_sha256")
            if recorded and sha256_file(self.defense_path) != recorded:
                raise ArnkitError(f"defense {self.defense_path} was changed after arnkit trained it (its sha256 "
                                  f"differs from its record's); delete {self.path} to train it again")
            return raw
        return None


class FitStep(ABC):
    """One recipe's part of a training run. Attributes set by the recipe: `key`, `kind`, `seen` (the seen
    attacks), `pool_size` (None: no seen-attack pools; 0: the whole split), `eval_limit` (the closing
    report's images)."""

    key: str
    kind: str
    seen: list[str]
    pool_size: int | None = None
    eval_limit: int | None = 1000

    def prepare(self, ctx: RunContext) -> None:  # noqa: B027 (optional hook)
        """After the target, before the pools: build what can fail on a bad option, before any crafting."""

    @abstractmethod
    def plan(self, ctx: RunContext, pools: Pools | None) -> RunPlan:
        """The run folder's name and spec, the label and the recorded options."""

    @abstractmethod
    def fit(self, ctx: RunContext, folder: RunFolder, pools: Pools | None) -> FitResult:
        """Train (resuming from `folder.checkpoint` when it exists and the recipe resumes)."""

    @abstractmethod
    def export(self, model: Any, path: Path, plan: RunPlan, ctx: RunContext) -> None:
        """Write the defense file atomically (with its header)."""

    @abstractmethod
    def as_defense(self, model: Any, path: Path) -> Any:
        """The trained model as the `Defense` the closing report scores."""


def report_limit(ctx: RunContext, eval_limit: int | None) -> int | None:
    """The closing report's images: `eval_limit`, at most the test split (a default must fit a small dataset)."""
    size = ctx.info.split_sizes.get("test")
    return min(int(eval_limit), int(size)) if eval_limit and size else eval_limit


def run_training(ctx: RunContext, step: FitStep) -> dict[str, Any]:
    """Run `step` in the training-run template; return the run record (reused when the folder is finished)."""
    phases: dict[str, float] = {}
    clock = time.perf_counter()
    ctx = with_target(ctx)  # the seed-0 zoo target whatever the run's seed, or the context's user target
    ctx.require_target()
    step.prepare(ctx)
    phases["target"], clock = time.perf_counter() - clock, time.perf_counter()
    pools = None
    if step.pool_size is not None:
        pools = seen_pools(ctx, step.seen, pool_size=step.pool_size)
        phases["pools"], clock = time.perf_counter() - clock, time.perf_counter()
    plan = step.plan(ctx, pools)
    # keyed by the train split's definition too: a recipe that reads `train` itself (AT_PGD, DOA) against a
    # user's target would otherwise reuse a run fitted on another split
    run_dir = ctx.workspace.artifact("defenses", plan.folder, {**plan.spec, "splits": splits.definition(ctx.info.name)},
                                     "d")
    run_dir.mkdir(parents=True, exist_ok=True)
    folder = RunFolder(run_dir, step.key)
    finished = folder.finished()
    if finished is not None:
        return {**finished, "reused": True}
    with building(run_dir):
        finished = folder.finished()  # trained by another process while this one waited
        if finished is not None:
            return {**finished, "reused": True}
        return _fit_and_record(ctx, step, plan, folder, pools, phases, clock)


def _fit_and_record(ctx: RunContext, step: FitStep, plan: RunPlan, folder: RunFolder, pools: Pools | None,
                    phases: dict[str, float], clock: float) -> dict[str, Any]:
    target = ctx.require_target()
    fit = step.fit(ctx, folder, pools)
    phases[step.key], clock = time.perf_counter() - clock, time.perf_counter()
    step.export(fit.model, folder.defense_path, plan, ctx)
    fingerprint = model_fingerprint(fit.model)
    resolved = ResolvedDefense(step.as_defense(fit.model, folder.defense_path), fingerprint, list(step.seen),
                               str(folder.defense_path))
    evaluation, report = closing_report(ctx, resolved, list(step.seen), limit=report_limit(ctx, step.eval_limit))
    phases["report"] = time.perf_counter() - clock
    record = {
        "key": step.key, "kind": step.kind, "label": plan.label, "dataset": ctx.dataset, "seen": list(step.seen),
        "options": plan.options,
        **({"pool_size": int(len(pools.x_nat)), "pools": pools.paths} if pools is not None else {}),
        "defense_path": str(folder.defense_path), "defense_fingerprint": fingerprint,
        "defense_sha256": sha256_file(folder.defense_path),
        "target_fingerprint": target.fingerprint, "target_path": target.path, "seed": ctx.seed,
        "arnkit_version": arnkit.__version__, "final_losses": fit.losses, "train_seconds": round(fit.seconds, 2),
        "phase_seconds": {name: round(seconds, 2) for name, seconds in phases.items()},
        "runtime": runtime.describe(), "evaluation": evaluation, "evaluation_files": report["files"],
        "target_clean_error": evaluation["clean"]["none"] / 100.0, "reused": False,
        **fit.record,
    }
    write_record(folder.record_path, record)
    return record
