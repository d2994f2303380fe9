"""β-TCVAE (Chen et al. 2018): KL split into index-code MI, total correlation and dimension-wise KL, estimated
by minibatch-weighted (mws) or minibatch-stratified (mss) sampling; the TC is weighted by β."""

from __future__ import annotations

from .. import objectives as obj
from .base import HyperParam, register
from .vae import VAE


@register
class BetaTCVAE(VAE):
    """`dataset_size` N enters log q(z) ≈ logsumexp_j log q(z|x_j) − log(N·M); the training session sets it
    to the training-set size when left at 0 (if it is still 0 at loss time, the batch size M is used)."""

    family = "beta-tcvae"
    title = "β-TCVAE"
    formula = "L = −E_q[log p(x|z)] + α·I_q(z; n) + β·TC(z) + γ·Σ_d KL(q(z_d) ‖ p(z_d))  (mws or mss sampling)"
    hparams_spec = (
        HyperParam("alpha", float, 1.0, 0.0, 1000.0, "α in + α·I(z; n), I = E[log q(z|x) − log q(z)].", live=True),
        HyperParam("beta", float, 6.0, 0.0, 1000.0, "β in + β·TC, TC = E[log q(z) − Σ_d log q(z_d)].", live=True),
        HyperParam("gamma", float, 1.0, 0.0, 1000.0, "γ in + γ·Σ_d KL(q(z_d) ‖ p(z_d)) = E[Σ_d log q(z_d) − log p(z)].",
                   live=True),
        HyperParam("dataset_size", int, 0, 0, 1_000_000_000,
                   "N in log q(z) ≈ log Σ_j w_ij q(z|x_j); 0 = the training-set size."),
        HyperParam("estimator", str, "mws", choices=("mws", "mss"),
                   help="Minibatch estimate of log q(z): mws weighs every q(z|x_j) by 1/(N·M) (biased when M ≪ N); "
                        "mss stratifies: own x_i 1/N, the others ≈ 1/(M − 1)."),
    )

    def regularizer(self, kl, mu, logvar, z, step):
        hp = self.hparams
        size = hp["dataset_size"] or z.shape[0]
        mi, tc, dim_kl = (t.mean() for t in obj.tc_decomposition(z, mu, logvar, size,
                                                                                  hp["estimator"]))
        weighted = self.live_value("alpha") * mi + self.live_value("beta") * tc + self.live_value("gamma") * dim_kl
        return weighted, {"mi": mi, "tc": tc, "dim_kl": dim_kl}

    def live_values(self, step):
        return {"beta": self.hparams["beta"]}
