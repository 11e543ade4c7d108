"""Time one meta-step of every preset on this machine, for ``fastmeta presets``.

``python -m benchmarks.preset_times [--steps 20] [--write]`` builds each preset's run (real data
from ``$FASTMETA_DATA``; the folder preset on a generated pattern folder of 92 classes), runs a few
warm-up meta-steps, then times ``--steps`` more on one thread, and prints seconds per step with
the preset's whole length extrapolated. ``--write`` puts the result into each preset's
``# measured:`` line (with the machine, the thread count, the load and the date), which
``fastmeta presets`` shows. Validation and testing are not timed (they add a few percent).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import tempfile
import time
from pathlib import Path

import torch

from fastmeta.config import apply_overrides
from fastmeta.presets import load_config, preset_names
from fastmeta.train.trainer import Trainer

PRESETS = Path(__file__).resolve().parent.parent / "fastmeta" / "presets"


def seconds_per_step(name: str, steps: int, warmup: int, scratch: Path) -> float:
    """The median seconds of one meta-step of preset ``name`` over ``steps`` timed steps."""
    config = load_config(name)
    overrides = ["device=cpu"]
    if config.data.dataset == "folder":
        from fastmeta.datasets.patterns import write_pattern_folder

        folder = write_pattern_folder(scratch / "patterns", classes=92, images=30, size=96)
        overrides.append(f"data.root={folder}")
    trainer = Trainer(apply_overrides(config, overrides), scratch / name, progress_bar=False)
    for _ in range(warmup):
        trainer.train_step()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        trainer.train_step()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def measured_line(seconds: float, iterations: int, load: float) -> str:
    total = seconds * iterations / 60
    length = f"{total:.0f} min" if total < 120 else f"{total / 60:.1f} h"
    machine = f"{os.cpu_count()}-core {platform.machine()} CPU"
    return (
        f"# measured: {seconds:.3g} s per meta-step here, so about {length} for the whole preset "
        f"({machine}, 1 thread, load {load:.1f}, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')})"
    )


def write_measured(name: str, line: str) -> None:
    """Put ``line`` into the preset's leading comments, replacing an older one."""
    path = PRESETS / f"{name}.yaml"
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("# measured:")]
    comments = next((i for i, ln in enumerate(lines) if not ln.startswith("#")), len(lines))
    lines.insert(comments, line)
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="these presets only")
    parser.add_argument("--write", action="store_true", help="write the presets' measured line")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.only or preset_names()
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            load = os.getloadavg()[0]
            seconds = seconds_per_step(name, args.steps, args.warmup, Path(scratch))
            line = measured_line(seconds, load_config(name).train.iterations, load)
            print(f"{name:<32} {re.sub(r'^# measured: ', '', line)}", flush=True)
            if args.write:
                write_measured(name, line)


if __name__ == "__main__":
    main()
