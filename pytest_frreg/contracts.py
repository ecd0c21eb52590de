"""pytest-frreg contracts: guard a caller's argv against a CLI's real parser.

Fixtures:

``argv_recorder``
    An :class:`frreg.contracts.ArgvRecorder` in the test's ``tmp_path``: it
    runs a caller (your wrapper script, a documented command, Python code)
    with stand-ins for ``frreg-train``, ``frreg-gate``, ``frreg-validate``,
    ``frreg-corpus`` and ``python -m frreg.cli.*`` that record each argv and
    exit 0, so nothing trains. Add your own CLI with ``argv_recorder.watch(Cli(...))``.

Guard a wrapper in a few lines::

    from pytest_frreg.contracts import assert_contract

    def test_wrapper_calls_the_trainer_correctly(argv_recorder, tmp_path):
        corpus = tmp_path / "corpus.jsonl"
        corpus.write_text("{}\\n")
        recording = argv_recorder.run_script("tools/train.sh", env={"CORPUS": str(corpus)})
        assert_contract(recording, must_pass={"frreg-train": ["--corpus", "--out-dir"]})

Everything in :mod:`frreg.contracts` is importable from here too (the
Hypothesis strategies ``valid_argv``/``invalid_argv`` included). Imports
are lazy so that loading the plugin, and ``pytest --help``, stays instant.
The machinery is the generic :mod:`argvcontract` package; :mod:`frreg.contracts`
binds it to frreg's CLIs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from frreg.contracts import ArgvRecorder


@pytest.fixture
def argv_recorder(tmp_path: Path) -> ArgvRecorder:
    """An ArgvRecorder with stand-ins for every frreg CLI, working in ``tmp_path``."""
    from frreg.contracts import ArgvRecorder

    return ArgvRecorder(tmp_path / "argv-recorder")


def __getattr__(name: str) -> Any:
    # Re-export frreg.contracts lazily: `from pytest_frreg.contracts import assert_contract`.
    import frreg.contracts

    if name in frreg.contracts.__all__:
        return getattr(frreg.contracts, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
