"""Policies: a Gaussian MLP evaluated for many tasks at once, and RL²'s recurrent policy.

:class:`GaussianMLPPolicy` is an ordinary module (its ``state_dict`` is what checkpoints hold),
evaluated as a pure function of a parameter dictionary whose tensors carry a leading task
dimension: :meth:`GaussianMLPPolicy.task_params` expands the module's parameters to ``B``
copies (views), the inner loop adapts each copy on its own task's episodes, and
:meth:`GaussianMLPPolicy.distribution` evaluates all tasks' observations with one batched
matrix product per layer. With ``context_dim > 0`` the first layer also reads a context vector
per task (CAVIA, Zintgraf et al. 2019), which starts at zero for every task.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastmeta.functional.params import Params
from fastmeta.rl.gaussian import Gaussian

Activation = Literal["relu", "tanh"]
CONTEXT = "context"


class GaussianMLPPolicy(nn.Module):
    """``a ~ N(mlp(obs [, context]), exp(log_std)^2)``, the std independent of the state."""

    def __init__(
        self,
        observation_dim: int,
        action_dim: int,
        hidden: Sequence[int] = (100, 100),
        activation: Activation = "relu",
        init_std: float = 1.0,
        context_dim: int = 0,
    ) -> None:
        super().__init__()
        if init_std <= 0:
            raise ValueError(f"the initial action std must be positive, got {init_std}")
        sizes = [observation_dim + context_dim, *hidden, action_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.log_std = nn.Parameter(torch.full((action_dim,), math.log(init_std)))
        self.activation = activation
        self.context_dim = context_dim
        self.observation_dim = observation_dim
        self.action_dim = action_dim

    def task_params(self, tasks: int) -> Params:
        """The parameters as ``tasks`` copies along a leading dimension (views: gradients
        flow back to the module's parameters), plus a zero context when there is one.

        Under ``torch.no_grad()`` the copies are detached: a view taken there still says
        ``requires_grad`` but is not in any graph, and gradients with respect to it are zero.
        """
        track = torch.is_grad_enabled()
        params = {
            n: (p if track else p.detach()).unsqueeze(0).expand(tasks, *p.shape)
            for n, p in self.named_parameters()
        }
        if self.context_dim:
            params[CONTEXT] = self.log_std.new_zeros(tasks, self.context_dim)
        return params

    def distribution(self, params: Params, observations: Tensor) -> Gaussian:
        """The action distribution at ``observations [B, ..., obs]`` under task ``b``'s
        parameters ``params[name][b]``."""
        tasks, *middle, _ = observations.shape
        x = observations.reshape(tasks, -1, observations.shape[-1])
        if self.context_dim:
            context = params[CONTEXT].unsqueeze(1).expand(-1, x.shape[1], -1)
            x = torch.cat([x, context.to(x.dtype)], dim=-1)
        last = len(self.layers) - 1
        for i in range(len(self.layers)):
            weight, bias = params[f"layers.{i}.weight"], params[f"layers.{i}.bias"]
            x = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
            if i < last:
                x = F.relu(x) if self.activation == "relu" else torch.tanh(x)
        mean = x.reshape(tasks, *middle, self.action_dim)
        log_std = params["log_std"].reshape(tasks, *([1] * len(middle)), self.action_dim)
        return Gaussian(mean, log_std)


class RecurrentPolicy(nn.Module):
    """RL²'s policy (Duan et al. 2016): a GRU reads the observation, the previous action and
    reward and whether an episode just ended, and keeps its state across the episodes of one
    task; a Gaussian head acts and a linear head estimates the value for PPO."""

    def __init__(
        self, observation_dim: int, action_dim: int, hidden: int = 64, init_std: float = 1.0
    ) -> None:
        super().__init__()
        self.input_dim = observation_dim + action_dim + 2
        self.gru = nn.GRU(self.input_dim, hidden, batch_first=True)
        self.mean = nn.Linear(hidden, action_dim)
        self.value = nn.Linear(hidden, 1)
        self.log_std = nn.Parameter(torch.full((action_dim,), math.log(init_std)))
        self.hidden = hidden
        self.observation_dim = observation_dim
        self.action_dim = action_dim

    def initial_state(self, batch: int, like: Tensor) -> Tensor:
        """The GRU state at the start of a task: zeros ``[1, batch, hidden]``."""
        return like.new_zeros(1, batch, self.hidden)

    def forward(self, inputs: Tensor, state: Tensor) -> tuple[Gaussian, Tensor, Tensor]:
        """``inputs [N, T, input_dim]`` from ``state``: the action distributions and values
        ``[N, T]`` of every step, and the state after the last step."""
        out, state = self.gru(inputs, state)
        return Gaussian(self.mean(out), self.log_std), self.value(out).squeeze(-1), state
