"""My model for Latent Explorer — a small convolutional VAE for 64×64 images (dSprites, your own folder …).

Train it as it is:
    python main.py train --model-file THIS_FILE.py --dataset 'dsprites?subset=20000' --max-steps 2000 --out runs/mine
or in the app: File → Open model file… (then press Start).

The contract (docs/your-model.md): a torch.nn.Module with `latent_dim`, `encode(x, y=None) -> (mean, logvar or None)`
and `decode(z, y=None) -> logits` (B×C×H×W). Everything else is optional.
"""

import torch
from torch import nn


class MyVAE(nn.Module):
    # Hyperparameters: name → default. They appear in the Model dock's form and can be set with --set name=value;
    # each one is passed to __init__ as a keyword argument.
    HYPERPARAMS = {"latent_dim": 10, "channels": 32}

    # Which engine objective trains this model: ae, vae, beta-vae, capacity-vae, beta-tcvae or factor-vae (their
    # own hyperparameters, e.g. beta, join the form). Delete this line and write a `loss` method to use your own.
    objective = "beta-vae"

    def __init__(self, shape=(1, 64, 64), latent_dim=10, channels=32):
        super().__init__()
        c, h, w = shape  # the engine passes the dataset's image shape (channels, height, width)
        if h % 16 or w % 16:
            raise ValueError(f"this starter's four stride-2 convolutions need sides divisible by 16, got {h}×{w}")
        self.latent_dim = latent_dim
        self.feature_shape = (2 * channels, h // 16, w // 16)
        features = 2 * channels * (h // 16) * (w // 16)
        self.encoder = nn.Sequential(  # 64×64 → 32 → 16 → 8 → 4
            nn.Conv2d(c, channels, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(channels, channels, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(2 * channels, 2 * channels, 4, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(features, 256), nn.ReLU(),
            nn.Linear(256, 2 * latent_dim),  # mean and log-variance side by side
        )
        self.decoder_input = nn.Sequential(nn.Linear(latent_dim, 256), nn.ReLU(), nn.Linear(256, features), nn.ReLU())
        self.decoder = nn.Sequential(  # 4 → 8 → 16 → 32 → 64
            nn.ConvTranspose2d(2 * channels, 2 * channels, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(2 * channels, channels, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(channels, channels, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(channels, c, 4, 2, 1),  # logits: the Bernoulli likelihood applies the sigmoid
        )

    def encode(self, x, y=None):
        """x: B×C×H×W in [0, 1] → (mean, logvar), each B×latent_dim (return (mean, None) for a plain autoencoder)."""
        mean, logvar = torch.chunk(self.encoder(x), 2, dim=1)
        return mean, logvar.clamp(-10.0, 10.0)

    def decode(self, z, y=None):
        """z: B×latent_dim → logits B×C×H×W."""
        return self.decoder(self.decoder_input(z).view(z.shape[0], *self.feature_shape))

    # Your own objective instead of `objective = …` (and return any other terms you want plotted):
    #
    # def loss(self, x, y, step):
    #     mean, logvar = self.encode(x)
    #     z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
    #     recon = nn.functional.binary_cross_entropy_with_logits(self.decode(z), x, reduction="sum") / len(x)
    #     kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
    #     return {"total": recon + 4.0 * kl, "recon": recon, "kl": kl}

