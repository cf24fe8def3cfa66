"""Tables 1-2 of the paper (MNIST, LeNet) from a workspace's `arnkit evaluate` results (bench/eval_mnist_baselines.sh), beside the
paper's numbers, as markdown:

    python bench/baselines_tables.py WORKSPACE

Reads every `evaluations/*/results.json` of the gray threat model; where one (defense, attack) cell was evaluated
more than once, the run on the most images wins, then the newest. Columns a run left out print as '-'. `evaluate` attacks a robust classifier
(AT_PGD, DOA) directly, which is its white-box number; the rows marked "on L" score it on the sets crafted against
the original target instead (`robust_transfer.py`), the reading that matches the paper's gray box.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from robust_transfer import crafted_on_target

# Paper Tables 1-2, LeNet rows (error %): clean, PGD_N, PGD_T, CW_N, DDN_N, AA_N, JSMA_T, PGD_N eps', AA_N eps',
# STA_N, STA_T, FWA_N, FWA_N eps'.
COLUMNS = ["clean", "pgd_n", "pgd_t", "cw_n", "ddn_n", "aa_n", "jsma_t", "pgd_n@0.4", "aa_n@0.4",
           "sta_n", "sta_t", "fwa_n", "fwa_n@0.4"]
PAPER = {
    "NONE": [0.64, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 98.56, 99.91],
    "AT_PGD": [1.19, 9.63, 8.38, 6.42, 5.91, 12.60, 28.59, 54.34, 60.06, 21.55, 31.49, 42.41, 61.55],
    "DOA_7x7": [6.27, 65.23, 38.84, 11.48, 10.53, 68.49, 19.81, 86.76, 92.51, 13.54, 19.24, 23.29, 40.16],
    "APE-G_PP": [1.57, 8.76, 3.20, 2.34, 2.15, 12.40, 36.49, 34.86, 46.72, 16.57, 21.40, 33.95, 51.81],
    "APE-G_DP": [1.73, 10.39, 5.81, 2.93, 1.91, 15.26, 38.04, 37.33, 49.38, 20.18, 25.63, 37.50, 58.16],
    "HGD_PP": [1.36, 1.89, 1.30, 1.67, 1.54, 2.43, 50.62, 75.79, 90.34, 21.32, 36.41, 50.43, 71.12],
    "HGD_DP": [1.18, 2.56, 1.91, 1.79, 1.23, 3.30, 53.73, 78.95, 93.76, 25.01, 38.47, 52.84, 75.35],
    "ARN_PP": [1.16, 1.85, 1.29, 1.45, 1.28, 2.38, 16.75, 15.27, 26.84, 9.08, 13.73, 25.79, 43.76],
    "ARN_DP": [1.11, 1.91, 1.80, 1.53, 1.22, 2.97, 17.81, 17.63, 29.74, 10.14, 14.51, 28.50, 47.63],
}
FULL_N = 1000  # cells run on fewer test images say so
SEEN = {("pgd_n", "pgd_t"): "PP", ("ddn_n", "pgd_n"): "DP"}
PREFIX = {"arn": "ARN", "apeg": "APE-G", "hgd": "HGD"}


def row_name(defense: dict) -> str | None:
    """The paper's row for one `defenses` entry of a results file: `--defense all` names a column by its key
    alone while a recipe has one run, so the row comes from the key prefix and the seen attacks."""
    name = defense["name"]
    if name == "none":
        return "NONE"
    if name.startswith("at_pgd"):
        return "AT_PGD"
    if name.startswith("doa"):
        return "DOA_7x7"
    prefix = PREFIX.get(name.split("_")[0])
    variant = SEEN.get(tuple(sorted(defense.get("seen", []))))
    return f"{prefix}_{variant}" if prefix and variant else None


def cells(workspace: Path) -> dict[tuple[str, str], dict]:
    found: dict[tuple[str, str], dict] = {}
    files = sorted((workspace / "evaluations").glob("*/results.json"), key=lambda p: p.stat().st_mtime)
    for path in files:
        result = json.loads(path.read_text())
        if result.get("threat_model") != "gray":
            continue
        # Only defenses still in the workspace: a retrained one moves its predecessor out of defenses/.
        names = {d["name"]: row_name(d) for d in result.get("defenses", [])
                 if not d.get("path") or Path(d["path"]).exists()}
        for row in result["rows"]:
            name = names.get(row["defense"])
            old = found.get((name, row["label"]))
            if name and (old is None or row.get("n", 0) >= old.get("n", 0)):
                found[(name, row["label"])] = row
    return found


def add_crafted_on_target(found: dict[tuple[str, str], dict], workspace: Path) -> list[str]:
    """Adds the "X on L" rows for the robust classifiers to `found`; returns their names."""
    rows = {"at_pgd": "AT_PGD", "doa_7x7": "DOA_7x7"}
    added = []
    for (key, attack), (error, n) in crafted_on_target(workspace).items():
        name = rows.get(key)
        if name:
            found[(f"{name} on L", attack)] = {"error": error, "n": n, "seen": attack in ("pgd_n", "roa")
                                                and (name == "AT_PGD") == (attack == "pgd_n")}
            clean = found.get((name, "clean"))
            if clean:
                found[(f"{name} on L", "clean")] = clean
            added.append(f"{name} on L")
    return sorted(set(added))


def table(found: dict[tuple[str, str], dict], columns: list[str]) -> str:
    head = "| defense | " + " | ".join(columns) + " |"
    lines = [head, "|" + "---|" * (len(columns) + 1)]
    names = list(PAPER) + sorted({name for name, _ in found if name.endswith(" on L")})
    for name in names:
        paper = PAPER[name.removesuffix(" on L")]
        ours = []
        for column in columns:
            row = found.get((name, column))
            ref = paper[COLUMNS.index(column)]
            if row is None:
                ours.append(f"- / {ref:g}")
            else:
                seen = "*" if row.get("seen") else ""
                fewer = f" (n={row['n']})" if row.get("n") and row["n"] < FULL_N else ""
                ours.append(f"{row['error']:.2f}{seen}{fewer} / {ref:g}")
        lines.append(f"| {name} | " + " | ".join(ours) + " |")
    return "\n".join(lines)


def main(workspace: str) -> None:
    found = cells(Path(workspace))
    add_crafted_on_target(found, Path(workspace))
    print("Table 1 (pixel-constrained), ours / paper, error %; * = a seen attack\n")
    print(table(found, COLUMNS[:9]))
    print("\nTable 2 (spatially constrained), ours / paper, error %\n")
    print(table(found, ["clean"] + COLUMNS[9:]))


if __name__ == "__main__":
    main(sys.argv[1])
