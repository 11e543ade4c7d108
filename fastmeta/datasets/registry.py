"""The benchmark datasets by name, and one entry point to load any of their splits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastmeta.data.store import ImageStore

from . import cifar, cub, miniimagenet, omniglot, tieredimagenet
from .download import Resource
from .errors import DatasetError
from .folder import load_image_folder
from .paths import SPLITS, PathLike


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, which files it needs where, and how to load one split.

    ``load(split, root, image_size, **options)`` returns an :class:`ImageStore`.
    """

    name: str
    title: str
    image_size: int
    channels: int
    layout: str
    resources: tuple[Resource, ...]
    load: Callable[..., ImageStore]


def _folder(split: str, root: PathLike | None, image_size: int, **options: Any) -> ImageStore:
    if root is None:
        raise DatasetError("the folder dataset needs root=<folder with one sub-folder per class>")
    return load_image_folder(root, split, image_size, **options)


DATASETS = {
    info.name: info
    for info in (
        DatasetInfo(
            "omniglot",
            "Omniglot: 1623 handwritten characters x 20 drawings (Lake et al. 2015)",
            28,
            1,
            "images_background.zip, images_evaluation.zip (or their extracted folders); "
            "splits/vinyals/{train,val,test}.txt for the Vinyals split",
            omniglot.RESOURCES,
            omniglot.load_omniglot,
        ),
        DatasetInfo(
            "miniimagenet",
            "mini-ImageNet: 100 ImageNet classes x 600 images, Ravi & Larochelle split",
            84,
            3,
            "mini-imagenet-cache-{train,val,test}.pkl, or splits/{train,val,test}.csv "
            "with images/<filename>",
            miniimagenet.RESOURCES,
            miniimagenet.load_miniimagenet,
        ),
        DatasetInfo(
            "tieredimagenet",
            "tiered-ImageNet: 608 ImageNet classes in 34 categories (Ren et al. 2018)",
            84,
            3,
            "{train,val,test}_images_png.pkl (or _images.npz) with {train,val,test}_labels.pkl",
            tieredimagenet.RESOURCES,
            tieredimagenet.load_tieredimagenet,
        ),
        DatasetInfo(
            "cifar-fs",
            "CIFAR-FS: CIFAR-100 split 64/16/20 by class (Bertinetto et al. 2019)",
            32,
            3,
            "cifar-100-python.tar.gz (or cifar-100-python/); splits/{train,val,test}.json or .txt",
            cifar.RESOURCES["cifar-fs"],
            cifar.load_cifarfs,
        ),
        DatasetInfo(
            "fc100",
            "FC100: CIFAR-100 split 12/4/4 by superclass (Oreshkin et al. 2018)",
            32,
            3,
            "cifar-100-python.tar.gz (or cifar-100-python/); splits/{train,val,test}.json or .txt",
            cifar.RESOURCES["fc100"],
            cifar.load_fc100,
        ),
        DatasetInfo(
            "cub",
            "CUB-200-2011 birds, 100/50/50 class split (Chen et al. 2019)",
            84,
            3,
            "CUB_200_2011.tgz (or CUB_200_2011/images/<class>/*.jpg); splits/{train,val,test}.json",
            cub.RESOURCES,
            cub.load_cub,
        ),
        DatasetInfo(
            "folder",
            "your own images: one sub-folder per class",
            84,
            3,
            "<root>/<class name>/<image files>",
            (),
            _folder,
        ),
    )
}
_ALIASES = {
    "mini-imagenet": "miniimagenet",
    "mini_imagenet": "miniimagenet",
    "tiered-imagenet": "tieredimagenet",
    "tiered_imagenet": "tieredimagenet",
    "cifarfs": "cifar-fs",
    "cifar_fs": "cifar-fs",
    "cub200": "cub",
    "cub-200-2011": "cub",
}


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name`` (a few spellings accepted), or a clear error."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    return DATASETS[key]


def load_split(
    name: str,
    split: str,
    root: PathLike | None = None,
    image_size: int | None = None,
    **options: Any,
) -> ImageStore:
    """One split of dataset ``name`` as an :class:`ImageStore`.

    ``root`` defaults to ``$FASTMETA_DATA/<name>``, ``image_size`` to the dataset's usual size;
    ``options`` go to the dataset's loader (e.g. ``scheme="maml"`` for Omniglot,
    ``download=True``, ``cache_dir=...``).
    """
    info = dataset_info(name)
    return info.load(split, root, image_size or info.image_size, **options)


def load_splits(
    name: str,
    root: PathLike | None = None,
    image_size: int | None = None,
    splits: Sequence[str] = SPLITS,
    **options: Any,
) -> dict[str, ImageStore]:
    """Several splits of ``name`` (train, val and test by default); the decode happens once."""
    return {split: load_split(name, split, root, image_size, **options) for split in splits}
