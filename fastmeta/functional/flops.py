"""Counting the floating-point operations of a block of code, for ``"auto"``'s choice of how
tasks run (see :meth:`~fastmeta.algorithms.MetaLearner.task_flops`)."""

from __future__ import annotations

from typing import Any

from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry


class FlopCount(TorchDispatchMode):  # type: ignore[no-untyped-call]  # torch's untyped base
    """Adds up the floating-point operations of the matrix products and convolutions run in
    the block, with torch's own per-operation formulas (``flop_registry``). Unlike torch's
    ``FlopCounterMode`` it tracks no modules, so ``autograd.grad`` inside (an inner loop) works."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # torch leaves it untyped
        self.total = 0

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.total += int(count(*args, **kwargs, out_val=out))
        return out
