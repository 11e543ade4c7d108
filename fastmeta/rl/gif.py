"""A short GIF of a run's policy adapted to one test task, rendered offscreen (MuJoCo tasks).

The policy (``best.pt``) is adapted with the run's evaluation protocol (fresh episodes per
step), then one episode of its mean action is rendered with ``render_mode="rgb_array"``.
Rendering needs an offscreen OpenGL: ``MUJOCO_GL`` is set to ``egl`` unless already set
(``osmesa`` also works where installed); it must be set before MuJoCo is first imported, so
this module sets it before it builds anything.
"""

from __future__ import annotations

import os
from pathlib import Path

FRAME_EVERY = 2
SIZE = (320, 240)


def adapted_gif(run_dir: Path, task: int = 0, steps: int = 1, out: Path | None = None) -> Path:
    """Write the GIF of test task ``task`` after ``steps`` adaptation steps; its path."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    import numpy as np
    import torch
    from PIL import Image

    from fastmeta.rl.evaluation import adapt_to, step_sizes
    from fastmeta.rl.locomotion import FAMILIES, maker
    from fastmeta.rl.rl2 import RL2
    from fastmeta.rl.seeding import seed_of
    from fastmeta.rl.trainer import RLTrainer

    trainer = RLTrainer.resume(run_dir, progress_bar=False)
    config = trainer.config
    if config.env.name not in FAMILIES or isinstance(trainer.algorithm, RL2):
        raise ValueError(
            f"gif renders gradient meta-learners on the MuJoCo tasks ({', '.join(FAMILIES)}); "
            f"this run is {config.algorithm.name} on {config.env.name}"
        )
    best = trainer.run.load_best(trainer.expected(), ignore=("rl_config.eval",))
    if best is not None:
        trainer.policy.load_state_dict(best["policy"])
    tasks = trainer.streams.test.tasks(task, 1)
    seed = seed_of(config.eval.seed, 3)
    params = adapt_to(
        trainer.algorithm, tasks, steps, config.eval.episodes, step_sizes(config, steps), seed
    )
    env = maker(config.env.name, render_mode="rgb_array", width=SIZE[0], height=SIZE[1])()
    try:
        env.set_wrapper_attr("task", tasks.params[0].numpy())
        obs, _ = env.reset(seed=seed)
        frames, total = [], 0.0
        for t in range(trainer.env.horizon):
            x = torch.as_tensor(np.asarray(obs), dtype=torch.get_default_dtype())
            with torch.no_grad():
                mean = trainer.algorithm.policy.distribution(params, x.reshape(1, 1, -1)).mean
            obs, reward, terminated, truncated, _ = env.step(mean.reshape(-1).clamp(-1, 1).numpy())
            total += float(reward)
            if t % FRAME_EVERY == 0:
                frames.append(Image.fromarray(np.asarray(env.render())))
            if terminated or truncated:
                break
    finally:
        env.close()
    path = out or trainer.run.path / "adapted.gif"
    frames[0].save(
        path,
        save_all=True,
        append_images=frames[1:],
        loop=0,
        duration=int(1000 * FRAME_EVERY * env.get_wrapper_attr("dt")),
    )
    print(
        f"test task {task} {tasks.params[0].tolist()}: return {total:.1f} of the rendered episode"
    )
    return path
