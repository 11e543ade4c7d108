"""Diagonal Gaussian action distributions: log-densities, KL divergences and entropies.

Written out in closed form (not ``torch.distributions``) so the second and third derivatives
that MAML-TRPO takes through them stay cheap, and so every function broadcasts over the task,
episode and time dimensions alike.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from torch import Tensor

_LOG_2PI = math.log(2 * math.pi)


class Gaussian(NamedTuple):
    """A diagonal Gaussian with ``mean [..., act]`` and ``log_std`` broadcastable to it."""

    mean: Tensor
    log_std: Tensor

    def sample(self, noise: Tensor) -> Tensor:
        """The action ``mean + std * noise`` for standard normal ``noise``."""
        return self.mean + self.log_std.exp() * noise

    def log_prob(self, actions: Tensor) -> Tensor:
        """Log-density of ``actions [..., act]``, summed over the action dimensions."""
        z = (actions - self.mean) * (-self.log_std).exp()
        log_std = self.log_std.expand_as(self.mean)
        return (-0.5 * z.pow(2) - log_std - 0.5 * _LOG_2PI).sum(-1)

    def kl(self, other: Gaussian) -> Tensor:
        """``KL(self || other)``, summed over the action dimensions."""
        var_ratio = (2 * (self.log_std - other.log_std)).exp()
        gap = (self.mean - other.mean) * (-other.log_std).exp()
        terms = 0.5 * (var_ratio + gap.pow(2) - 1) - (self.log_std - other.log_std)
        return terms.expand_as(self.mean).sum(-1)

    def entropy(self) -> Tensor:
        """Entropy, summed over the action dimensions."""
        return (self.log_std + 0.5 * (1 + _LOG_2PI)).expand_as(self.mean).sum(-1)

    def detach(self) -> Gaussian:
        return Gaussian(self.mean.detach(), self.log_std.detach())
