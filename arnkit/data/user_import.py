"""Import a user's images as a workspace dataset: class folders of PNG/JPEG files, or an `.npz` of arrays.

    from arnkit.data.user_import import import_folder, import_npz
    import_folder("digits_png/", data_dir, name="digits")               # PATH/train/<class>/*, PATH/test/<class>/*
    import_folder("flat/", data_dir, name="signs", test_fraction=0.2)   # or PATH/<class>/*, split here
    import_npz("arrays.npz", data_dir, name="mine", eps=0.1)

Everything is read and checked in memory first; a bad input is one `ArnkitError` line and nothing is written.

Rules (documented in docs/data.md):
- class names are the training class folders' names, sorted; labels are their index. A test class must be one
  of them (a training class may have no test images).
- colour: a dataset is RGB when any of its images is colour (Pillow modes other than 1/L/LA/I/I;16/F, a
  palette image included); its grayscale images are then replicated to 3 channels. Otherwise it is grayscale,
  1 channel. Alpha is dropped.
- size: every image must have the same size, unless `size=(H, W)` resizes them all (bilinear). Images smaller
  than 8x8 are refused: the ROA patch (budgets.derived scales it to the image side) and the zoo's LeNet need
  at least that.
- the single-tree split (`test_fraction`): per class, a seeded shuffle puts round(fraction * n) images in
  test, at least one image always staying in train (stratified, reproducible).
- eps: given, or DEFAULT_EPS by channel count (0.3 grayscale, 8/255 RGB), recorded with the rule that chose it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from arnkit.data import budgets
from arnkit.data.base import pixel_range_fix
from arnkit.data.user import (
    ARRAYS,
    BUDGET_RULE,
    DEFAULT_EPS,
    DEFAULT_EPS_RULE,
    META,
    NAME_PATTERN,
    dataset_folder,
)
from arnkit.errors import ArnkitError

MIN_SIDE = 8
SPLIT_SEED = 0
IMAGE_FORMATS = ("PNG", "JPEG")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
RESERVED = ("mnist", "lisa", "cifar10", "synthetic")


def check_name(name: str, data_dir: Path, *, force: bool = False) -> str:
    """The dataset name, refused in one line when malformed, a built-in's, or taken (unless `force`)."""
    from arnkit.data import SOURCES

    key = str(name).strip()
    if key.lower() in (*RESERVED, *SOURCES):
        raise ArnkitError(f"dataset name '{name}' is a built-in dataset's; choose another --name")
    if not NAME_PATTERN.match(key):
        raise ArnkitError(f"dataset name '{name}' is not allowed; use lowercase letters, digits, '-' and '_' "
                          "(for example --name digits)")
    if (dataset_folder(data_dir, key) / META).exists() and not force:
        raise ArnkitError(f"dataset '{key}' already exists in {data_dir}; pass --force to replace it or choose "
                          "another --name")
    return key


def parse_size(size: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """'HxW' (or (H, W)) -> (H, W); None stays None."""
    if size is None:
        return None
    if isinstance(size, tuple):
        h, w = size
    else:
        try:
            h, w = (int(v) for v in str(size).lower().split("x"))
        except ValueError:
            raise ArnkitError(f"--size must be HxW, for example 32x32, got '{size}'") from None
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ArnkitError(f"--size {h}x{w} is smaller than {MIN_SIDE}x{MIN_SIDE}; attacks' patches and the zoo "
                          "models need at least that")
    return int(h), int(w)


# ----------------------------------------------------------------------------------------------- folders


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _open_image(path: Path) -> Any:
    """The decoded Pillow image at `path`; a file that is not a readable PNG or JPEG is one line naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, not later
            if image.format not in IMAGE_FORMATS:
                raise ArnkitError(f"{path} is a {image.format} image; arnkit imports PNG or JPEG only: convert "
                                  "it or remove it")
            return image.copy()
    except ArnkitError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ArnkitError(f"{path} is not a readable PNG or JPEG image ({type(exc).__name__}); remove or "
                          "replace it") from None


def _read_tree(root: Path) -> dict[str, list[tuple[Path, Any]]]:
    """class name -> [(file, image)] for the class folders under `root`."""
    classes: dict[str, list[tuple[Path, Any]]] = {}
    for folder in _class_folders(root):
        files = _files(folder)
        if not files:
            raise ArnkitError(f"class folder {folder} is empty; put its images in or remove it")
        classes[folder.name] = [(f, _open_image(f)) for f in files]
    return classes


def _to_array(images: list[tuple[Path, Any]], size: tuple[int, int], rgb: bool) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(images), size[0], size[1], 3 if rgb else 1), np.uint8)
    for i, (_, image) in enumerate(images):
        image = image.convert("RGB" if rgb else "L")
        if image.size != (size[1], size[0]):  # Pillow sizes are (W, H)
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, np.uint8)
        out[i] = pixels if rgb else pixels[..., None]
    return out


def _split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded (train indices, test indices) of `labels`."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = min(int(round(fraction * len(members))), len(members) - 1)
        test.extend(members[:n_test])
        train.extend(members[n_test:])
    return np.sort(np.asarray(train, np.int64)), np.sort(np.asarray(test, np.int64))


def read_folder(path: str | Path, *, size: str | tuple[int, int] | None = None,
                test_fraction: float = 0.2) -> dict[str, Any]:
    """Read and check class folders at `path`; returns the arrays and what the record says of them."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ArnkitError(f"image folder not found: {root}; pass a folder of class subfolders")
    wanted = parse_size(size)
    split_tree = (root / "train").is_dir()
    if split_tree:
        if not (root / "test").is_dir():
            raise ArnkitError(f"{root} has train/ but no test/; add test/<class>/ folders, or put the class "
                              "folders directly under it and use --test-fraction")
        train, test = _read_tree(root / "train"), _read_tree(root / "test")
        layout = "train/<class>, test/<class>"
    else:
        train, test = _read_tree(root), {}
        layout = f"<class>, split with test fraction {test_fraction}"
        if not 0.0 < float(test_fraction) < 1.0:
            raise ArnkitError(f"--test-fraction must be between 0 and 1, got {test_fraction}")
    if not train:
        raise ArnkitError(f"no class folders with images in {root}; expected {root}/<class>/*.png or "
                          f"{root}/train/<class>/* and {root}/test/<class>/*")
    if len(train) < 2:
        raise ArnkitError(f"{root} has a single class ({next(iter(train))}); a classifier needs at least 2 "
                          "class folders")
    class_names = sorted(train)
    unknown = sorted(set(test) - set(train))
    if unknown:
        raise ArnkitError(f"test class {unknown[0]!r} is not among the training classes ({', '.join(class_names)}); "
                          "rename or remove its folder")
    every = [item for group in (train, test) for images in group.values() for item in images]
    sizes: dict[tuple[int, int], Path] = {}
    for file, image in every:
        sizes.setdefault((image.size[1], image.size[0]), file)
    if wanted is None:
        if len(sizes) > 1:
            (a, fa), (b, fb) = list(sizes.items())[:2]
            raise ArnkitError(f"images have different sizes ({a[0]}x{a[1]} in {fa}, {b[0]}x{b[1]} in {fb}); "
                              "pass --size HxW to resize them all")
        wanted = next(iter(sizes))
        if min(wanted) < MIN_SIDE:
            raise ArnkitError(f"images are {wanted[0]}x{wanted[1]}, smaller than {MIN_SIDE}x{MIN_SIDE} (attacks' "
                              "patches and the zoo models need at least that); pass --size HxW to upscale")
    rgb = any(image.mode not in GRAY_MODES for _, image in every)

    def arrays(group: dict[str, list[tuple[Path, Any]]]) -> tuple[np.ndarray, np.ndarray]:
        items = [item for name in class_names for item in group.get(name, [])]
        labels = np.asarray([i for i, name in enumerate(class_names) for _ in group.get(name, [])], np.int64)
        return _to_array(items, wanted, rgb), labels

    x_train, y_train = arrays(train)
    if split_tree:
        x_test, y_test = arrays(test)
    else:
        train_idx, test_idx = _split(y_train, float(test_fraction), SPLIT_SEED)
        x_test, y_test = x_train[test_idx], y_train[test_idx]
        x_train, y_train = x_train[train_idx], y_train[train_idx]
    if len(x_test) == 0:
        raise ArnkitError(f"{root} gives no test images; add test/<class>/ images or raise --test-fraction")
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "class_names": class_names, "layout": layout, "resized": size is not None}


# ------------------------------------------------------------------------------------------------------ npz


def read_npz(path: str | Path) -> dict[str, Any]:
    """Read and check an .npz of x_train, y_train, x_test, y_test (and optional class_names)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ArnkitError(f"npz file not found: {file}")
    try:
        with np.load(file, allow_pickle=False) as archive:
            found = {k: archive[k] for k in archive.files}
    except Exception as exc:  # numpy raises several kinds for a bad archive or a pickled array
        raise ArnkitError(f"{file} is not a readable .npz of plain arrays ({type(exc).__name__}); save it with "
                          "numpy.savez") from None
    return read_arrays(found, str(file))


def read_arrays(found: dict[str, Any], origin: str = "the input") -> dict[str, Any]:
    """Check in-memory arrays x_train, y_train, x_test, y_test (and optional class_names), as `read_npz` does
    for a file; `origin` names them in the messages."""
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in found]
    if missing:
        raise ArnkitError(f"{origin} lacks the array(s) {', '.join(missing)}; it needs x_train, y_train, x_test, "
                          "y_test (class_names optional)")
    found = {k: np.asarray(v) for k, v in found.items()}
    xs = {split: _images(found[f"x_{split}"], f"x_{split}") for split in ("train", "test")}
    if xs["train"].shape[1:] != xs["test"].shape[1:]:
        raise ArnkitError(f"x_train images are {xs['train'].shape[1:]}, x_test images {xs['test'].shape[1:]}; "
                          "both splits need the same image shape")
    ys = {split: _labels(found[f"y_{split}"], len(xs[split]), f"y_{split}") for split in ("train", "test")}
    if len(np.unique(ys["train"])) < 2:
        raise ArnkitError("y_train has a single class; a classifier needs at least 2 classes")
    if "class_names" in found:
        names = [str(n) for n in np.asarray(found["class_names"]).reshape(-1)]
        if len(set(names)) != len(names):
            raise ArnkitError("class_names has duplicates; give each class one name")
    else:
        names = [str(i) for i in range(int(ys["train"].max()) + 1)]
    for split, y in ys.items():
        if y.max() >= len(names):
            raise ArnkitError(f"y_{split} has label {int(y.max())}, but there are {len(names)} classes "
                              f"({'class_names' if 'class_names' in found else 'from y_train'}); labels must be "
                              "0 .. classes-1")
    return {"x_train": xs["train"], "y_train": ys["train"], "x_test": xs["test"], "y_test": ys["test"],
            "class_names": names, "layout": "npz", "resized": False}


def _images(x: np.ndarray, key: str) -> np.ndarray:
    """NHWC images as uint8 0-255 or float32 [0,1]; NHW is grayscale."""
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ArnkitError(f"{key} has shape {x.shape}; images must be NHWC with 1 or 3 channels (or NHW)")
    if len(x) == 0:
        raise ArnkitError(f"{key} is empty; each split needs images")
    if min(x.shape[1:3]) < MIN_SIDE:
        raise ArnkitError(f"{key} images are {x.shape[1]}x{x.shape[2]}, smaller than {MIN_SIDE}x{MIN_SIDE} "
                          "(attacks' patches and the zoo models need at least that); upscale them")
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.integer):
        if x.min() < 0 or x.max() > 255:
            raise ArnkitError(f"{key} has integer values outside 0-255 (min {x.min()}, max {x.max()}); "
                              "store images as uint8 0-255 or float in [0, 1]")
        return x.astype(np.uint8)
    if not np.issubdtype(x.dtype, np.floating):
        raise ArnkitError(f"{key} has dtype {x.dtype}; store images as uint8 0-255 or float in [0, 1]")
    if not np.isfinite(x).all():
        raise ArnkitError(f"{key} has NaN or infinite values; clean them first")
    if x.min() < 0.0 or x.max() > 1.0:
        raise ArnkitError(f"{key} has float values outside [0, 1] (range [{float(x.min()):.4g}, "
                          f"{float(x.max()):.4g}]; expected [0, 1]); "
                          f"{pixel_range_fix(float(x.min()), float(x.max()))}")
    return x.astype(np.float32)


def _labels(y: np.ndarray, n: int, key: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise ArnkitError(f"{key} has shape {y.shape}; it needs one integer label per image ({n},)")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating) or not np.isfinite(y).all() or (y != np.round(y)).any():
            raise ArnkitError(f"{key} has dtype {y.dtype} with non-integer labels; labels are class indices")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise ArnkitError(f"{key} has negative label {int(y.min())}; labels must be 0 .. classes-1")
    return y


# ----------------------------------------------------------------------------------------------- storing


def _store(read: dict[str, Any], data_dir: Path, *, name: str, eps: float | None, source: Path, kind: str,
           force: bool) -> dict[str, Any]:
    """Pick eps, then write arrays.npz and dataset.json atomically (the json last); the import result."""
    import arnkit
    from arnkit.io import atomic_path, sha256_file, write_json_atomic

    x_train = read["x_train"]
    shape = tuple(int(v) for v in x_train.shape[1:])
    channels = shape[-1]
    if eps is None:
        eps_value, rule, defaulted = DEFAULT_EPS[channels], DEFAULT_EPS_RULE[channels], True
    else:
        eps_value, rule, defaulted = float(eps), "given (--eps)", False
    budgets.derived(eps_value, shape)  # a bad eps is one line, before anything is written
    final = dataset_folder(data_dir, name)
    old_sha = _recorded_sha(final)
    # Built in a hidden folder beside it and renamed into place: a failed import leaves the old one as it was.
    folder = final.parent / f".{name}.importing-{os.getpid()}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    try:
        with atomic_path(folder / ARRAYS) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **{k: read[k] for k in ("x_train", "y_train", "x_test", "y_test")})
        counts = {"train": len(read["y_train"]), "test": len(read["y_test"])}
        meta = {
            "name": name, "shape": list(shape), "num_classes": len(read["class_names"]),
            "class_names": list(read["class_names"]), "counts": counts,
            "per_class": {split: np.bincount(read[f"y_{split}"], minlength=len(read["class_names"])).tolist()
                          for split in ("train", "test")},
            "eps": eps_value, "eps_rule": rule, "eps_default": defaulted, "budget_rule": BUDGET_RULE,
            "source": str(source.resolve()), "source_kind": kind, "layout": read["layout"],
            "resized": read["resized"], "dtype": str(x_train.dtype),
            "arrays": ARRAYS, "sha256": sha256_file(folder / ARRAYS), "arnkit_version": arnkit.__version__,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        write_json_atomic(folder / META, meta)
        _swap_into_place(folder, final, force=force)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    result = {"dataset": name, "path": str(final), **{k: meta[k] for k in (
        "shape", "num_classes", "class_names", "counts", "eps", "eps_rule", "eps_default", "sha256", "source")}}
    if old_sha is not None and old_sha != meta["sha256"]:
        # Targets and adversarial sets are cached by dataset name (runs.target.target_spec): those made from
        # the replaced images would be reused, so say so.
        result["warning"] = (f"replaced dataset '{name}' with other images: delete the workspace's "
                             f"targets/{name}-*, adversarial/{name}-*, defenses/{name}-* and evaluations of it, "
                             "or they are reused")
    return result


def _recorded_sha(folder: Path) -> str | None:
    try:
        return str(json.loads((folder / META).read_text())["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _swap_into_place(built: Path, final: Path, *, force: bool) -> None:
    if final.exists():
        if not force:  # another import won the race since check_name
            shutil.rmtree(built)
            raise ArnkitError(f"dataset folder {final} already exists; pass --force to replace it")
        old = final.parent / f".{final.name}.replaced-{os.getpid()}"
        os.replace(final, old)
        os.replace(built, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(built, final)


def _check_eps(eps: float | None) -> None:
    if eps is not None and not 0.0 < float(eps) <= 1.0:
        raise ArnkitError(f"--eps must be an L-inf radius in (0, 1] pixel units, got {eps} (8/255 is about 0.0314)")


def import_folder(path: str | Path, data_dir: str | Path, *, name: str, eps: float | None = None,
                  size: str | tuple[int, int] | None = None, test_fraction: float = 0.2,
                  force: bool = False) -> dict[str, Any]:
    """Import class folders of PNG/JPEG images at `path` as dataset `name` of `data_dir`."""
    key = check_name(name, Path(data_dir), force=force)
    _check_eps(eps)
    read = read_folder(path, size=size, test_fraction=test_fraction)
    return _store(read, Path(data_dir), name=key, eps=eps, source=Path(path), kind="folder", force=force)


def import_arrays(arrays: dict[str, Any], data_dir: str | Path, *, name: str, eps: float | None = None,
                  force: bool = False) -> dict[str, Any]:
    """Import in-memory arrays (x_train, y_train, x_test, y_test, optional class_names) as dataset `name`."""
    key = check_name(name, Path(data_dir), force=force)
    _check_eps(eps)
    read = read_arrays(arrays)
    return _store(read, Path(data_dir), name=key, eps=eps, source=Path("<arrays>"), kind="arrays", force=force)


def import_npz(path: str | Path, data_dir: str | Path, *, name: str, eps: float | None = None,
               force: bool = False) -> dict[str, Any]:
    """Import the arrays of `path` (.npz) as dataset `name` of `data_dir`."""
    key = check_name(name, Path(data_dir), force=force)
    _check_eps(eps)
    read = read_npz(path)
    return _store(read, Path(data_dir), name=key, eps=eps, source=Path(path), kind="npz", force=force)


__all__ = ["DEFAULT_EPS", "MIN_SIDE", "check_name", "import_arrays", "import_folder", "import_npz", "read_arrays",
           "read_folder", "read_npz"]
