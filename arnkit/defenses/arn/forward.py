"""Algorithm 1's forward pass and the four players' losses, shared by every backend (keras.ops only).

A backend's training step supplies the small pieces that differ: `apply(player, x)` calls one of the four
networks in training mode (TensorFlow: the Keras model itself under a GradientTape; JAX: `stateless_call`
on the weights being differentiated), `noise(kind, event_shape)` draws the latent ("normal", (D*B, *event_shape)) or penalty ("uniform", (D*B,))
noise,
`guide(x)` runs the frozen target classifier, and `input_gradient(fn, x)` differentiates D_I for the
gradient penalty. The gradients and the optimizer updates stay with the backend (model.py for TensorFlow,
jax_training.py for JAX).

Layout: x_adv (B, K, H, W, C) holds each natural image's K seen-attack versions, x_nat (B, H, W, C); inside,
the D = K (+1 with include_natural) domains are stacked domain-major, (D*B, H, W, C).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keras import ops

from arnkit.defenses.arn import losses as L
from arnkit.defenses.arn.config import ARNConfig
from arnkit.defenses.arn.networks import decoder_inputs, split_encoding
from arnkit.errors import ArnkitError

Apply = Callable[[str, Any], Any]
Noise = Callable[[str, tuple], Any]


@dataclass(frozen=True)
class Shapes:
    image_shape: tuple[int, int, int]
    num_domains: int


def stack_domains(x_adv, x_nat, cfg: ARNConfig, image_shape) -> Any:
    """(B, K, H, W, C) [+ natural] -> (D*B, H, W, C), domain-major."""
    domains = ops.transpose(x_adv, (1, 0, 2, 3, 4))
    if cfg.include_natural:
        domains = ops.concatenate([domains, ops.expand_dims(x_nat, 0)], axis=0)
    return ops.reshape(domains, (-1, *image_shape))


def forward_losses(apply: Apply, cfg: ARNConfig, shapes: Shapes, x_adv, x_nat, *, noise: Noise,
                   guide: Callable | None = None, input_gradient: Callable | None = None, x_leak=None,
                   all_sum: Callable | None = None, replicas: int = 1) -> dict[str, Any]:
    """Steps 2-3 of Algorithm 1 and every loss term (unweighted, but "adaptive" weighted), per replica.

    x_leak: the adaptive examples (M, H, W, C) of the first M natural images, or None; they go through E and
    G with the domains (one BatchNorm batch) and meet only the restoration losses. The result also holds
    "restored" (every decoded row, the leaked ones last), which the backends differentiate through."""
    d = shapes.num_domains
    x_in = stack_domains(x_adv, x_nat, cfg, shapes.image_shape)
    rows = x_in.shape[0] if x_in.shape[0] is not None else ops.shape(x_in)[0]

    def per_domain(t):  # (D*B, ...) -> (D, B, ...)
        return ops.reshape(t, (d, -1, *t.shape[1:]))

    # Step 2: E, the reparameterised sample z, D_A.
    encoded = apply("encoder", x_in if x_leak is None else ops.concatenate([x_in, x_leak], axis=0))
    mu, logvar, skips = split_encoding(encoded)  # skips: the residual U-Net's, every row (leaked ones last)
    mu_leak = None
    if x_leak is not None:
        # The leaked rows are decoded from mu, as the deployed pre-processor decodes every input.
        mu, logvar, mu_leak = mu[:rows], logvar[:rows], mu[rows:]
    z = mu + ops.exp(0.5 * logvar) * noise("normal", tuple(mu.shape[1:])) if cfg.sample_latent else mu
    da_logits = per_domain(apply("attack_discriminator", z))
    # Step 3: G and D_I (natural images and all restored ones in one call).
    restored_all = apply("decoder", decoder_inputs(z if mu_leak is None else ops.concatenate([z, mu_leak], axis=0),
                                                   skips))
    restored, restored_leak = ((restored_all, None) if mu_leak is None
                               else (restored_all[:rows], restored_all[rows:]))
    batch = x_nat.shape[0] if x_nat.shape[0] is not None else ops.shape(x_nat)[0]
    di_logits = apply("image_discriminator", ops.concatenate([x_nat, restored], axis=0))
    real_logits, fake_logits = di_logits[:batch], per_domain(di_logits[batch:])
    restored_k = per_domain(restored)

    values: dict[str, Any] = {}
    if cfg.objective == "paper":
        values["da"] = L.l_da(da_logits)
        values["att"] = L.l_att(da_logits)
        values["nor"] = L.l_nor(per_domain(mu), per_domain(logvar) if cfg.sample_latent else None, all_sum=all_sum)
        values["mse"] = L.l_mse(restored_k, x_nat)
        values["adv"] = L.l_adv(fake_logits)
        values["di"] = L.l_di(real_logits, fake_logits)
    else:
        values["da"] = L.l_da_bce(da_logits)
        values["att"] = L.l_att_bce(da_logits)
        # A sum over the batch, not a mean: scaled up here because the step divides by replicas.
        values["nor"] = L.l_nor_reference(mu, logvar) * replicas
        values["mse"] = L.l_mse_reference(restored_k, x_nat)
        values["adv"] = L.l_adv_bce(fake_logits)
        values["di"] = L.l_di_bce(real_logits, fake_logits)
    zero = ops.zeros((), "float32")
    if cfg.gp_weight > 0:
        alpha = noise("uniform", ())
        values["gp"] = L.gradient_penalty(lambda x: apply("image_discriminator", x), x_in,
                                          ops.stop_gradient(restored), alpha, input_gradient=input_gradient)
    else:
        values["gp"] = zero
    if (cfg.guide_weight > 0 or x_leak is not None) and guide is None:
        raise ArnkitError("guide_weight > 0 needs the target classifier: build ARN(..., guide=classifier)")
    if cfg.guide_weight > 0:
        natural_logits = ops.stop_gradient(guide(x_nat))
        values["guide"] = L.l_guide(per_domain(guide(restored)), natural_logits)
    else:
        values["guide"] = zero
    values["adaptive"], values["leaked_rows"] = zero, None
    if x_leak is not None:
        leaked = x_leak.shape[0] if x_leak.shape[0] is not None else ops.shape(x_leak)[0]
        natural = x_nat[:leaked]
        term = cfg.mse_weight * L.l_mse(ops.expand_dims(restored_leak, 0), natural)
        if cfg.adaptive_guide > 0:
            natural_logits = ops.stop_gradient(guide(natural))
            term += cfg.adaptive_guide * L.l_guide(ops.expand_dims(guide(restored_leak), 0), natural_logits)
        values["adaptive"] = term
        values["leaked_rows"] = ops.concatenate([ops.zeros((rows,)), ops.ones((leaked,))], axis=0)
    values["restored"] = restored_all
    return values


def player_targets(values: dict[str, Any], cfg: ARNConfig) -> dict[str, Any]:
    """The weighted objectives of Eq. 7-8 and the discriminators, added to `values` as e_loss, g_loss,
    da_loss, di_loss; returned as the four pieces the backends differentiate:
    restore (reaches E and G through the restored images), e_rest (E only: L_att, L_nor), g_adv (G only:
    L_adv, never E) and d (D_A's and D_I's losses: each depends on its own weights only)."""
    e_rest = ops.zeros((), "float32")
    if cfg.use_att:
        e_rest = e_rest + cfg.lambda1 * values["att"]
    if cfg.use_nor:
        e_rest = e_rest + cfg.lambda2 * values["nor"]
    restore = cfg.mse_weight * values["mse"]
    if cfg.guide_weight > 0:
        restore = restore + cfg.guide_weight * values["guide"]
    if cfg.adaptive:
        restore = restore + values["adaptive"]
    g_adv = cfg.theta * values["adv"] if cfg.use_adv else ops.zeros((), "float32")
    l_di = values["di"] + cfg.gp_weight * values["gp"]
    values["e_loss"] = restore + e_rest
    values["g_loss"] = restore + g_adv
    values["da_loss"] = values["da"]
    values["di_loss"] = l_di
    return {"restore": restore, "e_rest": e_rest, "g_adv": g_adv, "d": values["da"] + l_di}
