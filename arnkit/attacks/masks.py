"""Perturbation masks: RP2's full-sign octagon (Eykholt et al., "Robust Physical-World Attacks on Deep Learning
Visual Classification", CVPR 2018, arXiv:1707.08945) and the four sticker masks AP1-AP4 of the ARN paper's
LISA block (Table 2).

The ARN paper names its patches AP1-AP4 without drawing them. It follows DOA (Wu et al. ICLR 2020,
tongwu2020/phattacks), whose physical attack on LISA (`sign/experiment/physical_attack.py`) uses exactly four
32x32 masks from `sign/mask/`; we take them to be AP1-AP4, in the order that script lists them:

| name | source file (32x32)                   | shape                                             | pixels at 32x32 |
|------|---------------------------------------|---------------------------------------------------|-----------------|
| ap1  | `mask_l1loss_uniform_rectangles.png`  | RP2's sticker mask: four small rectangles          | 30 (2.9%)       |
| ap2  | `maskdone4.jpg`                       | one graffiti-like blob, upper middle               | 49 (4.8%)       |
| ap3  | `maskdone5.jpg`                       | one blob, centre right                             | 45 (4.4%)       |
| ap4  | `maskdone6.jpg`                       | three strokes: top, upper left, upper middle       | 29 (2.8%)       |

ap1's file is RP2's (evtimovi/robust_physical_perturbations, MIT; also `../shared/data/rp2-masks/`). The three
`maskdone` files are JPEGs: besides the shape (values >= 0.89) they hold 46-61 faint compression artifacts (values
<= 0.15). The masks here are the shapes, binarized at 0.5 and stored below as pixel runs; the artifacts are
dropped (DOA's attack multiplies its noise by the mask at every step, so they let at most ~0.01 through).

At another size a mask is resampled by nearest neighbour from its 32x32 grid (the sign is assumed to fill the
image, as in LISA's crops), so a 64x64 image gets each pixel doubled. The octagon stays resolution-independent:
a regular octagon of inradius 0.9 in normalized coordinates u (columns), v (rows) in [-1, 1] (65.6% of a 32x32
image; RP2's own `octagon.png` covers the whole 32x32 square's inscribed octagon, 82%).

    from arnkit.attacks.masks import make_mask
    m = make_mask("ap2", (32, 32))          # float32 (32, 32, 1), values 0 or 1
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from arnkit.errors import ArnkitError

_GRID = 32
# (row, first column, column after the last) of each run of masked pixels on the 32x32 grid.
_RUNS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "ap1": ((15, 8, 10), (16, 8, 10), (17, 8, 10), (18, 8, 10), (18, 20, 23), (19, 20, 23), (22, 9, 13),
            (23, 9, 13), (24, 9, 13), (24, 18, 20), (25, 18, 20)),
    "ap2": ((7, 14, 18), (8, 12, 18), (9, 11, 17), (10, 11, 19), (11, 10, 19), (12, 9, 18), (13, 9, 16)),
    "ap3": ((15, 16, 19), (16, 16, 21), (17, 15, 23), (18, 15, 25), (19, 14, 23), (20, 14, 20), (21, 13, 17)),
    "ap4": ((3, 13, 15), (4, 12, 15), (5, 12, 15), (8, 17, 18), (9, 17, 18), (10, 16, 18), (11, 2, 3),
            (11, 16, 18), (12, 1, 5), (12, 15, 18), (13, 1, 7), (13, 17, 18)),
}
STICKERS: tuple[str, ...] = tuple(_RUNS)
# Where each sticker mask comes from (file in tongwu2020/phattacks `sign/mask/`).
SOURCES: dict[str, str] = {
    "ap1": "mask_l1loss_uniform_rectangles.png", "ap2": "maskdone4.jpg", "ap3": "maskdone5.jpg",
    "ap4": "maskdone6.jpg",
}


def _grid_mask(name: str) -> np.ndarray:
    mask = np.zeros((_GRID, _GRID), bool)
    for row, start, stop in _RUNS[name]:
        mask[row, start:stop] = True
    return mask


def _sticker(name: str) -> Callable[[int, int], np.ndarray]:
    def draw(height: int, width: int) -> np.ndarray:
        rows = np.minimum((np.arange(height) + 0.5) * _GRID / height, _GRID - 1).astype(int)
        cols = np.minimum((np.arange(width) + 0.5) * _GRID / width, _GRID - 1).astype(int)
        return _grid_mask(name)[np.ix_(rows, cols)]

    return draw


def _octagon(height: int, width: int, inradius: float = 0.9) -> np.ndarray:
    v = (np.arange(height) + 0.5) / height * 2.0 - 1.0
    u = (np.arange(width) + 0.5) / width * 2.0 - 1.0
    av, au = np.abs(np.meshgrid(v, u, indexing="ij"))
    # A regular octagon is a square (|u|, |v| <= r) cut by the diamond |u| + |v| <= r * sqrt(2).
    return (au <= inradius) & (av <= inradius) & (au + av <= inradius * np.sqrt(2.0))


MASKS: dict[str, Callable[[int, int], np.ndarray]] = {"octagon": _octagon, **{n: _sticker(n) for n in STICKERS}}
# Fractions of the image area: the octagon's continuous area, the stickers' pixel count at 32x32.
MASK_FRACTIONS: dict[str, float] = {
    "octagon": 8.0 * 0.9**2 * (np.sqrt(2.0) - 1.0) / 4.0,
    **{n: float(_grid_mask(n).mean()) for n in STICKERS},
}


def mask_spec(mask: str | np.ndarray) -> str | np.ndarray:
    """What an attack keeps of its `mask` argument: a known name, lower-cased, or a float32 copy of an array."""
    if isinstance(mask, str):
        if mask.lower() not in MASKS:
            raise ArnkitError(f"unknown mask '{mask}'; choose one of {', '.join(MASKS)} or pass an array")
        return mask.lower()
    return np.array(mask, dtype=np.float32, copy=True)


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
            raise ArnkitError(f"mask '{mask}' is empty at {height}x{width}; use images of at least 16x16 pixels")
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


__all__ = ["MASKS", "MASK_FRACTIONS", "SOURCES", "STICKERS", "make_mask", "mask_spec"]
