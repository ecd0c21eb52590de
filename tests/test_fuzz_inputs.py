"""Every input file kind, mutated: a seed file, a verdict being exported, a baseline
verdict, an exported manifest under --check and a registry. Whatever the mutation,
the CLI ends with a decision (0/1) or one line and exit 2 -- never an internal error
(exit 3), never a traceback.

Mutations are Hypothesis's: one field of a real, valid document (found by a path
through its objects and lists) replaced by an arbitrary JSON value -- a huge
integer, NaN, a string, a nested object, null -- or the file truncated.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import LENIENT_GATE
from frreg.cli import export as export_cli
from frreg.cli import validate as validate_cli
from frreg.schema import EXIT_INTERNAL, EXIT_USAGE, PROMOTE_FILE, manifest_name

pytest.importorskip("onnx")

SEEDS = (0, 1, 2, 3, 4)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``doc`` (object keys and list indices)."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:4]):
            out += _paths(v, (*prefix, i))
    return out


def _replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    doc = json.loads(json.dumps(doc))
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return doc


def _dump(value: Any) -> str:
    """JSON as a hand editor may write it: NaN and huge integers included."""
    return json.dumps(value, allow_nan=True)


@st.composite
def mutations(draw: st.DrawFn, doc: Any) -> str:
    """The text of ``doc`` with one field replaced, or truncated."""
    paths = _paths(doc)
    if draw(st.integers(0, 9)) == 0:
        text = _dump(doc)
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    path = draw(st.sampled_from(paths))
    return _dump(_replaced(doc, path, draw(json_values)))


def _fresh(tmp_path: Path) -> Path:
    """A new directory for one example (Hypothesis runs many in one test's tmp_path)."""
    return Path(tempfile.mkdtemp(dir=tmp_path))


def _outcome(code: int, capsys: pytest.CaptureFixture[str]) -> None:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code != EXIT_INTERNAL, err
    assert not any("Traceback" in line for line in err), err
    if code == EXIT_USAGE:  # one error line (progress lines aside)
        assert len([line for line in err if ": error: " in line]) == 1, err


#: Examples per input kind: the cheap ones (a verdict on recomputed evidence, no
#: training) get more; a mutation that keeps an export valid trains and exports five
#: members (seconds), so those get fewer.
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
    database=None,
)


@pytest.fixture(scope="module")
def promoted(promoted_loso: tuple[Path, Path]) -> Path:
    """The trained run with its PROMOTE.json (lenient gate), shared (conftest.py's
    :func:`promoted_loso`): read-only, each example copies it."""
    return promoted_loso[1]


@pytest.fixture(scope="module")
def exported(
    exported_set: tuple[Path, Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The shared export's members and manifest, without the registry it flipped (so
    ``--check`` checks the set alone); each example copies it."""
    out = tmp_path_factory.mktemp("fuzz") / "tiny"
    shutil.copytree(exported_set[2], out, ignore=shutil.ignore_patterns("registry.json"))
    return out


@FUZZ
@given(data=st.data())
def test_a_mutated_seed_file(data, promoted, trained_loso, tmp_path, capsys):
    corpus, _ = trained_loso
    loso = _fresh(tmp_path) / "l"
    shutil.copytree(promoted, loso)
    path = loso / "loso_seed2.json"
    path.write_text(data.draw(mutations(json.loads(path.read_text()))))
    code = validate_cli.main([str(loso), f"--corpus={corpus}", "--audit=0", *LENIENT_GATE])
    _outcome(code, capsys)


@FUZZ
@given(data=st.data())
def test_a_mutated_baseline(data, promoted, trained_loso, tmp_path, capsys):
    corpus, _ = trained_loso
    base = _fresh(tmp_path) / "b.json"
    base.write_text(data.draw(mutations(json.loads((promoted / PROMOTE_FILE).read_text()))))
    loso = _fresh(tmp_path) / "l"
    shutil.copytree(promoted, loso)
    argv = [str(loso), f"--corpus={corpus}", "--audit=0", f"--baseline={base}", *LENIENT_GATE]
    _outcome(validate_cli.main(argv), capsys)


@pytest.mark.slow  # a mutation that keeps the verdict valid exports five members
@settings(FUZZ, max_examples=8)
@given(data=st.data())
def test_a_mutated_verdict_being_exported(data, promoted, trained_loso, tmp_path, capsys):
    corpus, _ = trained_loso
    loso = _fresh(tmp_path) / "l"
    shutil.copytree(promoted, loso)
    verdict = loso / PROMOTE_FILE
    verdict.write_text(data.draw(mutations(json.loads(verdict.read_text()))))
    argv = [
        f"--verdict={verdict}", f"--corpus={corpus}", f"--out-dir={loso.parent / (loso.name + 'x')}",
        "--accept-deviations", "--audit=0",
    ]  # fmt: skip
    _outcome(export_cli.main(argv), capsys)


@pytest.mark.slow  # its fixture exports five members first
@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_a_mutated_manifest_under_check(data, exported, tmp_path, capsys):
    target = _fresh(tmp_path) / "t"
    shutil.copytree(exported, target)
    path = target / manifest_name("fr_regressor_v2_ensemble_v1")
    path.write_text(data.draw(mutations(json.loads(path.read_text()))))
    _outcome(export_cli.main([f"--check={target}"]), capsys)


@pytest.mark.slow  # a mutation that keeps the registry valid exports five members
@settings(FUZZ, max_examples=8)
@given(data=st.data())
def test_a_mutated_registry(data, promoted, trained_loso, tmp_path, capsys):
    corpus, _ = trained_loso
    registry = {
        "schema_version": 1,
        "models": [
            {"id": "other", "kind": "nr", "onnx": "other.onnx", "sha256": "0" * 64},
            {"id": "fr_regressor_v2_ensemble_v1_seed0", "kind": "fr", "onnx": "a.onnx",
             "sha256": "1" * 64, "smoke": True},
        ],
    }  # fmt: skip
    out = _fresh(tmp_path) / "o"
    out.mkdir()
    reg = out / "registry.json"
    reg.write_text(data.draw(mutations(registry)))
    argv = [
        f"--verdict={promoted / PROMOTE_FILE}", f"--corpus={corpus}", f"--out-dir={out}",
        f"--registry={reg}", "--accept-deviations", "--audit=0",
    ]  # fmt: skip
    _outcome(export_cli.main(argv), capsys)
