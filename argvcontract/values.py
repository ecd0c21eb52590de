"""The value registry: what each ``type=`` callable reads, and how to write it back.

Two things are registered per ``type=`` callable, keyed by its qualified name
(:func:`type_name`), so a CLI module need not be imported to register its types:

* a *format*, the inverse of the callable (``(0, 1)`` is written ``0,1``),
  used by :func:`argvcontract.roundtrip.namespace_to_argv`;
* a :class:`ValueSpec`, the text it accepts and refuses, used by the
  Hypothesis strategies of :mod:`argvcontract.strategies`. A spec may be
  registered as a factory, called on first use, so that registering needs no
  Hypothesis import.

A project whose callables are best found on its real parsers (they move
between modules) registers a *loader* (:func:`register_loader`): it runs once,
before the first look-up. This module never imports Hypothesis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

Format = Callable[[Any], str]


def type_name(convert: Any) -> str | None:
    """``module.qualname`` of a ``type=`` callable (``int`` for builtins), ``None`` for none."""
    if convert is None:
        return None
    module = getattr(convert, "__module__", None)
    qualname = getattr(convert, "__qualname__", None) or repr(convert)
    if module in (None, "builtins"):
        return qualname
    return f"{module}.{qualname}"


@dataclass(frozen=True)
class ValueSpec:
    """Strategies for the text a ``type=`` callable accepts (``valid``) and refuses (``invalid``)."""

    valid: SearchStrategy[str]
    invalid: SearchStrategy[str] | None = None


_FORMATS: dict[str, Format] = {}
_SPECS: dict[str, ValueSpec] = {}
_SPEC_FACTORIES: dict[str, Callable[[], ValueSpec]] = {}
_LOADERS: list[Callable[[], None]] = []


def key_of(convert: Callable[..., Any] | str) -> str:
    """The registry key of a ``type=`` callable or of its qualified name."""
    key = convert if isinstance(convert, str) else type_name(convert)
    if key is None:
        raise ValueError("type=None needs no registration")
    return key


def register_format(convert: Callable[..., Any] | str, fmt: Format) -> None:
    """Register ``fmt``, the inverse of the ``type=`` callable ``convert`` (or its qualified name)."""
    _FORMATS[key_of(convert)] = fmt


def register_spec(convert: Callable[..., Any] | str, spec: ValueSpec) -> None:
    """Register the value strategies of ``convert`` (replacing any earlier registration)."""
    key = key_of(convert)
    _SPEC_FACTORIES.pop(key, None)
    _SPECS[key] = spec


def register_spec_factory(
    convert: Callable[..., Any] | str, factory: Callable[[], ValueSpec], *, replace: bool = True
) -> bool:
    """Register a function building ``convert``'s :class:`ValueSpec` on first use.

    With ``replace=False`` an existing registration is kept. Returns whether
    this one was registered.
    """
    key = key_of(convert)
    if not replace and (key in _SPECS or key in _SPEC_FACTORIES):
        return False
    _SPECS.pop(key, None)
    _SPEC_FACTORIES[key] = factory
    return True


def register_loader(loader: Callable[[], None]) -> None:
    """Run ``loader`` once, before the next look-up, to register formats and specs."""
    _LOADERS.append(loader)


def _load() -> None:
    while _LOADERS:
        _LOADERS.pop(0)()


def format_for(key: str | None) -> Format | None:
    """The registered format for the type named ``key``, if any."""
    _load()
    return _FORMATS.get(key) if key is not None else None


def spec_for(key: str) -> ValueSpec | None:
    """The registered :class:`ValueSpec` for the type named ``key``, if any."""
    _load()
    if key not in _SPECS and key in _SPEC_FACTORIES:
        _SPECS[key] = _SPEC_FACTORIES.pop(key)()
    return _SPECS.get(key)


def registered(key: str) -> bool:
    """Whether value strategies are registered for the type named ``key``."""
    _load()
    return key in _SPECS or key in _SPEC_FACTORIES
