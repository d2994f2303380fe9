"""β-VAE (Higgins et al.): KL weighted by β, with an optional linear warm-up from β₀ over N steps."""

from __future__ import annotations

from .. import objectives as obj
from .base import HyperParam, register
from .vae import VAE


@register
class BetaVAE(VAE):
    family = "beta-vae"
    title = "β-VAE"
    formula = "L = −E_q[log p(x|z)] + β(t)·KL(q(z|x) ‖ N(0, I)),  β(t) = β₀ + (β − β₀)·min(1, t/N)"
    hparams_spec = (
        HyperParam("beta", float, 4.0, 0.0, 1000.0, "β in + β·KL(q(z|x) ‖ p(z)); β > 1 presses towards disentangling.",
                   live=True),
        HyperParam("beta_start", float, 0.0, 0.0, 1000.0, "β₀ of the warm-up β(t) = β₀ + (β − β₀)·min(1, t/N)."),
        HyperParam("warmup_steps", int, 0, 0, 10_000_000, "N steps of the linear β warm-up (0 = β from the start)."),
    )

    def kl_weight(self, step):
        hp = self.hparams
        beta = self.live_value("beta")
        if hp["warmup_steps"] <= 0:
            return beta
        frac = obj.linear_ramp(step, hp["warmup_steps"])
        return hp["beta_start"] + (beta - hp["beta_start"]) * frac

    def live_values(self, step):
        return {"beta": self.kl_weight(step)}
