"""Every defense as a recipe (key, kind, train, load), shaped like the attack registry, plus the one lookup
of trained defenses in a workspace.

    from arnkit.defenses import registry
    record = registry.get("arn").train("mnist", workspace=ws, seed=0, progress=p, steps=30)
    defense = registry.load_record(record)                      # a Defense, whatever the recipe
    newest = registry.find_defenses(ws, "mnist", "arn", seen=["pgd_n", "pgd_t"])[0]
    defense, record = registry.load_file("run/arn.keras")        # a path alone is enough

Evaluate, detect, report and the studies only see `Defense` and `DefenseRecord`; adding a baseline adds a
row here (and its contract test runs the day it lands: tests/test_defenses_registry.py).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arnkit.data.base import DatasetInfo
from arnkit.errors import ArnkitError
from arnkit.runs.defense import Defense
from arnkit.runs.defense_record import DefenseRecord, Kind, read_record


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class DefenseRecipe:
    key: str
    kind: Kind
    description: str
    trainer: str  # "module:function": train(dataset, *, workspace, seed, progress, **options) -> record dict
    # Options a test may pass to train in seconds on the synthetic dataset (the contract test uses them).
    smoke_options: dict[str, Any] = field(default_factory=dict)
    # Options `train` accepts; anything else is refused in one line before any work starts.
    options: tuple[str, ...] = ()
    trains_on: str = ""  # what its training data is, in words (`arnkit defenses`)
    preset: str = ""  # its field of `arnkit.presets.DatasetPreset`: the per-dataset defaults

    def defaults(self, dataset: str | DatasetInfo) -> dict[str, Any]:
        """The recipe's per-dataset defaults (its row of `arnkit.presets`, derived for an imported dataset), as
        plain data."""
        from dataclasses import asdict

        from arnkit import data, presets

        row = presets.for_info(data.info(dataset))
        values = asdict(getattr(row, self.preset)) if self.preset else {}
        if self.key in _TAKES_SEEN:
            values = {"seen": list(row.seen), "pool": row.pool, **values}
        return values

    def train(self, dataset: str, *, workspace: str | Path | None = None, seed: int = 0, progress: Any = None,
              context: Any = None, **options: Any) -> DefenseRecord:
        """Train with the recipe's defaults and `options`; `context` is the command's `RunContext` (else the
        trainer builds one from dataset, workspace, seed and progress)."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ArnkitError(f"defense '{self.key}' has no option {', '.join(unknown)}; it takes "
                              f"{', '.join(self.options) or 'none'}")
        if context is not None:
            options["context"] = context
        raw = _resolve(self.trainer)(dataset, workspace=workspace, seed=seed, progress=progress, **options)
        return DefenseRecord.from_dict(raw)

    def load(self, record: DefenseRecord, dataset: DatasetInfo | None = None) -> Defense:
        """The record's defense; `dataset` (the run's info) checks its image shape, else its name is checked."""
        model, header = _load_checked(record.defense_path, dataset or record.dataset)
        if header["kind"] != self.kind:
            raise ArnkitError(f"{record.defense_path} is a {header['kind']}, but '{self.key}' defenses are "
                              f"{self.kind}s; re-export it or pass the right record")
        return Defense(self.key, self.kind, model, meta={"record": record})


_ARN_OPTIONS = ("seen", "steps", "width", "objective", "batch_size", "pool_size", "ablate", "strategy",
                "checkpoint_every", "resume", "eval_limit", "tensorboard", "learning_rate", "lr_schedule",
                "guide_weight", "adaptive", "config_overrides", "on_checkpoint", "recipe")

_PAIR_OPTIONS = ("seen", "steps", "batch_size", "width", "learning_rate", "pool_size", "resume", "eval_limit")
_TAKES_SEEN = ("arn", "apeg", "hgd")

_RECIPES = [
    DefenseRecipe("arn", "preprocessor",
                  "ARN (Zhou et al., ICML 2021): attack-invariant features, the pre-processor G(E(x))",
                  "arnkit.defenses.arn.recipe:train_defense",
                  smoke_options={"steps": 2, "width": "tiny", "batch_size": 16, "pool_size": 32, "eval_limit": 16},
                  options=_ARN_OPTIONS, trains_on="the seen-attack pools (--seen)", preset="arn"),
    DefenseRecipe("at_pgd", "classifier",
                  "AT_PGD (Madry et al. 2018): the target fine-tuned on PGD_N examples of its current weights",
                  "arnkit.defenses.at_pgd:train_at_pgd",
                  smoke_options={"epochs": 1, "attack_steps": 2, "train_limit": 64, "eval_limit": 16},
                  options=("epochs", "eps", "attack_steps", "step_size", "train_limit", "eval_limit", "resume"),
                  trains_on="PGD_N examples of its own current weights, every batch", preset="at_pgd"),
    DefenseRecipe("doa", "classifier",
                  "DOA (Wu et al. ICLR 2020): the target fine-tuned on ROA (rectangular occlusion) examples",
                  "arnkit.defenses.doa:train_doa",
                  smoke_options={"epochs": 1, "attack_steps": 2, "roa": "5x5", "train_limit": 64, "eval_limit": 16},
                  options=("roa", "epochs", "attack_steps", "select_val", "dropout", "train_limit", "eval_limit", "resume"),
                  trains_on="ROA examples of its own current weights (--roa HxW), every batch", preset="doa"),
    DefenseRecipe("apeg", "preprocessor",
                  "APE-GAN (Jin et al. 2019): a conv-deconv generator trained against a discriminator",
                  "arnkit.defenses.apeg:train_apeg",
                  smoke_options={"steps": 3, "width": 4, "batch_size": 16, "pool_size": 32, "eval_limit": 16},
                  options=_PAIR_OPTIONS, trains_on="the seen-attack pools (--seen), as ARN", preset="apeg"),
    DefenseRecipe("hgd", "preprocessor",
                  "HGD (Liao et al. CVPR 2018): a U-Net residual denoiser guided by the target's logits",
                  "arnkit.defenses.hgd:train_hgd",
                  smoke_options={"steps": 3, "width": 4, "batch_size": 16, "pool_size": 32, "eval_limit": 16},
                  options=(*_PAIR_OPTIONS, "guide_layer"), trains_on="the seen-attack pools (--seen), as ARN",
                  preset="hgd"),
]

REGISTRY: dict[str, DefenseRecipe] = {recipe.key: recipe for recipe in _RECIPES}


def get(key: str) -> DefenseRecipe:
    try:
        return REGISTRY[str(key).lower()]
    except KeyError:
        raise ArnkitError(f"unknown defense '{key}'; known defenses: none, {', '.join(REGISTRY)}, "
                          "or the path of an exported .keras") from None


def describe(dataset: str = "mnist") -> list[dict[str, Any]]:
    """`arnkit defenses`: each recipe's key, kind, description, training data and defaults for `dataset`."""
    from arnkit import data

    data.get_source(dataset)  # an unknown name is one line; the data itself need not be prepared
    from arnkit.defenses import arn_recipes

    name = str(dataset).lower()
    return [{"key": r.key, "kind": r.kind, "description": r.description, "trains_on": r.trains_on,
             "defaults": r.defaults(name), **({"recipes": arn_recipes.describe()} if r.key == "arn" else {})}
            for r in REGISTRY.values()]


def find_defenses(workspace: Any, dataset: str, key: str | None = None, **filters: Any) -> list[DefenseRecord]:
    """Trained defenses of `dataset` in the workspace, newest first, whose exported file exists; `key`
    (None = every recipe) and `filters` (target_fingerprint, seen, or any option such as ablate; None = any)
    narrow them. A damaged record.json is one line naming it (never silently skipped: the defense would
    vanish from the table, or be trained again over it); a file that is not a defense record is skipped."""
    from arnkit.workspace import Workspace

    root = workspace.root if isinstance(workspace, Workspace) else Workspace.resolve(workspace).root
    if key is not None:
        get(key)
    found = []
    for record_path in (root / "defenses").glob(f"{dataset}-*.d/record.json"):
        raw = read_record(record_path)
        try:
            record = DefenseRecord.from_dict(raw)
        except (ValueError, TypeError, ArnkitError):
            continue
        record.record_path = str(record_path)
        if record.dataset not in ("", dataset) or (key is not None and record.key != key):
            continue
        if not Path(record.defense_path).exists() or not record.matches(**filters):
            continue
        found.append((record_path.stat().st_mtime, record))
    return [record for _, record in sorted(found, key=lambda item: item[0], reverse=True)]


def load_record(record: DefenseRecord | dict[str, Any], dataset: DatasetInfo | None = None) -> Defense:
    """The Defense a record describes, loaded by its own recipe (`dataset`: the run's info, for the shape check)."""
    if isinstance(record, dict):
        record = DefenseRecord.from_dict(record)
    record.check_file()
    return get(record.key).load(record, dataset)


def load_file(path: str | os.PathLike, dataset: str | DatasetInfo | None = None,
              kind: str | None = None) -> tuple[Defense, DefenseRecord]:
    """A defense given by path: an exported `.keras` file (its header gives its kind; a header-less file is a
    classifier only when `kind` says so, a pre-processor when its shapes and output range fit one:
    `files.check_headerless`) or an `arnkit train` run folder. The record beside the file, when there is one,
    supplies seen attacks etc. `dataset` (a name, or the run's info) refuses one made for another dataset or
    image shape."""
    from arnkit.fingerprint import model_fingerprint

    target = Path(path)
    if not target.exists():
        raise ArnkitError(f"defense {path} does not exist; pass 'none', a defense key "
                          f"({', '.join(REGISTRY)}) or the path of an exported .keras")
    folder = target if target.is_dir() else target.parent
    record_path = folder / "record.json"
    raw = read_record(record_path) if record_path.exists() else None
    if target.is_dir():
        if raw is None:
            raise ArnkitError(f"{path} holds no readable record.json; pass the exported .keras file instead")
        record = DefenseRecord.from_dict(raw)
        record.record_path = str(record_path)
        _check_dataset(path, record.dataset, dataset)
        return load_record(record, dataset if isinstance(dataset, DatasetInfo) else None), record
    same_file = raw is not None and Path(str(raw.get("defense_path", ""))).resolve() == target.resolve()
    if same_file:  # the record beside the file is checked before the (possibly large) model loads
        _check_dataset(path, str(raw.get("dataset") or ""), dataset)
    model, header = _load_checked(target, dataset, kind)
    if same_file:
        record = DefenseRecord.from_dict(raw)
        record.record_path = str(record_path)
        record.check_file()
    else:
        record = DefenseRecord(key=header.get("key") or target.stem, kind=header["kind"],
                               dataset=header.get("dataset") or _name(dataset), defense_path=str(target),
                               seen=list(header.get("seen", [])))
    record.kind = header["kind"]
    if not record.defense_fingerprint:
        record.defense_fingerprint = model_fingerprint(model)
    return Defense(target.stem, header["kind"], model, meta={"record": record}), record


def _name(dataset: str | DatasetInfo | None) -> str:
    return dataset.name if isinstance(dataset, DatasetInfo) else str(dataset or "")


def _check_dataset(path: Any, trained_for: str, dataset: str | DatasetInfo | None) -> None:
    dataset = _name(dataset)
    if dataset and trained_for not in ("", dataset):
        raise ArnkitError(f"defense {path} was trained for {trained_for}, not {dataset}; "
                          f"pass --dataset {trained_for} or a defense trained on {dataset}")


def _load_checked(path: str | os.PathLike, dataset: str | DatasetInfo | None,
                  kind: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Load a defense file and refuse, in one line, one made for another dataset or image shape. The shape is
    known from the run's info, or from a built-in dataset's name (an imported dataset's name alone does not say
    which workspace holds it: its commands pass the info)."""
    from arnkit import data
    from arnkit.defenses.files import load_defense_file

    model, header = load_defense_file(path)
    _check_dataset(path, str(header.get("dataset") or ""), dataset)
    info = dataset if isinstance(dataset, DatasetInfo) else data.SOURCES[dataset].info if dataset in data.SOURCES else None
    if info is not None:
        shape = tuple(info.shape)
        got = tuple(model.input_shape[1:]) if hasattr(model, "input_shape") else None
        if got is not None and None not in got and got != shape:
            raise ArnkitError(f"defense {path} takes images of shape {got}, {info.name} has {shape}; "
                              f"use a defense trained on {info.name}")
    if header.get("inferred"):
        from arnkit.defenses.files import check_headerless

        header["kind"] = check_headerless(model, path, kind, tuple(info.shape) if info is not None else None)
    if header["kind"] == "classifier":
        model = _through_logits(model, path, info)
    return model, header


def _through_logits(model: Any, path: Any, info: DatasetInfo | None) -> Any:
    """A robust classifier whose last layer is a softmax is attacked through its logits (the attacks' contract;
    probabilities as logits make CW and PGD look like they fail), said in one warning line. Its output must
    be one score per class of the dataset."""
    import warnings

    from arnkit.models import wrappers
    from arnkit.runs.target_record import TargetWarning

    out = tuple(getattr(model, "output_shape", ()) or ())
    if info is not None and (len(out) != 2 or (out[1] is not None and int(out[1]) != info.num_classes)):
        raise ArnkitError(f"defense {path} is not a classifier of the {info.num_classes} {info.name} classes: "
                          f"its output has shape {out}, not (N, {info.num_classes}); pass a robust classifier "
                          "trained on this dataset")
    if not wrappers.last_softmax(model):
        return model
    cut = wrappers.without_softmax(model)
    warnings.warn(f"defense {path} ends in a softmax; it is attacked through its "
                  f"{'logits (softmax removed)' if cut is not None else 'log-probabilities'}", TargetWarning,
                  stacklevel=2)
    return cut if cut is not None else wrappers.log_probabilities(model)
