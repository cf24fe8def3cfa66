"""SPSA, L-inf, gradient-free (Uesato, O'Donoghue, van den Oord & Kohli, "Adversarial Risk and the Dangers of
Evaluating Against Weak Attacks", ICML 2018, arXiv:1802.05666). Distance: L-inf. Runs on every Keras backend.

Per image: start from a uniform random point of the eps-ball; then `nb_iter` times estimate the gradient of the
margin loss max_{k!=y} z_k - z_y (targeted: z_t - max_{k!=t} z_k, minimized) by simultaneous perturbation,
mean over `spsa_samples` mirrored Rademacher directions v of (loss(x + delta v) - ...) v / delta, take one Adam
step of `learning_rate` on that estimate and project onto the eps-ball and [0,1]. It only queries logits,
never takes a gradient, so a defense that masks gradients (a zero or useless backward pass) cannot stop it:
that is why the white-box sanity checks run it (arnkit.evaluation.sanity.gradient_free_check).

Arguments: eps (L-inf radius in [0,1] pixel units), nb_iter, spsa_samples (even: the directions are mirrored),
learning_rate, delta, early_stop (stop an image once it is misclassified: a success is never lost to a later
step, and an undefended model is attacked in a few iterations), targeted, batch_size.

    from arnkit import attacks
    attack = attacks.make("spsa_n", dataset="mnist")   # eps .3, 100 iterations x 128 samples, lr .01, delta .01
    result = attack(model, x, y, seed=0)               # model maps [0,1] images to logits

The optimization is cleverhans's (cleverhans 4.0.0, `cleverhans.tf2.attacks.spsa`: its `SPSAAdam` estimator and
Adam update, `margin_logit_loss`, `projected_optimization`), with two fixes that its `spsa()` function needs:
(1) `SPSAAdam.__init__` passes `lr=` to the Keras 3 Adam, which refuses it (ValueError), so the estimator here
borrows SPSAAdam's methods on a plain object; (2) its directions and random start come from the global TF
random state, so two calls with the same seed differed: here both are stateless draws keyed by
(seed, batch, image, iteration). Like cleverhans, it works on one image at a time (a traced graph per image).

Off TensorFlow (JAX, torch; no cleverhans) the same estimator, Adam step, projection and early stop are keras.ops
in arnkit.attacks.spsa_portable, vectorized over the images of a batch, with the directions drawn by numpy:
the same algorithm, other random draws.
"""

from __future__ import annotations

from typing import Any, ClassVar

from arnkit import backend
from arnkit.attacks.base import Attack
from arnkit.attacks.pgd import _check_eps
from arnkit.errors import ArnkitError


class SPSA(Attack):
    """L-inf SPSA (Uesato et al. 2018): gradient-free, through cleverhans's optimizer, one image at a time."""

    name: ClassVar[str] = "spsa"
    distance: ClassVar[str] = "linf"
    targeted_by_default: ClassVar[bool] = False
    has_eps: ClassVar[bool] = True
    gradient_free: ClassVar[bool] = True

    def __init__(self, *, eps: float = 0.3, nb_iter: int = 100, spsa_samples: int = 128,
                 learning_rate: float = 0.01, delta: float = 0.01, early_stop: bool = True,
                 targeted: bool | None = None, batch_size: int = 256) -> None:
        super().__init__(targeted=targeted, batch_size=batch_size)
        self.eps = _check_eps(eps)
        if int(nb_iter) != nb_iter or int(nb_iter) < 1:
            raise ArnkitError(f"nb_iter must be an integer >= 1 (SPSA steps), got {nb_iter}")
        if int(spsa_samples) != spsa_samples or int(spsa_samples) < 2 or int(spsa_samples) % 2:
            raise ArnkitError(f"spsa_samples must be an even integer >= 2 (mirrored +/- directions estimate "
                              f"the gradient), got {spsa_samples}")
        if not learning_rate > 0.0:
            raise ArnkitError(f"learning_rate must be > 0, got {learning_rate}")
        if not delta > 0.0:
            raise ArnkitError(f"delta must be > 0 (the finite-difference step), got {delta}")
        self.nb_iter = int(nb_iter)
        self.spsa_samples = int(spsa_samples)
        self.learning_rate = float(learning_rate)
        self.delta = float(delta)
        self.early_stop = bool(early_stop)

    def run(self, model: Any, x: Any, y: Any, target: Any | None, *, seed: int, batch: int) -> Any:
        if self.eps == 0.0:
            return x
        labels = target if self.targeted else y
        if not backend.is_tensorflow():
            from arnkit.attacks.spsa_portable import spsa_batch

            return spsa_batch(model, x, labels, eps=self.eps, nb_iter=self.nb_iter, samples=self.spsa_samples,
                              learning_rate=self.learning_rate, delta=self.delta, targeted=self.targeted,
                              early_stop=self.early_stop, seed=seed, batch=batch)
        import tensorflow as tf

        from arnkit.attacks.spsa_tf import spsa_one as _spsa_one

        scalars = (tf.constant(self.eps, tf.float32), tf.constant(self.learning_rate, tf.float32),
                   tf.constant(self.delta, tf.float32))
        base = tf.constant([int(seed), int(batch)], tf.int64)
        out = []
        for i in range(int(x.shape[0])):
            key = tf.random.experimental.stateless_fold_in(base, i)
            out.append(_spsa_one(model, x[i:i + 1], labels[i:i + 1], key, *scalars, self.nb_iter,
                                 self.spsa_samples, self.targeted, self.early_stop))
        return tf.concat(out, axis=0) if out else x
