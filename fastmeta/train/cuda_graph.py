"""A whole meta-step captured once as a CUDA graph and replayed for every later batch.

Tiny per-task kernels leave a GPU waiting on the CPU to launch them; a graph launches the
whole forward and backward of a meta-batch at once. Shapes must stay the same from batch to
batch (fixed ways, shots, queries and meta-batch), the step must not synchronise with the host
(MAML's does not), and Python-side state read during the step (schedules) is frozen at capture.
Untested on hardware in this repository's CI, which has no GPU: the tests skip without CUDA.
"""

from __future__ import annotations

import torch

from fastmeta.algorithms.base import MetaLearner, MetaOutput
from fastmeta.tasks import TaskBatch


def _tensors(batch: TaskBatch) -> tuple[torch.Tensor, ...]:
    return (batch.support_x, batch.support_y, batch.query_x, batch.query_y)


class CapturedMetaStep:
    """``step(batch)`` does what ``algorithm.accumulate_gradients(batch, chunk_size)`` does,
    by replaying a CUDA graph captured on ``example``.

    Each parameter's ``.grad`` holds the new batch's gradient afterwards (overwritten, not
    accumulated), so clip and step the optimizer as usual. The returned :class:`MetaOutput`
    is reused by the next replay: copy what you keep.
    """

    def __init__(
        self,
        algorithm: MetaLearner,
        example: TaskBatch,
        chunk_size: int | None = None,
        warmup_steps: int = 3,
    ) -> None:
        if not torch.cuda.is_available() or example.device.type != "cuda":
            raise RuntimeError(
                "CUDA graph capture needs a CUDA device and a batch on it (got a batch on "
                f"{example.device}); on other devices call algorithm.accumulate_gradients"
            )
        self.params = [p for p in algorithm.parameters() if p.requires_grad]
        self.static = TaskBatch(*(t.clone() for t in _tensors(example)))
        side = torch.cuda.Stream(example.device)  # type: ignore[no-untyped-call]  # torch: untyped
        side.wait_stream(torch.cuda.current_stream(example.device))
        with torch.cuda.stream(side):  # warm-up runs allocate workspaces outside the graph
            for _ in range(warmup_steps):
                algorithm.zero_grad(set_to_none=True)
                algorithm.accumulate_gradients(self.static, chunk_size)
        torch.cuda.current_stream(example.device).wait_stream(side)
        algorithm.zero_grad(set_to_none=True)  # the captured backward then writes, not adds
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output: MetaOutput = algorithm.accumulate_gradients(self.static, chunk_size)
        self.grads = [p.grad for p in self.params]

    def __call__(self, batch: TaskBatch) -> MetaOutput:
        for static, new in zip(_tensors(self.static), _tensors(batch), strict=True):
            if static.shape != new.shape or static.dtype != new.dtype:
                raise ValueError(
                    f"a captured meta-step replays one shape only: captured {tuple(static.shape)} "
                    f"{static.dtype}, got {tuple(new.shape)} {new.dtype}; capture a new step "
                    "for another task shape or meta-batch size"
                )
            static.copy_(new, non_blocking=True)
        self.graph.replay()
        for param, grad in zip(self.params, self.grads, strict=True):
            param.grad = grad  # restores the graph's buffers if zero_grad(set_to_none) ran
        return self.output
