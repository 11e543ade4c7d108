"""ImageStore: a whole few-shot split held as one uint8 tensor, sampled by index.

Images are decoded once (by a loader in :mod:`fastmeta.datasets`) into ``images [N, C, H, W]``
uint8 with a base label per image. A *class* of the store is a base label seen at a rotation
(0, 90, 180 or 270 degrees): Omniglot's rotated characters are new classes. Sampling an episode
is drawing indices; :meth:`ImageStore.gather` turns them into float images in one indexing
operation plus one ``rot90`` per rotation present.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass(frozen=True)
class ImageStore:
    """uint8 images with base labels, and the classes (base label, quarter turns) to sample from.

    Args:
        images: ``[N, C, H, W]`` uint8.
        labels: ``[N]`` int64 base label of each image, in ``0..len(base_names)-1``.
        base_names: a name per base label (e.g. ``"Latin/character01"``).
        class_base: ``[K]`` base label of each sampled class (default: every base label once).
        class_turns: ``[K]`` quarter turns (0-3) of each sampled class (default: all 0).
    """

    images: Tensor
    labels: Tensor
    base_names: Sequence[str]
    class_base: Tensor = field(default=None)  # type: ignore[assignment]
    class_turns: Tensor = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"ImageStore images must be uint8 [N, C, H, W]; got {self.images.dtype} "
                f"with shape {tuple(self.images.shape)}"
            )
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"ImageStore needs one label per image: {self.images.shape[0]} images but labels "
                f"of shape {tuple(self.labels.shape)}"
            )
        labels = self.labels.long()
        object.__setattr__(self, "labels", labels)
        if labels.numel() and (labels.min() < 0 or labels.max() >= len(self.base_names)):
            raise ValueError(
                f"labels must lie in 0..{len(self.base_names) - 1} (one per base name); "
                f"found {int(labels.min())}..{int(labels.max())}"
            )
        if self.class_base is None:
            object.__setattr__(self, "class_base", torch.arange(len(self.base_names)))
        if self.class_turns is None:
            object.__setattr__(self, "class_turns", torch.zeros_like(self.class_base))
        if self.class_base.shape != self.class_turns.shape:
            raise ValueError("class_base and class_turns must have the same length")
        if self.class_turns.numel() and (self.class_turns.min() < 0 or self.class_turns.max() > 3):
            raise ValueError("class_turns must be quarter turns in 0..3")
        order = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels, minlength=len(self.base_names))
        object.__setattr__(self, "_order", order)
        object.__setattr__(self, "_counts", counts)
        object.__setattr__(self, "_offsets", torch.cumsum(counts, 0) - counts)

    @property
    def num_classes(self) -> int:
        return int(self.class_base.numel())

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def class_sizes(self) -> Tensor:
        """``[K]`` number of images of each sampled class."""
        return self._counts[self.class_base]

    @property
    def class_names(self) -> list[str]:
        """Readable name of each sampled class, ``"<base>/rotDDD"`` when rotations are used."""
        rotated = bool((self.class_turns != 0).any())
        names = []
        for base, turns in zip(self.class_base.tolist(), self.class_turns.tolist(), strict=True):
            name = self.base_names[base]
            names.append(f"{name}/rot{90 * turns:03d}" if rotated else name)
        return names

    def class_image_indices(self, classes: Tensor, positions: Tensor) -> Tensor:
        """Image indices of the ``positions``-th images (in label order) of ``classes``.

        ``classes`` and ``positions`` broadcast together; positions index into each class's images.
        """
        base = self.class_base[classes]
        return self._order[self._offsets[base] + positions]

    def with_rotations(self, turns: Sequence[int] = (0, 1, 2, 3)) -> ImageStore:
        """Every current class at each of ``turns`` quarter turns, as new classes (class-major)."""
        if self.images.shape[2] != self.images.shape[3]:
            raise ValueError(
                f"rotation classes need square images; these are {tuple(self.images.shape[2:])}"
            )
        turns_t = torch.as_tensor(list(turns), dtype=torch.long)
        base = self.class_base.repeat_interleave(len(turns_t))
        extra = turns_t.repeat(self.num_classes)
        return ImageStore(
            self.images,
            self.labels,
            self.base_names,
            base,
            (self.class_turns.repeat_interleave(len(turns_t)) + extra) % 4,
        )

    def gather(self, image_indices: Tensor, classes: Tensor) -> Tensor:
        """Float images in [0, 1] for ``image_indices`` (any shape), rotated by their ``classes``.

        ``classes`` has the same shape as ``image_indices`` and gives the sampled class of each
        image, whose quarter turns are applied.
        """
        images = self.images.index_select(0, image_indices.reshape(-1).to(self.images.device))
        images = images.float().div_(255.0)
        turns = self.class_turns[classes.reshape(-1)].to(images.device)
        if bool((turns != 0).any()):
            for k in (1, 2, 3):
                rows = (turns == k).nonzero().squeeze(1)
                if rows.numel():
                    images[rows] = torch.rot90(images[rows], k, dims=(2, 3))
        return images.reshape(*image_indices.shape, *images.shape[1:])

    def to(self, device: torch.device | str) -> ImageStore:
        """The same store with its images on ``device`` (for sampling on the GPU)."""
        return ImageStore(
            self.images.to(device), self.labels, self.base_names, self.class_base, self.class_turns
        )
