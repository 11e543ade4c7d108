"""timm and transformers, imported on first use with a one-line message when they are missing
or do not load."""

from __future__ import annotations

import importlib
from types import ModuleType

from fastmeta.backbones.errors import MissingExtra


def import_extra(module: str, extra: str, why: str) -> ModuleType:
    """``module`` imported, or :class:`MissingExtra` saying ``pip install fastmeta[extra]``;
    an installed package that fails to import (timm and transformers' image code import
    torchvision, which must match torch's build) gets its first error line."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is not None and error.name.split(".")[0] != module.split(".")[0]:
            raise _broken(module, extra, why, error) from None
        raise MissingExtra(
            f"{why} needs {module.split('.')[0]}: pip install 'fastmeta[{extra}]'"
        ) from None
    except Exception as error:  # a broken dependency raises anything at import time
        raise _broken(module, extra, why, error) from None


def _broken(module: str, extra: str, why: str, error: BaseException) -> MissingExtra:
    cause = error.__cause__ or error.__context__ or error
    line = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    hint = ""
    if "torchvision" in line or "torchvision" in str(error):
        hint = (
            "; torchvision is installed but does not load against this torch: install the "
            "torchvision built for it, or uninstall torchvision"
        )
    return MissingExtra(
        f"{why} needs {module.split('.')[0]}, which is installed but fails to import "
        f"({type(cause).__name__}: {line}){hint} (or reinstall: pip install 'fastmeta[{extra}]')"
    )


def timm_module(why: str) -> ModuleType:
    """The ``timm`` package (extra ``timm``)."""
    return import_extra("timm", "timm", why)


def transformers_module(why: str) -> ModuleType:
    """The ``transformers`` package with its vision models loaded (extra ``hf``)."""
    transformers = import_extra("transformers", "hf", why)
    try:
        transformers.AutoModel  # noqa: B018  # the lazy module imports its model code here
        transformers.AutoConfig  # noqa: B018
    except Exception as error:
        raise _broken("transformers", "hf", why, error) from None
    return transformers
