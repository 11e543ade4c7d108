"""The network whose embedding a trained method's test-time heads read."""

from __future__ import annotations

from torch import Tensor, nn


class WithoutHead(nn.Module):
    """``network`` with its linear ``head`` skipped: the embedding the head would read."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: Tensor) -> Tensor:
        head = self.network.head
        self.network.head = nn.Identity()
        try:
            out: Tensor = self.network(x)
        finally:
            self.network.head = head
        return out


def head_encoder(algorithm: nn.Module, method: str) -> nn.Module:
    """A metric learner's encoder, Baseline's backbone, or the gradient family's network
    without its ways-wide head; a method with none (Relation Networks' feature maps, CAVIA's
    context-conditioned network) is refused in one line."""
    from fastmeta.algorithms.cavia import CAVIA
    from fastmeta.algorithms.relation import RelationNetwork

    if isinstance(algorithm, (RelationNetwork, CAVIA)):
        raise ValueError(
            f"eval.heads: {method} has no image embedding for a head to read (Relation "
            "Networks compare feature maps, CAVIA's network needs its context); score heads "
            "on a run of another method"
        )
    for name in ("encoder", "backbone"):
        network = getattr(algorithm, name, None)
        if isinstance(network, nn.Module):
            return network
    model = getattr(algorithm, "model", None)
    if isinstance(model, nn.Module) and isinstance(getattr(model, "head", None), nn.Linear):
        return WithoutHead(model)
    raise ValueError(f"eval.heads: {method}'s network has no embedding for a head to read")
