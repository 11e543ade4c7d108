"""Few-shot benchmark loaders: original file formats in, cached uint8 :class:`ImageStore` out.

``load_split("omniglot", "train")`` reads ``$FASTMETA_DATA/omniglot``, decodes it once into a
cache under ``$FASTMETA_CACHE`` and returns the split's store. See ``docs/DATASETS.md``.
"""

from .archives import extract_archive
from .cache import LabelledImages
from .cifar import load_cifarfs, load_fc100
from .cub import load_cub
from .download import Resource, fetch
from .errors import (
    CorruptDataError,
    DatasetError,
    DownloadError,
    MissingDataError,
    SplitError,
)
from .folder import FolderReport, load_image_folder, read_image_folder
from .miniimagenet import load_miniimagenet
from .omniglot import load_omniglot, read_omniglot
from .registry import DATASETS, DatasetInfo, dataset_info, load_split, load_splits
from .tieredimagenet import load_tieredimagenet

__all__ = [
    "DATASETS",
    "CorruptDataError",
    "DatasetError",
    "DatasetInfo",
    "DownloadError",
    "FolderReport",
    "LabelledImages",
    "MissingDataError",
    "Resource",
    "SplitError",
    "dataset_info",
    "extract_archive",
    "fetch",
    "load_cifarfs",
    "load_cub",
    "load_fc100",
    "load_image_folder",
    "load_miniimagenet",
    "load_omniglot",
    "load_split",
    "load_splits",
    "load_tieredimagenet",
    "read_image_folder",
    "read_omniglot",
]
