"""The frontier of bench/recipe_search.py's rows: white-box worst case vs gray-box worst column vs training
minutes, one point per candidate (mean over its seeds), the default recipe marked, as a PNG.

    python bench/recipe_frontier.py WS/recipe-search/mnist-val.json [OUT.png]

x: the gray-box worst column (error %); y: the white-box worst case (error %); colour: ARN training minutes. A
candidate whose white box was not run sits as a hollow marker in a band above 100% ("white box not run"): it
is on no frontier, because its third axis is unknown. When no candidate has a white box, y is the gray worst
column again, said on the axis. A point on the frontier is one no other candidate beats on all three.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
NOT_RUN = 104.0  # the y of a candidate without a white box: a band above any error rate


def means(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per candidate, the mean over seeds of (gray worst column, white worst case or None, train minutes)."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[row["candidate"]].append(row)
    out = {}
    for name, group in grouped.items():
        whites = [r["white_worst_case"] for r in group if r.get("white_worst_case") is not None]
        out[name] = {"gray": sum(r["gray_worst_value"] or 0.0 for r in group) / len(group),
                     "white": sum(whites) / len(whites) if len(whites) == len(group) else None,
                     "minutes": sum(r["train_minutes"] for r in group) / len(group), "seeds": len(group)}
    return out


def frontier(points: dict[str, dict[str, float]]) -> set[str]:
    """Candidates no other candidate beats (or ties) on every axis at once."""
    def axes(p: dict[str, float]) -> tuple[float, float, float]:
        return (p["gray"], p["white"] if p["white"] is not None else p["gray"], p["minutes"])

    # with some white boxes run, only the candidates that have one can be compared on all three axes
    if any(p["white"] is not None for p in points.values()):
        points = {name: p for name, p in points.items() if p["white"] is not None}
    keep = set()
    for name, p in points.items():
        mine = axes(p)
        if not any(all(a <= b for a, b in zip(axes(q), mine, strict=True)) and axes(q) != mine
                   for other, q in points.items() if other != name):
            keep.add(name)
    return keep


def plot(results_path: str | Path, png: str | Path | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from arnkit.defenses.arn_recipes import DEFAULT_RECIPE
    from arnkit.io import atomic_path

    results = json.loads(Path(results_path).read_text())
    points = means(results["rows"])
    if not points:
        raise SystemExit(f"{results_path} has no rows yet; run bench/recipe_search.py first")
    white = any(p["white"] is not None for p in points.values())
    best = frontier(points)
    fig, ax = plt.subplots(figsize=(7, 5))
    xs = [p["gray"] for p in points.values()]
    ys = [(p["white"] if p["white"] is not None else NOT_RUN) if white else p["gray"] for p in points.values()]
    measured = [not white or p["white"] is not None for p in points.values()]
    minutes = [p["minutes"] for p in points.values()]
    norm = matplotlib.colors.Normalize(min(minutes), max(minutes))
    ax.scatter([x for x, m in zip(xs, measured, strict=True) if m],
               [y for y, m in zip(ys, measured, strict=True) if m],
               c=[t for t, m in zip(minutes, measured, strict=True) if m], cmap="viridis", norm=norm, s=60,
               edgecolors=["red" if n in best else "none" for n, m in zip(points, measured, strict=True) if m])
    if not all(measured):
        colours = matplotlib.colormaps["viridis"](norm([t for t, m in zip(minutes, measured, strict=True) if not m]))
        ax.scatter([x for x, m in zip(xs, measured, strict=True) if not m], [NOT_RUN] * measured.count(False),
                   facecolors="none", edgecolors=colours, s=60)
        ax.axhline(100.5, color="grey", lw=0.5, ls="--")
        ax.text(ax.get_xlim()[0], NOT_RUN + 1.5, "white box not run", fontsize=7, color="grey")
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=ax, label="ARN training minutes")
    for (name, _), x, y in zip(points.items(), xs, ys, strict=True):
        label = name + (" (default)" if name == f"recipe:{DEFAULT_RECIPE}" else "")
        ax.annotate(label, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points",
                    weight="bold" if name == f"recipe:{DEFAULT_RECIPE}" else "normal")
    ax.set_xlabel("gray-box worst column, error %")
    ax.set_ylabel("white-box worst case, error %" if white else "gray-box worst column (no --white run)")
    rows = results["rows"]
    ax.set_title(f"{rows[0].get('split', '?')} split, {rows[0].get('cpu', '?')}, {rows[-1].get('date', '?')}; "
                 "red edge: frontier", fontsize=8)
    out = Path(png or Path(results_path).with_suffix(".png"))
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
    return out


if __name__ == "__main__":
    print(plot(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
