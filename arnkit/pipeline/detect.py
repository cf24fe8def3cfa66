"""`arnkit detect`: train an adversarial-example detector (LID) on the workspace's target, report its ROC AUC,
its recall on ARN-restored adversarial examples (the paper's Section 4.3: low recall means the restored images
look natural) and its AUC against a high-confidence attack it was not trained on."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

import arnkit
from arnkit import data, detection
from arnkit.errors import ArnkitError
from arnkit.io import atomic_path, read_json_record, sha256_file, write_json_atomic
from arnkit.progress import Progress
from arnkit.workspace import Workspace

DEFAULT_LIMIT = 1000
# The adaptive check is the slow part (100 gradient steps per image): it runs on fewer images.
ADAPTIVE_LIMIT = 300
ADAPTIVE = {"kappa": 20.0, "steps": 100}
NOISE_MIN_ACCURACY = 0.98
THRESHOLD = 0.5


def _batched(model: Any, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    from keras import ops

    out = [ops.convert_to_numpy(model(x[i:i + batch_size], training=False)) for i in range(0, len(x), batch_size)]
    return np.concatenate(out).astype(np.float32) if out else x.copy()


def save_roc_png(path: Path, curves: list[tuple[str, np.ndarray, np.ndarray, float]], title: str) -> Path:
    """One ROC plot with a line per (label, fpr, tpr, auc), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for label, fpr, tpr, auc in curves:
        ax.plot(fpr, tpr, label=f"{label} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return path


def detect(
    method: str = "lid",
    dataset: str = "mnist",
    attack: str = "pgd_n",
    *,
    limit: int | None = DEFAULT_LIMIT,
    seed: int = 0,
    workspace: str | Path | None = None,
    progress: Progress | None = None,
    defense_path: str | Path | None = None,
    defense_kind: str | None = None,
    defense_key: str | None = None,
    adaptive_limit: int = ADAPTIVE_LIMIT,
    target: str | Path | None = None,
    input_scale: float | None = None,
    target_output: str | None = None,
) -> dict[str, Any]:
    """Train `method`'s detector on natural + noisy (negatives) vs `attack`'s adversarial test images (positives);
    save a JSON record and a ROC curve PNG under <workspace>/detection and return the record. `target`: a
    user's .keras classifier in place of the zoo target (see `arnkit.runs.target.from_file`); the default
    defense is then the newest pre-processor trained for it. `defense_key`: a defense key instead of a file
    (the newest trained defense of that recipe; 'none' = no defense), as `arnkit evaluate --defense` takes."""
    from arnkit import attacks as attack_registry
    from arnkit.detection.detector import predict_labels
    from arnkit.detection.lid import feature_layers
    from arnkit.runs.adversarial import craft_set, describe_set
    from arnkit.runs.context import RunContext
    from arnkit.runs.target import with_target

    entry = detection.get(method)
    attack = attack_registry.get(attack).key  # unknown names fail before the target is trained
    ctx = RunContext.build(dataset, workspace=workspace, seed=seed, progress=progress)
    meta, ws, progress = ctx.info, ctx.workspace, ctx.progress
    if adaptive_limit < 0:
        raise ArnkitError(f"adaptive_limit must be >= 0, got {adaptive_limit}")
    if target is not None:  # checked before the defense is looked up: the defaults are those trained for it
        ctx = with_target(ctx, path=target, input_scale=input_scale, output=target_output)
    chosen = _resolve_defense(meta, ws, defense_path, kind=defense_kind, key=defense_key,
                              target_fingerprint=ctx.target.fingerprint if target is not None else None)
    ctx = with_target(ctx)
    model, fingerprint, target_record = ctx.target.model, ctx.target.fingerprint, ctx.target.record
    # A pre-processor: the detector also scores the images it restores. A robust classifier: it replaces the
    # target, so the detector guards it (its features, its adversarial examples).
    defense = chosen if chosen and chosen["kind"] == "preprocessor" else None
    if chosen and chosen["kind"] == "classifier":
        model, fingerprint = chosen["model"], chosen["fingerprint"]
    spec = {"method": entry.key, "params": entry.defaults, "dataset": meta.name, "attack": attack,
            "limit": limit or 0, "seed": seed, "target": fingerprint, "adaptive_limit": adaptive_limit,
            "adaptive": ADAPTIVE, "defense": chosen and chosen["sha256"], "recipe": 1}
    json_path = ws.artifact("detection", f"{meta.name}-{entry.key}-{attack}", spec, "json")
    png_path = json_path.with_suffix(".png")
    if json_path.exists() and png_path.exists():
        record = ws.located_paths(read_json_record(json_path, "detection record"))  # stored relative to the workspace
        record["reused"] = True
        return record

    start = time.perf_counter()
    adv = craft_set(ctx, attack, split="test", limit=limit, seed=seed, model=model, fingerprint=fingerprint)
    crafted = describe_set(ctx, adv)
    x_test, y_test, _ = data.load_arrays(meta.name, "test", data_dir=ws.data_dir)
    x_nat, y = x_test[adv.indices], adv.labels

    # Keep the images the target gets right, whose attack succeeded and whose noisy copy stays right.
    correct = predict_labels(model, x_nat) == y
    success = np.asarray(adv.success, bool)
    if not (correct & success).any():
        raise ArnkitError(f"no test image was both classified correctly and fooled by {attack}; "
                          "use a stronger attack or a larger --limit")
    l2 = np.sqrt(((adv.x_adv - x_nat) ** 2).reshape(len(x_nat), -1).sum(1))
    x_noisy, sigma, noisy_accuracy = detection.noisy_negatives(
        model, x_nat, y, target_l2=float(l2[correct & success].mean()), seed=seed, min_accuracy=NOISE_MIN_ACCURACY)
    noisy_correct = predict_labels(model, x_noisy) == y
    keep = correct & success & noisy_correct
    x_keep, adv_keep = x_nat[keep], adv.x_adv[keep]

    features = {}
    n_feature_calls = 4 if defense else 3
    progress.start(f"{entry.key} features", n_feature_calls * int(keep.sum()))
    for name, images in (("natural", x_keep), ("noisy", x_noisy[keep]), ("adversarial", adv_keep)):
        features[name] = entry.features(model, images, x_keep, on_batch=progress.advance)
    restored_images = None
    if defense:
        restored_images = _batched(defense["model"], adv_keep)
        features["restored"] = entry.features(model, restored_images, x_keep, on_batch=progress.advance)
    progress.finish()

    negatives = np.concatenate([features["natural"], features["noisy"]])
    detector, auc, split = detection.train_detector(features["adversarial"], negatives, seed=seed)
    test_pos = split["y_test"] == 1
    held_out = split["scores_test"] >= THRESHOLD
    record: dict[str, Any] = {
        "method": entry.key, "dataset": meta.name, "attack": crafted["attack"],
        "params": {**entry.defaults, "noise_sigma": sigma, "threshold": THRESHOLD, "test_fraction": 0.2,
                   "detector": f"MinMaxScaler -> LogisticRegressionCV(cv={split['cv_folds']})",
                   "attack_params": crafted["params"]},
        "target_fingerprint": fingerprint, "target_path": target_record.path, "seed": seed,
        "guarded": {"kind": chosen["kind"], "path": chosen["path"], "fingerprint": chosen["fingerprint"]}
        if chosen else {"kind": "target", "path": target_record.path, "fingerprint": target_record.fingerprint},
        "arnkit_version": arnkit.__version__, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "adversarial_path": crafted["path"], "attack_success_rate": crafted["success_rate"],
        "layers": [layer.name for layer in feature_layers(model)] if entry.key == "lid" else None,
        "counts": {"selected": int(len(y)), "used": int(keep.sum()), "misclassified_natural": int((~correct).sum()),
                   "attack_failed": int((correct & ~success).sum()),
                   "noisy_misclassified": int((correct & success & ~noisy_correct).sum()),
                   "negatives": int(len(negatives)), "positives": int(len(features["adversarial"]))},
        "noise": {"sigma": sigma, "accuracy_on_correct": noisy_accuracy,
                  "rule": "Gaussian noise clipped to [0,1]; sigma starts at mean adversarial L2 / sqrt(pixels) "
                          f"and is halved until >= {NOISE_MIN_ACCURACY:.0%} of correctly classified images stay "
                          "correct; images whose noisy copy is misclassified are dropped"},
        "auc": auc,
        "split": {k: split[k] for k in ("n_train", "n_test", "n_train_positive", "n_test_positive", "cv_folds", "C")},
        "recall_adversarial": float(held_out[test_pos].mean()),
        "false_positive_rate": float(held_out[~test_pos].mean()),
    }
    curves = [(f"{crafted['attack']} (held-out)", split["fpr"], split["tpr"], auc)]
    record["restored"] = None
    if defense:
        flagged = detection.detector_scores(detector, features["restored"]) >= THRESHOLD
        record["restored"] = {
            "defense_path": defense["path"], "defense_sha256": defense["sha256"], "source": defense["source"],
            "n": int(len(flagged)), "recall": float(flagged.mean()),
            "target_accuracy": float(np.mean(predict_labels(model, restored_images) == y[keep])),
        }
    record["adaptive"] = None
    if adaptive_limit:
        record["adaptive"], curve = _adaptive(entry, detector, split, model, x_keep, y[keep], meta,
                                              adaptive_limit, seed, progress)
        if curve is not None:
            curves.append(curve)
    save_roc_png(png_path, curves, f"{entry.key} detector on {meta.name}")
    record.update({"path": str(json_path), "roc_path": str(png_path),
                   "seconds": round(time.perf_counter() - start, 2), "reused": False})
    write_json_atomic(json_path, ws.relative_paths(record))
    return record


def _resolve_defense(info: Any, ws: Workspace, defense_path: str | Path | None, *, kind: str | None = None,
                     key: str | None = None,
                     target_fingerprint: str | None = None) -> dict[str, Any] | None:
    """The defense in play: a given file (a pre-processor, whose restored images the detector also scores,
    or a robust classifier, which the detector guards instead of the target), else the newest trained
    pre-processor of the workspace (None: there is none); with `target_fingerprint`, the newest trained for
    that target (a user's model)."""
    from arnkit.defenses import registry
    from arnkit.fingerprint import model_fingerprint

    if defense_path is not None:
        defense, record = registry.load_file(defense_path, info, kind)
        source = "argument"
    elif key == "none":
        return None
    else:
        only = {"target_fingerprint": target_fingerprint} if target_fingerprint else {}
        if key is None:
            only["kind"] = "preprocessor"
        records = registry.find_defenses(ws, info.name, key, ablate=None, **only)
        if not records and key is not None:
            raise ArnkitError(f"--defense {key}: no trained '{key}' defense for {info.name} in {ws.root}; train "
                              f"one with `arnkit train --dataset {info.name} --defense {key}`, or pass a .keras path")
        if not records:
            return None
        record, source = records[0], records[0].record_path
        defense = registry.load_record(record, info)
    path = record.defense_path
    return {"path": path, "source": source, "sha256": sha256_file(path) if Path(path).exists() else None,
            "model": defense.model, "kind": defense.kind,
            "fingerprint": record.defense_fingerprint or model_fingerprint(defense.model)}


def _adaptive(entry, detector, split, model, x, y, dataset, limit, seed, progress):
    """The trained detector against high-confidence examples of the first `limit` kept images, scored with the
    held-out negatives of the detector's split."""
    from sklearn.metrics import roc_auc_score, roc_curve

    from arnkit.detection.high_confidence import HighConfidencePGD

    attack = HighConfidencePGD.for_dataset(dataset, **ADAPTIVE)
    x, y = x[:limit], y[:limit]
    progress.start(f"adaptive {attack.name}", len(x))
    result = attack(model, x, y, seed=seed, on_batch=progress.advance)
    progress.finish()
    info: dict[str, Any] = {"attack": attack.name, "params": attack.params(), "n_attacked": int(len(x)),
                            "success_rate": result.success_rate, "auc": None, "recall": None,
                            "note": f"cheaper than the main run: the first {limit} used test images; the detector "
                                    f"is the one trained on the main attack, scored against its held-out negatives"}
    ok = result.success
    info["n_used"] = int(ok.sum())
    if ok.sum() < 3:
        return info, None
    pos = entry.features(model, result.x_adv[ok], x[ok])
    neg_scores = split["scores_test"][split["y_test"] == 0]
    pos_scores = detection.detector_scores(detector, pos)
    labels = np.concatenate([np.ones(len(pos_scores)), np.zeros(len(neg_scores))])
    scores = np.concatenate([pos_scores, neg_scores])
    auc = float(roc_auc_score(labels, scores))
    fpr, tpr, _ = roc_curve(labels, scores)
    info.update({"auc": auc, "recall": float(np.mean(pos_scores >= THRESHOLD)),
                 "linf_mean": float(np.abs(result.x_adv[ok] - x[ok]).reshape(int(ok.sum()), -1).max(1).mean())})
    return info, (f"{attack.name} kappa {attack.kappa:g}", fpr, tpr, auc)
