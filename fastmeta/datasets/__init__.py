"""Few-shot benchmark loaders: original file formats in, cached uint8 :class:`ImageStore` out.

``load_split("omniglot", "train")`` reads ``$FASTMETA_DATA/omniglot``, decodes it once into a
cache under ``$FASTMETA_CACHE`` and returns the split's store. See ``docs/DATASETS.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastmeta.lazy import lazy_attributes

if TYPE_CHECKING:
    from .archives import extract_archive as extract_archive
    from .cache import LabelledImages as LabelledImages
    from .cifar import load_cifarfs as load_cifarfs
    from .cifar import load_fc100 as load_fc100
    from .cub import load_cub as load_cub
    from .download import Resource as Resource
    from .download import fetch as fetch
    from .errors import CorruptDataError as CorruptDataError
    from .errors import DatasetError as DatasetError
    from .errors import DownloadError as DownloadError
    from .errors import MissingDataError as MissingDataError
    from .errors import SplitError as SplitError
    from .folder import FolderReport as FolderReport
    from .folder import load_image_folder as load_image_folder
    from .folder import read_image_folder as read_image_folder
    from .miniimagenet import load_miniimagenet as load_miniimagenet
    from .omniglot import load_omniglot as load_omniglot
    from .omniglot import read_omniglot as read_omniglot
    from .registry import DATASETS as DATASETS
    from .registry import DatasetInfo as DatasetInfo
    from .registry import dataset_info as dataset_info
    from .registry import load_split as load_split
    from .registry import load_splits as load_splits
    from .tieredimagenet import load_tieredimagenet as load_tieredimagenet

_WHERE = {
    "CorruptDataError": "errors",
    "DATASETS": "registry",
    "DatasetError": "errors",
    "DatasetInfo": "registry",
    "DownloadError": "errors",
    "FolderReport": "folder",
    "LabelledImages": "cache",
    "MissingDataError": "errors",
    "Resource": "download",
    "SplitError": "errors",
    "dataset_info": "registry",
    "extract_archive": "archives",
    "fetch": "download",
    "load_cifarfs": "cifar",
    "load_cub": "cub",
    "load_fc100": "cifar",
    "load_image_folder": "folder",
    "load_miniimagenet": "miniimagenet",
    "load_omniglot": "omniglot",
    "load_split": "registry",
    "load_splits": "registry",
    "load_tieredimagenet": "tieredimagenet",
    "read_image_folder": "folder",
    "read_omniglot": "omniglot",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_attributes(__name__, {k: f"{__name__}.{m}" for k, m in _WHERE.items()})
