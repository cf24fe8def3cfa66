"""Issue 14's tables from what bench/adaptive_pilots.py, bench/adaptive_tradeoff.py and the `arnkit evaluate`
calls of bench/eval_adaptive.sh wrote (WS/adaptive-pilots.json, WS/adaptive-tradeoff.json, WS/eval-adaptive/).

    python bench/adaptive_report.py WS > tables.md

Each `evaluate` record names its defenses by file; this maps them to rows by the defense record's label
(`arn_pgd_n+pgd_t`, `arn_adaptive_pgd_n+pgd_t`, `at_pgd`). Missing files give missing cells, never made-up ones.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def row_name(defense: dict) -> str:
    record = defense.get("record") or {}
    beside = Path(str(defense.get("path") or "")).parent / "record.json"
    if not record and defense.get("path") and beside.exists():
        record = json.loads(beside.read_text())
    label = str(record.get("label") or record.get("key") or defense.get("name", "?"))
    return {"arn_pgd_n+pgd_t": "ARN (default)", "arn_adaptive_pgd_n+pgd_t": "ARN --adaptive"}.get(label, label.upper())


def load(out: Path) -> dict[str, dict]:
    """{call name: record} for every evaluation JSON that parsed."""
    records = {}
    for path in sorted(out.glob("*.json")):
        try:
            records[path.stem] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
    return {name: r for name, r in records.items() if "rows" in r}


def cells(record: dict) -> dict[tuple[str, str], dict]:
    names = {d.get("name"): row_name(d) for d in record["defenses"]}
    return {(names.get(row["defense"], row["defense"]), row["label"]): row for row in record["rows"]}


def checks(record: dict) -> dict[tuple[str, str], dict]:
    names = {d.get("name"): row_name(d) for d in record["defenses"]}
    return {(names.get(c["defense"], c["defense"]), c["name"]): c for c in record.get("sanity", [])}


def main() -> None:
    ws = Path(sys.argv[1])
    records = load(ws / "eval-adaptive")
    table: dict[str, dict[str, str]] = {}
    for name, record in records.items():
        got, flags = cells(record), checks(record)
        for (defense, label), row in got.items():
            value = f"{row['error']:.1f}"
            if row.get("lower_bound"):
                value += " (lower bound)"
            iterations = flags.get((defense, "iterations"))
            if iterations and label == record["attacks"][0]["label"] and not iterations["passed"]:
                value += " (not converged)"
            table.setdefault(defense, {})[f"{name}:{label}"] = value
    columns = sorted({c for row in table.values() for c in row})
    print("| defense | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for defense, row in sorted(table.items()):
        print(f"| {defense} | " + " | ".join(row.get(c, "") for c in columns) + " |")
    print()
    for name, record in records.items():
        for (defense, check), c in checks(record).items():
            print(f"- {name} / {defense} / {check}: {'pass' if c['passed'] else 'FLAG'} {json.dumps(c['value'])}")
    times = ws / "eval-adaptive" / "times.txt"
    if times.exists():
        print("\nwall times: " + "; ".join(times.read_text().split("\n")).strip("; "))
    pilots = ws / "adaptive-pilots.json"
    if pilots.exists():
        print("\n| pilot | train s | gray clean | gray PGD_N | gray PGD_T | white PGD_T-40 | white PGD_T-160 |")
        print("|---|---|---|---|---|---|---|")
        for name, p in json.loads(pilots.read_text()).items():
            print(f"| {name} | {p['train_seconds']:.0f} | {p['gray_clean']} | {p['gray_pgd_n']} | {p['gray_pgd_t']} | "
                  f"{p['white_pgd_t_40']} | {p['white_pgd_t_160']} |")
    tradeoff = ws / "adaptive-tradeoff.json"
    if tradeoff.exists():
        t = json.loads(tradeoff.read_text())
        print(f"\n| step | training s | clean (1,000) | white PGD_T-40 (first {t['white_limit']}) |")
        print("|---|---|---|---|")
        for p in t["points"]:
            print(f"| {p['step']} | {p['train_seconds']:.0f} | {p['clean']} | {p['white_pgd_t_40']} |")


if __name__ == "__main__":
    main()
