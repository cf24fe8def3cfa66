"""The paper's published error rates (%), ICML 2021 ARN Tables 1-2 (MNIST, gray box) and the LISA table, as
data: {dataset: {paper row: {column label: error %}}}. Column labels are arnkit's evaluation labels
(`pgd_n`, `pgd_n@0.4`, `ap1`). Copied from docs/results-mnist.md and docs/results-lisa.md, which quote the
paper beside our runs; `arnkit report` shows a cell's paper value beside ours where the row and column match.
"""

from __future__ import annotations

from collections.abc import Iterable

_MNIST_COLUMNS = ("clean", "pgd_n", "pgd_t", "cw_n", "ddn_n", "aa_n", "jsma_t", "pgd_n@0.4", "aa_n@0.4",
                  "sta_n", "sta_t", "fwa_n", "fwa_n@0.4")
_MNIST_ROWS = {  # Table 1 then Table 2, in the column order above
    "NONE": (0.64, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 98.56, 99.91),
    "AT_PGD": (1.19, 9.63, 8.38, 6.42, 5.91, 12.6, 28.59, 54.34, 60.06, 21.55, 31.49, 42.41, 61.55),
    "DOA_7x7": (6.27, 65.23, 38.84, 11.48, 10.53, 68.49, 19.81, 86.76, 92.51, 13.54, 19.24, 23.29, 40.16),
    "APE-G_PP": (1.57, 8.76, 3.2, 2.34, 2.15, 12.4, 36.49, 34.86, 46.72, 16.57, 21.4, 33.95, 51.81),
    "APE-G_DP": (1.73, 10.39, 5.81, 2.93, 1.91, 15.26, 38.04, 37.33, 49.38, 20.18, 25.63, 37.5, 58.16),
    "HGD_PP": (1.36, 1.89, 1.3, 1.67, 1.54, 2.43, 50.62, 75.79, 90.34, 21.32, 36.41, 50.43, 71.12),
    "HGD_DP": (1.18, 2.56, 1.91, 1.79, 1.23, 3.3, 53.73, 78.95, 93.76, 25.01, 38.47, 52.84, 75.35),
    "ARN_PP": (1.16, 1.85, 1.29, 1.45, 1.28, 2.38, 16.75, 15.27, 26.84, 9.08, 13.73, 25.79, 43.76),
    "ARN_DP": (1.11, 1.91, 1.8, 1.53, 1.22, 2.97, 17.81, 17.63, 29.74, 10.14, 14.51, 28.5, 47.63),
}
_LISA_COLUMNS = ("clean", "ap1", "ap2", "ap3", "ap4")
_LISA_ROWS = {  # NONE's AP4 was not extracted from the paper
    "NONE": (0.86, 55.46, 62.07, 61.21),
    "AT_PGD": (3.16, 50.29, 43.68, 56.03, 33.62),
    "APE-G": (3.43, 8.33, 5.43, 21.56, 24.71),
    "DOA_9x5": (2.59, 18.39, 6.90, 25.86, 8.91),
    "DOA_7x7": (5.17, 16.95, 11.49, 19.83, 10.06),
    "ARN": (2.31, 5.46, 3.74, 6.90, 6.03),
}

PAPER: dict[str, dict[str, dict[str, float]]] = {
    "mnist": {row: dict(zip(_MNIST_COLUMNS, values, strict=True)) for row, values in _MNIST_ROWS.items()},
    "lisa": {row: dict(zip(_LISA_COLUMNS, values, strict=False)) for row, values in _LISA_ROWS.items()},
}

# arnkit's defense names -> the paper's row stem; the seen set picks the suffix (PP: PGD_N + PGD_T seen, DP:
# DDN_N + PGD_N seen), as in the paper's Table 1 row names.
_STEMS = {"none": "NONE", "arn": "ARN", "apeg": "APE-G", "ape-g": "APE-G", "hgd": "HGD", "at_pgd": "AT_PGD",
          "doa": "DOA_7x7", "doa_7x7": "DOA_7x7", "doa_9x5": "DOA_9x5"}
_SUFFIXES = {frozenset({"pgd_n", "pgd_t"}): "_PP", frozenset({"ddn_n", "pgd_n"}): "_DP"}


def paper_row(dataset: str, defense: str, seen: Iterable[str] = ()) -> str | None:
    """The paper's row for an arnkit defense (`arn` seen pgd_n,pgd_t on mnist -> 'ARN_PP'), or None."""
    rows = PAPER.get(str(dataset).lower(), {})
    name = str(defense).strip()
    if name.upper() in rows:
        return name.upper()
    stem = _STEMS.get(name.lower().removesuffix(".keras"))
    if stem is None:
        return None
    for candidate in (stem + _SUFFIXES.get(frozenset(s.lower() for s in seen), ""), stem):
        if candidate in rows:
            return candidate
    return None


def paper_error(dataset: str, defense: str, column: str, seen: Iterable[str] = ()) -> float | None:
    """The paper's error (%) for this cell, or None where the paper has no number for it."""
    row = paper_row(dataset, defense, seen)
    return PAPER[str(dataset).lower()][row].get(str(column).lower()) if row else None
