"""`arnkit evaluate` and `arnkit report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from arnkit.errors import ArnkitError
from arnkit.evaluation.threat_models import THREAT_MODELS
from arnkit_cli.common import (
    DefenseKindOpt,
    InputScaleOpt,
    JsonOpt,
    SeedOpt,
    TargetOutputOpt,
    WorkspaceOpt,
    deprecated_alias,
    emit_json,
    handle_errors,
    make_progress,
    portable,
    shows_target_warnings,
    split_target,
    stderr,
    stdout,
    table,
    target_options,
)


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
    app.command("report")(report)


@portable
@handle_errors
@shows_target_warnings
def evaluate(
    attack: Annotated[str | None, typer.Option(
        "--attack", "-a", help="Attack key, comma list, key@eps (raised budget), or 'all'. Default: pgd_n "
                               "(--ablation: Fig. 4's attacks; --matrix: every paper attack).")] = None,
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name.")] = "mnist",
    defense: Annotated[str, typer.Option(
        "--defense", help="Comma list: none, a defense key (arn: the newest full ARN, trained if missing) or "
                          "paths of exported .keras defenses (pre-processors or robust classifiers).")] = "none,arn",
    defense_kind: DefenseKindOpt = None,
    threat_model: Annotated[str, typer.Option(
        "--threat-model", "-t", help=f"One of: {', '.join(THREAT_MODELS)}.")] = "gray",
    limit: Annotated[int | None, typer.Option(
        "--limit", help="First N images of --split; 0 = the whole split. Default: 1000 (or the split if smaller).")
                     ] = None,
    split: Annotated[str, typer.Option(
        "--split", help="test (report) or val (held out of train: pick a setting on it).")] = "test",
    iterations: Annotated[int | None, typer.Option(
        "--iterations", help="Attack iterations (default: the attack's; BPDA runs 40 and 100).")] = None,
    restarts: Annotated[int, typer.Option(
        "--restarts", help="Run each attack N times (seeds seed, seed+1, ...); per image the first success "
                           "counts, else the last try.")] = 1,
    convergence: Annotated[bool, typer.Option(
        "--convergence/--no-convergence", help="white/bpda: plot error vs iterations (doubled up to "
                                               "--max-iterations) and vs eps for the first attack (slow).")] = False,
    max_iterations: Annotated[int, typer.Option(
        "--max-iterations", help="--convergence: cap on the doubled iteration count.")] = 1000,
    surrogate: Annotated[str | None, typer.Option(
        "--surrogate", help="transfer only: the attacker's own pre-processor (.keras).")] = None,
    ablation: Annotated[bool, typer.Option(
        "--ablation", help="Fig. 4: ARN vs its variants without L_adv, L_nor, L_att (trained if missing).")] = False,
    matrix: Annotated[str | None, typer.Option(
        "--matrix", help="Seen/unseen matrix over seen sets, e.g. 'pgd_n,pgd_t;ddn_n,pgd_n'.")] = None,
    train_steps: Annotated[int | None, typer.Option(
        "--train-steps", help="--ablation/--matrix: steps for defenses that must be trained.")] = None,
    sanity: Annotated[bool, typer.Option(
        "--sanity/--no-sanity", help="white/bpda: run the gradient, iterations, large-eps, ordering, gradient-free checks.")] = True,
    eps: Annotated[float | None, typer.Option(
        "--eps", help="Budget of every listed attack (the same as key@eps); default: the paper's.")] = None,
    target: Annotated[str | None, typer.Option(
        "--target", help="A zoo model name: put the defenses in front of it instead (cross-model, Table 5); or "
                         "your own classifier's .keras path (images NHWC in [0, 1] -> logits or probabilities), "
                         "with the defenses trained for it.")] = None,
    input_scale: InputScaleOpt = None,
    logits: TargetOutputOpt = None,
    seed: SeedOpt = 0,
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
    target_model: Annotated[str | None, typer.Option("--target-model", hidden=True,
                                                     help="Old spelling of --target NAME.")] = None,
) -> None:
    """Error rates (%) of the target alone and behind each defense, with tables (JSON, CSV, markdown) and
    a PNG grid of adversarial vs restored images in the workspace."""
    from arnkit.pipeline.evaluate import run_evaluation

    # --target NAME: a zoo model, cross-model (Table 5: the defenses in front of it); --target PATH: yours.
    target_model, target = split_target(deprecated_alias("--target-model", target_model, "--target", target))
    attack = attack_with_eps(attack, eps, default_needed=ablation or bool(matrix))
    result = run_evaluation(dataset, attack, defenses=defense, defense_kind=defense_kind, threat_model=threat_model, limit=limit,
                            iterations=iterations, restarts=restarts, convergence_curves=convergence,
                            max_iterations=max_iterations, surrogate=surrogate, target_model=target_model,
                            ablation=ablation, matrix=matrix, train_steps=train_steps, sanity_checks=sanity,
                            seed=seed, split=split, workspace=workspace, progress=make_progress(json_out),
                            **target_options(target, input_scale, logits))
    if json_out:
        emit_json(result)
        return
    labels = list(dict.fromkeys(r["label"] for r in result["rows"]))
    names = [d["name"] for d in result["defenses"]]
    cells = {(r["defense"], r["label"]): r for r in result["rows"]}

    def cell(name: str, label: str) -> str:
        row = cells.get((name, label))
        if row is None:
            return "-"
        return (">=" if row.get("lower_bound") else "") + f"{row['error']:.2f}" + ("*" if row["seen"] else "")

    title = f"{result['title']} (n={result['n']}; * = seen; >= = lower bound, the attack had not converged)"
    # Attacks as rows: a terminal fits many attacks down, few across.
    stdout.print(table(title, ["attack", *names], [[label] + [cell(n, label) for n in names] for label in labels]))
    for check in result["sanity"]:
        mark = "[green]pass[/]" if check["passed"] else "[bold red]FLAG[/]"
        stdout.print(f"sanity {check['name']} ({check['defense']}, {check.get('attack')}): {mark} {check['value']} "
                     f"{check['detail']}")
    figures = [result.get(k) for k in ("grid_png", "ablation_png", "matrix_png") if result.get(k)]
    curves = result.get("convergence") or {}
    figures += [curves[k] for k in ("iterations_png", "eps_png") if curves.get(k)]
    stdout.print(f"saved {', '.join(result['files'].values())}" + (f" and {', '.join(figures)}" if figures else ""),
                 highlight=False, soft_wrap=True)


def attack_with_eps(attack: str | None, eps: float | None, *, default_needed: bool = False) -> str | None:
    """--eps E on `evaluate`: each listed attack as key@E, the budget syntax the attack list already takes."""
    if eps is None:
        return attack
    if not 0 < eps <= 1:
        raise ArnkitError(f"--eps is an L-inf budget in (0, 1] pixel units, got {eps:g}")
    if attack is None and default_needed:
        raise ArnkitError("--eps with --ablation or --matrix: name the attacks too, e.g. --attack pgd_n --eps 0.2")
    keys = [key.strip() for key in (attack or "pgd_n").split(",") if key.strip()]
    if "all" in keys or any("@" in key for key in keys):
        raise ArnkitError("--eps sets the budget of each listed attack: drop it, or drop the key@eps / 'all' in "
                          "--attack")
    return ",".join(f"{key}@{eps!r}" for key in keys)


@handle_errors
def report(
    workspace: WorkspaceOpt = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Markdown file (default: in the workspace).")
                      ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Gather the workspace's targets, defenses, evaluations and detections into one markdown + HTML page."""
    from arnkit.pipeline.report import build_report

    result = build_report(workspace=workspace, output=output)
    if json_out:
        emit_json(result)
        return
    stdout.print(f"saved {result['markdown']} and {result['html']} ({result['sections']} sections)", highlight=False, soft_wrap=True)
    for item in result["damaged"]:  # listed in the report too; said here so a damaged file is never missed
        stderr.print(f"damaged: {item['file']}: {item['problem']}", highlight=False, soft_wrap=True)
