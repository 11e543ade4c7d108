"""Does this CPU compute in bfloat16? One MAML task and one convolution in float32 and bf16.

Prints what torch's CPU probe says (AVX512-BF16, AMX), the seconds of one second-order and one
first-order MAML task (Conv4-32 with max-pooling, 84x84x3, 5-way 1-shot, 15 queries, 5 inner
steps) in each precision, the GFLOP/s of a 32->32 3x3 convolution in both memory layouts, and
(``--profile``) the kernels bf16 ran: ``aten::_slow_conv2d_*`` means torch's reference kernels,
``aten::mkldnn_convolution`` oneDNN's.

    OMP_NUM_THREADS=1 python -m benchmarks.cpu_bf16_probe [--profile]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


def conv4(channels: int, hidden: int) -> nn.Sequential:
    def block(i: int, o: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)
        )

    blocks = [block(channels, hidden), *(block(hidden, hidden) for _ in range(3))]
    return nn.Sequential(*blocks, nn.Flatten(), nn.LazyLinear(5))


def maml_task(second_order: bool, steps: int = 5) -> Callable[[], None]:
    torch.manual_seed(0)
    net = conv4(3, 32)
    support, labels = torch.randn(5, 3, 84, 84), torch.arange(5)
    query, query_labels = torch.randn(75, 3, 84, 84), torch.arange(5).repeat(15)
    net(support)
    params = dict(net.named_parameters())

    def run() -> None:
        fast = params
        for _ in range(steps):
            loss = F.cross_entropy(functional_call(net, fast, (support,)), labels)
            grads = torch.autograd.grad(loss, list(fast.values()), create_graph=second_order)
            fast = {k: v - 0.01 * g for (k, v), g in zip(fast.items(), grads, strict=True)}
        F.cross_entropy(functional_call(net, fast, (query,)), query_labels).backward()

    return run


def seconds(fn: Callable[[], None], repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def in_precision(fn: Callable[[], None], bf16: bool) -> Callable[[], None]:
    def run() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            fn()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="list the kernels of a bf16 task")
    args = parser.parse_args()
    torch.set_num_threads(1)
    capability = torch._C._cpu._get_cpu_capability()
    native = f"avx512_bf16 {capability.get('avx512_bf16')}, amx_bf16 {capability.get('amx_bf16')}"
    print(f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, {native}")
    for second_order in (True, False):
        task = maml_task(second_order)
        times = [seconds(in_precision(task, bf16), args.repeats) for bf16 in (False, True)]
        order = "second" if second_order else "first"
        print(f"MAML {order} order, s per task: float32 {times[0]:.3f}, bf16 {times[1]:.3f}")
    x, w = torch.randn(75, 32, 42, 42), torch.randn(32, 32, 3, 3)
    flops = 2 * 75 * 32 * 32 * 9 * 42 * 42
    for layout in (torch.contiguous_format, torch.channels_last):
        rates = []
        for dtype in (torch.float32, torch.bfloat16):
            a, b = x.to(dtype).contiguous(memory_format=layout), w.to(dtype)
            rates.append(flops / seconds(lambda a=a, b=b: F.conv2d(a, b, padding=1), 5) / 1e9)
        print(f"conv {layout}: GFLOP/s float32 {rates[0]:.0f}, bf16 {rates[1]:.0f}")
    if args.profile:
        task = in_precision(maml_task(True), True)
        with torch.profiler.profile() as profile:
            task()
        print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


if __name__ == "__main__":
    main()
