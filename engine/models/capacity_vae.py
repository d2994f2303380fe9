"""Capacity-annealed VAE (Burgess et al. 2018): γ·|KL − C|, C raised linearly from 0 to C_max over N steps."""

from __future__ import annotations

from .. import objectives as obj
from .base import HyperParam, register
from .vae import VAE


@register
class CapacityVAE(VAE):
    family = "capacity-vae"
    title = "Capacity-annealed β-VAE (Burgess)"
    formula = "L = −E_q[log p(x|z)] + γ·|KL(q(z|x) ‖ N(0, I)) − C(t)|,  C(t) = C_max·min(1, t/N)"
    hparams_spec = (
        HyperParam("gamma", float, 1000.0, 0.0, 100_000.0, "γ in + γ·|KL − C|: how tightly KL follows C(t).",
                   live=True),
        HyperParam("c_max", float, 25.0, 0.0, 10_000.0, "C_max (nats) in C(t) = C_max·min(1, t/N).", live=True),
        HyperParam("c_steps", int, 10_000, 0, 10_000_000,
                   "N steps over which C rises linearly 0 → C_max (0 = at once)."),
    )

    def capacity(self, step):
        """C(t) = C_max·min(1, t/N) (a tensor when the session passes the step as one)."""
        hp = self.hparams
        if hp["c_steps"] <= 0:
            return self.live_value("c_max")
        return self.live_value("c_max") * obj.linear_ramp(step, hp["c_steps"])

    def regularizer(self, kl, mu, logvar, z, step):
        return self.live_value("gamma") * (kl - self.capacity(step)).abs(), {}

    def live_values(self, step):
        return {"C": self.capacity(step), "gamma": self.hparams["gamma"]}
