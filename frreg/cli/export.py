"""``frreg-export``: ship what was promoted, in the fork's ONNX contract.

From a PROMOTE verdict and the corpus it judged (``--corpus``, default the path
the verdict recorded): one production member per
ensemble seed, fit on the whole corpus with the recorded recipe, exported to
ONNX and verified (onnx's checker, libvmaf's op allowlist, the I/O contract,
onnxruntime against torch on every corpus row) before anything is renamed
into OUT_DIR; a sidecar per member, the ensemble manifest with its conformal
interval, and optionally the registry flip. ``--check DIR`` re-verifies an
exported set from its files alone.

Exit codes: 0 exported (or the set verifies), 1 the export or the check
failed (nothing is written by a failed export), 2 input error (a HOLD verdict,
another corpus, changed seed files, files in the way without --force), 3
internal error, 130 interrupted (the previous set is left intact).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from frreg.cli._common import fail, guarded
from frreg.errors import FrregError, InputError
from frreg.export.options import EXPORT_OPTIONS
from frreg.options import StrictParser, add_options
from frreg.schema import DEFAULT_ENSEMBLE_ID, EXIT_FAIL, EXIT_OK, EXIT_USAGE

PROG = "frreg-export"


def build_parser() -> argparse.ArgumentParser:
    parser = StrictParser(
        prog=PROG,
        description="Export a promoted ensemble as the fork's ONNX members, sidecars, "
        "manifest and registry entries; or re-verify an exported set (--check).",
        epilog="Exit status: 0 exported / verified, 1 export or check failed, 2 input error, "
        "3 internal error, 130 interrupted.",
    )
    add_options(parser.add_argument, EXPORT_OPTIONS)
    # Unset means: the default id when exporting, every manifest in DIR with --check.
    parser.set_defaults(ensemble_id=None)
    return parser


def _log(line: str) -> None:
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)


@guarded(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.check is not None:
        return _check(args)
    if args.verdict is None:
        parser.print_usage(sys.stderr)
        print(f"{PROG}: error: --verdict required (or --check DIR)", file=sys.stderr)
        return EXIT_USAGE
    from frreg.export import ExportRequest, export_ensemble

    try:
        corpus = _corpus(args)
    except FrregError as err:
        return fail(PROG, err)
    request = ExportRequest(
        verdict=Path(args.verdict),
        corpus=corpus,
        out_dir=Path(args.out_dir),
        ensemble_id=args.ensemble_id or DEFAULT_ENSEMBLE_ID,
        registry=None if args.registry is None else Path(args.registry),
        force=args.force,
        device=args.device,
        license_id=args.license_id,
        license_url=args.license_url,
        written_by=PROG,
        audit=args.audit,
        accept_deviations=args.accept_deviations,
    )
    try:
        result = export_ensemble(request, log=_log)
    except FrregError as err:
        return fail(PROG, err)
    for note in result.notes:
        _log(note)
    q = "n/a" if result.conformal_q is None else f"{result.conformal_q:.3f}"
    print(
        f"exported {len(result.members)} members to {result.manifest.parent} "
        f"(onnxruntime within {result.max_ort_diff:.2g} of torch; conformal q {q} VMAF)"
    )
    print(f"wrote {result.manifest}")
    if result.registry is not None:
        print(f"flipped {len(result.members)} entries in {result.registry}")
    return EXIT_OK


def _corpus(args: argparse.Namespace) -> Path:
    """``--corpus``, else the corpus the verdict recorded (its digest is checked either way)."""
    from frreg.export.ship import judged_corpus

    if args.corpus is not None:
        return Path(args.corpus)
    corpus = judged_corpus(Path(args.verdict))
    _log(f"corpus: {corpus} (recorded in the verdict)")
    return corpus


def _check(args: argparse.Namespace) -> int:
    from frreg.export import ExportRequest, check_export

    reexport = None
    if args.verdict is None and args.corpus is not None:
        return fail(
            PROG,
            InputError(
                "--check with --corpus checks the set against a re-export, which needs "
                "--verdict too"
            ),
        )
    if args.verdict is not None:
        # With the evidence at hand, the set is checked against it: exported again.
        try:
            corpus = _corpus(args)
        except FrregError as err:
            return fail(PROG, err)
        reexport = ExportRequest(
            verdict=Path(args.verdict),
            corpus=corpus,
            out_dir=Path(args.check),
            ensemble_id=args.ensemble_id or DEFAULT_ENSEMBLE_ID,
            device=args.device,
            audit=args.audit,
            accept_deviations=args.accept_deviations,
            written_by=PROG,
        )
    try:
        result = check_export(
            args.check, ensemble_id=args.ensemble_id, registry=args.registry, reexport=reexport
        )
    except FrregError as err:
        return fail(PROG, err)
    for line in result.verified:
        print(f"ok    {line}")
    for line in result.problems:
        print(f"FAIL  {line}")
    names = ", ".join(p.name for p in result.manifests)
    if reexport is not None:
        print(f"note  members checked against a re-export of {args.verdict}")
    elif result.registry is None:
        print(
            "note  no registry: the members were checked against their own manifest only, "
            "which whoever replaced a member could rewrite too; --registry PATH (the fork's "
            "registry.json, under review) checks their digests against it"
        )
    else:
        print(f"note  member digests checked against {result.registry}")
    if result.passed:
        print(f"verified: {names}")
        return EXIT_OK
    print(f"check failed: {len(result.problems)} problem(s) in {names}")
    return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
