"""`arnkit runs`: list (default, alias `ls`), rm and prune what a workspace holds. No TensorFlow needed."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from arnkit_cli.common import JsonOpt, WorkspaceOpt, emit_json, handle_errors, stderr

# Tables and results are output (`arnkit runs | grep`), not diagnostics. In a pipe rich would wrap at 80
# columns and cut the ids a user copies into `runs rm`, so it gets a wide line there.
stdout = Console()
if not stdout.is_terminal:
    stdout = Console(width=240)
# Of an attack's parameters, the table shows those that tell two sets apart at a glance (JSON has them all).
SUMMARY_PARAMS = ("eps", "steps", "iterations", "confidence")

runs_app = typer.Typer(
    help="List, remove and prune a workspace's targets, adversarial sets, defenses, evaluations, detections "
         "and imported datasets.",
    invoke_without_command=True,
)

KindOpt = Annotated[str | None, typer.Option(
    "--kind", help="Only this kind: targets, adversarial, defenses, evaluations, detection, data.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print what would be removed; remove nothing.")]


def register(app: typer.Typer) -> None:
    for command in (list_runs, remove_runs, prune_runs):
        command.needs_tensorflow = False
    listing = handle_errors(list_runs)
    listing.command_name = "runs list"
    runs_app.command("list")(listing)
    runs_app.command("ls", hidden=True)(listing)
    runs_app.command("rm")(handle_errors(remove_runs))
    runs_app.command("prune")(handle_errors(prune_runs))
    app.add_typer(runs_app, name="runs")


@runs_app.callback()
def runs(ctx: typer.Context, workspace: WorkspaceOpt = None, kind: KindOpt = None, json_out: JsonOpt = False) -> None:
    """`arnkit runs` alone is `arnkit runs list` (its options too)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(handle_errors(list_runs), workspace=workspace, kind=kind, json_out=json_out)
    elif workspace is not None or kind is not None or json_out:
        # Silently dropping `-w DIR` before `rm` would remove from the default workspace instead.
        stderr.print(f"[bold red]error:[/] put --workspace, --kind and --json after `runs {ctx.invoked_subcommand}`, "
                     f"e.g. arnkit runs {ctx.invoked_subcommand} --workspace DIR", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def list_runs(workspace: WorkspaceOpt = None, kind: KindOpt = None, json_out: JsonOpt = False) -> None:
    """List every artifact with its id, size, date, status and provenance (from its record)."""
    from arnkit.pipeline.runs import list_runs as listed

    rows = listed(workspace, kind)
    if json_out:
        emit_json(rows)
        return
    out = Table(title=f"workspace {escape(rows[0]['path'].rsplit('/', 2)[0]) if rows else ''}".strip())
    out.add_column("id", no_wrap=True)
    for column in ("size", "date", "status"):
        out.add_column(column, no_wrap=True)
    out.add_column("provenance / problem")
    for r in rows:
        out.add_row(escape(r["id"]), r["size_human"], r["date"].replace("T", " ")[:16],
                    "[bold red]damaged[/]" if r["status"] == "damaged" else r["status"],
                    escape(r["problem"]) or _provenance(r["provenance"]))
    stdout.print(out)
    if not rows:
        stdout.print("nothing here yet")


def remove_runs(
    ids: Annotated[list[str], typer.Argument(metavar="ID...", help="Ids as `arnkit runs list` shows them.")],
    force: Annotated[bool, typer.Option("--force", help="Remove even what another record references.")] = False,
    dry_run: DryRunOpt = False,
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Remove artifacts with their sidecars; refused while another artifact's record references one."""
    from arnkit.pipeline.runs import remove_runs as removed

    _print_removals(removed(ids, workspace, force=force, dry_run=dry_run), json_out)


def prune_runs(
    damaged: Annotated[bool, typer.Option("--damaged", help="Also remove artifacts whose record is damaged.")] = False,
    unreferenced: Annotated[bool, typer.Option("--unreferenced", help=(
        "Also remove adversarial sets that no record references."))] = False,
    dry_run: DryRunOpt = False,
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Remove what nothing needs: temp files of killed writes, stale locks, checkpoints of finished runs, empty
    run folders (and, when asked, damaged artifacts and unreferenced adversarial sets)."""
    from arnkit.pipeline.runs import prune_runs as pruned

    _print_removals(pruned(workspace, damaged=damaged, unreferenced=unreferenced, dry_run=dry_run), json_out)


def _print_removals(result: dict[str, Any], json_out: bool) -> None:
    if json_out:
        emit_json(result)
        return
    verb = "would remove" if result["dry_run"] else "removed"
    for r in result["removed"]:
        stdout.print(f"{verb} {escape(r['path'])} ({r['size']:,} B): {escape(r['reason'])}", highlight=False)
    total = "would free" if result["dry_run"] else "freed"
    stdout.print(f"{len(result['removed'])} path(s), {total} {result['freed']}", highlight=False)


def _provenance(prov: dict[str, Any]) -> str:
    """`synthetic · seed 0 · fgsm ...`: the dataset first, fingerprints shortened to 8 characters."""
    parts = []
    for key, value in prov.items():
        if key in ("dataset", "note", "label"):
            parts.insert(0, str(value))
        elif "fingerprint" in key:
            parts.append(f"{key.replace('_fingerprint', '')} {str(value)[:8]}")
        elif isinstance(value, list):
            parts.append(f"{key} {','.join(map(str, value))}")
        elif isinstance(value, float):
            parts.append(f"{key} {value:.4g}")
        elif isinstance(value, dict):
            parts.extend(f"{k} {v}" for k, v in value.items() if k in SUMMARY_PARAMS)
        else:
            parts.append(f"{key} {value}")
    return escape(" · ".join(parts))
