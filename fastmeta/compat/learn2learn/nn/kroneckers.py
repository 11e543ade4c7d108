"""Kronecker-factored layers (Jose et al. 2018; Arnold et al. 2019), learn2learn's ``nn``.

``KroneckerLinear(n, m)`` maps ``x`` in R^{n*m} to ``A x + b`` with ``A = R^T (x) L``: as
matrices, ``X [n, m] -> L X R + B``, so two factors of n^2 and m^2 entries replace one of
(nm)^2. The factors start at the identity and the bias at zero.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


class KroneckerLinear(nn.Module):
    """``L X R + B`` for inputs ``[..., n, m]``, or a flat ``[n * m]`` vector (column-major,
    as ``vec(X)``). ``psd=True`` uses ``L^T L`` and ``R^T R`` (positive semi-definite)."""

    def __init__(
        self,
        n: int,
        m: int,
        bias: bool = True,
        psd: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.left = nn.Parameter(torch.eye(n, device=device))
        self.right = nn.Parameter(torch.eye(m, device=device))
        self.bias = nn.Parameter(torch.zeros(n, m, device=device)) if bias else None
        self.psd = psd
        self.device = device

    def forward(self, x: Tensor) -> Tensor:
        n, m = self.left.shape[0], self.right.shape[0]
        source = x.device
        if self.device is not None:
            x = x.to(self.device)
        left: Tensor = self.left
        right: Tensor = self.right
        if self.psd:
            left, right = left.t() @ left, right.t() @ right
        if x.dim() == 1:
            if x.numel() != n * m:
                raise ValueError(f"a flat input to KroneckerLinear must have n*m = {n * m} entries")
            return self._apply_factors(left, right, x.reshape(m, n).t()).t().flatten().to(source)
        if tuple(x.shape[-2:]) != (n, m):
            raise ValueError(
                f"KroneckerLinear inputs end in shape ({n}, {m}); got {tuple(x.shape)}"
            )
        return self._apply_factors(left, right, x).to(source)

    def _apply_factors(self, left: Tensor, right: Tensor, x: Tensor) -> Tensor:
        out = left @ x @ right
        return out if self.bias is None else out + self.bias


class KroneckerRNN(nn.Module):
    """An RNN cell of Kronecker-factored maps: ``h' = sigma(W_h x + U_h h)``, ``y = W_y h'``;
    returns ``(y, h')``."""

    def __init__(
        self, n: int, m: int, bias: bool = True, sigma: Callable[[Tensor], Tensor] | None = None
    ) -> None:
        super().__init__()
        self.W_h = KroneckerLinear(n, m, bias=bias)
        self.U_h = KroneckerLinear(n, m, bias=bias)
        self.W_y = KroneckerLinear(n, m, bias=bias)
        self.sigma = nn.Tanh() if sigma is None else sigma

    def forward(self, x: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        new_hidden = self.sigma(self.W_h(x) + self.U_h(hidden))
        return self.W_y(new_hidden), new_hidden


class KroneckerLSTM(nn.Module):
    """An LSTM cell whose eight maps are Kronecker-factored; ``forward(x, (h, c))`` returns
    ``(h', (h', c'))``; ``sigma`` is the gate activation (default sigmoid)."""

    def __init__(
        self, n: int, m: int, bias: bool = True, sigma: Callable[[Tensor], Tensor] | None = None
    ) -> None:
        super().__init__()
        self.W_ii = KroneckerLinear(n, m, bias=bias)
        self.W_hi = KroneckerLinear(n, m, bias=bias)
        self.W_if = KroneckerLinear(n, m, bias=bias)
        self.W_hf = KroneckerLinear(n, m, bias=bias)
        self.W_ig = KroneckerLinear(n, m, bias=bias)
        self.W_hg = KroneckerLinear(n, m, bias=bias)
        self.W_io = KroneckerLinear(n, m, bias=bias)
        self.W_ho = KroneckerLinear(n, m, bias=bias)
        self.sigma = nn.Sigmoid() if sigma is None else sigma
        self.tanh = nn.Tanh()

    def forward(
        self, x: Tensor, hidden: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        h, c = hidden
        i = self.sigma(self.W_ii(x) + self.W_hi(h))
        f = self.sigma(self.W_if(x) + self.W_hf(h))
        g = self.tanh(self.W_ig(x) + self.W_hg(h))
        o = self.sigma(self.W_io(x) + self.W_ho(h))
        c = f * c + i * g
        h = o * self.tanh(c)
        return h, (h, c)
