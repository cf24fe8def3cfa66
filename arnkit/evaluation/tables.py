"""Error-rate tables in the layout of the paper's Tables 1-2: one row per defense, one column per attack
(seen attacks marked), plus the per-example worst case; written as JSON, CSV and markdown, atomically."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from arnkit.evaluation import metrics
from arnkit.io import atomic_path, write_json_atomic
from arnkit.workspace import Workspace

CSV_FIELDS = ("defense", "threat_model", "attack", "label", "iterations", "restarts", "seen", "n", "error",
              "error_lo", "error_hi", "lower_bound", "seconds", "failed_checks")
FLAG = "!"  # marks a cell whose sanity check failed; the footnote names the check


def failed_checks(checks: Sequence[dict[str, Any]] | None) -> dict[tuple[str, str], list[str]]:
    """{(defense, column label): [names of the failed sanity checks that concern that cell]}. A check names
    the cells it concerns in `columns` (the gradient and large-eps checks: every attack column of its
    defense); a record written before `columns` existed names one, its `attack`."""
    out: dict[tuple[str, str], list[str]] = {}
    for check in checks or []:
        if not check.get("passed", True):
            for column in check.get("columns") or [check.get("attack")]:
                names = out.setdefault((str(check.get("defense")), str(column)), [])
                if str(check.get("name")) not in names:
                    names.append(str(check.get("name")))
    return out


def pivot(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[str], dict[tuple[str, str], dict[str, Any]]]:
    """(defenses, column labels, {(defense, label): row}) in first-seen order."""
    defenses = list(dict.fromkeys(r["defense"] for r in rows))
    labels = list(dict.fromkeys(r["label"] for r in rows))
    return defenses, labels, {(r["defense"], r["label"]): r for r in rows}


def cell_text(row: dict[str, Any]) -> str:
    """One error cell: the rate (%) and whether the attack was seen, or only a lower bound."""
    ci = row.get("error_ci")  # the 95% interval over images (absent in results written before it existed)
    return (f"{float(row['error']):.2f}" + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "")
            + (" (seen)" if row.get("seen") else "")
            + (" (lower bound)" if row.get("lower_bound") else ""))


def pivot_lines(rows: Sequence[dict[str, Any]], render: Callable[[str, str, dict[str, Any]], str]) -> list[str]:
    """The markdown header, rule and one line per defense of the pivoted `rows` (attacks across);
    `render(defense, label, row)` writes a cell, "-" stands where there is no row."""
    defenses, labels, cells = pivot(rows)
    lines = ["| defense | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for defense in defenses:
        out = [render(defense, label, cells[(defense, label)]) if (defense, label) in cells else "-"
               for label in labels]
        lines.append(f"| {defense} | " + " | ".join(out) + " |")
    return lines


def markdown_table(rows: Sequence[dict[str, Any]], *, title: str = "",
                   checks: Sequence[dict[str, Any]] | None = None) -> str:
    """The pivoted table; a cell whose sanity check (in `checks`) failed carries FLAG and a footnote."""
    flagged = failed_checks(checks)
    lines = [f"### {title}", ""] if title else []
    lines += pivot_lines(rows, lambda defense, label, row: cell_text(row)
                         + (f" {FLAG}" if (defense, label) in flagged else ""))
    n = sorted({r["n"] for r in rows})
    lines += ["", f"Error rates (%), lower is better; n = {', '.join(map(str, n))} images; "
              "'(seen)' marks attacks the defense was trained on."]
    if any(r.get("error_ci") for r in rows):
        lines.append("[lo, hi]: the 95% Wilson score interval of the error over the images (its spread from "
                     "the finite sample only, not over seeds).")
    if any(r.get("lower_bound") for r in rows):
        lines.append("'(lower bound)': the attack had not converged (sanity check `iterations` or the "
                     "convergence curve), so the true error may be higher.")
    for (defense, label), names in flagged.items():
        lines.append(f"'{FLAG}' {defense} / {label}: failed sanity check {', '.join(names)}; the number may be "
                     "wrong (see the checks below the table).")
    return "\n".join(lines) + "\n"


def csv_text(rows: Sequence[dict[str, Any]], checks: Sequence[dict[str, Any]] | None = None) -> str:
    flagged = failed_checks(checks)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        failed = ";".join(flagged.get((row.get("defense"), row.get("label")), []))
        lo, hi = row.get("error_ci") or ("", "")
        writer.writerow({**{k: ("" if row.get(k) is None else row.get(k)) for k in CSV_FIELDS},
                         "error_lo": lo, "error_hi": hi, "failed_checks": failed})
    return buffer.getvalue()


def add_intervals(rows: Sequence[dict[str, Any]]) -> None:
    """Give each row with an image count its 95% interval, `error_ci: [lo, hi]` (%), in place: every table
    written (evaluate's, train's closing report, the studies') carries it."""
    for row in rows:
        if row.get("n") and "error" in row:
            row.setdefault("error_ci", metrics.error_interval(row["error"], row["n"]))


def write_tables(directory: Path, stem: str, record: dict[str, Any], *,
                 workspace: Workspace | None = None) -> dict[str, str]:
    """record.json + .csv + .md for `record["rows"]` in `directory`; returns the paths. With `workspace`, the
    JSON stores paths relative to its root (the returned record keeps them absolute)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"json": directory / f"{stem}.json", "csv": directory / f"{stem}.csv", "markdown": directory / f"{stem}.md"}
    record["files"] = {k: str(v) for k, v in paths.items()}
    add_intervals(record["rows"])
    write_json_atomic(paths["json"], workspace.relative_paths(record) if workspace else record)
    checks = record.get("sanity")
    for kind, text in (("csv", csv_text(record["rows"], checks)),
                       ("markdown", markdown_table(record["rows"], title=record.get("title", ""), checks=checks))):
        with atomic_path(paths[kind]) as tmp:
            Path(tmp).write_text(text)
    return {k: str(v) for k, v in paths.items()}


def write_curve_csv(path: Path, plotted: dict[str, list[list[float]]], x_name: str) -> str:
    """defense, <x_name>, error: one row per plotted point (figures.curve_png's read-back data)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["defense", x_name, "error"])
    for label, points in plotted.items():
        for x, y in points:
            writer.writerow([label, repr(float(x)), repr(float(y))])
    with atomic_path(path) as tmp:
        Path(tmp).write_text(buffer.getvalue())
    return str(path)
