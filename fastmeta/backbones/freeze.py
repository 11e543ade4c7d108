"""``model.freeze``: which parameters of a network are not trained.

``none`` trains everything; ``all`` freezes every parameter of the backbone (for a timm/hf
backbone the new linear head, where a method has one, still trains, and the backbone stays in
eval mode so its BatchNorm statistics are kept); a block name such as ``layer2`` or
``encoder.layer.3`` freezes every parameter registered before that block, and the block itself,
so the later blocks (and any head) train.
"""

from __future__ import annotations

from torch import nn

from fastmeta.backbones.errors import BackboneError
from fastmeta.backbones.network import BackboneNetwork


def freeze(network: nn.Module, setting: str) -> nn.Module:
    """``network`` with ``requires_grad`` off for the parameters ``setting`` names (see the
    module doc); returns it."""
    if setting == "none":
        return network
    body = network.backbone if isinstance(network, BackboneNetwork) else network
    names = [name for name, _ in body.named_parameters()]
    if setting == "all":
        frozen = set(names)
        if isinstance(network, BackboneNetwork):
            network.frozen = True
            network.train(network.training)
    else:
        inside = [i for i, n in enumerate(names) if n == setting or n.startswith(setting + ".")]
        if not inside:
            blocks = sorted({".".join(n.split(".")[:2]) for n in names})
            shown = ", ".join(blocks[:12]) + (", ..." if len(blocks) > 12 else "")
            raise BackboneError(
                f"model.freeze={setting} names no block of the network; use none, all, or one "
                f"of {shown}"
            )
        frozen = set(names[: inside[-1] + 1])
    for name, parameter in body.named_parameters():
        if name in frozen:
            parameter.requires_grad_(False)
    return network
