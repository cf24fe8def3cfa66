"""LISA US traffic signs (Mogelmose et al. 2012), 16 classes, 32x32 RGB, as in the ARN paper (Section 4.1).

The paper follows DOA (Wu et al. 2020b, "Defending Against Physically Realizable Attacks on Image
Classification", tongwu2020/phattacks) and RP2 / LISA-CNN (Eykholt et al. 2018): "16 best quality signs with
3,509 training images and 1,148 test images". The classes are RP2's 17 (`lisa-cnn-attack/mapping.txt` in
evtimovi/robust_physical_perturbations) minus `speedLimitUrdbl`. That dropped class is confirmed from DOA's
prepared data (phattacks commit cb1f365, `sign/LISA/{train,val}/<k>/`): its class folders are RP2's indices
0..16 without 12 (= speedLimitUrdbl), and they hold exactly 3,509 train and 1,148 val images.
Labels here are RP2's order with speedLimitUrdbl removed (stop is 12, yield is 15); note that DOA's PyTorch
models use torchvision ImageFolder's string-sorted folder order ('0', '1', '10', ...), which differs.

The way in is `arnkit data import lisa PATH` (`arnkit.data.lisa_import.import_lisa`), with PATH DOA's prepared
release (the "Data&Model" asset of tongwu2020/phattacks): a `.tar` / `.tar.gz` / `.zip` of the folder `LISA/`, or
that folder extracted, with `train/<k>/*.png` and `val/<k>/*.png` (k = RP2 class index; a `test/` folder is
ignored). It is checked by name first (the 16 class folders in both splits, exactly 3,509 / 1,148 images), then
built once (its train/val split kept as train/test, the 64x64 crops resized to 32x32) and reused on a re-import
of the same content.

Still supported: a manual download in `<data_dir>/downloads/manual/` (TFDS's manual_dir), built on first load:
- the original archive `signDatabasePublicFramesOnly.zip`, or its extracted folder (with `allAnnotations.csv`);
  each annotation whose tag is one of the 16 classes is cropped to its bounding box and resized to 32x32
  (PIL bilinear with antialiasing). Split: per class, annotations sorted by (frame, box) are permuted with
  `numpy.random.default_rng([SPLIT_SEED, label])` and the first round(n * 1148/4657) (~24.7%, the paper's
  ratio) go to test. Deterministic, independent of the CSV's row order. Frames of one video track may fall
  on both sides, as in a plain random split; the counts differ from the paper's, whose exact filtering is
  not published as code.
- DOA's release as above: the folder `LISA/` or `LISA.zip` (not count-checked on this route).
When both are present, DOA's release wins (it reproduces the paper's split).
The TFDS builder (`arnkit.data.lisa_builder.ArnkitLisa`, dataset `arnkit_lisa`) caches the result in
`<data_dir>/arnkit_lisa/`.

Example:
    >>> from arnkit import data
    >>> x, y, info = data.load_arrays("lisa", "train")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from arnkit.data import budgets
from arnkit.data.base import DatasetInfo
from arnkit.data.lisa_files import (  # noqa: F401  (re-exported: the names importers use from arnkit.data.lisa)
    ANNOTATIONS,
    BUILDER_NAME,
    BUILDER_VERSION,
    CLASS_NAMES,
    DOA_COUNTS,
    DOA_FOLDER,
    DOA_ZIP,
    DROPPED_CLASS,
    MANUAL_DOWNLOAD_INSTRUCTIONS,
    ORIGINAL_FOLDER,
    ORIGINAL_ZIP,
    RP2_CLASS_NAMES,
    SPLIT_SEED,
    TEST_FRACTION,
    LisaFiles,
    find_lisa_files,
    missing_message,
)
from arnkit.data.tfds_local import manual_dir, prepared_dir, read_sources, read_split
from arnkit.errors import ArnkitError


class LisaSource:
    info = DatasetInfo(
        name="lisa", shape=(32, 32, 3), num_classes=16, class_names=CLASS_NAMES, budgets=budgets.LISA,
        # DOA's 3,509 training images less the val tracks (data/splits.py): 3,128 train + 381 val.
        split_sizes={"train": 3128, "val": 381, "test": DOA_COUNTS["test"]}, default_model="lisa_cnn",
        description="LISA traffic signs, 16 classes, 32x32 (`arnkit data import lisa PATH`; sizes are the paper's / DOA's)",
    )

    def availability(self, data_dir: Path) -> str | None:
        if prepared_dir(data_dir, BUILDER_NAME) is not None or find_lisa_files(manual_dir(data_dir)) is not None:
            return None
        return missing_message(data_dir)

    def load_arrays(self, split: str, data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
        return read_split(self._built(data_dir), split)

    def train_groups(self, data_dir: Path) -> list[str]:
        """The track (video) of every training image, in load order: val holds out whole tracks."""
        from arnkit.data.splits import track_of

        return [track_of(source) for source in read_sources(self._built(data_dir), "train")]

    def _built(self, data_dir: Path) -> Path:
        builder_dir = prepared_dir(data_dir, BUILDER_NAME)
        if builder_dir is None:
            if find_lisa_files(manual_dir(data_dir)) is None:
                raise ArnkitError(missing_message(data_dir))
            from arnkit.data.lisa_builder import build_lisa

            builder_dir = build_lisa(data_dir)
        return builder_dir
