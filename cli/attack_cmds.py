"""`arnkit attack` and `arnkit attacks`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from arnkit.errors import ArnkitError
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
    app.command("attack")(attack)
    app.command("attacks")(handle_errors(attacks))


def parse_params(pairs: list[str] | None) -> dict:
    """['steps=100', 'rand_init=false'] -> {'steps': 100, 'rand_init': False} (values parsed as JSON if possible)."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ArnkitError(f"--param expects key=value, got '{pair}'")
        key, value = pair.split("=", 1)
        try:
            out[key.strip()] = json.loads(value.lower() if value.lower() in ("true", "false") else value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


@portable
@handle_errors
@shows_target_warnings
def attack(
    attack: Annotated[str, typer.Option("--attack", "-a", help="Registry key (see `arnkit attacks`).")] = "pgd_n",
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name.")] = "mnist",
    split: Annotated[str, typer.Option("--split", help="train, val (held out of train) or test.")] = "test",
    limit: Annotated[int, typer.Option("--limit", help="First N images of the split; 0 = all.")] = 1000,
    eps: Annotated[float | None, typer.Option("--eps", help="Budget; default: the paper's for the dataset.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Attack parameter key=value.")] = None,
    shard: Annotated[str | None, typer.Option("--shard", help="Craft only shard i of n, as i/n.")] = None,
    merge: Annotated[int | None, typer.Option("--merge", help="Merge N finished shards into the full set.")] = None,
    target: TargetOpt = None,
    input_scale: InputScaleOpt = None,
    logits: TargetOutputOpt = None,
    seed: SeedOpt = 0,
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Craft adversarial examples against the workspace's target (trained if missing) or your --target; cached
    as HDF5."""
    from arnkit.pipeline.attack import craft, merge_shards

    params = parse_params(param)
    yours = target_options(target, input_scale, logits)
    if merge is not None:
        result = merge_shards(dataset, attack, shards=merge, split=split, limit=limit, eps=eps, params=params,
                              seed=seed, workspace=workspace, **yours)
    else:
        result = craft(dataset, attack, split=split, limit=limit, eps=eps, params=params, seed=seed, shard=shard,
                       workspace=workspace, progress=make_progress(json_out), **yours)
    if json_out:
        emit_json(result)
        return
    stdout.print(table(f"{result['attack']} on {result['dataset']}", [
        "n", "success", "undefended error", "Linf max", "L2 mean", "L0 mean", "img/s", "reused"], [[
            result["n"], result["success_rate"], result["undefended_error"], result["linf_max"], result["l2_mean"],
            result["l0_mean"], result.get("images_per_second", ""), result.get("reused", False)]]))
    stdout.print(f"saved {result['path']}", highlight=False, soft_wrap=True)


def attacks(json_out: JsonOpt = False) -> None:
    """List every attack with its distance, whether it is targeted, and its defaults per dataset."""
    from arnkit.pipeline.attack import list_attacks

    rows = list_attacks()
    if json_out:
        emit_json({"attacks": rows})
        return
    stdout.print(table("attacks", ["key", "distance", "targeted", "mnist defaults", "description"], [
        [r["key"], r.get("distance", "-"), r.get("targeted", "-"),
         json.dumps(r.get("defaults", {}).get("mnist", {}), default=str) if r["available"] else "not installed",
         r["description"]] for r in rows]))
