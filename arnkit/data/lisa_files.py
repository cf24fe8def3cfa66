"""LISA's names, constants and manual-download discovery: what both the loader (`arnkit.data.lisa`) and the
TFDS builder (`arnkit.data.lisa_builder`) need, kept apart so that neither imports the other at module level."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from arnkit.data.tfds_local import manual_dir

# RP2's LISA-CNN label list (mapping.txt), index = RP2 label = DOA class-folder name.
RP2_CLASS_NAMES: tuple[str, ...] = (
    "addedLane", "keepRight", "laneEnds", "merge", "pedestrianCrossing", "school", "schoolSpeedLimit25",
    "signalAhead", "speedLimit25", "speedLimit30", "speedLimit35", "speedLimit45", "speedLimitUrdbl", "stop",
    "stopAhead", "turnRight", "yield",
)
DROPPED_CLASS = "speedLimitUrdbl"
CLASS_NAMES: tuple[str, ...] = tuple(name for name in RP2_CLASS_NAMES if name != DROPPED_CLASS)

BUILDER_NAME = "arnkit_lisa"
BUILDER_VERSION = "1.0.0"
# DOA's prepared release (its train / val, the paper's train / test); `arnkit data import lisa` checks these.
DOA_COUNTS: dict[str, int] = {"train": 3509, "test": 1148}
ORIGINAL_ZIP = "signDatabasePublicFramesOnly.zip"
ORIGINAL_FOLDER = "signDatabasePublicFramesOnly"
ANNOTATIONS = "allAnnotations.csv"
DOA_FOLDER = "LISA"
DOA_ZIP = "LISA.zip"
SPLIT_SEED = 0
TEST_FRACTION = 1148 / (3509 + 1148)

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Easiest: `arnkit data import lisa PATH` with DOA's release (the second item below). Otherwise put ONE of
these into the manual_dir (by default <data_dir>/downloads/manual/):
* `{ORIGINAL_ZIP}`, the original LISA traffic sign archive (http://cvrr.ucsd.edu/LISA/lisa-traffic-sign-dataset.html),
  or its extracted folder `{ORIGINAL_FOLDER}/` containing `{ANNOTATIONS}`;
* DOA's prepared data (https://github.com/tongwu2020/phattacks/releases/tag/Data%26Model): the folder
  `{DOA_FOLDER}/` with `train/` and `val/` inside, or `{DOA_ZIP}` of that folder.
"""


@dataclass(frozen=True)
class LisaFiles:
    """Which manual download was found: kind 'doa' or 'original', in a folder or a zip."""

    kind: str
    path: Path

    @property
    def is_zip(self) -> bool:
        return self.path.suffix.lower() == ".zip"


def find_lisa_files(manual: Path) -> LisaFiles | None:
    """Locate a usable manual download by name only (fast: no file is opened)."""
    manual = Path(manual)
    for root in (manual / DOA_FOLDER, manual):
        if (root / "train").is_dir() and (root / "val").is_dir():
            return LisaFiles("doa", root)
    if (manual / DOA_ZIP).is_file():
        return LisaFiles("doa", manual / DOA_ZIP)
    for root in (manual / ORIGINAL_FOLDER, manual):
        if (root / ANNOTATIONS).is_file():
            return LisaFiles("original", root)
    if (manual / ORIGINAL_ZIP).is_file():
        return LisaFiles("original", manual / ORIGINAL_ZIP)
    return None


def missing_message(data_dir: Path) -> str:
    return (
        f"LISA is not prepared in {data_dir}: run `arnkit data import lisa PATH` with DOA's release (a .tar/.zip of "
        f"its '{DOA_FOLDER}' folder, or the folder), or put {ORIGINAL_ZIP} (the original LISA traffic-sign archive) "
        f"into {manual_dir(data_dir)}, where it is built on first load"
    )
