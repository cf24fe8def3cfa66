"""The robust classifiers (AT_PGD, DOA) scored on the adversarial sets crafted against the *original* target:
the paper's gray-box reading for a defense that replaces the target (the attacker knows the target, not the
defense). `arnkit evaluate` attacks a robust classifier directly instead, which is the white-box number.

    python bench/robust_transfer.py WORKSPACE [DEFENSE.keras ...]

With no paths it takes every classifier-kind defense in WORKSPACE/defenses (one run per recipe; with several
seeds use `bench/seed_spread.py RESULTS.json --robust-on-target`, which scores each on the evaluation's sets). Only test-split sets of the
workspace's target are used; nothing is crafted, so it runs in seconds after `arnkit evaluate` filled the cache.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from arnkit import adversarial_store, attacks
from arnkit.defenses import registry


def label(attrs: dict) -> str:
    """The attack's column name, with @eps when the set was crafted at a budget other than its MNIST default."""
    params = attrs.get("params") or {}
    params = json.loads(params) if isinstance(params, str) else params
    name = str(attrs.get("attack"))
    eps = params.get("eps")
    default = getattr(attacks.make(name, dataset="mnist"), "eps", None) if name in attacks.REGISTRY else None
    return f"{name}@{eps:g}" if eps is not None and default is not None and abs(eps - default) > 1e-6 else name


def classifier_paths(ws: Path) -> list[str]:
    """Every classifier-kind defense trained in workspace `ws`."""
    return [str(p) for p in sorted((ws / "defenses").glob("*/*.keras"))
            if json.loads((p.parent / "record.json").read_text()).get("kind") == "classifier"]


def crafted_on_target(workspace: str | Path, paths: list[str] | None = None) -> dict[tuple[str, str], tuple[float, int]]:
    """{(run-folder key, attack label): (error %, n)} for each classifier on each test set crafted against the
    workspace target; where a label was crafted twice (e.g. a 200-image sanity subset), the larger set wins."""
    ws = Path(workspace)
    paths = paths or classifier_paths(ws)
    names = [Path(p).parent.name.split("-")[1] for p in paths]
    if len(set(names)) != len(names):  # one row per recipe here: several seeds would silently become one
        raise SystemExit("robust_transfer: several runs of one recipe (seeds?); use `bench/seed_spread.py "
                         "RESULTS.json --robust-on-target`, which keeps every seed and gives the spread")
    targets = sorted((ws / "targets").glob("*.keras"))
    target_fp = json.loads(targets[0].with_suffix(".json").read_text())["fingerprint"]
    defenses = [(name, registry.load_file(p)[0]) for name, p in zip(names, paths, strict=True)]
    found: dict[tuple[str, str], tuple[float, int]] = {}
    for path in sorted((ws / "adversarial").glob("*-test-*.h5")):
        adv = adversarial_store.load(path)
        if adv.attrs.get("target_fingerprint") != target_fp or adv.attrs.get("split") != "test":
            continue
        for name, defense in defenses:
            key = (name, label(adv.attrs))
            if key in found and found[key][1] >= len(adv.labels):
                continue
            pred, _ = defense.predict(None, adv.x_adv)
            found[key] = (100.0 * float(np.mean(pred != adv.labels)), len(adv.labels))
    return found


def main(workspace: str, paths: list[str]) -> None:
    found = crafted_on_target(workspace, paths)
    names = sorted({name for name, _ in found})
    print("| crafted against the target, scored on | n | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for attack in sorted({a for _, a in found}):
        n = max(found[(name, attack)][1] for name in names if (name, attack) in found)
        errors = [f"{found[(name, attack)][0]:.2f}" if (name, attack) in found else "-" for name in names]
        print(f"| {attack} | {n} | " + " | ".join(errors) + " |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
