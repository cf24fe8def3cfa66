"""The attack contract (after Foolbox 3): one `__call__` validates, batches, clips and scores; each attack
implements only `run`. Runs on every Keras backend: on TensorFlow a batch reaches `run` as tf tensors inside
`fast_input_gradients()` (arnkit.attacks.input_gradients); on JAX and torch as that backend's tensors.

    attack = PGD(eps=0.3, steps=40)
    result = attack(model, x, y, seed=0)     # model: images in [0,1] -> logits
    result.x_adv, result.success, result.extras

    attack = PGD.for_dataset("cifar10")       # the dataset's budgets (arnkit.data.budgets)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from arnkit import backend
from arnkit.data.base import pixel_range_fix
from arnkit.errors import ArnkitError

if TYPE_CHECKING:
    from arnkit.data.base import DatasetInfo

DISTANCES = ("linf", "l2", "l0", "spatial", "wasserstein", "patch")


@dataclass
class AttackResult:
    """Adversarial images plus per-example outcome. Arrays are numpy, aligned with the inputs."""

    x_adv: np.ndarray
    success: np.ndarray  # bool: misclassified (untargeted) or classified as `target` (targeted)
    pred: np.ndarray  # the model's label on x_adv
    target: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)
    # What the attack measured during this call, beyond the images (FWA: "wasserstein" and "transport_cost"
    # per example; STA: "flow" per example; AutoAttack: "report", what each component attacked and fooled).
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.success)) if len(self.success) else 0.0


@dataclass
class RunOutput:
    """What `run` returns when it measures more than the adversarial batch: the batch and this batch's extras
    (per-example arrays by default, concatenated over the call's batches by `Attack.merge_extras`)."""

    x_adv: Any
    extras: dict[str, Any]


def norms(x: np.ndarray, x_adv: np.ndarray) -> dict[str, np.ndarray]:
    """Per-example L-inf, L2 and L0 (pixels changed by more than 1e-6, over all channels) distances."""
    delta = (np.asarray(x_adv, np.float64) - np.asarray(x, np.float64)).reshape(len(x), -1)
    return {
        "linf": np.abs(delta).max(axis=1) if delta.size else np.zeros(len(x)),
        "l2": np.sqrt((delta**2).sum(axis=1)),
        "l0": (np.abs(delta) > 1e-6).sum(axis=1).astype(np.float64),
    }


def validate_inputs(x: Any, y: Any, *, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Check shape, range, finiteness and labels; return float32 NHWC images and int64 labels (copies)."""
    x = np.array(x, dtype=np.float32, copy=True)
    y = np.array(y, copy=True)
    if x.ndim != 4:
        raise ArnkitError(f"images must be a 4-D NHWC batch, got shape {x.shape}; add a batch/channel axis")
    if not np.all(np.isfinite(x)):
        raise ArnkitError("images contain NaN or Inf; clean the input before attacking")
    if x.size and (x.min() < 0.0 or x.max() > 1.0):
        raise ArnkitError(
            f"images must be in [0, 1], got range [{x.min():.3g}, {x.max():.3g}]; "
            f"{pixel_range_fix(float(x.min()), float(x.max()))}"
        )
    if y.ndim != 1 or len(y) != len(x):
        raise ArnkitError(f"labels must have shape ({len(x)},) to match the images, got {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ArnkitError("labels must be integer class indices")
    y = y.astype(np.int64)
    if num_classes is not None and y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ArnkitError(f"labels must be in [0, {num_classes}), got [{y.min()}, {y.max()}]")
    return x, y


def random_targets(y: np.ndarray, num_classes: int, seed: int) -> np.ndarray:
    """A seeded random target per example that differs from its true label."""
    if num_classes < 2:
        raise ArnkitError("a targeted attack needs at least 2 classes: no target differs from the true label")
    rng = np.random.default_rng(seed)
    offset = rng.integers(1, num_classes, size=len(y))
    return ((y + offset) % num_classes).astype(np.int64)


def num_classes_of(model: Any, x_probe: np.ndarray) -> int:
    shape = getattr(model, "output_shape", None)
    if isinstance(shape, tuple) and shape and isinstance(shape[-1], int):
        return int(shape[-1])
    return int(model(x_probe[:1]).shape[-1])


class Attack:
    """Base class. Subclasses set the class attributes and implement `run`.

    `run(model, x, y, target, seed=..., batch=...)` gets one batch as tensors of the running backend (target
    is None for untargeted attacks), the call's `seed` and the batch's index within the call (0, 1, ...), and
    returns the adversarial batch, or a `RunOutput` with what it measured; the base class clips the batch to
    [0,1], scores it and puts the measurements in `AttackResult.extras`. Per-call state travels as arguments
    and return values, never on `self`, so a call's output depends only on its arguments and one instance can
    serve overlapping calls (after Foolbox 3's `run`). `__call__` is final: a subclass defining it is refused.
    """

    name: ClassVar[str] = "attack"
    distance: ClassVar[str] = "linf"
    targeted_by_default: ClassVar[bool] = False
    has_eps: ClassVar[bool] = True
    # Queries only the model's outputs, never its gradient (SPSA, Square): what the gradient-masking check needs.
    gradient_free: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # `__call__` is final (as in Foolbox 3): validation, batching, clipping and scoring stay the same for
        # every attack, and what an attack measures travels back through `run`'s RunOutput, not `self`.
        if "__call__" in cls.__dict__:
            raise TypeError(f"{cls.__name__} overrides Attack.__call__, which is final; implement `run` "
                            "(return a RunOutput for per-call measurements) and `merge_extras` instead")

    def __init__(self, *, targeted: bool | None = None, batch_size: int = 256) -> None:
        self.targeted = self.targeted_by_default if targeted is None else bool(targeted)
        if batch_size < 1:
            raise ArnkitError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        # (model, parameters, compiled graph) of `compiled_for`: a memo, never a call's result.
        self._compiled: tuple[Any, tuple, Any] | None = None

    @classmethod
    def for_dataset(cls, dataset: str | DatasetInfo, **overrides: Any) -> Attack:
        """This attack with `dataset`'s budgets (a name or a DatasetInfo; arnkit.data.budgets), then
        `overrides`. A dataset that declares no budgets is refused."""
        from arnkit import data

        params = data.info(dataset).attack_params(cls)
        params.update(overrides)
        return cls(**params)

    # -- introspection ---------------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """The constructor arguments as set on this instance (used for provenance and __repr__)."""
        out = {}
        for cls in type(self).__mro__:
            if cls is object:
                continue
            for pname in inspect.signature(cls.__init__).parameters:
                if pname in ("self", "args", "kwargs") or pname in out:
                    continue
                if hasattr(self, pname):
                    value = getattr(self, pname)
                    out[pname] = value.item() if isinstance(value, np.generic) else value
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.params().items()))
        return f"{type(self).__name__}({args})"

    # -- the contract ----------------------------------------------------------------------------------
    def run(self, model: Any, x: Any, y: Any, target: Any | None, *, seed: int, batch: int) -> Any:
        raise NotImplementedError

    def merge_extras(self, batches: list[dict[str, Any]]) -> dict[str, Any]:
        """The call's extras from each batch's (in batch order): per-example arrays concatenated."""
        if not batches:
            return {}
        return {key: np.concatenate([np.asarray(b[key]) for b in batches]) for key in batches[0]}

    def compiled_for(self, model: Any, build: Callable[[Any], Any]) -> Any:
        """`build(model)`, memoised on (model, this attack's parameters): a call's batches, and later calls on
        the same model, reuse one traced graph instead of tracing it again. The graph captures only the model
        and the parameters, and the key holds both, so the memo never makes a call depend on an earlier one (a
        changed parameter or another model builds anew); it is read into a local first, so overlapping calls
        on other models cannot swap it under a running one."""
        key = tuple(sorted((k, _memo_value(v)) for k, v in self.params().items()))
        cached = getattr(self, "_compiled", None)
        if cached is None or cached[0] is not model or cached[1] != key:
            cached = (model, key, build(model))
            self._compiled = cached
        return cached[2]

    def project(self, x: Any, x_adv: Any) -> Any:
        """Enforce the threat model after `run` (default: L-inf ball when the attack has `eps`)."""
        if self.distance == "linf" and self.has_eps and hasattr(self, "eps"):
            if backend.is_tensorflow():
                import tensorflow as tf

                x_adv = tf.clip_by_value(x_adv, x - self.eps, x + self.eps)
            else:
                from keras import ops

                x_adv = ops.clip(x_adv, x - self.eps, x + self.eps)
        return x_adv

    def __call__(self, model: Any, x: Any, y: Any, *, target: Any = None, seed: int = 0,
                 on_batch: Any = None) -> AttackResult:
        """Attack `model` (images in [0,1] -> logits) on (x, y); `on_batch(n)` is told after each batch."""
        x_np, y_np = validate_inputs(x, y)
        n_classes = num_classes_of(model, x_np) if len(x_np) else 0
        if y_np.size and y_np.max() >= n_classes:
            raise ArnkitError(f"labels go up to {y_np.max()} but the model has {n_classes} outputs")
        t_np = None
        if self.targeted:
            if target is None:
                t_np = random_targets(y_np, n_classes, seed)
            else:
                t_np = np.asarray(target, dtype=np.int64).reshape(-1)
                if t_np.shape != y_np.shape:
                    raise ArnkitError(f"targets must have shape {y_np.shape}, got {t_np.shape}")
                if np.any(t_np == y_np):
                    raise ArnkitError("some targets equal the true label; a targeted attack needs a different class")
        # Attacks draw randomness with stateless ops seeded from (seed, batch) (tf.random.set_seed would
        # also clear every cached tf.function: ~0.7 s per call).
        seed = int(seed)
        run_batch = self._batch_tf if backend.is_tensorflow() else self._batch_portable
        outs, preds, extras = [], [], []
        for batch, start in enumerate(range(0, len(x_np), self.batch_size)):
            sl = slice(start, start + self.batch_size)
            t_batch = None if t_np is None else t_np[sl]
            adv, pred, measured = run_batch(model, x_np[sl], y_np[sl], t_batch, seed, batch)
            outs.append(adv)
            preds.append(pred)
            extras.append(measured)
            if on_batch is not None:
                on_batch(len(adv))
        x_adv = np.concatenate(outs) if outs else x_np.copy()
        pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
        success = (pred == t_np) if self.targeted else (pred != y_np)
        return AttackResult(x_adv=x_adv, success=success, pred=pred, target=t_np, params=self.params(),
                            extras=self.merge_extras(extras))

    def _batch_tf(self, model: Any, x: np.ndarray, y: np.ndarray, t: np.ndarray | None, seed: int,
                  batch: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """One batch on TensorFlow: tf tensors in, the faster first-layer input gradient while `run` traces."""
        import tensorflow as tf

        from arnkit.attacks.input_gradients import fast_input_gradients

        xb = tf.constant(x)
        yb = tf.constant(y)
        tb = None if t is None else tf.constant(t)
        with fast_input_gradients():
            adv, measured = _unpack(self.run(model, xb, yb, tb, seed=seed, batch=batch))
        adv = tf.convert_to_tensor(adv, dtype=tf.float32)
        adv = tf.clip_by_value(self.project(xb, adv), 0.0, 1.0)
        return adv.numpy(), np.argmax(np.asarray(model(adv, training=False)), axis=-1), measured

    def _batch_portable(self, model: Any, x: np.ndarray, y: np.ndarray, t: np.ndarray | None, seed: int,
                        batch: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """One batch on JAX / torch: keras.ops tensors in (int32 labels: JAX's default integer width)."""
        from keras import ops

        xb = ops.convert_to_tensor(x, "float32")
        yb = ops.convert_to_tensor(y.astype(np.int32))
        tb = None if t is None else ops.convert_to_tensor(t.astype(np.int32))
        adv, measured = _unpack(self.run(model, xb, yb, tb, seed=seed, batch=batch))
        adv = ops.cast(ops.convert_to_tensor(adv), "float32")
        adv = ops.clip(self.project(xb, adv), 0.0, 1.0)
        logits = ops.convert_to_numpy(model(adv, training=False))
        return np.asarray(ops.convert_to_numpy(adv), np.float32), np.argmax(logits, axis=-1), measured


def _memo_value(value: Any) -> Any:
    """A parameter as a comparable key (an array by its bytes: its repr elides the middle of large ones)."""
    if isinstance(value, np.ndarray):
        return (value.shape, str(value.dtype), value.tobytes())
    return repr(value)


def _unpack(out: Any) -> tuple[Any, dict[str, Any]]:
    """(adversarial batch, extras) from what `run` returned."""
    return (out.x_adv, dict(out.extras)) if isinstance(out, RunOutput) else (out, {})
