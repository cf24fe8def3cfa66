"""AutoAttack, standard L-inf version (Croce & Hein, "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks", ICML 2020, arXiv:2003.01690). TensorFlow-only module.

Four attacks in a fixed order, each run only on the points the previous ones left correctly classified, so every
example keeps the first adversarial point found (the worst case over the ensemble):
  1. APGD-CE: cross-entropy, 1 restart, 100 iterations            (arnkit.attacks.apgd.APGD)
  2. APGD-T: targeted DLR toward the classes ranked 2..10, 100 it. (arnkit.attacks.apgd.APGDT)
  3. FAB-T: targeted boundary attack, same 9 targets, 100 it.      (arnkit.attacks.fab.FABT)
  4. Square: 5000 queries, p_init .8                               (arnkit.attacks.square.Square)
The number of targets is capped at num_classes - 1. With fewer than 4 classes APGD-T falls back to the targeted
cross-entropy and warns (its DLR denominator needs the 3rd and 4th largest logits).

Distance: L-inf; untargeted (AA_N). Arguments: eps (.3 MNIST, 8/255 CIFAR-10 and LISA), version ("standard" only),
apgd_iter, fab_iter, square_queries, n_target_classes, square_p_init, batch_size.

    from arnkit.attacks.autoattack import AutoAttack
    attack = AutoAttack.for_dataset("mnist")          # eps .3, standard settings
    result = attack(model, x, y, seed=0)              # model maps [0,1] images to logits
    result.success_rate, result.extras["report"]      # error rate and what each component contributed

Models with randomness (the 'rand' version of the paper) are not supported: it needs EOT gradients.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from arnkit.attacks.apgd import APGD, APGDT, ball_box, batch_salt, check_count, check_eps
from arnkit.attacks.base import Attack, RunOutput
from arnkit.attacks.fab import FABT
from arnkit.attacks.square import Square
from arnkit.errors import ArnkitError

COMPONENTS = ("apgd-ce", "apgd-t", "fab-t", "square")


class AutoAttack(Attack):
    """The standard AutoAttack ensemble (APGD-CE, APGD-T, FAB-T, Square), L-inf, untargeted."""

    name: ClassVar[str] = "autoattack"
    distance: ClassVar[str] = "linf"
    targeted_by_default: ClassVar[bool] = False
    has_eps: ClassVar[bool] = True

    def __init__(self, *, eps: float = 0.3, version: str = "standard", apgd_iter: int = 100, fab_iter: int = 100,
                 square_queries: int = 5000, n_target_classes: int = 9, square_p_init: float = 0.8,
                 batch_size: int = 256) -> None:
        super().__init__(targeted=False, batch_size=batch_size)
        if version != "standard":
            raise ArnkitError(f"only AutoAttack version 'standard' is implemented, got '{version}'")
        self.eps = check_eps(eps)
        self.version = version
        self.apgd_iter = check_count("apgd_iter", apgd_iter)
        self.fab_iter = check_count("fab_iter", fab_iter)
        self.square_queries = check_count("square_queries", square_queries)
        self.n_target_classes = check_count("n_target_classes", n_target_classes)
        self.square_p_init = float(square_p_init)
        self._components = {
            "apgd-ce": APGD(eps=self.eps, n_iter=self.apgd_iter, n_restarts=1, loss="ce", batch_size=batch_size),
            "apgd-t": APGDT(eps=self.eps, n_iter=self.apgd_iter, n_restarts=1, n_target_classes=n_target_classes,
                            batch_size=batch_size),
            "fab-t": FABT(eps=self.eps, n_iter=self.fab_iter, n_target_classes=n_target_classes,
                          batch_size=batch_size),
            "square": Square(eps=self.eps, n_queries=self.square_queries, p_init=square_p_init,
                             batch_size=batch_size),
        }

    def run(self, model: Any, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor | None, *, seed: int,
            batch: int) -> RunOutput:
        salt = batch_salt(batch)  # every component draws from the call's seed and this batch's salt
        report = _empty_report()
        pred = tf.argmax(model(x, training=False), axis=-1, output_type=y.dtype)
        robust = tf.equal(pred, y).numpy()
        _tally(report, "clean", len(robust), int((~robust).sum()), 0.0)
        x_adv = x
        if self.eps == 0.0:
            return RunOutput(x_adv, {"report": report})
        lower, upper = ball_box(x, self.eps)
        for name in COMPONENTS:
            idx = np.flatnonzero(robust)
            if idx.size == 0:
                break
            start = time.perf_counter()
            xs, ys = tf.gather(x, idx), tf.gather(y, idx)
            adv = self._components[name].perturb(model, xs, ys, None, seed=seed, salt=salt)
            # Score each component's output under the threat model itself: a point counts only inside the ball.
            adv = tf.clip_by_value(adv, tf.gather(lower, idx), tf.gather(upper, idx))
            fooled = tf.not_equal(tf.argmax(model(adv, training=False), axis=-1, output_type=y.dtype), ys).numpy()
            if fooled.any():
                rows = idx[fooled]
                x_adv = tf.tensor_scatter_nd_update(x_adv, rows[:, None], tf.gather(adv, np.flatnonzero(fooled)))
                robust[rows] = False
            _tally(report, name, idx.size, int(fooled.sum()), time.perf_counter() - start)
        return RunOutput(x_adv, {"report": report})

    def merge_extras(self, batches: list[dict[str, Any]]) -> dict[str, Any]:
        """"report": per component (and "clean"), the images it attacked and fooled and its seconds, summed
        over the call's batches."""
        report = _empty_report()
        for batch in batches:
            for name, entry in batch["report"].items():
                _tally(report, name, entry["attacked"], entry["fooled"], entry["seconds"])
        return {"report": report}


def _empty_report() -> dict[str, dict[str, float]]:
    return {name: {"attacked": 0, "fooled": 0, "seconds": 0.0} for name in ("clean", *COMPONENTS)}


def _tally(report: dict[str, dict[str, float]], name: str, attacked: int, fooled: int,
           seconds: float) -> None:
    entry = report[name]
    entry["attacked"] += attacked
    entry["fooled"] += fooled
    entry["seconds"] += seconds
