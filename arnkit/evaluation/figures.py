"""PNG figures of an evaluation, written atomically: the paper's Fig. 3 style image grid, the Fig. 4 ablation
bar chart and the seen/unseen generalization heat-map."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from arnkit.io import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    _pyplot().close(fig)
    return path


def image_grid_png(path: str | Path, rows: Mapping[str, np.ndarray], *, title: str = "",
                   captions: Mapping[str, Sequence[str]] | None = None) -> Path:
    """One row per entry of `rows` (e.g. natural, adversarial, restored by each defense), one column per image;
    `captions[row][i]` goes under image i (e.g. the predicted class)."""
    plt = _pyplot()
    names = list(rows)
    n = min(len(v) for v in rows.values()) if rows else 0
    fig, axes = plt.subplots(len(names), max(n, 1), figsize=(1.1 * max(n, 1) + 1.4, 1.25 * len(names) + 0.4),
                             squeeze=False)
    for r, name in enumerate(names):
        for c in range(max(n, 1)):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= n:
                continue
            image = np.clip(np.asarray(rows[name][c], dtype=np.float32), 0.0, 1.0)
            ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0.0, vmax=1.0)
            if captions and name in captions:
                ax.set_xlabel(str(captions[name][c]), fontsize=7)
        axes[r][0].set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, Path(path))


def bar_chart_png(path: str | Path, groups: Mapping[str, Mapping[str, float]], *, title: str = "",
                  ylabel: str = "error rate (%)") -> Path:
    """Grouped bars: one group per attack (inner keys), one bar per variant (outer keys), like Fig. 4."""
    plt = _pyplot()
    variants = list(groups)
    attacks = list(dict.fromkeys(k for v in groups.values() for k in v))
    width = 0.8 / max(len(variants), 1)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(attacks) * max(len(variants), 1) * 0.5 + 2), 3.4))
    xs = np.arange(len(attacks))
    for i, variant in enumerate(variants):
        values = [groups[variant].get(a, np.nan) for a in attacks]
        ax.bar(xs + (i - (len(variants) - 1) / 2) * width, values, width, label=variant)
    ax.set_xticks(xs, attacks, fontsize=8)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, Path(path))


def heatmap_png(path: str | Path, matrix: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], *,
                seen: np.ndarray | None = None, title: str = "") -> Path:
    """Error-rate heat-map (rows: defenses by seen set; columns: attacks); seen cells are outlined."""
    plt = _pyplot()
    matrix = np.asarray(matrix, dtype=float)
    fig, ax = plt.subplots(figsize=(0.75 * len(col_labels) + 2.5, 0.5 * len(row_labels) + 1.6))
    image = ax.imshow(matrix, cmap="magma_r", vmin=0.0, vmax=max(100.0 if np.nanmax(matrix) > 50 else 50.0, 1.0))
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(row_labels)), row_labels, fontsize=8)
    for (r, c), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            ax.text(c, r, f"{value:.1f}", ha="center", va="center", fontsize=7,
                    color="white" if value > 0.6 * image.get_clim()[1] else "black")
        if seen is not None and seen[r, c]:
            ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="#1f77b4", linewidth=2))
    fig.colorbar(image, ax=ax, label="error rate (%)")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, Path(path))


def curve_png(path: str | Path, series: Mapping[str, Sequence[Sequence[float]]], *, xlabel: str,
              ylabel: str = "error rate (%)", title: str = "", log_x: bool = False
              ) -> tuple[Path, dict[str, list[list[float]]]]:
    """One line per entry of `series` ({label: [[x, y], ...]}), e.g. error vs iterations per defense.
    Returns the path and the (x, y) pairs read back from the drawn lines, so a CSV written from them holds
    exactly what the figure shows."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    for label, points in series.items():
        pts = np.asarray(points, dtype=float).reshape(-1, 2)
        ax.plot(pts[:, 0], pts[:, 1], marker="o", markersize=3, label=label)
    if log_x:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-2.0, 102.0)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    if series:
        ax.legend(fontsize=7)
    fig.tight_layout()
    plotted = {line.get_label(): [[float(a), float(b)] for a, b in zip(line.get_xdata(), line.get_ydata(), strict=True)]
               for line in ax.get_lines()}
    return _save(fig, Path(path)), plotted
