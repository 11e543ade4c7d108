"""The linear feature baseline of Duan et al. (2016), used by MAML's and ProMP's experiments.

Per task, a ridge regression of the discounted return on the features ``[o, o^2, t, t^2, t^3,
1]`` of each taken step (observation clipped to ``[-10, 10]``, ``t`` the step index / 100), fitted
on that task's episodes and evaluated on the same episodes. All tasks are solved at once in
float64; when a solve is not finite the ridge is raised tenfold, up to five times.
"""

from __future__ import annotations

import torch
from torch import Tensor

RIDGE = 1e-5
ATTEMPTS = 5


def features(observations: Tensor) -> Tensor:
    """``[B, E, T, 2 * obs + 4]`` features of observations ``[B, E, T, obs]``."""
    o = observations.clamp(-10, 10)
    steps = observations.shape[-2]
    t = torch.arange(steps, dtype=o.dtype, device=o.device) / 100.0
    t = t.reshape(1, 1, steps, 1).expand(*o.shape[:-1], 1)
    return torch.cat([o, o.pow(2), t, t.pow(2), t.pow(3), torch.ones_like(t)], dim=-1)


def fit_predict(observations: Tensor, returns: Tensor, mask: Tensor) -> Tensor:
    """The baseline's values ``[B, E, T]`` for each task's own episodes (module docstring)."""
    x = features(observations.double()).flatten(1, 2)  # [B, M, F]
    w = mask.double().flatten(1).unsqueeze(-1)
    y = returns.double().flatten(1).unsqueeze(-1)
    gram = x.transpose(1, 2) @ (w * x)
    target = x.transpose(1, 2) @ (w * y)
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    ridge = RIDGE
    for _ in range(ATTEMPTS):
        coefficients = torch.linalg.solve(gram + ridge * eye, target)
        if torch.isfinite(coefficients).all():
            break
        ridge *= 10
    values: Tensor = (x @ coefficients).squeeze(-1).reshape(returns.shape)
    return values.to(returns.dtype)
