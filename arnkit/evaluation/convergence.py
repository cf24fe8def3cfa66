"""Convergence curves of a white-box evaluation, after Carlini et al. 2019 ("On Evaluating Adversarial
Robustness", arXiv:1902.06705, Sections 4.3 and 5): error vs attack iterations (does more work change the
number?) and error vs eps (does the error rise to 100% as the budget grows?). Pure arithmetic over an
`error(...)` callback, so the orchestration decides what one point costs (arnkit.evaluation.checks caches them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from arnkit.errors import ArnkitError
from arnkit.evaluation.sanity import ITERATION_TOLERANCE

EPS_POINTS = 10  # grid steps between 0 and the cap


def check_max_iterations(max_iterations: int, base: int) -> int:
    if int(max_iterations) != max_iterations or int(max_iterations) < 2 * base:
        raise ArnkitError(f"--max-iterations must be an integer >= twice the attack's {base} iterations "
                          f"({2 * base}) for a convergence curve, got {max_iterations}")
    return int(max_iterations)


def iteration_curve(error: Callable[[int], float], base: int, max_iterations: int,
                    tolerance: float = ITERATION_TOLERANCE) -> dict[str, Any]:
    """Double the iterations from `base` until two successive errors differ by <= `tolerance` points or the
    next count would pass `max_iterations`. `converged` says whether the base number is within tolerance
    of the next doubling; `converged_at` is the first count that was (None: not within the cap)."""
    points = [[base, float(error(base))]]
    converged_at = None
    count = base
    while 2 * count <= max_iterations:
        count *= 2
        points.append([count, float(error(count))])
        if abs(points[-1][1] - points[-2][1]) <= tolerance:
            converged_at = points[-2][0]
            break
    return {"points": points, "converged": converged_at == base, "converged_at": converged_at,
            "tolerance": tolerance, "max_iterations": max_iterations}


def eps_grid(eps: float, cap: float, points: int = EPS_POINTS) -> list[float]:
    """0, cap/points, ..., cap, with the reported eps itself inserted so the curve passes through the table."""
    grid = {round(float(v), 6) for v in np.linspace(0.0, cap, points + 1)}
    grid.add(round(float(eps), 6))
    return sorted(grid)


def eps_curve(error: Callable[[float], float], grid: list[float]) -> dict[str, Any]:
    """Error at each eps of `grid`, in increasing order, stopping at the first 100% (every larger budget
    contains that one's examples). `monotone` is False when the error ever falls as eps grows: the attack,
    not the defense, is then at fault (Carlini et al. 2019, Section 5.3)."""
    points = []
    for eps in grid:
        points.append([float(eps), float(error(eps))])
        if points[-1][1] >= 100.0:
            break
    errors = [p[1] for p in points]
    return {"points": points, "monotone": all(b >= a for a, b in zip(errors, errors[1:], strict=False)),
            "reached_100": bool(errors and errors[-1] >= 100.0), "cap": float(grid[-1]) if grid else 0.0}
