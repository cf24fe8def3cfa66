"""Seed spread: the same defense recipe trained with several seeds and scored in one evaluation, summarised per
column as mean, sample standard deviation and range over the seeds (the issue's "mean +- spread").

Pure arithmetic on an evaluation's rows: which defense row belongs to which recipe (its group) and seed is the
caller's knowledge (`bench/seed_spread.py` reads it from the defenses' run records)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from arnkit.errors import ArnkitError
from arnkit.evaluation import tables


def spread_rows(rows: Sequence[dict[str, Any]], members: Mapping[str, tuple[str, int | None]]) -> list[dict[str, Any]]:
    """One row per (group, column): `members` maps a defense row's name to (group, seed). Every member of a
    group must have the group's columns; a defense with no entry is left out. Seeds within a group must differ
    (two runs of one seed are one measurement twice, not a spread)."""
    by_group: dict[str, dict[str, int | None]] = {}
    for defense, (group, seed) in members.items():
        seeds = by_group.setdefault(group, {})
        if seed is not None and seed in seeds.values():
            raise ArnkitError(f"group {group} has seed {seed} twice ({defense} and another); give each run its own --seed")
        seeds[defense] = seed
    _, labels, cells = tables.pivot(rows)
    out = []
    for group, seeds in by_group.items():
        for label in labels:
            present = [d for d in seeds if (d, label) in cells]
            if not present:
                continue
            if len(present) != len(seeds):
                missing = sorted(set(seeds) - set(present))
                raise ArnkitError(f"column {label} is missing for {', '.join(missing)} of group {group}; score "
                                  "every seed on the same attacks")
            values = [float(cells[(d, label)]["error"]) for d in present]
            mean = sum(values) / len(values)
            sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
            out.append({"defense": group, "label": label, "seeds": [seeds[d] for d in present], "values": values,
                        "mean": round(mean, 4), "sd": None if sd is None else round(sd, 4),
                        "min": min(values), "max": max(values), "n": int(cells[(present[0], label)].get("n") or 0),
                        "seen": bool(cells[(present[0], label)].get("seen"))})
    return out


def cell_text(row: dict[str, Any]) -> str:
    """'mean +- sd (min-max)', or the one value of a single-seed group."""
    if row["sd"] is None:
        return f"{row['mean']:.2f}" + (" (seen)" if row.get("seen") else "")
    return (f"{row['mean']:.2f} ± {row['sd']:.2f} ({row['min']:.2f}-{row['max']:.2f})"
            + (" (seen)" if row.get("seen") else ""))


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The pivoted table (one line per group) and what its cells mean."""
    lines = tables.pivot_lines(rows, lambda _d, _l, row: cell_text(row))
    counts = sorted({len(r["seeds"]) for r in rows})
    lines += ["", f"Error rates (%): mean ± sample standard deviation (min-max) over {', '.join(map(str, counts))} "
              "defense seeds; a group with one seed shows its value."]
    return "\n".join(lines) + "\n"
