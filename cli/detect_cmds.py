"""`arnkit detect`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from arnkit.detection import DETECTORS
from arnkit.errors import ArnkitError
from arnkit_cli.common import (
    DefenseKindOpt,
    InputScaleOpt,
    JsonOpt,
    SeedOpt,
    TargetOpt,
    TargetOutputOpt,
    WorkspaceOpt,
    emit_json,
    handle_errors,
    make_progress,
    names_a_file,
    shows_target_warnings,
    stdout,
    table,
    target_options,
)


def register(app: typer.Typer) -> None:
    app.command("detect")(detect)


def defense_choice(defense: str | None) -> dict[str, Any]:
    """--defense KEY or PATH, told apart by the rule every command uses; a comma list is evaluate's alone."""
    if defense is None:
        return {}
    if "," in defense:
        raise ArnkitError(f"--defense {defense}: detect guards one defense at a time; pass one key or path")
    if names_a_file(defense):
        return {"defense_path": Path(defense)}
    return {"defense_key": defense.strip().lower()}


@handle_errors
@shows_target_warnings
def detect(
    method: Annotated[str, typer.Option("--method", "-m", help=f"Detector: {', '.join(DETECTORS)}.")] = "lid",
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name.")] = "mnist",
    attack: Annotated[str, typer.Option("--attack", "-a", help="Attack whose examples are the positives.")] = "pgd_n",
    limit: Annotated[int, typer.Option("--limit", help="First N test images; 0 = all.")] = 1000,
    defense: Annotated[str | None, typer.Option(
        "--defense", help="As in evaluate, one of: none, a defense key (the newest trained of that recipe) or "
                          "the path of an exported .keras defense. A pre-processor's restored images are also "
                          "scored; a robust classifier is guarded instead of the target. Default: the newest "
                          "trained pre-processor in the workspace, if any.")] = None,
    defense_kind: DefenseKindOpt = None,
    adaptive_limit: Annotated[int, typer.Option(
        "--adaptive-limit", help="Images for the high-confidence attack check; 0 = skip it.")] = 300,
    target: TargetOpt = None,
    input_scale: InputScaleOpt = None,
    logits: TargetOutputOpt = None,
    seed: SeedOpt = 0,
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Train an adversarial-example detector (LID) on the target; report its ROC AUC, its recall on
    ARN-restored examples, and its AUC against a high-confidence attack."""
    from arnkit.detection import get
    from arnkit.pipeline.detect import detect as run_detect

    get(method)  # an unknown method fails before any training
    result = run_detect(method, dataset, attack, limit=limit, seed=seed, workspace=workspace,
                        progress=make_progress(json_out), **defense_choice(defense),
                        defense_kind=defense_kind,
                        adaptive_limit=adaptive_limit, **target_options(target, input_scale, logits))
    if json_out:
        emit_json(result)
        return
    restored = result.get("restored") or {}
    adaptive = result.get("adaptive") or {}
    stdout.print(table(f"{result['method']} detector vs {result['attack']} on {result['dataset']}", [
        "used", "AUC", "recall (adv)", "FPR", "noise sigma", "restored recall", "adaptive AUC", "reused"], [[
            result["counts"]["used"], result["auc"], result["recall_adversarial"], result["false_positive_rate"],
            result["noise"]["sigma"], restored.get("recall", "-"),
            adaptive.get("auc") if adaptive.get("auc") is not None else "-", result.get("reused", False)]]))
    stdout.print(f"saved {result['path']} and {result['roc_path']}", highlight=False, soft_wrap=True)
