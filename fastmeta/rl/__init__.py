"""Meta-reinforcement learning: task distributions, batched rollouts, MAML-TRPO, CAVIA, ProMP,
first-order MAML-PPO and RL², a trainer and its commands (``fastmeta rl``).

The core package never imports this one; this one imports gymnasium, MuJoCo and Meta-World
only in the modules that need them (``locomotion``, ``navigation_gym``, ``vector``,
``metaworld_tasks``), when an environment of theirs is built. See docs/RL.md.
"""
