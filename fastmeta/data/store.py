"""ImageStore: a whole few-shot split held as one uint8 tensor, sampled by index.

Images are decoded once (by a loader in :mod:`fastmeta.datasets`) into ``images [N, C, H, W]``
uint8 with a base label per image. A *class* of the store is a base label seen at a rotation
(0, 90, 180 or 270 degrees): Omniglot's rotated characters are new classes. Sampling an episode
is drawing indices; :meth:`ImageStore.gather` turns them into float images in one indexing
operation plus one ``rot90`` per rotation present. Its index tensors live on the images' device, so
episodes can be sampled and gathered on the GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
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
    # None by default; __post_init__ always replaces it with a tensor
    class_base: Tensor = field(default=cast(Tensor, None))
    class_turns: Tensor = field(default=cast(Tensor, None))

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
        device = self.images.device
        labels = self.labels.long().to(device)
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
        object.__setattr__(self, "class_base", self.class_base.long().to(device))
        object.__setattr__(self, "class_turns", self.class_turns.long().to(device))
        if self.class_base.shape != self.class_turns.shape:
            raise ValueError("class_base and class_turns must have the same length")
        if self.class_base.numel() and (
            self.class_base.min() < 0 or self.class_base.max() >= len(self.base_names)
        ):
            raise ValueError(f"class_base must hold base labels in 0..{len(self.base_names) - 1}")
        if self.class_turns.numel() and (self.class_turns.min() < 0 or self.class_turns.max() > 3):
            raise ValueError("class_turns must be quarter turns in 0..3")
        counts = torch.bincount(labels, minlength=len(self.base_names))
        offsets = torch.cumsum(counts, 0) - counts
        self._order: Tensor  # derived attributes, set past the frozen dataclass's __setattr__
        self._counts: Tensor
        self._class_offsets: Tensor
        self._rotated: bool
        self._turned: tuple[Tensor, Tensor] | None
        # numpy's stable argsort: torch's parallel one spins for 0.5 s on a shared 2-core machine
        # (2 ms on one thread) for mini-ImageNet's 38,400 labels; the order is the same
        order = np.argsort(labels.cpu().numpy(), kind="stable")
        object.__setattr__(self, "_order", torch.from_numpy(order).to(labels.device))
        object.__setattr__(self, "_counts", counts)
        object.__setattr__(self, "_class_offsets", offsets[self.class_base])
        object.__setattr__(self, "_rotated", bool((self.class_turns != 0).any()))
        object.__setattr__(self, "_turned", None)

    @property
    def num_classes(self) -> int:
        return int(self.class_base.numel())

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return cast(tuple[int, int, int], tuple(self.images.shape[1:]))  # [N, C, H, W] checked

    @property
    def class_sizes(self) -> Tensor:
        """``[K]`` number of images of each sampled class."""
        return self._counts[self.class_base]

    @property
    def has_rotations(self) -> bool:
        """Whether some class is a rotated view (then :meth:`gather` needs the classes)."""
        return self._rotated

    @property
    def class_names(self) -> list[str]:
        """Readable name of each sampled class, ``"<base>/rotDDD"`` when rotations are used."""
        names = []
        for base, turns in zip(self.class_base.tolist(), self.class_turns.tolist(), strict=True):
            name = self.base_names[base]
            names.append(f"{name}/rot{90 * turns:03d}" if self._rotated else name)
        return names

    def class_image_indices(self, classes: Tensor, positions: Tensor) -> Tensor:
        """Image indices of the ``positions``-th images (in label order) of ``classes``.

        ``classes`` and ``positions`` broadcast together; positions index into each class's images.
        """
        return self._order[self._class_offsets[classes] + positions]

    @classmethod
    def concat(cls, stores: Sequence[ImageStore]) -> ImageStore:
        """One store holding the classes of all ``stores`` (e.g. train + val, to train on both).

        Base labels of later stores are shifted past those of earlier ones, so classes stay
        distinct even when two stores use the same names.
        """
        if not stores:
            raise ValueError("ImageStore.concat needs at least one store")
        shapes = {store.image_shape for store in stores}
        if len(shapes) != 1:
            raise ValueError(f"cannot concatenate stores of different image shapes: {shapes}")
        offsets = [0]
        for store in stores[:-1]:
            offsets.append(offsets[-1] + len(store.base_names))
        return cls(
            torch.cat([store.images for store in stores]),
            torch.cat([store.labels + o for store, o in zip(stores, offsets, strict=True)]),
            [name for store in stores for name in store.base_names],
            torch.cat([store.class_base + o for store, o in zip(stores, offsets, strict=True)]),
            torch.cat([store.class_turns for store in stores]),
        )

    def with_rotations(self, turns: Sequence[int] = (0, 1, 2, 3)) -> ImageStore:
        """Every current class at each of ``turns`` quarter turns, as new classes (class-major)."""
        if self.images.shape[2] != self.images.shape[3]:
            raise ValueError(
                f"rotation classes need square images; these are {tuple(self.images.shape[2:])}"
            )
        turns_t = torch.as_tensor(list(turns), dtype=torch.long, device=self.class_base.device)
        base = self.class_base.repeat_interleave(len(turns_t))
        extra = turns_t.repeat(self.num_classes)
        return ImageStore(
            self.images,
            self.labels,
            self.base_names,
            base,
            (self.class_turns.repeat_interleave(len(turns_t)) + extra) % 4,
        )

    def gather(self, image_indices: Tensor, classes: Tensor | None = None) -> Tensor:
        """Float images in [0, 1] for ``image_indices`` (any shape), rotated by their ``classes``.

        ``classes`` has the same shape as ``image_indices`` and gives the sampled class of each
        image, whose quarter turns are applied; it may be None for a store without rotations.
        Either way this is one ``index_select`` and one conversion to float.
        """
        flat = image_indices.reshape(-1).to(self.images.device)
        source = self.images
        if self._rotated:
            if classes is None:
                raise ValueError(
                    "this store has rotated classes: pass the class of each image to gather()"
                )
            source, turn_offsets = self._turned_images()
            flat = flat + turn_offsets[classes.reshape(-1).to(self.images.device)]
        images = source.index_select(0, flat).float().mul_(1.0 / 255.0)
        return images.reshape(*image_indices.shape, *images.shape[1:])

    def _turned_images(self) -> tuple[Tensor, Tensor]:
        """The images at every quarter turn in use, stacked, and each class's offset into them.

        Built on first use and kept: uint8 memory grows by the number of turns in use, and
        gathering rotated classes stays a single ``index_select``.
        """
        turned = self._turned
        if turned is None:
            used = torch.unique(self.class_turns).tolist()
            stacked = torch.cat([torch.rot90(self.images, k, dims=(2, 3)) for k in used])
            slot = torch.zeros(4, dtype=torch.long, device=self.images.device)
            slot[used] = torch.arange(len(used), device=self.images.device)
            offsets = slot[self.class_turns] * self.images.shape[0]
            turned = (stacked, offsets)
            object.__setattr__(self, "_turned", turned)
        return turned

    def to(self, device: torch.device | str) -> ImageStore:
        """The same store with its images and index tensors on ``device`` (to sample on the GPU)."""
        return ImageStore(
            self.images.to(device), self.labels, self.base_names, self.class_base, self.class_turns
        )
