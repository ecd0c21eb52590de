"""Names a package imports on first use (PEP 562's module ``__getattr__``).

``frreg``, ``frreg.producer`` and ``frreg.contracts`` keep their import cheap
(torch, numpy and Hypothesis load only when a name that needs them is used)
by declaring which module each public name lives in::

    __getattr__ = lazy_getattr(__name__, {"load_corpus": "frreg.corpus"})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``exports[name]`` and returns its ``name``.

    Any other name raises the ``AttributeError`` Python raises for a module.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
