"""Local intrinsic dimensionality (LID) features for adversarial-example detection, after Ma et al.,
"Characterizing Adversarial Subspaces Using Local Intrinsic Dimensionality", ICLR 2018, arXiv:1801.02613.
Distance: Euclidean, between flattened layer activations. Backend-agnostic (keras.ops + numpy).

The maximum-likelihood LID estimate of a point x from its k nearest neighbours among reference points is

    LID(x) = -( (1/k) * sum_{i=1..k} log(r_i(x) / r_k(x)) )^-1

with r_i the distance to the i-th nearest neighbour. Following the paper, the reference points are the
*clean* examples of the same minibatch (100 images), k = 20, and a point never counts as its own neighbour.
Adversarial examples tend to sit in regions of higher LID than clean ones, in every layer.

Arguments: k (neighbours, default 20), batch_size (minibatch, default 100), exclude_self (drop the point
itself from its neighbours; by default when the batch is the reference).

    from arnkit.detection.lid import lid_features
    f_nat = lid_features(model, x_nat, x_nat)          # (N, n_layers), self excluded
    f_adv = lid_features(model, x_adv, x_nat)          # batch i of x_adv against batch i of x_nat

Layers whose output only reshapes or copies their input at inference (Flatten, Reshape, Dropout, Identity)
are skipped: their activations give exactly the distances of the layer before, so they add a duplicate
feature and nothing else.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from arnkit.errors import ArnkitError

DEFAULT_K = 20
DEFAULT_BATCH = 100
# Keras layers whose inference output has the same pairwise distances as their input.
_PASS_THROUGH = ("InputLayer", "Flatten", "Reshape", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
                 "SpatialDropout3D", "GaussianDropout", "GaussianNoise", "AlphaDropout", "Identity")
# Keeps log() finite when two activations coincide (e.g. a dead ReLU layer).
_TINY = 1e-12


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of `a` (n, d) and `b` (m, d), in float64."""
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    # One BLAS thread: a minibatch product is small, and on busy 2-core machines multi-threaded OpenBLAS
    # ran it ~50x slower (measured 1.5 s vs 0.02 s for 100 x 25088 activations).
    with threadpool_limits(1, user_api="blas"):
        cross = a @ b.T
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * cross
    return np.sqrt(np.maximum(squared, 0.0))


def lid_estimates(batch_features: np.ndarray, reference_features: np.ndarray, k: int = DEFAULT_K,
                  exclude_self: bool = False) -> np.ndarray:
    """MLE of LID for each row of `batch_features` from its k nearest rows of `reference_features`.

    With `exclude_self`, row i of the batch is row i of the reference and is not its own neighbour (the two
    arrays must then have the same length). When fewer than k neighbours exist, all of them are used.
    """
    dist = pairwise_distances(batch_features, reference_features)
    if exclude_self:
        if dist.shape[0] != dist.shape[1]:
            raise ArnkitError(f"exclude_self needs the batch to be the reference; got {dist.shape[0]} and "
                              f"{dist.shape[1]} rows")
        np.fill_diagonal(dist, np.inf)
    available = dist.shape[1] - (1 if exclude_self else 0)
    k_used = min(int(k), available)
    if k_used < 2:
        raise ArnkitError(f"LID needs at least 2 reference neighbours per point, got {available}; "
                          "use a larger batch or more examples")
    nearest = np.sort(np.partition(dist, k_used - 1, axis=1)[:, :k_used], axis=1)
    nearest = np.maximum(nearest, _TINY)
    mean_log_ratio = np.mean(np.log(nearest / nearest[:, -1:]), axis=1)
    return -1.0 / np.minimum(mean_log_ratio, -_TINY)


def feature_layers(model: Any) -> list:
    """The layers of `model` whose activations give LID features (pass-through layers skipped)."""
    layers = [layer for layer in getattr(model, "layers", []) if type(layer).__name__ not in _PASS_THROUGH]
    if not layers:
        raise ArnkitError(f"model {getattr(model, 'name', model)!r} has no layers to take activations from")
    return layers


def activation_model(model: Any):
    """A keras.Model mapping the input to the flattened-able output of every feature layer."""
    import keras

    try:
        outputs = [layer.output for layer in feature_layers(model)]
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        return keras.Model(inputs, outputs, name=f"{model.name}_activations")
    except (AttributeError, ValueError) as exc:
        raise ArnkitError(
            f"cannot read the layer activations of {getattr(model, 'name', 'the model')} ({exc}); LID needs a "
            "functional or Sequential Keras model"
        ) from None


def _activations(extractor: Any, x: np.ndarray) -> list[np.ndarray]:
    from keras import ops

    outputs = extractor(x, training=False)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    return [np.asarray(ops.convert_to_numpy(out)).reshape(len(x), -1) for out in outputs]


def lid_features(model: Any, x: np.ndarray, x_reference: np.ndarray, k: int = DEFAULT_K,
                 batch_size: int = DEFAULT_BATCH, *, exclude_self: bool | None = None,
                 on_batch: Any = None) -> np.ndarray:
    """LID of each image of `x` in every feature layer of `model`: an (N, n_layers) float64 array.

    Minibatch i of `x` is scored against minibatch i of the clean `x_reference` (same length as `x`); the
    minibatches are near-equal slices of at most `batch_size` images.
    `exclude_self` defaults to True when `x` is `x_reference`. `on_batch(n)` is told after each minibatch.
    """
    x = np.asarray(x, np.float32)
    x_reference = np.asarray(x_reference, np.float32)
    if exclude_self is None:
        exclude_self = x is x_reference or (x.shape == x_reference.shape and np.array_equal(x, x_reference))
    if len(x) != len(x_reference):
        raise ArnkitError(f"LID scores minibatch i of the images against minibatch i of the clean reference; got "
                          f"{len(x)} images and {len(x_reference)} references")
    if batch_size < 2:
        raise ArnkitError(f"the LID minibatch must hold at least 2 images, got {batch_size}")
    extractor = activation_model(model)
    n_layers = len(extractor.outputs)
    out = np.zeros((len(x), n_layers))
    # Near-equal minibatches, so a short last one does not leave a point with too few neighbours.
    n_batches = max(1, int(np.ceil(len(x) / batch_size)))
    for part in np.array_split(np.arange(len(x)), n_batches):
        if not len(part):
            continue
        sl = slice(int(part[0]), int(part[-1]) + 1)
        acts = _activations(extractor, x[sl])
        refs = acts if exclude_self else _activations(extractor, x_reference[sl])
        for layer, (a, r) in enumerate(zip(acts, refs, strict=True)):
            out[sl, layer] = lid_estimates(a, r, k, exclude_self=exclude_self)
        if on_batch is not None:
            on_batch(len(x[sl]))
    return out
