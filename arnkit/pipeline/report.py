"""`arnkit report`: one markdown page (and an HTML rendering of it) gathering a workspace's targets, trained
defenses, evaluation tables with their sanity checks and figures, and detection results."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

import arnkit
from arnkit.errors import ArnkitError
from arnkit.evaluation.tables import markdown_table
from arnkit.io import atomic_path
from arnkit.workspace import Workspace


def _records(folder: Path, pattern: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime):
        try:
            out.append({**json.loads(path.read_text()), "_file": str(path)})
        except (OSError, json.JSONDecodeError):
            continue  # a half-written or foreign file is skipped, not fatal
    return out


def _rel(path: str | None, base: Path) -> str:
    return os.path.relpath(path, base) if path else ""


def _targets(ws: Workspace) -> list[str]:
    rows = [f"| {r.get('dataset')} | {r.get('model')} | {100 * r.get('test_error', 0):.2f} | {r.get('fingerprint')} |"
            for r in _records(ws.root / "targets", "*.json")]
    return ["## Targets", "", "| dataset | model | clean error (%) | fingerprint |", "|---|---|---|---|", *rows, ""]


def _defenses(ws: Workspace) -> list[str]:
    """Every trained defense of any recipe, through its typed record (options differ per recipe)."""
    from arnkit.runs.defense_record import DefenseRecord

    lines = ["## Trained defenses", "", "| dataset | defense | kind | seen | options | train s | fingerprint |",
             "|---|---|---|---|---|---|---|"]
    for raw in _records(ws.root / "defenses", "*.d/record.json"):
        try:
            r = DefenseRecord.from_dict({k: v for k, v in raw.items() if k != "_file"})
        except ArnkitError:
            continue
        options = ", ".join(f"{k} {','.join(map(str, v)) if isinstance(v, list) else v}"
                            for k, v in r.options.items() if v not in (None, [], ""))
        lines.append(f"| {r.dataset} | {r.key} | {r.kind} | {','.join(r.seen) or '-'} | {options or '-'} | "
                     f"{r.extra.get('train_seconds', '')} | {r.defense_fingerprint} |")
    return lines + [""]


def _evaluations(ws: Workspace, base: Path) -> list[str]:
    lines = ["## Evaluations", ""]
    for r in _records(ws.root / "evaluations", "*.d/results.json"):
        if not r.get("rows"):
            continue
        lines.append(markdown_table(r["rows"], title=r.get("title", "evaluation")))
        lines.append(f"Target {r.get('target', {}).get('model')} ({r.get('target', {}).get('fingerprint')}), "
                     f"seed {r.get('seed')}, arnkit {r.get('arnkit_version')}; files: "
                     f"`{_rel(r.get('files', {}).get('json'), base)}`.")
        lines.append("")
        for check in r.get("sanity", []):
            verdict = "pass" if check["passed"] else "**FLAG**"
            lines.append(f"- sanity `{check['name']}` ({check['defense']}, {check['attack']}): {verdict}, "
                         f"{check['value']} (expected {check['expected']}) {check['detail']}")
        for key in ("grid_png", "ablation_png", "matrix_png"):
            if r.get(key):
                lines += ["", f"![{key}]({_rel(r[key], base)})"]
        lines.append("")
    return lines


def _detections(ws: Workspace) -> list[str]:
    lines = ["## Detection", "", "| dataset | method | attack | AUC | restored recall | adaptive AUC |",
             "|---|---|---|---|---|---|"]
    for r in _records(ws.root / "detection", "*.json"):
        restored = (r.get("restored") or {}).get("recall", "-")
        adaptive = (r.get("adaptive") or {}).get("auc", "-")
        lines.append(f"| {r.get('dataset')} | {r.get('method')} | {r.get('attack')} | {r.get('auc')} | {restored} | "
                     f"{adaptive} |")
    return lines + [""]


def _html(markdown: str) -> str:
    """A dependency-free rendering: tables, headings, images and lists; everything else as paragraphs."""
    out, table = [], []

    def flush() -> None:
        if table:
            cells = [[html.escape(c.strip()) for c in row.strip("|").split("|")] for row in table
                     if not set(row.replace("|", "").strip()) <= {"-"}]
            head, *body = cells
            out.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in body)
                       + "</table>")
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("![") and "](" in line:
            src = line[line.index("](") + 2:-1]
            out.append(f'<img src="{html.escape(src)}" style="max-width:100%">')
        elif line.startswith("- "):
            out.append(f"<li>{html.escape(line[2:])}</li>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    flush()
    return ("<!doctype html><html><head><meta charset='utf-8'><title>arnkit report</title><style>"
            "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>" + "\n".join(out) + "</body></html>\n")


def build_report(workspace: str | Path | None = None, output: str | Path | None = None) -> dict[str, Any]:
    """Write report.md and report.html for the workspace; return their paths."""
    ws = Workspace.resolve(workspace)
    if not ws.root.exists():
        raise ArnkitError(f"workspace {ws.root} does not exist; run `arnkit train` or `arnkit evaluate` first")
    md_path = Path(output) if output else ws.root / "report.md"
    base = md_path.parent
    sections = [_targets(ws), _defenses(ws), _evaluations(ws, base), _detections(ws)]
    text = "\n".join([f"# arnkit report: {ws.root}", "", f"arnkit {arnkit.__version__}.", ""]
                     + [line for section in sections for line in section])
    with atomic_path(md_path) as tmp:
        Path(tmp).write_text(text)
    html_path = md_path.with_suffix(".html")
    with atomic_path(html_path) as tmp:
        Path(tmp).write_text(_html(text))
    return {"markdown": str(md_path), "html": str(html_path), "sections": len(sections),
            "evaluations": len(_records(ws.root / "evaluations", "*.d/results.json"))}
