"""The gate's options: ``frreg-gate``'s and ``frreg-validate``'s, the thresholds also
offered by the plugin.

Declared once here (see :mod:`frreg.options` for how); each threshold option
comes from its criterion's record (:mod:`frreg.gate.criteria`) and is resolved
once in :func:`frreg.settings.thresholds`. Light: no numpy, as ``pytest
--help`` reads it.
"""

from __future__ import annotations

import argparse
from typing import Literal

from frreg.gate.criteria import PROFILE_ADR, Criterion, strict_help, threshold_criteria
from frreg.options import (
    Option,
    boolean,
    seed_list,
)
from frreg.schema import AUDIT_ALL, DEFAULT_AUDIT, ENSEMBLE_SEEDS, FORK_CORPUS_ROOT

GATE_SEEDS = Option(
    "seeds", "seeds", "seeds the ensemble must contain", ENSEMBLE_SEEDS, seed_list, "N[,N...]"
)


def threshold_option(criterion: Criterion) -> Option:
    """The option that sets one criterion's threshold, as its record declares it."""
    assert criterion.option is not None
    assert criterion.dest is not None
    return Option(
        criterion.option,
        criterion.dest,
        criterion.help,
        criterion.default,
        criterion.parse,
        criterion.metavar,
        shown_default=criterion.shown_default,
    )


STRICT = Option("strict", "strict", strict_help(), False, boolean, action="store_true")
BASELINE = Option(
    "baseline",
    "baseline",
    "a previous verdict (PROMOTE.json) to compare each source's ensemble PLCC with",
    None,
    metavar="VERDICT",
    shown_default="none",
)


def threshold_options() -> tuple[Option, ...]:
    """Every threshold option, from :data:`~frreg.gate.criteria.CRITERIA`: the ADR-0303
    gate's, then ``--strict`` and frreg's evidence (``--baseline`` before the threshold
    that needs it)."""
    adr = [threshold_option(c) for _, c in threshold_criteria() if PROFILE_ADR in c.decides_under]
    evidence: list[Option] = []
    for _, c in threshold_criteria():
        if PROFILE_ADR in c.decides_under:
            continue
        if c.requires == "baseline":
            evidence.append(BASELINE)
        evidence.append(threshold_option(c))
    return (*adr, STRICT, *evidence)


#: Gate thresholds shared by ``frreg-gate``, ``frreg-validate`` and the plugin.
THRESHOLD_OPTIONS = threshold_options()


#: How many (seed, fold) jobs an audit retrains: a count, or :data:`AUDIT_ALL`.
AuditRequest = int | Literal["all"]


def parse_audit(text: str) -> AuditRequest:
    """``all`` or a non-negative job count (``--audit``)."""
    if text.strip().lower() == AUDIT_ALL:
        return AUDIT_ALL
    try:
        value = int(text, 10)
    except ValueError:
        raise ValueError(f"{text!r} is neither {AUDIT_ALL!r} nor a whole number") from None
    if value < 0:
        raise ValueError(f"{text!r} is negative")
    return value


def audit_request(text: str) -> AuditRequest:
    """``--audit``: ``all`` or a job count >= 0."""
    try:
        return parse_audit(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: expected {AUDIT_ALL!r} or an integer >= 0"
        ) from None


AUDIT = Option(
    "audit",
    "audit",
    f"retrain these (seed, fold) jobs with the recorded recipe and require the recorded "
    f"predictions: {AUDIT_ALL!r} (every job), K (a partial audit: K jobs drawn from the "
    "artifacts' content, so a re-run draws the same; the verdict states the chance it "
    "had to find one forged job) or 0 (no audit)",
    DEFAULT_AUDIT,
    audit_request,
    "all|K",
)
ACCEPT_UNVERIFIED = Option(
    "accept-unverified",
    "accept_unverified",
    "judge seed files whose numbers cannot be recomputed (the fork's artifacts: no "
    "predictions, no corpus digest) on what they say; such a verdict says so in its "
    "first field, a passing one is PROMOTE_UNVERIFIED.json (never PROMOTE), and "
    "frreg-export refuses it",
    False,
    action="store_true",
)
CORPUS_ROOT = Option(
    "corpus-root",
    "corpus_root",
    "frreg-validate: the source YUV directory the verdict's corpus.sha256 snapshots, as "
    "the fork's validator does (sorted relpath<TAB>size of every *.yuv); absent: "
    "corpus.present false and a null sha256 (frreg binds the corpus JSONL itself by "
    "corpus_sha256 either way)",
    FORK_CORPUS_ROOT,
    metavar="DIR",
)
SELF_REPORTED = Option(
    "self-reported",
    "self_reported",
    "frreg-gate only: when the corpus cannot be found, judge frreg seed files on the numbers "
    "they state (every line says so) instead of refusing (exit 2); the fork's seed files, "
    "which carry nothing to recompute, are always judged so",
    False,
    action="store_true",
)
ALLOW_SEED_SUBSET = Option(
    "allow-seed-subset",
    "allow_seed_subset",
    "let the gated seeds be a subset of the seed files in LOSO_DIR (the verdict lists the "
    "excluded seeds); without it, seed files left out of --seeds are a failed check: "
    "gating the seeds that agree is cherry-picking",
    False,
    action="store_true",
)
GATE_CORPUS_CHECK = Option(
    "corpus",
    "corpus",
    "corpus the seeds were trained on; its sha256 must match every seed, and every "
    "number is recomputed from it",
    None,
    metavar="PATH",
    shown_default="the path the seed artifacts recorded",
)
