"""What frreg needs installed: numpy and the stdlib read and judge a corpus (no pandas),
matplotlib is the ``figures`` extra, and the license is an SPDX string setuptools
accepts without a deprecation warning."""

from __future__ import annotations

import json
import re
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from factories import run_fresh

from frreg.corpus import load_corpus
from frreg.corpus.validity import _cells
from frreg.gate.evidence import corpus_keys
from frreg.synthetic import synthetic_rows, write_corpus

ROOT = Path(__file__).resolve().parents[1]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~ \[;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_pandas_is_no_dependency_and_matplotlib_is_the_figures_extra():
    project = pyproject()["project"]
    core = names(project["dependencies"])
    assert "pandas" not in core
    assert "matplotlib" not in core
    extras = project["optional-dependencies"]
    assert names(extras["figures"]) == {"matplotlib"}
    assert not any({"pandas", "pandas-stubs"} & names(reqs) for reqs in extras.values())
    # CI (`make test`) installs the extra, so the figures are tested where they are drawn.
    install = next(ln for ln in (ROOT / "Makefile").read_text().splitlines() if "-e '.[" in ln)
    assert "figures" in install.split("-e '.[")[1].split("]")[0].split(",")


def test_the_license_is_an_spdx_string_and_setuptools_is_new_enough_for_it():
    doc = pyproject()
    assert doc["project"]["license"] == "BSD-2-Clause-Patent"
    [setuptools] = [r for r in doc["build-system"]["requires"] if r.startswith("setuptools")]
    assert setuptools == "setuptools>=77"  # the first setuptools that reads PEP 639 strings


def test_a_corpus_loads_and_is_judged_with_pandas_unimportable(tmp_path):
    """sys.modules["pandas"] = None makes any ``import pandas`` raise ImportError."""
    path = write_corpus(
        tmp_path / "c.jsonl",
        synthetic_rows(n_sources=3, encoders=("libx264",), cqs=(22, 46), frames=10),
    )
    code = (
        "import json, sys\n"
        "sys.modules['pandas'] = None\n"
        "from frreg.corpus import load_corpus\n"
        "from frreg.corpus.validity import assess\n"
        "from frreg.gate.evidence import corpus_keys\n"
        "corpus = load_corpus(sys.argv[1])\n"
        "found = assess(corpus)\n"
        "print(json.dumps({'rows': found.n_rows, 'sources': list(found.sources),\n"
        "    'keys': len(corpus_keys(corpus)), 'frames': [s.frames for s in found.shapes]}))\n"
    )
    got = run_fresh(code, str(path))
    assert got == {"rows": 60, "sources": ["synth00", "synth01", "synth02"], "keys": 60,
                   "frames": [10, 10, 10]}  # fmt: skip


def test_columns_keep_the_file_s_types_and_keys_spell_cq_as_the_file_does(tmp_path):
    rows = synthetic_rows(n_sources=2, encoders=("libx264",), cqs=(22, 46), frames=3)
    for i, row in enumerate(rows):
        row["note"] = "x" if i % 2 else None
    corpus = load_corpus(write_corpus(tmp_path / "int.jsonl", rows))
    assert corpus.columns["cq"].dtype == np.int64
    assert corpus.columns["frame_index"].dtype == np.int64
    assert corpus.columns["vmaf"].dtype == np.float64
    assert corpus.columns["src"].dtype == object
    assert corpus.columns["note"].tolist()[:2] == [None, "x"]
    assert "_line" not in corpus.columns
    assert ("synth00", "libx264", "22", "0") in corpus_keys(corpus)
    first = corpus.row_keys(np.array([0]))[0]
    assert first == ("synth00", "libx264", 22, 0)
    assert [type(v) for v in first] == [str, str, int, int]

    rows[0]["cq"] = 22.5  # one float cq: the column is float, as the rows are
    corpus = load_corpus(write_corpus(tmp_path / "float.jsonl", rows))
    assert corpus.columns["cq"].dtype == np.float64
    assert ("synth00", "libx264", "22.5", "0") in corpus_keys(corpus)
    assert ("synth00", "libx264", "46.0", "0") in corpus_keys(corpus)


def test_cells_are_a_sorted_group_by_of_the_rows(tmp_path):
    """What the manifest check compares: (src, encoder, cq) cells, sorted, with their row
    count, largest frame index and mean vmaf, against a plain dictionary group-by."""
    rows = synthetic_rows(n_sources=3, encoders=("libx264", "libx265"), cqs=(46, 22, 30), frames=20)
    rows = [r for r in rows if not (r["src"] == "synth01" and r["frame_index"] % 3 == 0)]
    corpus = load_corpus(write_corpus(tmp_path / "c.jsonl", rows))
    expected: dict[tuple[str, str, float], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        expected[(r["src"], r["encoder"], float(r["cq"]))].append(r)
    keys, sizes, tops, means = _cells(corpus)
    assert keys == sorted(expected)
    assert sizes == [len(expected[k]) for k in keys]
    assert tops == [max(r["frame_index"] for r in expected[k]) for k in keys]
    np.testing.assert_allclose(
        means, [np.mean([r["vmaf"] for r in expected[k]]) for k in keys], rtol=0, atol=1e-12
    )
    assert json.dumps(keys)  # plain Python values, as the manifest records them
