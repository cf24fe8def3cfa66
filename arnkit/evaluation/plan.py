"""Plan one evaluation before any long work: the table's columns (attack specs), each column's iteration
counts, the number of test images, and the options that only make sense together, all checked up front."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from arnkit import attacks as attack_registry
from arnkit.data.base import DatasetInfo
from arnkit.errors import ArnkitError
from arnkit.evaluation import convergence
from arnkit.evaluation.threat_models import ThreatModel
from arnkit.runs import scoring

DEFAULT_LIMIT = scoring.DEFAULT_LIMIT  # the test images of an evaluation, and of a training run's report
image_limit = scoring.image_limit
RAISED_ATTACKS = ("pgd_n", "aa_n")
ITERATION_PARAMS = ("steps", "apgd_iter")
MAX_ITERATIONS = 1000  # the convergence curve's cap on doubled iterations


@dataclass
class AttackSpec:
    """One column of a table: a registry attack with parameter overrides (e.g. a raised eps)."""

    key: str
    label: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def raised(self) -> bool:
        return "eps" in self.params


def attack_specs(attack: str, info: DatasetInfo) -> list[AttackSpec]:
    """'all', one key, a comma list, or key@eps (e.g. pgd_n@0.4) -> the columns to evaluate."""
    text = str(attack).strip().lower()
    if text == "all":
        specs = [AttackSpec(key, key) for key in attack_registry.keys_for(info.name)]
        # Table 1's raised budget eps' (Section 4.2), from the dataset's info.
        raised = info.eps_raised
        if raised:
            specs += [AttackSpec(key, f"{key}@{raised:g}", {"eps": raised}) for key in RAISED_ATTACKS]
        return specs
    specs = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, _, eps = part.partition("@")
        entry = attack_registry.for_dataset(key, info.name)  # unknown / other dataset's patch -> one line
        if eps:
            try:
                value = float(eps)
            except ValueError:
                raise ArnkitError(f"'{part}': the budget after @ must be a number, e.g. pgd_n@0.4") from None
            if "eps" not in attack_registry.make(entry.key, dataset=info).params():
                raise ArnkitError(f"'{part}': {entry.key} has no eps budget; drop the @{eps}")
            specs.append(AttackSpec(entry.key, f"{entry.key}@{value:g}", {"eps": value}))
        else:
            specs.append(AttackSpec(entry.key, entry.key))
    if not specs:
        raise ArnkitError("--attack is empty; name an attack (see `arnkit attacks`) or 'all'")
    return specs


def iteration_param(key: str, info: DatasetInfo) -> str | None:
    """The name of the attack's iteration count ('steps', 'apgd_iter'), or None when it has none."""
    params = attack_registry.make(key, dataset=info).params()
    return next((name for name in ITERATION_PARAMS if name in params), None)


def default_iterations(key: str, info: DatasetInfo, name: str) -> int:
    """The attack's own iteration count for the dataset (its parameter `name`)."""
    return int(attack_registry.make(key, dataset=info).params()[name])


def iteration_plan(spec: AttackSpec, info: DatasetInfo, threat: ThreatModel,
                   iterations: int | None) -> list[int | None]:
    """Iteration counts to run `spec` at: the threat model's own (BPDA: Table 4's 40 and 100) unless
    --iterations says otherwise; None is the attack's default."""
    name = iteration_param(spec.key, info)
    if iterations is not None:
        if name is None:
            raise ArnkitError(f"--iterations: {spec.key} has no iteration count; drop --iterations for it")
        if int(iterations) < 1:
            raise ArnkitError(f"--iterations must be >= 1, got {iterations}")
        return [int(iterations)]
    if threat.default_iterations and name == "steps":
        return list(threat.default_iterations)
    return [None]


def with_iterations(spec: AttackSpec, info: DatasetInfo, count: int | None) -> dict[str, Any]:
    """The spec's parameters with its iteration count set to `count` (None keeps the attack's default)."""
    params = dict(spec.params)
    if count is not None:
        params[iteration_param(spec.key, info)] = int(count)
    return params


@dataclass(frozen=True)
class EvaluationPlan:
    """Everything one evaluation will do, resolved and checked: no strings left to re-parse."""

    info: DatasetInfo
    threat: ThreatModel
    attack: str  # the user's --attack, as given: it names the output folder
    specs: list[AttackSpec]
    plans: dict[str, list[int | None]]  # spec label -> iteration counts (None: the attack's default)
    limit: int  # 0: the whole test split
    iterations: int | None  # --iterations, as given (part of the output folder's key)
    restarts: int
    seed: int
    sanity_checks: bool  # --sanity / --no-sanity, as given (part of the output folder's key)
    max_iterations: int | None  # the convergence curves' cap; None: no curves
    split: str = "test"  # the images scored: test, or val while a setting is being chosen

    @property
    def first(self) -> AttackSpec:
        """The column the checks and the convergence curves look at."""
        return self.specs[0]

    @property
    def first_count(self) -> int | None:
        return self.plans[self.first.label][0]

    def label(self, spec: AttackSpec, count: int | None) -> str:
        """A column's label: the spec's, with its iteration count when it runs at several."""
        return spec.label if len(self.plans[spec.label]) == 1 else f"{spec.label} x{count}"

    @property
    def first_label(self) -> str:
        return self.label(self.first, self.first_count)

    @property
    def several_columns(self) -> bool:
        """More than one column: the table gets a worst-case row per defense."""
        return sum(len(p) for p in self.plans.values()) > 1

    @property
    def runs_sanity_suite(self) -> bool:
        return self.sanity_checks and self.threat.runs_sanity_suite

    @property
    def convergence_curves(self) -> bool:
        return self.max_iterations is not None

    @property
    def folder_name(self) -> str:
        """The output folder's readable part (its hash comes from the full spec)."""
        specs = self.specs
        attack_name = specs[0].label if len(specs) == 1 else ("all" if self.attack == "all" else
                                                              f"{len(specs)}attacks")
        return f"{self.info.name}-{self.threat.name}-{attack_name}".replace("@", "eps")


def plan_evaluation(info: DatasetInfo, attack: str, threat: ThreatModel, *, limit: int | None,
                    iterations: int | None, restarts: int, convergence_curves: bool, max_iterations: int,
                    sanity_checks: bool, seed: int, split: str = "test") -> EvaluationPlan:
    """Check the options against each other and the dataset, in the order a user fixes them; `restarts`
    must already be checked."""
    if split not in ("val", "test"):
        raise ArnkitError(f"--split {split} cannot be scored; choose val (to pick a setting) or test (to report)")
    specs = attack_specs(attack, info)
    n_limit = image_limit(limit, info, split)
    plans = {spec.label: iteration_plan(spec, info, threat, iterations) for spec in specs}
    if convergence_curves:
        if not threat.allows_convergence_curves:
            raise ArnkitError("--convergence applies to --threat-model white or bpda (the attacker's own "
                              "iterations and budget); add --threat-model white")
        name = iteration_param(specs[0].key, info)
        if name is not None:
            first = plans[specs[0].label][0]
            base = first or default_iterations(specs[0].key, info, name)
            convergence.check_max_iterations(max_iterations, base)
    return EvaluationPlan(info=info, threat=threat, attack=attack, specs=specs, plans=plans, limit=n_limit,
                          iterations=iterations, restarts=restarts, seed=seed, sanity_checks=sanity_checks,
                          max_iterations=int(max_iterations) if convergence_curves else None, split=split)
