"""build_algorithm: shared settings reach the algorithms that use them, and only those."""

from __future__ import annotations

import pytest

from fastmeta.config import apply_overrides
from fastmeta.run.build import build_algorithm, build_model, build_optimizer
from fastmeta.run_config import RunConfig


def built(name: str, *overrides: str):
    config = apply_overrides(
        RunConfig(), [f"algorithm.name={name}", "model.hidden=4", "sampler.ways=3", *overrides]
    )
    return build_algorithm(config, build_model(config, (1, 28, 28)))


@pytest.mark.parametrize("name", ["maml", "metasgd", "anil", "boil"])
def test_checkpointed_inner_steps_reach_the_maml_family(name):
    assert built(name, "algorithm.checkpoint_inner_steps=true").checkpoint_inner_steps
    assert not built(name).checkpoint_inner_steps


@pytest.mark.parametrize("name", ["mamlpp", "reptile", "protonet"])
def test_checkpointed_inner_steps_are_refused_where_they_would_be_ignored(name):
    with pytest.raises(ValueError, match="checkpoint_inner_steps applies to maml, metasgd"):
        built(name, "algorithm.checkpoint_inner_steps=true")


def test_a_wholly_frozen_learner_is_refused_with_what_to_do():
    config = apply_overrides(
        RunConfig(), ["algorithm.name=protonet", "model.hidden=4", "model.freeze=all"]
    )
    with pytest.raises(ValueError, match=r"nothing to train: every parameter of protonet"):
        build_optimizer(config, build_algorithm(config, build_model(config, (1, 28, 28))))
    config = apply_overrides(config, ["model.freeze=none"])
    optimizer, _ = build_optimizer(
        config, build_algorithm(config, build_model(config, (1, 28, 28)))
    )
    assert optimizer.param_groups[0]["params"]
