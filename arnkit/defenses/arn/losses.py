"""ARN's losses (Zhou et al., ICML 2021, Eq. 1-6), one pure function per equation, plus the variants the
official code (dwDavidxd/ARN) optimises instead. Inputs are tensors; results are scalars.

Layout. Per-domain tensors are stacked on a leading axis of size K (the attack types, plus "natural" when
the caller feeds natural images as one more domain): features (K, N, ...), D_A logits (K, N, K),
restored images (K, N, H, W, C), D_I logits on restored images (K, N) or (K, N, 1). Domain k's label is k.

Normalisation. The paper writes L_mse, L_adv and L_DI as sums over the whole batch and L_DA, L_att with a
dot product that also sums over the batch. Every such batch sum here is divided by the batch size N (a
mean over examples), which keeps the paper's relative weighting of the terms (Eq. 7, 8) while making the
values independent of N: L_mse = sum over k and pixels, mean over examples, of the squared error.
L_nor is a divergence between distributions and has no batch sum to divide.

All functions use `keras.ops` only (`gradient_penalty` takes the backend's input gradient).
"""

from __future__ import annotations

from collections.abc import Callable

from keras import ops

_EPS = 1e-8


def _per_example(x):
    """(K, N, ...) -> (K, N, D)."""
    shape = ops.shape(x)
    return ops.reshape(x, (shape[0], shape[1], -1))


def _squeeze_logit(logits):
    return ops.squeeze(logits, axis=-1) if len(logits.shape) > 1 and logits.shape[-1] == 1 else logits


# ---------------------------------------------------------------------------------------------- paper ---

def l_da(logits):
    """Eq. 1: D_A's softmax cross-entropy on the attack type. logits (K, N, K); domain k has label k.

    L_DA = -1/K sum_k mean_n log softmax(D_A(E(x_kn)))_k
    """
    num_domains = ops.shape(logits)[0]
    log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    onehot = ops.expand_dims(ops.eye(num_domains, dtype="float32"), 1)  # (K, 1, K)
    return -ops.mean(ops.sum(onehot * log_probs, axis=-1))


def l_att(logits):
    """Eq. 2: E's attack-invariance loss, cross-entropy of D_A's softmax against the uniform 1/K label.

    L_att = -1/K sum_k mean_n sum_j (1/K) log softmax(D_A(E(x_kn)))_j ; its minimum, log K, is reached
    when D_A cannot tell the attack types apart.
    """
    log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    return -ops.mean(ops.mean(log_probs, axis=-1))


def l_nor(mu, logvar=None, *, all_sum: Callable | None = None):
    """Eq. 3: mean over attack types k of KL(P_k || N(0, I)), P_k = the distribution of E's features of type k.

    P_k is the aggregate posterior of the type-k batch, (1/N) sum_n N(mu_kn, exp(logvar_kn)), matched by its
    moments to a diagonal Gaussian N(m_k, v_k); the KL to N(0, I) is then closed-form:
    0.5 * sum_d (v + m^2 - 1 - log v). With logvar None the features are the points mu themselves.
    Unlike a per-example VAE KL, this leaves each example free to sit anywhere as long as the type's cloud as
    a whole is standard normal, which is what the paper asks for.

    mu, logvar: (K, N, ...). all_sum: optional function summing a tensor over replicas (distributed training),
    so the moments are those of the global batch.
    """
    mu = ops.cast(_per_example(mu), "float32")
    second = ops.square(mu) if logvar is None else ops.square(mu) + ops.exp(ops.cast(_per_example(logvar), "float32"))
    sums = ops.stack([ops.sum(mu, axis=1), ops.sum(second, axis=1)])  # (2, K, D)
    count = ops.cast(ops.shape(mu)[1], "float32")
    if all_sum is not None:
        sums = all_sum(sums)
        count = all_sum(count)
    mean = sums[0] / count
    var = ops.maximum(sums[1] / count - ops.square(mean), _EPS)
    kl = 0.5 * ops.sum(var + ops.square(mean) - 1.0 - ops.log(var), axis=-1)  # (K,)
    return ops.mean(kl)


def l_mse(restored, natural):
    """Eq. 4 / N: sum over attack types of the mean over examples of ||G(E(x_kn)) - x_n||_2^2 (summed over pixels).

    restored (K, N, H, W, C), natural (N, H, W, C).
    """
    diff = ops.cast(restored, "float32") - ops.expand_dims(ops.cast(natural, "float32"), 0)
    per_example = ops.sum(ops.square(_per_example(diff)), axis=-1)  # (K, N)
    return ops.sum(ops.mean(per_example, axis=1))


def l_di(real_logits, fake_logits):
    """Eq. 5 / N: D_I's loss, natural examples labelled true and restored ones false.

    L_DI = sum_k mean_n [ -log(1 - D_I(G(E(x_kn)))) - log D_I(x_n) ], D_I = sigmoid(logit).
    Eq. 5 as printed, sum_k log D_I(fake) + log(1 - D_I(real)), has the same minimiser (D_I(real) -> 1,
    D_I(fake) -> 0) but no lower bound; this is the standard bounded GAN cross-entropy with that minimiser.
    real_logits (N,) or (N, 1); fake_logits (K, N) or (K, N, 1).
    """
    real = ops.cast(_squeeze_logit(real_logits), "float32")
    fake = ops.cast(_squeeze_logit(fake_logits), "float32")
    num_domains = ops.cast(ops.shape(fake)[0], "float32")
    # -log(1 - sigmoid(l)) = softplus(l);  -log sigmoid(l) = softplus(-l)
    return ops.sum(ops.mean(ops.softplus(fake), axis=1)) + num_domains * ops.mean(ops.softplus(-real))


def l_adv(fake_logits):
    """Eq. 6 / N: G's image-adversarial loss, L_adv = -sum_k mean_n log D_I(G(E(x_kn))). fake_logits (K, N[, 1])."""
    fake = ops.cast(_squeeze_logit(fake_logits), "float32")
    return ops.sum(ops.mean(ops.softplus(-fake), axis=1))


# ---------------------------------------------------------------------------- beyond the paper ---

def l_guide(restored_logits, natural_logits):
    """Beyond the paper (opt-in, ARNConfig.guide_weight): HGD's logit-guided loss (Liao et al., CVPR 2018),
    sum over k of the mean over examples of the mean absolute difference between the target classifier's
    logits on the restored and on the natural images. restored_logits (K, N, C), natural_logits (N, C)."""
    diff = ops.cast(restored_logits, "float32") - ops.expand_dims(ops.cast(natural_logits, "float32"), 0)
    return ops.sum(ops.mean(ops.abs(diff), axis=(1, 2)))


# ---------------------------------------------------------------------------- official-code variants ---

def l_da_bce(logits):
    """Official code's D_A loss: binary cross-entropy of independent sigmoids against the one-hot type,
    averaged over all K*N*K entries. logits (K, N, K)."""
    logits = ops.cast(logits, "float32")
    num_domains = ops.shape(logits)[0]
    target = ops.expand_dims(ops.eye(num_domains, dtype="float32"), 1)
    return ops.mean(_bce_with_logits(logits, target))


def l_att_bce(logits):
    """Official code's attack-invariance loss: binary cross-entropy of every sigmoid against 1/K."""
    logits = ops.cast(logits, "float32")
    target = 1.0 / ops.cast(ops.shape(logits)[-1], "float32")
    return ops.mean(_bce_with_logits(logits, target))


def l_nor_reference(mu, logvar):
    """Official code's normalisation term: the per-example VAE KL to N(0, I), summed over the whole pooled
    batch and all latent values: -0.5 * sum(1 + logvar - mu^2 - exp(logvar))."""
    mu = ops.cast(mu, "float32")
    logvar = ops.cast(logvar, "float32")
    return -0.5 * ops.sum(1.0 + logvar - ops.square(mu) - ops.exp(logvar))


def l_mse_reference(restored, natural):
    """Official code's reconstruction loss: mean over every pixel of every domain (torch MSELoss).
    restored (K, N, H, W, C), natural (N, H, W, C)."""
    diff = ops.cast(restored, "float32") - ops.expand_dims(ops.cast(natural, "float32"), 0)
    return ops.mean(ops.square(diff))


def l_di_bce(real_logits, fake_logits):
    """Official code's D_I loss without its penalty: mean BCE(real, 1) + mean BCE(fake, 0)."""
    real = ops.cast(_squeeze_logit(real_logits), "float32")
    fake = ops.cast(_squeeze_logit(fake_logits), "float32")
    return ops.mean(ops.softplus(-real)) + ops.mean(ops.softplus(fake))


def l_adv_bce(fake_logits):
    """Official code's image-adversarial loss for G: mean BCE(D_I(G(E(x))), 1)."""
    return ops.mean(ops.softplus(-ops.cast(_squeeze_logit(fake_logits), "float32")))


def gradient_penalty(discriminator, real, fake, alpha, *, input_gradient=None):
    """WGAN-GP term as the official code computes it.

    x_hat = alpha * real + (1 - alpha) * fake (alpha (N,) in [0,1], one per example); the gradient of
    sum D(x_hat) with respect to x_hat is normed over the *channel axis only* (the official code's
    `norm(2, dim=1)` on NCHW), giving one norm per pixel; the result is mean((norm - 1)^2).
    In the official code `real` is the encoder's (noisy) input batch, not the natural images.
    discriminator: images -> scores. input_gradient(fn, x): d sum(fn(x)) / dx on the running backend, which
    must stay differentiable with respect to the discriminator's weights (None: a TensorFlow GradientTape).
    """
    real = ops.cast(real, "float32")
    fake = ops.cast(fake, "float32")
    alpha = ops.reshape(ops.cast(alpha, "float32"), (-1, 1, 1, 1))
    x_hat = alpha * real + (1.0 - alpha) * fake
    grads = (input_gradient or _tape_input_gradient)(discriminator, x_hat)
    # sqrt(0) has no gradient: a tiny floor keeps single-channel images (norm = |g|) finite.
    norms = ops.sqrt(ops.sum(ops.square(grads), axis=-1) + 1e-12)
    return ops.mean(ops.square(norms - 1.0))


def _tape_input_gradient(fn, x):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        scores = fn(x)
    return tape.gradient(scores, x)


def _bce_with_logits(logits, target):
    # max(l, 0) - l * t + log(1 + exp(-|l|)) : the stable form of BCE on logits.
    return ops.relu(logits) - logits * target + ops.log1p(ops.exp(-ops.abs(logits)))
