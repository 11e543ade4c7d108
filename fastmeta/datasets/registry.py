"""The datasets by name: what each is, its own settings, how it is prepared, how to load it.

Each entry declares everything that is particular to its dataset: its default image size and
channels, its preprocessing (Omniglot's inversion), the settings a run may give it (``data.split``
for Omniglot, ``data.fractions`` for a folder), where its files come from and which function
loads a split. The run configuration is checked against these entries, so a dataset listed here
is one ``fastmeta train`` can use. Loaders are imported only when used, so the catalogue itself
loads without torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from fastmeta.config import setting

from .errors import DatasetError
from .paths import SPLITS, PathLike

if TYPE_CHECKING:
    from fastmeta.data.store import ImageStore

    from .download import Resource


@dataclass(frozen=True)
class OmniglotOptions:
    """``data.split``: the Vinyals et al. class lists (rotations as classes) or MAML's random
    character split (1100 / 100 / 423 characters, each at four rotations)."""

    split: Literal["vinyals", "maml"] = setting(
        "vinyals", "the class split: Vinyals et al.'s lists, or MAML's random characters"
    )


@dataclass(frozen=True)
class MiniImageNetOptions:
    """``data.source``: the csv lists with ``images/`` (``"csv"``), the pickle cache
    (``"pickle"``), or whichever is present (``"auto"``, the pickle first)."""

    source: Literal["auto", "csv", "pickle"] = setting(
        "auto", "which files to read: csv lists with images/, the pickles, or whichever is there"
    )


@dataclass(frozen=True)
class FolderOptions:
    """The settings of your own image folder (see docs/OWN_DATA.md).

    Its classes are split by ``fractions`` in an order fixed by ``split_seed``; ``channels`` of
    ``None`` means grey (1) when every image is grey, else 3; ``normalize`` other than
    ``"none"`` standardises each channel by the training images' mean and std. ``split_file`` is
    the ``split.yaml`` that ``fastmeta train --data`` writes into the run directory, so the split
    is reused. ``resize`` says how a non-square image becomes square (centre crop by default).
    """

    fractions: tuple[float, float, float] = setting(
        (0.64, 0.16, 0.20), "train / val / test shares of the classes", minimum=0
    )
    split_seed: int = setting(0, "seeds the class split (another seed, another split)")
    channels: Literal[1, 3] | None = setting(None, "1 grey, 3 colour; unset: grey if all are")
    normalize: Literal["auto", "none", "dataset"] = setting(
        "auto", "standardise each channel by the training images (none: keep [0, 1])"
    )
    split_file: str | None = setting(None, "the split.yaml to reuse (train --data writes it)")
    resize: Literal["crop", "pad", "squash"] = setting(
        "crop", "non-square images: keep the centre square, pad with black, or squash"
    )


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, which files it needs where, and how to load one split.

    Attributes:
        name, title: the value of ``data.dataset`` and a line describing it.
        image_size, channels: the usual square size and the channels of its images;
            ``image_size`` is ``None`` for a dataset of generated tasks (sine regression).
        layout: the files it expects under its root, in words.
        resources: its files (:class:`~fastmeta.datasets.download.Resource`), or the import
            path of the tuple of them; see :meth:`files`.
        loader: ``load(split, root, image_size, **options)`` returning an ``ImageStore``, or its
            import path; ``None`` for generated tasks.
        tasks: the import path of the task source of generated tasks (``SineTasks``).
        options: dataclass of the dataset's own ``data.*`` settings (``None``: none).
        arguments: loader keyword for an option whose name differs (``{"split": "scheme"}``).
        invert: its images are inverted as loaded (Omniglot's strokes bright): what a run's
            new images must get too.
        own_data: a user's folder, whose class split is planned per run (``split.yaml``).
    """

    name: str
    title: str
    image_size: int | None
    channels: int
    layout: str
    resources: tuple[Resource, ...] | str = ()
    loader: Callable[..., ImageStore] | str | None = None
    tasks: str | None = None
    options: type | None = None
    arguments: dict[str, str] = field(default_factory=dict)
    invert: bool = False
    own_data: bool = False

    def files(self) -> tuple[Resource, ...]:
        """The dataset's files (imported from its loader module on first use)."""
        found: tuple[Resource, ...] = _resolve(self.resources)
        return found

    def channels_of(self, options: Any) -> int:
        """The channels of a run's images: the dataset's own ``channels`` setting where it has
        one and it is set (a folder), else its usual channels."""
        chosen: int | None = getattr(options, "channels", None)
        return chosen or self.channels

    def task_source(self) -> Any:
        """The class of a generated dataset's task source (``SineTasks(shots, queries, seed,
        batch_size)``)."""
        if self.tasks is None:
            raise DatasetError(f"{self.name} is read from files; it generates no tasks")
        return _resolve(self.tasks)

    def load(
        self, split: str, root: PathLike | None, image_size: int, /, **options: Any
    ) -> ImageStore:
        """One split as an ``ImageStore``; ``options`` are the dataset's own settings (renamed
        to the loader's keywords) or the loader's keywords themselves."""
        if self.loader is None:
            raise DatasetError(f"{self.name} generates its tasks; it has no image splits to load")
        loader: Callable[..., ImageStore] = _resolve(self.loader)
        renamed = {self.arguments.get(key, key): value for key, value in options.items()}
        return loader(split, root, image_size, **renamed)


def _resolve(value: Any) -> Any:
    """``value``, or the object its ``"module:attribute"`` import path names."""
    if not isinstance(value, str):
        return value
    module, _, attribute = value.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _folder(split: str, root: PathLike | None, image_size: int, **options: Any) -> ImageStore:
    if root is None:
        raise DatasetError("the folder dataset needs root=<folder with one sub-folder per class>")
    from .folder import load_image_folder

    return load_image_folder(root, split, image_size, **options)


_CIFAR_LAYOUT = (
    "cifar-100-python.tar.gz (or cifar-100-python/); splits/{train,val,test}.json or .txt"
)
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
            resources="fastmeta.datasets.omniglot:RESOURCES",
            loader="fastmeta.datasets.omniglot:load_omniglot",
            options=OmniglotOptions,
            arguments={"split": "scheme"},
            invert=True,
        ),
        DatasetInfo(
            "miniimagenet",
            "mini-ImageNet: 100 ImageNet classes x 600 images, Ravi & Larochelle split",
            84,
            3,
            "mini-imagenet-cache-{train,val,test}.pkl, or splits/{train,val,test}.csv "
            "with images/<filename>",
            resources="fastmeta.datasets.miniimagenet:RESOURCES",
            loader="fastmeta.datasets.miniimagenet:load_miniimagenet",
            options=MiniImageNetOptions,
        ),
        DatasetInfo(
            "tieredimagenet",
            "tiered-ImageNet: 608 ImageNet classes in 34 categories (Ren et al. 2018)",
            84,
            3,
            "{train,val,test}_images_png.pkl (or _images.npz) with {train,val,test}_labels.pkl",
            resources="fastmeta.datasets.tieredimagenet:RESOURCES",
            loader="fastmeta.datasets.tieredimagenet:load_tieredimagenet",
        ),
        DatasetInfo(
            "cifar-fs",
            "CIFAR-FS: CIFAR-100 split 64/16/20 by class (Bertinetto et al. 2019)",
            32,
            3,
            _CIFAR_LAYOUT,
            resources="fastmeta.datasets.cifar:CIFAR_FS_RESOURCES",
            loader="fastmeta.datasets.cifar:load_cifarfs",
        ),
        DatasetInfo(
            "fc100",
            "FC100: CIFAR-100 split 12/4/4 by superclass (Oreshkin et al. 2018)",
            32,
            3,
            _CIFAR_LAYOUT,
            resources="fastmeta.datasets.cifar:FC100_RESOURCES",
            loader="fastmeta.datasets.cifar:load_fc100",
        ),
        DatasetInfo(
            "cub",
            "CUB-200-2011 birds, 100/50/50 class split (Chen et al. 2019)",
            84,
            3,
            "CUB_200_2011.tgz (or CUB_200_2011/images/<class>/*.jpg); splits/{train,val,test}.json",
            resources="fastmeta.datasets.cub:RESOURCES",
            loader="fastmeta.datasets.cub:load_cub",
        ),
        DatasetInfo(
            "folder",
            "your own images: one sub-folder per class",
            84,
            3,
            "<root>/<class name>/<image files>",
            loader=_folder,
            options=FolderOptions,
            arguments={"split_seed": "seed"},
            own_data=True,
        ),
        DatasetInfo(
            "sine",
            "sine-wave regression tasks, generated (Finn et al. 2017, section 5.1)",
            None,
            1,
            "no files: tasks are drawn from a seed",
            tasks="fastmeta.datasets.sine:SineTasks",
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
    ``options`` go to the dataset's loader (e.g. ``scheme="maml"`` or ``split="maml"`` for
    Omniglot, ``download=True``, ``cache_dir=...``).
    """
    info = dataset_info(name)
    return info.load(split, root, image_size or info.image_size or 0, **options)


def load_splits(
    name: str,
    root: PathLike | None = None,
    image_size: int | None = None,
    splits: Sequence[str] = SPLITS,
    **options: Any,
) -> dict[str, ImageStore]:
    """Several splits of ``name`` (train, val and test by default); the decode happens once."""
    return {split: load_split(name, split, root, image_size, **options) for split in splits}
