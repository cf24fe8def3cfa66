"""`arnkit train`."""

from __future__ import annotations

from typing import Annotated

import typer

from arnkit_cli.common import (
    JsonOpt,
    SeedOpt,
    WorkspaceOpt,
    emit_json,
    handle_errors,
    make_progress,
    stderr,
    table,
)


def register(app: typer.Typer) -> None:
    app.command("train")(train)


@handle_errors
def train(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name.")] = "mnist",
    seen: Annotated[str | None, typer.Option("--seen", help="Seen attacks, comma-separated (default: "
                                                         "pgd_n,pgd_t; ap1,ap2 for lisa).")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Training steps (default: the dataset's).")] = None,
    width: Annotated[str | None, typer.Option(
        "--width", help="Width preset: tiny, default, large, reference (default: large on MNIST, else default).")] = None,
    objective: Annotated[str, typer.Option("--objective", help="paper (Eq. 1-8) or reference (official code).")
                         ] = "paper",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Natural images per step (x K attacks).")] = 64,
    pool_size: Annotated[int | None, typer.Option("--pool-size", help="Training images per seen-attack pool "
                                                                      "(0 = all).")] = None,
    ablate: Annotated[list[str] | None, typer.Option("--ablate", help="Drop a loss term: adv, nor, att.")] = None,
    strategy: Annotated[str, typer.Option("--strategy", help="default, mirrored (all local GPUs), multiworker "
                                                             "(TF_CONFIG).")] = "default",
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="Continue from the run's checkpoint.")] = True,
    learning_rate: Annotated[float | None, typer.Option("--learning-rate", help="Adam step for all four players "
                                                         "(default: 1e-3 on MNIST's short CPU schedule; the "
                                                         "paper's is 1e-4).")] = None,
    lr_schedule: Annotated[str | None, typer.Option(
        "--lr-schedule", help="constant or cosine (decays to 0 over --steps); default: constant.")] = None,
    guide_weight: Annotated[float | None, typer.Option(
        "--guide-weight", help="Beyond the paper: weight of HGD's logit-guided loss on the target's logits, "
                               "added to L_E and L_G (default: 5 on MNIST, else 0; 0 = the paper).")] = None,
    eval_limit: Annotated[int, typer.Option("--eval-limit", help="Test images for the closing report.")] = 1000,
    tensorboard: Annotated[bool, typer.Option("--tensorboard", help="Write TensorBoard logs.")] = False,
    seed: SeedOpt = 0,
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Train the ARN defense (target, seen-attack pools and ARN; each reused when cached)."""
    from arnkit.pipeline.train import train_defense

    record = train_defense(dataset, seen, steps=steps, width=width, objective=objective, batch_size=batch_size,
                           pool_size=pool_size, ablate=tuple(ablate or ()), strategy=strategy, resume=resume,
                           eval_limit=eval_limit, tensorboard=tensorboard, seed=seed, workspace=workspace,
                           learning_rate=learning_rate, lr_schedule=lr_schedule, guide_weight=guide_weight,
                           progress=make_progress(json_out))
    if json_out:
        emit_json(record)
        return
    rows = [[name, values["none"], values["arn"]] for name, values in record["evaluation"].items()]
    stderr.print(table(f"error rate (%) on {record['dataset']} test, gray-box", ["attack", "no defense", "ARN"], rows))
    stderr.print(f"defense saved to {record['defense_path']}")
