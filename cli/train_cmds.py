"""`arnkit train`."""

from __future__ import annotations

from typing import Annotated

import typer

from arnkit_cli.common import (
    InputScaleOpt,
    JsonOpt,
    SeedOpt,
    TargetOpt,
    TargetOutputOpt,
    WorkspaceOpt,
    emit_json,
    handle_errors,
    make_progress,
    portable,
    shows_target_warnings,
    stdout,
    table,
    target_options,
)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("defenses")(handle_errors(defenses))


@portable
@handle_errors
@shows_target_warnings
def train(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name.")] = "mnist",
    defense: Annotated[str, typer.Option(
        "--defense", help="What to train: arn (default) or a baseline: at_pgd, doa, apeg, hgd (`arnkit defenses` "
                          "lists them with their defaults).")] = "arn",
    recipe: Annotated[str | None, typer.Option(
        "--recipe", help="arn: a named recipe (default, paper, adaptive; `arnkit defenses` lists them). Flags you "
                         "give override its values.")] = None,
    seen: Annotated[str | None, typer.Option("--seen", help="arn, apeg, hgd: seen attacks, comma-separated "
                                                         "(default: pgd_n,pgd_t; ap1,ap2 for lisa).")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="arn, apeg, hgd: training steps (default: the "
                                                              "dataset's).")] = None,
    width: Annotated[str | None, typer.Option(
        "--width", help="arn: tiny, default, large, reference (default: large on MNIST, else default); apeg, hgd: "
                        "base channels.")] = None,
    objective: Annotated[str | None, typer.Option("--objective", help="arn: paper (Eq. 1-8, default) or reference "
                                                                      "(official code).")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="arn, apeg, hgd: natural images per step "
                                                                        "(x K attacks).")] = None,
    pool_size: Annotated[int | None, typer.Option("--pool-size", help="arn, apeg, hgd: training images per "
                                                                      "seen-attack pool (0 = all).")] = None,
    ablate: Annotated[list[str] | None, typer.Option("--ablate", help="arn: drop a loss term: adv, nor, att.")] = None,
    strategy: Annotated[str | None, typer.Option("--strategy", help="arn: default, mirrored (all local GPUs), "
                                                                    "multiworker (TF_CONFIG); under "
                                                                    "KERAS_BACKEND=jax: dataparallel.")] = None,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="Continue from the run's checkpoint.")] = True,
    learning_rate: Annotated[float | None, typer.Option("--learning-rate", help="arn: Adam step for all four players "
                                                         "(default: 1e-3 on MNIST's and LISA's short CPU "
                                                         "schedules; the paper's is 1e-4); apeg, hgd: theirs.")] = None,
    lr_schedule: Annotated[str | None, typer.Option(
        "--lr-schedule", help="arn: constant or cosine (decays to 0 over --steps); default: constant.")] = None,
    guide_weight: Annotated[float | None, typer.Option(
        "--guide-weight", help="arn, beyond the paper: weight of HGD's logit-guided loss on the target's logits, "
                               "added to L_E and L_G (default: 5 on MNIST and LISA, else 0; 0 = the paper).")] = None,
    adaptive: Annotated[bool, typer.Option(
        "--adaptive", help="arn, beyond the paper: leak the defense to white-box PGD while it trains (part of each "
                           "batch crafted through the current pre-processor + target), for white-box "
                           "robustness.")] = False,
    epochs: Annotated[int | None, typer.Option("--epochs", help="at_pgd, doa: fine-tuning epochs.")] = None,
    eps: Annotated[float | None, typer.Option("--eps", help="at_pgd: the L-inf budget of its PGD.")] = None,
    attack_steps: Annotated[int | None, typer.Option(
        "--attack-steps", help="at_pgd: PGD steps per batch; doa: signed steps inside the rectangle.")] = None,
    step_size: Annotated[float | None, typer.Option("--step-size", help="at_pgd: the size of each PGD step.")] = None,
    train_limit: Annotated[int | None, typer.Option(
        "--train-limit", help="at_pgd, doa: first N training images (0 = all).")] = None,
    roa: Annotated[str | None, typer.Option("--roa", help="doa: the rectangle, HxW pixels (7x7, or 9x5).")] = None,
    select_val: Annotated[int | None, typer.Option(
        "--select-val", help="doa: keep the epoch with the lowest ROA error on the first N validation images, as "
                             "DOA keeps its best epoch (0 = the last epoch; default: the preset's, 381 on LISA, "
                             "else 0).")] = None,
    guide_layer: Annotated[str | None, typer.Option(
        "--guide-layer", help="hgd: logits (LGD, default) or a target layer name (FGD).")] = None,
    eval_limit: Annotated[int | None, typer.Option(
        "--eval-limit", help="Test images for the closing report (default: 1000, or the test split if smaller).")
                          ] = None,
    tensorboard: Annotated[bool, typer.Option("--tensorboard", help="arn: write TensorBoard logs.")] = False,
    target: TargetOpt = None,
    input_scale: InputScaleOpt = None,
    logits: TargetOutputOpt = None,
    seed: SeedOpt = 0,
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Train a defense: ARN by default (target, seen-attack pools and ARN; each reused when cached), or a
    baseline with --defense, with its own defaults. A flag that does not apply to it is refused."""
    from arnkit.pipeline.train import train as train_recipe

    record = train_recipe(dataset, defense, seed=seed, workspace=workspace, progress=make_progress(json_out),
                          **target_options(target, input_scale, logits),
                          recipe=recipe, seen=seen, steps=steps, width=width, objective=objective, batch_size=batch_size,
                          pool_size=pool_size, ablate=tuple(ablate) if ablate else None, strategy=strategy,
                          resume=resume, learning_rate=learning_rate, lr_schedule=lr_schedule,
                          guide_weight=guide_weight, adaptive=adaptive, epochs=epochs, eps=eps, attack_steps=attack_steps,
                          step_size=step_size,
                          train_limit=train_limit, roa=roa, select_val=select_val, guide_layer=guide_layer,
                          eval_limit=eval_limit,
                          tensorboard=tensorboard or None)
    if json_out:
        emit_json(record)
        return
    name = record.get("key", "arn")
    rows = [[row, values["none"], values[name]] for row, values in record["evaluation"].items()]
    stdout.print(table(f"error rate (%) on {record['dataset']} test, gray-box", ["attack", "no defense",
                                                                                  name.upper()], rows))
    stdout.print(f"defense saved to {record['defense_path']}", highlight=False, soft_wrap=True)


def defenses(
    # Not named `dataset`: listing defaults needs no prepared data, so the CLI's data preflight must not run.
    for_dataset: Annotated[str, typer.Option("--dataset", "-d", help="Whose defaults to show.")] = "mnist",
    json_out: JsonOpt = False,
) -> None:
    """The defense registry: each recipe's kind, what it trains on, and its defaults for the dataset."""
    from arnkit.defenses.registry import describe

    dataset = for_dataset
    rows = describe(dataset)
    if json_out:
        emit_json(rows)
        return
    stdout.print(table(f"defenses (defaults for {dataset})", ["key", "kind", "trains on", "defaults"],
                       [[r["key"], r["kind"], r["trains_on"], _compact(r["defaults"])] for r in rows]))
    recipes = next(r["recipes"] for r in rows if r["key"] == "arn")
    stdout.print(table("ARN recipes (arnkit train --recipe NAME; flags you give override them)",
                       ["recipe", "description", "needs", "measured"],
                       [[r["name"] + (" (default)" if r["default"] else ""), r["description"],
                         ", ".join(f"{b} for {part}" for part, b in r["needs"].items()) or "any backend",
                         _measured(r["measured"])] for r in recipes]))


def _compact(values: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items() if k != "recipe")


def _measured(rows: list[dict]) -> str:
    if not rows:
        return "not measured yet"
    return "; ".join(f"{m['dataset']} {m['split']} ({m['date']}): " + _compact(m["columns"]) for m in rows)
