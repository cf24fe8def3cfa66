"""Perturbation masks for the RP2 attack (Eykholt et al., "Robust Physical-World Attacks on Deep Learning
Visual Classification", CVPR 2018, arXiv:1707.08945) and the ARN paper's LISA patches AP1-AP3.

The RP2 paper shows its masks only as pictures and does not publish them, and the ARN paper names three
patches (AP1, AP2, AP3) without drawing them. The masks here are therefore our own resolution-independent
geometric versions, drawn in normalized coordinates u (columns) and v (rows) in [-1, 1], with the sign
assumed to fill the (cropped) image as in LISA. The octagon holds the pixels whose centres lie inside it.

| name    | shape                                                                  | design | 32x32  | 28x28  |
|---------|------------------------------------------------------------------------|--------|--------|--------|
| octagon | regular octagon, inradius 0.9: the full-sign "subliminal poster"        | 67.1%  | 65.6%  | 67.9%  |
| ap1     | two horizontal bars 1.0 x 0.24 above and below the centre ("love/hate") | 12.0%  | 12.5%  | 10.7%  |
| ap2     | four rectangles 0.4 x 0.36, two each side of the centre ("abstract art") | 4x3.6% | 4x3.5% | 4x3.8% |
| ap3     | one square 0.6 x 0.6, centred horizontally, below the centre            | 9.0%   | 9.8%   | 8.2%   |

Sizes are in normalized units (the image is 2 x 2). Every sticker mask (ap1-ap3) lies inside the octagon.
Rectangle corners and side lengths are rounded to the pixel grid (each side at least one pixel), so the pixel
fractions move by up to a fifth of the design value with the resolution; `MASK_FRACTIONS` holds the design values.

    from arnkit.attacks.masks import make_mask
    m = make_mask("ap2", (32, 32))          # float32 (32, 32, 1), values 0 or 1
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from arnkit.errors import ArnkitError

# Design fractions of the image area (the continuous shapes, before rasterization).
MASK_FRACTIONS: dict[str, float] = {
    "octagon": 8.0 * 0.9**2 * (np.sqrt(2.0) - 1.0) / 4.0,  # area 8 r^2 tan(22.5deg) over the 2 x 2 square
    "ap1": 2 * (1.0 * 0.24) / 4.0,  # two bars 1.0 x 0.24 (of 2 x 2)
    "ap2": 4 * (0.4 * 0.36) / 4.0,  # four rectangles 0.4 x 0.36
    "ap3": (0.6 * 0.6) / 4.0,  # one square 0.6 x 0.6
}

# Rectangles as (u_min, u_max, v_min, v_max) in normalized coordinates.
_AP1_BARS = ((-0.5, 0.5, -0.62, -0.38), (-0.5, 0.5, 0.38, 0.62))
_AP2_RECTS = (
    (-0.75, -0.35, -0.46, -0.1),
    (0.35, 0.75, -0.46, -0.1),
    (-0.75, -0.35, 0.1, 0.46),
    (0.35, 0.75, 0.1, 0.46),
)
_AP3_SQUARE = ((-0.3, 0.3, 0.1, 0.7),)


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalized coordinates of the pixel centres: u along columns, v along rows, both in (-1, 1)."""
    v = (np.arange(height) + 0.5) / height * 2.0 - 1.0
    u = (np.arange(width) + 0.5) / width * 2.0 - 1.0
    vv, uu = np.meshgrid(v, u, indexing="ij")
    return uu, vv


def _edge(coord: float, pixels: int) -> int:
    """Pixel index of a normalized coordinate, rounding half up (so shapes scale evenly with the size)."""
    return int(np.floor((coord + 1.0) / 2.0 * pixels + 0.5))


def _rectangles(rects: tuple[tuple[float, float, float, float], ...]) -> Callable[[int, int], np.ndarray]:
    def draw(height: int, width: int) -> np.ndarray:
        inside = np.zeros((height, width), bool)
        for u0, u1, v0, v1 in rects:
            c0, r0 = _edge(u0, width), _edge(v0, height)
            # Round the size, not the far edge, so equal sizes stay equal (a square stays square); at least
            # one pixel per side, so every sticker survives small resolutions.
            c1 = c0 + max(1, _edge(u1 - u0 - 1.0, width))
            r1 = r0 + max(1, _edge(v1 - v0 - 1.0, height))
            inside[r0:r1, c0:c1] = True
        return inside

    return draw


def _octagon(height: int, width: int, inradius: float = 0.9) -> np.ndarray:
    uu, vv = _grid(height, width)
    au, av = np.abs(uu), np.abs(vv)
    # A regular octagon is a square (|u|, |v| <= r) cut by the diamond |u| + |v| <= r * sqrt(2).
    return (au <= inradius) & (av <= inradius) & (au + av <= inradius * np.sqrt(2.0))


MASKS: dict[str, Callable[[int, int], np.ndarray]] = {
    "octagon": _octagon,
    "ap1": _rectangles(_AP1_BARS),
    "ap2": _rectangles(_AP2_RECTS),
    "ap3": _rectangles(_AP3_SQUARE),
}


def make_mask(mask: str | np.ndarray, size: tuple[int, int], channels: int = 1) -> np.ndarray:
    """A float32 mask of shape (H, W, 1) (or (H, W, channels) for a per-channel user mask).

    `mask` is a name in `MASKS` or a user array of shape (H, W), (H, W, 1) or (H, W, channels) with values in
    [0, 1]. Names give binary masks; a user array is used as given (a soft mask scales the perturbation).
    """
    height, width = int(size[0]), int(size[1])
    if isinstance(mask, str):
        try:
            draw = MASKS[mask.lower()]
        except KeyError:
            raise ArnkitError(f"unknown mask '{mask}'; choose one of {', '.join(MASKS)} or pass an array") from None
        out = draw(height, width).astype(np.float32)[..., None]
        if not out.any():
            raise ArnkitError(f"mask '{mask}' is empty at {height}x{width}; use images of at least 8x8 pixels")
        return out
    arr = np.asarray(mask, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[:2] != (height, width) or arr.shape[2] not in (1, channels):
        raise ArnkitError(
            f"mask shape {np.shape(mask)} does not fit {height}x{width}x{channels} images; "
            f"pass ({height}, {width}), ({height}, {width}, 1) or ({height}, {width}, {channels})"
        )
    if not np.all(np.isfinite(arr)) or arr.min() < 0.0 or arr.max() > 1.0:
        raise ArnkitError("mask values must be finite and in [0, 1] (1 = may be perturbed)")
    if not arr.any():
        raise ArnkitError("mask is all zeros: nothing may be perturbed; mark the patch area with ones")
    return arr


__all__ = ["MASKS", "MASK_FRACTIONS", "make_mask"]
