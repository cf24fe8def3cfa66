"""TFDS builder for the LISA traffic-sign subset of the ARN paper (16 classes, 32x32 RGB); offline, manual download.

Reads the original LISA archive (frames + semicolon-separated `allAnnotations.csv`, cropped to each sign's
box) or DOA's prepared `LISA/{train,val}/<k>/` crops; see `arnkit.data.lisa` for the class list, the split
and where to put the files. Nothing is extracted to disk: files are read from the folder, zip or tar directly.
`arnkit.data.lisa_import.import_lisa` (`arnkit data import lisa PATH`) validates DOA's release and builds from it.

Example:
    >>> from arnkit.data.lisa_builder import build_lisa
    >>> build_lisa("~/.arnkit/data")  # reads ~/.arnkit/data/downloads/manual  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import os
import re
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import tensorflow_datasets as tfds

from arnkit.data.lisa_files import (
    ANNOTATIONS,
    BUILDER_NAME,
    BUILDER_VERSION,
    CLASS_NAMES,
    MANUAL_DOWNLOAD_INSTRUCTIONS,
    RP2_CLASS_NAMES,
    SPLIT_SEED,
    TEST_FRACTION,
    LisaFiles,
    find_lisa_files,
    missing_message,
)
from arnkit.data.tfds_local import first_line, manual_dir, prepared_dir, quiet_tfds_build
from arnkit.errors import ArnkitError

IMAGE_SIZE = 32
_LABEL_OF_TAG = {name: i for i, name in enumerate(CLASS_NAMES)}
_DOA_SPLITS = {"train": "train", "val": "test"}
_DOA_IMAGE = re.compile(r"^(?P<prefix>(?:.*/)?)(?P<split>train|val)/(?P<folder>\d+)/(?P<file>[^/]+\.(?:png|jpe?g))$", re.I)
_COLUMNS = {
    "file": "Filename", "tag": "Annotation tag", "x0": "Upper left corner X", "y0": "Upper left corner Y",
    "x1": "Lower right corner X", "y1": "Lower right corner Y",
}


@dataclass(frozen=True)
class SignRecord:
    """One example to produce: `source` is the image's path inside the folder/zip, `box` the crop (or None)."""

    key: str
    label: int
    source: str
    box: tuple[int, int, int, int] | None  # x0, y0, x1, y1 inclusive, in frame pixels


TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")


def is_tar_name(path: Path) -> bool:
    return path.name.lower().endswith(TAR_SUFFIXES)


class _Files:
    """Read-only access to files in a folder, a zip or a tar by relative posix path (no extraction)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip = zipfile.ZipFile(path) if path.suffix.lower() == ".zip" and not path.is_dir() else None
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        if self._zip is None and is_tar_name(path) and not path.is_dir():
            self._tar = tarfile.open(path, "r:*")
            # Regular files only: links and devices are never followed, so a hostile tar cannot point elsewhere.
            self._members = {_tar_name(m.name): m for m in self._tar.getmembers() if m.isreg()}

    def names(self) -> list[str]:
        if self._tar is not None:
            return list(self._members)
        if self._zip is not None:
            return [n for n in self._zip.namelist() if not n.endswith("/")]
        return [Path(dirpath, f).relative_to(self.path).as_posix()
                for dirpath, _, files in os.walk(self.path) for f in files]

    def has(self, name: str) -> bool:
        if self._tar is not None:
            return name in self._members
        if self._zip is not None:
            try:
                self._zip.getinfo(name)
                return True
            except KeyError:
                return False
        return self._inside(name).is_file()

    def read(self, name: str) -> bytes:
        if self._tar is not None:
            handle = self._tar.extractfile(self._members[name])
            return handle.read() if handle is not None else b""
        if self._zip is not None:
            return self._zip.read(name)
        return self._inside(name).read_bytes()

    def order(self, name: str) -> int:
        """Position for reading in archive order (a compressed tar seeks backwards only by re-decompressing)."""
        member = self._members.get(name)
        return member.offset if member is not None else 0

    def _inside(self, name: str) -> Path:
        target = (self.path / name).resolve()
        if not target.is_relative_to(self.path.resolve()):  # a crafted CSV must not read outside the folder
            link = _first_link(self.path, name)
            if link is not None:  # the CSV is fine; the image file is a symlink out of the folder
                raise ArnkitError(f"{link} is a symbolic link to {link.resolve()}, outside {self.path}; arnkit reads "
                                  "images inside the folder only: replace the link with a copy of the image")
            raise ArnkitError(f"{ANNOTATIONS} points outside {self.path} ({name}); use the original LISA archive")
        return target

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        if self._tar is not None:
            self._tar.close()


def _tar_name(name: str) -> str:
    """'./LISA/x' and '/LISA/x' are the same member as 'LISA/x'."""
    return re.sub(r"^(?:\.?/)+", "", name)


def _open(files: LisaFiles) -> _Files:
    try:
        return _Files(files.path)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise ArnkitError(f"cannot open {files.path} ({first_line(exc)}); download it again") from None


def doa_records(files: _Files) -> dict[str, list[SignRecord]]:
    """DOA's `train/<k>/*.png`, `val/<k>/*.png`: k is RP2's class index; val becomes test."""
    matches = [m for m in map(_DOA_IMAGE.match, files.names()) if m and "__MACOSX" not in m["prefix"]]
    prefixes = {m["prefix"] for m in matches}
    if len(prefixes) != 1:
        raise ArnkitError(
            f"{files.path} does not look like DOA's LISA release (expected train/<k>/*.png and val/<k>/*.png "
            f"under one folder, found {len(prefixes)} candidates)"
        )
    splits: dict[str, list[SignRecord]] = {"train": [], "test": []}
    for m in sorted(matches, key=lambda m: m.string):
        index = int(m["folder"])
        name = RP2_CLASS_NAMES[index] if index < len(RP2_CLASS_NAMES) else None
        if name not in _LABEL_OF_TAG:
            raise ArnkitError(f"{files.path}: class folder {m['split']}/{index} is not one of the 16 LISA classes")
        key = f"{m['split']}/{index}/{m['file']}"
        splits[_DOA_SPLITS[m["split"].lower()]].append(SignRecord(key, _LABEL_OF_TAG[name], m.string, None))
    if not splits["train"] or not splits["test"]:
        raise ArnkitError(f"{files.path} has no images in train/ or val/; download DOA's LISA data again")
    return splits


def _annotations_path(files: _Files) -> str:
    if files.has(ANNOTATIONS):
        return ANNOTATIONS
    candidates = sorted((n for n in files.names() if PurePosixPath(n).name == ANNOTATIONS and "__MACOSX" not in n),
                        key=lambda n: (n.count("/"), n))
    if not candidates:
        raise ArnkitError(f"{files.path} has no {ANNOTATIONS}; it is not the original LISA archive")
    return candidates[0]


def parse_annotations(text: str, source: str = ANNOTATIONS) -> list[tuple[str, str, tuple[int, int, int, int]]]:
    """(frame path, tag, (x0, y0, x1, y1)) for every row of LISA's semicolon-separated annotation file."""
    rows = csv.reader(io.StringIO(text), delimiter=";")
    header = [h.strip() for h in next(rows, [])]
    try:
        where = {key: header.index(column) for key, column in _COLUMNS.items()}
    except ValueError:
        raise ArnkitError(
            f"{source} lacks the LISA columns ({'; '.join(_COLUMNS.values())}); it is not LISA's annotation file"
        ) from None
    out = []
    for line, row in enumerate(rows, start=2):
        if not row or not "".join(row).strip():
            continue
        try:
            x0, y0, x1, y1 = (int(row[where[k]]) for k in ("x0", "y0", "x1", "y1"))
            out.append((row[where["file"]].strip(), row[where["tag"]].strip(),
                        (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))))
        except (IndexError, ValueError):
            raise ArnkitError(f"{source} line {line} is malformed; download the LISA archive again") from None
    return out


def original_records(files: _Files) -> dict[str, list[SignRecord]]:
    """Annotations of the 16 classes from the original archive, split per class with a seeded permutation."""
    csv_path = _annotations_path(files)
    root = str(PurePosixPath(csv_path).parent)
    text = files.read(csv_path).decode("utf-8-sig", errors="replace")
    by_label: dict[int, list[SignRecord]] = {}
    seen: dict[str, int] = {}
    for frame, tag, box in parse_annotations(text, source=f"{files.path.name}:{csv_path}"):
        if tag not in _LABEL_OF_TAG:
            continue
        source = frame if root == "." else f"{root}/{frame}"
        if not files.has(source):
            raise ArnkitError(f"{files.path} lacks the frame {source} named in {ANNOTATIONS}; the archive is incomplete")
        key = f"{frame}|{','.join(map(str, box))}"
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:  # the same box annotated twice stays two examples, with distinct keys
            key = f"{key}#{seen[key]}"
        by_label.setdefault(_LABEL_OF_TAG[tag], []).append(SignRecord(key, _LABEL_OF_TAG[tag], source, box))
    if not by_label:
        raise ArnkitError(f"{files.path}: {ANNOTATIONS} has no annotation of the 16 LISA classes")
    return stratified_split(by_label)


def stratified_split(by_label: dict[int, list[SignRecord]]) -> dict[str, list[SignRecord]]:
    """Per class: sort by key, permute with rng([SPLIT_SEED, label]), first round(n * TEST_FRACTION) -> test."""
    splits: dict[str, list[SignRecord]] = {"train": [], "test": []}
    for label, records in sorted(by_label.items()):
        ordered = sorted(records, key=lambda r: r.key)
        order = np.random.default_rng([SPLIT_SEED, label]).permutation(len(ordered))
        n_test = int(round(len(ordered) * TEST_FRACTION))
        splits["test"].extend(ordered[i] for i in order[:n_test])
        splits["train"].extend(ordered[i] for i in order[n_test:])
    return splits


def collect_records(files: LisaFiles) -> dict[str, list[SignRecord]]:
    opened = _open(files)
    try:
        return doa_records(opened) if files.kind == "doa" else original_records(opened)
    finally:
        opened.close()


def crop_to_32(blob: bytes, box: tuple[int, int, int, int] | None, source: str) -> np.ndarray:
    """Decode, crop to the inclusive box (clipped to the frame), resize to 32x32 RGB uint8."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(blob)) as image:
            image = image.convert("RGB")
            if box is not None:
                x0, y0, x1, y1 = box
                x0, y0 = max(x0, 0), max(y0, 0)
                x1, y1 = min(x1 + 1, image.width), min(y1 + 1, image.height)
                if x1 <= x0 or y1 <= y0:
                    raise ArnkitError(f"the box {box} of {source} lies outside the {image.width}x{image.height} frame")
                image = image.crop((x0, y0, x1, y1))
            return np.asarray(image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR), dtype=np.uint8)
    except ArnkitError:
        raise
    except Exception as exc:  # PIL raises many types for a damaged image
        raise ArnkitError(f"cannot decode {source} ({first_line(exc)}); download the LISA data again") from None


class ArnkitLisa(tfds.core.GeneratorBasedBuilder):
    """LISA traffic signs, the ARN paper's 16 classes, 32x32 RGB (TFDS name `arnkit_lisa`)."""

    VERSION = tfds.core.Version(BUILDER_VERSION)
    RELEASE_NOTES = {BUILDER_VERSION: "16 classes (RP2's 17 minus speedLimitUrdbl), 32x32 crops."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    # Set by `build_lisa(files=...)` (the import route); None means: look in manual_dir.
    lisa_files: LisaFiles | None = None

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="LISA US traffic signs: 16 classes used by RP2/DOA/ARN, each sign cropped and resized to 32x32.",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 3)),
                "label": tfds.features.ClassLabel(names=list(CLASS_NAMES)),
                "source": tfds.features.Text(),
            }),
            supervised_keys=("image", "label"),
            homepage="http://cvrr.ucsd.edu/LISA/lisa-traffic-sign-dataset.html",
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        files = self.lisa_files or find_lisa_files(Path(dl_manager.manual_dir))
        if files is None:
            raise ArnkitError(missing_message(Path(self.data_dir_root)))
        splits = collect_records(files)
        self.info.metadata.update(source_format=files.kind, source=files.path.name, split_seed=SPLIT_SEED,
                                  test_fraction=TEST_FRACTION if files.kind == "original" else None)
        return {split: self._generate_examples(files, records) for split, records in splits.items()}

    def _generate_examples(self, files: LisaFiles, records: list[SignRecord]) -> Iterator[tuple[str, dict]]:
        opened = _open(files)
        try:
            frame_name, frame_blob = None, b""
            # Grouped by frame (one read per frame with several signs), in archive order.
            for record in sorted(records, key=lambda r: (opened.order(r.source), r.source)):
                if record.source != frame_name:
                    frame_name, frame_blob = record.source, opened.read(record.source)
                image = crop_to_32(frame_blob, record.box, record.source)
                yield record.key, {"image": image, "label": record.label, "source": record.source}
        finally:
            opened.close()


def build_lisa(
    data_dir: str | os.PathLike, manual: str | os.PathLike | None = None, *, files: LisaFiles | None = None
) -> Path:
    """Build `arnkit_lisa` into `data_dir` from the manual download (default `<data_dir>/downloads/manual`), offline.

    `files` (a located folder, zip or tar) is used instead of searching `manual`.
    TFDS builds in an `incomplete.*` folder and renames it on success, so a failure leaves no dataset behind.
    Returns the dataset folder.
    """
    data_dir = Path(data_dir).expanduser()
    manual = Path(manual).expanduser() if manual is not None else manual_dir(data_dir)
    if files is None and find_lisa_files(manual) is None:
        raise ArnkitError(missing_message(data_dir))
    config = tfds.download.DownloadConfig(manual_dir=os.fspath(manual), try_download_gcs=False)
    try:
        with quiet_tfds_build():  # its "Downloading ... to <staging>" notices would mislead an offline import
            builder = ArnkitLisa(data_dir=os.fspath(data_dir))
            builder.lisa_files = files
            builder.download_and_prepare(download_config=config)
    except Exception as exc:
        _remove_if_empty(data_dir / BUILDER_NAME)  # TFDS drops its incomplete.* folder but not the parent
        if isinstance(exc, ArnkitError):  # TFDS may add context lines; keep the message to one line
            raise ArnkitError(first_line(exc)) from None
        source = files.path if files is not None else manual
        raise ArnkitError(f"building LISA from {source} failed ({first_line(exc)}); check the files and retry") from None
    built = prepared_dir(data_dir, BUILDER_NAME)
    if built is None:
        raise ArnkitError(f"TFDS did not produce {BUILDER_NAME} in {data_dir}; retry")
    return built


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # missing or not empty: leave it
        pass


def _first_link(root: Path, name: str) -> Path | None:
    """The first symlink on the way from `root` to `root / name`, or None."""
    path = root
    for part in Path(name).parts:
        path = path / part
        if path.is_symlink():
            return path
    return None
