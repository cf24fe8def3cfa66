"""`arnkit report`: one markdown page, and ONE self-contained HTML file rendered from it, gathering a
workspace's targets, trained defenses, evaluation tables (with their budget, iterations, n, threat model,
date, failed self-checks and the paper's numbers) and figures, and detection results.

Every path a record holds is read through `Workspace.locate`: records store paths relative to the workspace,
and an absolute path written by an older arnkit (or in the workspace this one was copied from) is re-rooted
here, so a copied workspace reports its own files. A record that cannot be read is listed under "Damaged
artifacts" with its fix, never dropped in silence; the report is still written."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import arnkit
from arnkit.errors import ArnkitError
from arnkit.evaluation import paper_numbers
from arnkit.evaluation.tables import FLAG, cell_text, failed_checks, pivot_lines
from arnkit.io import atomic_path
from arnkit.pipeline import report_html
from arnkit.runs.scoring import budget_iterations
from arnkit.workspace import Workspace

RERUN = {"targets": "rerun `arnkit target train`", "defenses": "rerun `arnkit train`",
         "evaluations": "rerun `arnkit evaluate`", "detection": "rerun `arnkit detect`"}


@dataclass
class Gathered:
    """What one report reads: the workspace, where the markdown goes, and what could not be read."""

    ws: Workspace
    base: Path  # the markdown's folder: figure links are relative to it
    damaged: list[tuple[str, str]] = field(default_factory=list)  # (file relative to the workspace, problem + fix)

    def name(self, path: Path) -> str:
        return self.ws.relative(path)

    def damage(self, path: Path, problem: str) -> None:
        kind = Path(self.name(path)).parts[0] if not Path(self.name(path)).is_absolute() else ""
        self.damaged.append((self.name(path), f"{problem}; delete it or {RERUN.get(kind, 'rerun the command')}"))

    def records(self, folder: str, pattern: str) -> list[tuple[Path, dict[str, Any]]]:
        """(path, record) of each JSON file, oldest first; an unreadable one is recorded as damaged."""
        paths = sorted((self.ws.root / folder).glob(pattern), key=lambda p: (p.stat().st_mtime, p.name))
        out = []
        for path in paths:
            try:
                record = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                self.damage(path, f"not valid JSON (line {exc.lineno}, column {exc.colno})")
                continue
            except (OSError, UnicodeDecodeError) as exc:
                self.damage(path, f"cannot be read ({getattr(exc, 'strerror', None) or type(exc).__name__})")
                continue
            if not isinstance(record, dict):
                self.damage(path, f"holds a JSON {type(record).__name__}, not a record")
                continue
            out.append((path, record))
        return out

    def figure(self, alt: str, stored: str | None) -> list[str]:
        """A markdown image line for a figure path read from a record (missing file: listed as damaged)."""
        if not stored:
            return []
        path = self.ws.locate(stored)
        if not path.is_file():
            self.damage(path, f"figure '{alt}' is missing")
            return []
        return [f"![{alt}]({Path(os.path.relpath(path, self.base)).as_posix()})", ""]


def _date(record: dict[str, Any], path: Path) -> str:
    """The record's UTC date (`created`), or its file's modification time for records older than the field."""
    created = record.get("created")
    if created:
        return str(created).replace("T", " ").replace("Z", " UTC")
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(path.stat().st_mtime))


def percent(fraction: Any, digits: int = 1) -> str:
    """A rate stored as a fraction, in % (`0.8625` -> `86.2%`); '-' when absent."""
    return "-" if fraction is None else f"{100 * float(fraction):.{digits}f}%"


def auc_text(auc: Any) -> str:
    """An AUC with 3 decimals (`0.8600000000000001` -> `0.860`); '-' when absent."""
    return "-" if auc is None else f"{float(auc):.3f}"


# -------------------------------------------------------------------------------------------- sections ---

def _targets(g: Gathered) -> list[str]:
    lines = ["## Targets", "", "| dataset | model | clean error (%) | fingerprint |", "|---|---|---|---|"]
    for _, r in g.records("targets", "*.json"):
        error = r.get("test_error")
        lines.append(f"| {r.get('dataset')} | {r.get('model')} | "
                     f"{'-' if error is None else f'{100 * float(error):.2f}'} | {r.get('fingerprint')} |")
    return lines + [""]


def _defenses(g: Gathered) -> list[str]:
    """Every trained defense of any recipe, through its typed record (options differ per recipe)."""
    from arnkit.runs.defense_record import DefenseRecord

    lines = ["## Trained defenses", "", "| dataset | defense | kind | seen | options | train s | fingerprint |",
             "|---|---|---|---|---|---|---|"]
    for path, raw in g.records("defenses", "*.d/record.json"):
        try:
            r = DefenseRecord.from_dict(raw)
        except ArnkitError as exc:
            g.damage(path, str(exc).split(";")[0])
            continue
        options = ", ".join(f"{k} {','.join(map(str, v)) if isinstance(v, list) else v}"
                            for k, v in r.options.items() if v not in (None, [], ""))
        lines.append(f"| {r.dataset} | {r.key} | {r.kind} | {','.join(r.seen) or '-'} | {options or '-'} | "
                     f"{r.extra.get('train_seconds', '')} | {r.defense_fingerprint} |")
    return lines + [""]


def _budget_line(r: dict[str, Any], default_eps: float | None) -> str:
    """Budget, iterations, n, threat model: what the table's numbers were measured under."""
    columns = []
    for attack in r.get("attacks") or []:
        params, budget = attack.get("params") or {}, attack.get("budget") or {}  # budget: written since 2026-12-07
        eps = params.get("eps", budget.get("eps"))
        counts = [c for c in attack.get("iterations") or [] if c is not None]
        if not counts and budget_iterations(budget) is not None:
            counts = [budget_iterations(budget)]
        budget = f"eps {eps:g}" if isinstance(eps, int | float) else "default budget"
        # An attack without an iteration count (FGSM is one step) gets no claim about one.
        columns.append(f"{attack.get('label')}: {budget}"
                       + (f", {'/'.join(map(str, counts))} iterations" if counts else ""))
    default = f"L-inf eps {default_eps:g}" if default_eps is not None else "the dataset's"
    return (f"Threat model **{r.get('threat_model')}**; n = {r.get('n')} {r.get('split') or 'test'} images; "
            f"default budget {default}; "
            + "; ".join(columns) + ".")


def _cells(g: Gathered, r: dict[str, Any]) -> list[str]:
    """The error table with the paper's value beside ours (gray box only) and failed checks flagged."""
    seen = {d.get("name"): d.get("seen") or [] for d in r.get("defenses") or [] if isinstance(d, dict)}
    flagged = failed_checks(r.get("sanity"))
    compare = r.get("threat_model") == "gray"
    papers: list[float] = []

    def render(defense: str, label: str, row: dict[str, Any]) -> str:
        text = cell_text(row)
        paper = paper_numbers.paper_error(str(r.get("dataset")), defense, label, seen.get(defense, [])) \
            if compare else None
        if paper is not None:
            papers.append(paper)
            text += f" (paper {paper:g})"
        return text + (f" {FLAG}" if (defense, label) in flagged else "")

    lines = pivot_lines(r["rows"], render)
    lines += ["", "Error rates (%), lower is better; '(seen)': an attack the defense was trained on."]
    if papers:
        lines.append("'(paper x)': the paper's gray-box value for the same defense and column (its Tables 1-2 or "
                     "LISA table, on its own test set; `arnkit/evaluation/paper_numbers.py`).")
    for (defense, label), names in flagged.items():
        lines.append(f"'{FLAG}' {defense} / {label}: failed self-check {', '.join(names)}; this number may be wrong.")
    return lines


def _evaluations(g: Gathered) -> list[str]:
    from arnkit import data

    lines = ["## Evaluations", ""]
    for path, r in g.records("evaluations", "*.d/results.json"):
        if not isinstance(r.get("rows"), list) or not r["rows"]:
            g.damage(path, "has no result rows")
            continue
        try:
            default_eps = data.info(str(r.get("dataset")), data_dir=g.ws.data_dir).eps
        except ArnkitError:
            default_eps = None
        date, folder = _date(r, path), path.parent.name
        lines += [f"### {r.get('title', 'evaluation')}: n = {r.get('n')}, {date}", "",
                  _budget_line(r, default_eps), "", *_cells(g, r), ""]
        target = r.get("target") or {}
        lines += [f"Target {target.get('model')} ({target.get('fingerprint')}), seed {r.get('seed')}, "
                  f"arnkit {r.get('arnkit_version')}; files: `evaluations/{folder}/`.", ""]
        for check in r.get("sanity") or []:
            verdict = "pass" if check.get("passed") else f"**FAILED** ({FLAG} in the table)"
            lines.append(f"- self-check `{check.get('name')}` ({check.get('defense')}, {check.get('attack')}): "
                         f"{verdict}, {check.get('value')} (expected {check.get('expected')}) {check.get('detail', '')}")
        lines.append("")
        curves = r.get("convergence") or {}
        for alt, stored in (("image grid", r.get("grid_png")), ("ablation", r.get("ablation_png")),
                            ("seen/unseen matrix", r.get("matrix_png")),
                            ("convergence: error vs iterations", curves.get("iterations_png")),
                            ("convergence: error vs eps", curves.get("eps_png"))):
            lines += g.figure(f"{alt} ({folder})", stored)
    return lines


def _detections(g: Gathered) -> list[str]:
    lines = ["## Detection", "",
             "AUC on held-out images, 0-1 with 3 decimals; recall and false-positive rate in %.", "",
             "| dataset | method | attack | AUC | recall (adversarial) | false positives | restored recall | "
             "adaptive AUC | date |", "|---|---|---|---|---|---|---|---|---|"]
    figures = []
    for path, r in g.records("detection", "*.json"):
        restored, adaptive = r.get("restored") or {}, r.get("adaptive") or {}
        lines.append(f"| {r.get('dataset')} | {r.get('method')} | {r.get('attack')} | {auc_text(r.get('auc'))} | "
                     f"{percent(r.get('recall_adversarial'))} | {percent(r.get('false_positive_rate'))} | "
                     f"{percent(restored.get('recall'))} | {auc_text(adaptive.get('auc'))} | {_date(r, path)} |")
        figures += g.figure(f"ROC: {r.get('method')} on {r.get('dataset')}, {r.get('attack')}",
                            r.get("roc_path") or str(path.with_suffix(".png")))
    return lines + ["", *figures]


def _damaged(g: Gathered) -> list[str]:
    lines = ["## Damaged artifacts", ""]
    if not g.damaged:
        return lines + ["None: every record and figure could be read.", ""]
    lines.append("These files could not be read, so their results are missing below.")
    lines.append("")
    return lines + [f"- `{name}`: {problem}" for name, problem in g.damaged] + [""]


def build_report(workspace: str | Path | None = None, output: str | Path | None = None) -> dict[str, Any]:
    """Write report.md and the self-contained report.html for the workspace; return their paths."""
    ws = Workspace.resolve(workspace)
    if not ws.root.exists():
        raise ArnkitError(f"workspace {ws.root} does not exist; run `arnkit train` or `arnkit evaluate` first")
    md_path = Path(output).resolve() if output else ws.root / "report.md"
    g = Gathered(ws, md_path.parent)
    sections = [_targets(g), _defenses(g), _evaluations(g), _detections(g)]
    head = [f"# arnkit report: workspace `{ws.root.name}`", "",
            f"Made {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by arnkit {arnkit.__version__}.", ""]
    text = "\n".join(head + _damaged(g) + [line for section in sections for line in section])
    with atomic_path(md_path) as tmp:
        Path(tmp).write_text(text)
    html_path = md_path.with_suffix(".html")
    with atomic_path(html_path) as tmp:
        Path(tmp).write_text(report_html.render(text, md_path.parent, f"arnkit report: {ws.root.name}"))
    return {"markdown": str(md_path), "html": str(html_path), "sections": len(sections) + 1,
            "evaluations": len(list((ws.root / "evaluations").glob("*.d/results.json"))),
            "damaged": [{"file": name, "problem": problem} for name, problem in g.damaged]}
