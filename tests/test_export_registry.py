"""The registry an export flips, held to the fork's own registry checks, and the Sigstore
bundles ``frreg-export --check`` reads.

The fork's tests cannot be imported here (they import the fork's scripts), so
their assertions are re-implemented below, each naming the fork test it
mirrors (lusoris/vmaf at c2a3c7e):

- ``python/test/model_registry_schema_test.py`` (its tests, one to one);
- ``ai/scripts/validate_model_registry.py``: ``_consistency_check`` and the
  JSON schema ``model/tiny/registry.schema.json`` it validates against,
  re-expressed as code (``validate``, which that test file calls);
- ``libvmaf/test/dnn/test_registry.sh``;
- ``libvmaf/src/dnn/model_loader.c`` ``find_bundle_for_onnx`` (how
  ``--tiny-model-verify`` finds a member's bundle).

The re-implemented checks are shown to reject what the fork's negative tests
feed them, so a pass here means something. The registry fixture has the
fork's shape: its five ``fr_regressor_v2_ensemble_v1_seed{N}`` rows as the
fork ships them and an unrelated entry.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from conftest import LENIENT_GATE
from frreg.cli import export as export_cli
from frreg.cli import validate as validate_cli
from frreg.schema import EXIT_FAIL, EXIT_OK, PROMOTE_FILE

pytestmark = pytest.mark.slow

ENS = "fr_regressor_v2_ensemble_v1"
SEEDS = range(5)
LICENSE_URL = "https://github.com/lusoris/vmaf/blob/master/LICENSE"

# --------------------------------------------------------------------------
# The fork's registry checks, re-implemented
# --------------------------------------------------------------------------

#: registry.schema.json, $defs.model_entry: every property and its constraint.
_HEX64 = r"^[0-9a-f]{64}$"
_ENTRY_RULES: dict[str, dict[str, Any]] = {
    "id": {"type": str, "pattern": r"^[a-z0-9][a-z0-9_-]*$", "max": 64},
    "kind": {"enum": {"fr", "nr", "filter"}},
    "onnx": {"type": str, "pattern": r"^[a-z0-9][a-z0-9_./-]*\.onnx$", "max": 256},
    "sha256": {"type": str, "pattern": _HEX64},
    "opset": {"type": int, "min": 7, "maxv": 21},
    "notes": {"type": str, "max": 512},
    "smoke": {"type": bool},
    "quant_mode": {"enum": {"fp32", "static", "dynamic", "qat"}},
    "quant_calibration_set": {"type": str, "max": 256},
    "int8_sha256": {"type": str, "pattern": _HEX64},
    "quant_accuracy_budget_plcc": {"type": float, "min": 0.0, "maxv": 1.0},
    "license": {"type": str, "max": 128},
    "license_url": {"type": str, "max": 512, "uri": True},
    "sigstore_bundle": {
        "type": str,
        "pattern": r"^[a-z0-9][a-z0-9_./-]*\.sigstore\.json$",
        "max": 256,
    },
    "description": {"type": str, "max": 256},
}
_REQUIRED = {"id", "kind", "onnx", "sha256"}


def _value_problems(where: str, value: Any, rule: dict[str, Any]) -> list[str]:
    out = []
    if "enum" in rule and value not in rule["enum"]:
        return [f"{where}: {value!r} not one of {sorted(rule['enum'])}"]
    kind = rule.get("type")
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        return [f"{where}: not an integer"]
    if kind is float and (isinstance(value, bool) or not isinstance(value, int | float)):
        return [f"{where}: not a number"]
    if kind in (str, bool) and not isinstance(value, kind):
        return [f"{where}: not a {kind.__name__}"]
    if "pattern" in rule and (re.search(rule["pattern"], value) is None or "\n" in value):
        out.append(f"{where}: {value!r} does not match {rule['pattern']}")
    if "max" in rule and len(value) > rule["max"]:
        out.append(f"{where}: longer than {rule['max']}")
    if "min" in rule and value < rule["min"]:
        out.append(f"{where}: below {rule['min']}")
    if "maxv" in rule and value > rule["maxv"]:
        out.append(f"{where}: above {rule['maxv']}")
    if rule.get("uri") and not (urlparse(value).scheme and urlparse(value).netloc):
        out.append(f"{where}: not a URI")
    return out


def fork_schema_problems(reg: Any) -> list[str]:
    """registry.schema.json (Draft 2020-12), re-expressed: what ``validate`` reports."""
    if not isinstance(reg, dict):
        return ["registry must be a JSON object"]
    out = [f"<root>: missing {k}" for k in ("schema_version", "models") if k not in reg]
    out += [
        f"<root>: unexpected {k}" for k in reg if k not in {"$schema", "schema_version", "models"}
    ]
    version = reg.get("schema_version")
    if isinstance(version, bool) or version not in (0, 1):
        out.append(f"schema_version must be 0 or 1 (got {version!r})")
    models = reg.get("models")
    if not isinstance(models, list):
        return [*out, "models must be a list"]
    for i, m in enumerate(models):
        if not isinstance(m, dict):
            out.append(f"models[{i}] is not an object")
            continue
        missing = _REQUIRED - m.keys()
        if missing:
            out.append(f"models[{i}] missing required fields: {sorted(missing)}")
        out += [f"models[{i}]: unexpected {k}" for k in m if k not in _ENTRY_RULES]
        for key, rule in _ENTRY_RULES.items():
            if key in m:
                out += _value_problems(f"models[{i}].{key}", m[key], rule)
    return out


def fork_consistency_problems(reg: dict[str, Any], registry_dir: Path) -> list[str]:
    """validate_model_registry.py ``_consistency_check``, re-implemented."""
    out: list[str] = []
    seen: set[str] = set()
    for i, m in enumerate(reg.get("models", [])):
        mid = m.get("id", f"<index {i}>")
        if mid in seen:
            out.append(f"{mid}: duplicate model id")
        seen.add(mid)
        if not m.get("onnx"):
            continue
        onnx = registry_dir / m["onnx"]
        if not onnx.is_file():
            out.append(f"{mid}: missing ONNX file {onnx}")
            continue
        if hashlib.sha256(onnx.read_bytes()).hexdigest() != m.get("sha256", ""):
            out.append(f"{mid}: sha256 mismatch")
        if not m.get("smoke", False) and not onnx.with_suffix(".json").is_file():
            out.append(f"{mid}: missing sidecar {onnx.with_suffix('.json').name}")
        if m.get("quant_mode", "fp32") != "fp32":
            int8 = onnx.with_suffix("").with_suffix(".int8.onnx")
            if not m.get("int8_sha256"):
                out.append(f"{mid}: quant_mode requires int8_sha256")
            elif (
                int8.is_file() and hashlib.sha256(int8.read_bytes()).hexdigest() != m["int8_sha256"]
            ):
                out.append(f"{mid}: int8_sha256 mismatch")
        bundle = m.get("sigstore_bundle")
        if bundle and not bundle.endswith(".sigstore.json"):
            out.append(f"{mid}: sigstore_bundle must end with .sigstore.json (got {bundle!r})")
    return out


def fork_validate(reg: dict[str, Any], registry_dir: Path) -> list[str]:
    """validate_model_registry.py ``validate``: the schema, then the consistency check."""
    return fork_schema_problems(reg) + fork_consistency_problems(reg, registry_dir)


def registry_sh_problems(reg: dict[str, Any], tiny: Path) -> list[str]:
    """libvmaf/test/dnn/test_registry.sh, re-implemented."""
    out = []
    for m in reg.get("models", []):
        onnx = tiny / m["onnx"]
        if not onnx.is_file():
            out.append(f"{m['id']}: missing {onnx}")
            continue
        if hashlib.sha256(onnx.read_bytes()).hexdigest() != m["sha256"]:
            out.append(f"{m['id']}: sha256 mismatch")
            continue
        if not m.get("smoke", False) and not onnx.with_suffix(".json").is_file():
            out.append(f"{m['id']}: missing sidecar")
    return out


def verifier_bundle_for(registry_text: str, onnx_basename: str) -> str | None:
    """libvmaf model_loader.c ``find_bundle_for_onnx``, re-implemented: anchor on each
    ``"onnx"`` key, match its value against the model's basename, then take the first
    ``"sigstore_bundle"`` before the next ``"onnx"`` key (``None``: -ENOENT)."""
    cursor = 0
    while (at := registry_text.find('"onnx"', cursor)) >= 0:
        value = re.match(r'"onnx"[^:]*:\s*"([^"]*)"', registry_text[at:])
        if value is None:
            return None
        end = at + value.end()
        if value.group(1) == onnx_basename:
            following = registry_text.find('"onnx"', end)
            key = registry_text.find('"sigstore_bundle"', end)
            if key < 0 or (following >= 0 and key > following):
                return None
            bundle = re.match(r'"sigstore_bundle"[^:]*:\s*"([^"]*)"', registry_text[key:])
            return None if bundle is None else bundle.group(1)
        cursor = end
    return None


# --------------------------------------------------------------------------
# A registry in the fork's shape, flipped by an export
# --------------------------------------------------------------------------


def fork_shaped_registry(filter_sha: str) -> dict[str, Any]:
    rows = [
        {
            "id": "learned_filter_v1",
            "kind": "filter",
            "onnx": "learned_filter_v1.onnx",
            "opset": 17,
            "sha256": filter_sha,
            "license": "BSD-3-Clause-Plus-Patent",
            "license_url": LICENSE_URL,
            "sigstore_bundle": "learned_filter_v1.onnx.sigstore.json",
            "description": "An unrelated entry, left as it is.",
            "smoke": True,
        }
    ]
    for seed in SEEDS:
        mid = f"{ENS}_seed{seed}"
        rows.append(
            {
                "id": mid,
                "kind": "fr",
                "license": "BSD-3-Clause-Plus-Patent",
                "license_url": LICENSE_URL,
                "notes": f"Production ensemble member of {ENS} (seed={seed}).",
                "onnx": f"{mid}.onnx",
                "opset": 17,
                "sha256": "0" * 64,
                "sigstore_bundle": f"{mid}.onnx.sigstore.json",
                "smoke": False,
            }
        )
    return {"$schema": "./registry.schema.json", "schema_version": 1, "models": rows}


def run_export(verdict: Path, corpus: Path, out: Path, *extra: str) -> int:
    return export_cli.main(
        [
            f"--verdict={verdict}",
            f"--corpus={corpus}",
            f"--out-dir={out}",
            f"--registry={out / 'registry.json'}",
            "--accept-deviations",
            "--audit=0",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def flipped(trained_loso, build_once) -> tuple[Path, Path, Path, dict[str, Any]]:
    """``(corpus, verdict, model dir, registry before)``: the export flipped the registry.
    Exported once per run, whichever xdist worker asks first; copy before changing it."""
    corpus, loso = trained_loso
    before = fork_shaped_registry(hashlib.sha256(b"not a member").hexdigest())

    def build(root: Path) -> None:
        shutil.copytree(loso, root / "loso")
        argv = [str(root / "loso"), f"--corpus={corpus}", "--audit=0", *LENIENT_GATE]
        assert validate_cli.main(argv) == EXIT_OK
        tiny = root / "tiny"
        tiny.mkdir()
        (tiny / "learned_filter_v1.onnx").write_bytes(b"not a member")
        (tiny / "registry.json").write_text(json.dumps(before, indent=2), encoding="utf-8")
        assert run_export(root / "loso" / PROMOTE_FILE, corpus, tiny) == EXIT_OK

    root = build_once("test-export-registry-flipped", build)
    return corpus, root / "loso" / PROMOTE_FILE, root / "tiny", before


def registry(tiny: Path) -> dict[str, Any]:
    return json.loads((tiny / "registry.json").read_text(encoding="utf-8"))


def member_sha(tiny: Path, seed: int) -> str:
    return hashlib.sha256((tiny / f"{ENS}_seed{seed}.onnx").read_bytes()).hexdigest()


# --------------------------------------------------------------------------
# The fork's registry tests on the flipped registry
# --------------------------------------------------------------------------


def test_shipped_registry_passes_full_validation(flipped):
    """mirrors model_registry_schema_test.py::test_shipped_registry_passes_full_validation"""
    _, _, tiny, _ = flipped
    assert fork_validate(registry(tiny), tiny) == []


def test_registry_schema_version_is_one(flipped):
    """mirrors model_registry_schema_test.py::test_registry_schema_version_is_one"""
    assert registry(flipped[2])["schema_version"] == 1


def test_every_entry_has_license_metadata(flipped):
    """mirrors model_registry_schema_test.py::test_every_entry_has_license_metadata (the
    test a flip that dropped sigstore_bundle broke)"""
    for m in registry(flipped[2])["models"]:
        assert "license" in m, f"{m['id']}: missing license"
        assert "sigstore_bundle" in m, f"{m['id']}: missing sigstore_bundle"
        assert m["sigstore_bundle"].endswith(".sigstore.json")


def test_fr_regressor_v2_ensemble_seed_rows_are_production(flipped):
    """mirrors model_registry_schema_test.py::test_fr_regressor_v2_ensemble_seed_rows_are_production"""
    tiny = flipped[2]
    rows = {m["id"]: m for m in registry(tiny)["models"]}
    for seed in SEEDS:
        mid = f"{ENS}_seed{seed}"
        row = rows[mid]
        sidecar = json.loads((tiny / f"{mid}.json").read_text(encoding="utf-8"))
        assert row["smoke"] is False
        assert sidecar["sha256"] == row["sha256"]
        assert sidecar["gate"]["passed"] is True
        assert sidecar["gate"]["verdict"] == "PROMOTE"


def test_registry_sh_passes(flipped):
    """mirrors libvmaf/test/dnn/test_registry.sh"""
    tiny = flipped[2]
    assert registry_sh_problems(registry(tiny), tiny) == []


def test_each_members_bundle_is_beside_it_where_tiny_model_verify_looks(flipped):
    """libvmaf's verifier finds the entry by the member's basename and reads the bundle
    path from the same entry, relative to the registry's directory: the fork's naming,
    <member>.onnx.sigstore.json beside the member."""
    tiny = flipped[2]
    text = (tiny / "registry.json").read_text(encoding="utf-8")
    for seed in SEEDS:
        name = f"{ENS}_seed{seed}.onnx"
        assert verifier_bundle_for(text, name) == f"{name}.sigstore.json"


def test_the_flip_keeps_other_entries_and_the_replaced_rows_fields(flipped):
    _, _, tiny, before = flipped
    after = registry(tiny)
    assert after["$schema"] == before["$schema"]
    assert [m["id"] for m in after["models"]] == [m["id"] for m in before["models"]]
    assert after["models"][0] == before["models"][0]
    for old, new in zip(before["models"][1:], after["models"][1:], strict=True):
        assert new["sha256"] != old["sha256"]
        for key in ("license", "license_url", "sigstore_bundle", "kind", "onnx", "opset"):
            assert new[key] == old[key], key


# --------------------------------------------------------------------------
# The re-implemented checks have teeth: the fork's negative tests
# --------------------------------------------------------------------------


def test_the_checks_reject_what_the_forks_negative_tests_feed_them(flipped, tmp_path):
    tiny = flipped[2]
    reg = registry(tiny)

    def schema(mutate) -> list[str]:
        bad = copy.deepcopy(reg)
        mutate(bad)
        return fork_schema_problems(bad)

    # test_structural_fallback_rejects_bad_hex_sha256
    assert any("sha256" in e for e in schema(lambda r: r["models"][0].update(sha256="deadbeef")))
    # test_structural_fallback_rejects_unknown_kind
    assert any("kind" in e for e in schema(lambda r: r["models"][0].update(kind="magic")))
    # test_structural_fallback_rejects_missing_required
    assert any(
        "missing required" in e
        for e in fork_schema_problems({"schema_version": 1, "models": [{"id": "x"}]})
    )
    # test_structural_fallback_rejects_bad_schema_version
    assert any(
        "schema_version" in e for e in fork_schema_problems({"schema_version": 99, "models": []})
    )
    # test_jsonschema_rejects_bad_id_pattern
    assert any(
        "does not match" in e for e in schema(lambda r: r["models"][0].update(id="Has Spaces"))
    )
    # additionalProperties: false
    assert any("unexpected" in e for e in schema(lambda r: r["models"][1].update(bundle="x")))
    # test_consistency_rejects_unknown_model_file
    ghost = {
        "schema_version": 1,
        "models": [{"id": "ghost", "kind": "fr", "onnx": "ghost.onnx", "sha256": "0" * 64}],
    }
    assert any("missing ONNX" in e for e in fork_consistency_problems(ghost, tmp_path))
    # test_consistency_rejects_malformed_bundle_extension
    (tmp_path / "x.onnx").write_bytes(b"")
    (tmp_path / "x.json").write_text("{}", encoding="utf-8")
    x = {
        "id": "x",
        "kind": "fr",
        "onnx": "x.onnx",
        "sha256": hashlib.sha256(b"").hexdigest(),
        "sigstore_bundle": "x.bundle",
    }
    errors = fork_consistency_problems({"schema_version": 1, "models": [x]}, tmp_path)
    assert any("sigstore_bundle" in e and ".sigstore.json" in e for e in errors)
    # A flip that drops sigstore_bundle (frreg's earlier behaviour) fails the license test.
    dropped = copy.deepcopy(reg)
    del dropped["models"][1]["sigstore_bundle"]
    assert any("sigstore_bundle" not in m for m in dropped["models"])
    # ... and the verifier finds no bundle for that member.
    assert verifier_bundle_for(json.dumps(dropped, indent=2), f"{ENS}_seed0.onnx") is None
    # A member changed after the flip fails the sha256 checks of both the validator and
    # test_registry.sh.
    changed = tmp_path / "tiny"
    shutil.copytree(tiny, changed)
    (changed / f"{ENS}_seed2.onnx").write_bytes(b"other bytes")
    assert any("sha256 mismatch" in e for e in fork_consistency_problems(reg, changed))
    assert any("sha256 mismatch" in e for e in registry_sh_problems(reg, changed))


# --------------------------------------------------------------------------
# Signatures: what --check can tell without Sigstore's tooling
# --------------------------------------------------------------------------


def _hashedrekord(sha_hex: str) -> str:
    body = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": sha_hex}},
            "signature": {"content": "c2ln", "publicKey": {"content": "a2V5"}},
        },
    }
    return base64.b64encode(json.dumps(body).encode()).decode()


def bundle_v03(sha_hex: str) -> dict[str, Any]:
    """The layout of a Sigstore bundle as cosign 3's ``sign-blob --bundle`` writes it
    (protobuf-specs ``Bundle``, media type v0.3): the signed blob's digest in
    ``messageSignature.messageDigest`` and in the transparency-log entry's body. The
    signature bytes are not real: nothing here verifies them, which is the point."""
    return {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {
            "certificate": {"rawBytes": "Y2VydA=="},
            "tlogEntries": [
                {
                    "logIndex": "1",
                    "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
                    "integratedTime": "1733866885",
                    "canonicalizedBody": _hashedrekord(sha_hex),
                }
            ],
        },
        "messageSignature": {
            "messageDigest": {
                "algorithm": "SHA2_256",
                "digest": base64.b64encode(bytes.fromhex(sha_hex)).decode(),
            },
            "signature": "c2ln",
        },
    }


def bundle_legacy(sha_hex: str) -> dict[str, Any]:
    """cosign's earlier ``--bundle`` layout: the Rekor entry body under rekorBundle."""
    return {
        "base64Signature": "c2ln",
        "cert": "Y2VydA==",
        "rekorBundle": {
            "SignedEntryTimestamp": "c2V0",
            "Payload": {"body": _hashedrekord(sha_hex), "integratedTime": 1, "logIndex": 1},
        },
    }


def signed_copy(tiny: Path, tmp_path: Path, bundles: dict[int, Any]) -> Path:
    target = tmp_path / "tiny"
    shutil.copytree(tiny, target)
    for seed, doc in bundles.items():
        text = doc if isinstance(doc, str) else json.dumps(doc)
        (target / f"{ENS}_seed{seed}.onnx.sigstore.json").write_text(text, encoding="utf-8")
    return target


def check(target: Path, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = export_cli.main([f"--check={target}"])
    return code, capsys.readouterr().out


def test_check_says_signature_missing_and_passes_before_signing(flipped, capsys):
    """No bundle yet: the fork's validator allows that before release, so the set verifies,
    and each member's line says --tiny-model-verify rejects it until it is signed."""
    from frreg.export import check_export

    tiny = flipped[2]
    code, out = check(tiny, capsys)
    assert code == EXIT_OK
    assert out.count("signature missing") == len(SEEDS)
    assert "--tiny-model-verify rejects" in out
    result = check_export(tiny)
    assert set(result.signatures.values()) == {"missing"}
    assert len(result.signatures) == len(SEEDS)


@pytest.mark.parametrize("layout", [bundle_v03, bundle_legacy], ids=["v0.3", "legacy"])
def test_a_bundle_that_records_the_members_digest_passes(flipped, tmp_path, capsys, layout):
    tiny = flipped[2]
    target = signed_copy(tiny, tmp_path, {s: layout(member_sha(tiny, s)) for s in SEEDS})
    code, out = check(target, capsys)
    assert code == EXIT_OK, out
    assert "signature missing" not in out
    assert out.count("records this sha256") == len(SEEDS)


@pytest.mark.parametrize("layout", [bundle_v03, bundle_legacy], ids=["v0.3", "legacy"])
def test_a_bundle_that_signs_other_bytes_is_stale(flipped, tmp_path, capsys, layout):
    """The bundle of a member the export replaced: it records the old file's digest."""
    tiny = flipped[2]
    old = hashlib.sha256(b"the member this bundle was made for").hexdigest()
    target = signed_copy(tiny, tmp_path, {0: layout(member_sha(tiny, 0)), 3: layout(old)})
    code, out = check(target, capsys)
    assert code == EXIT_FAIL
    assert f"FAIL  registry.json: {ENS}_seed3: signature stale" in out
    assert f"signs sha256 {old[:12]}" in out
    assert out.count("signature stale") == 1
    assert "check failed: 1 problem(s)" in out


def test_a_bundle_whose_two_digests_disagree_is_stale(flipped, tmp_path, capsys):
    """The message digest says this member, the log entry another: not this member's."""
    tiny = flipped[2]
    doc = bundle_v03(member_sha(tiny, 1))
    other = hashlib.sha256(b"x").hexdigest()
    doc["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"] = _hashedrekord(other)
    code, out = check(signed_copy(tiny, tmp_path, {1: doc}), capsys)
    assert code == EXIT_FAIL
    assert f"{ENS}_seed1: signature stale" in out


@pytest.mark.parametrize("text", ["{}", "not json", '{"mediaType": "x"}'])
def test_a_placeholder_or_garbage_bundle_is_unreadable(flipped, tmp_path, capsys, text):
    code, out = check(signed_copy(flipped[2], tmp_path, {4: text}), capsys)
    assert code == EXIT_FAIL
    assert f"{ENS}_seed4: signature unreadable" in out


def test_a_registry_entry_without_sigstore_bundle_fails_the_check(flipped, tmp_path, capsys):
    target = signed_copy(flipped[2], tmp_path, {})
    reg = registry(target)
    del reg["models"][2]["sigstore_bundle"]
    reg["models"][3]["sigstore_bundle"] = "seed2.bundle"
    (target / "registry.json").write_text(json.dumps(reg), encoding="utf-8")
    code, out = check(target, capsys)
    assert code == EXIT_FAIL
    assert f"{ENS}_seed1 has no sigstore_bundle" in out
    assert f"expected '{ENS}_seed1.onnx.sigstore.json'" in out
    assert f"{ENS}_seed2 sigstore_bundle 'seed2.bundle' does not match" in out


def test_a_reexport_says_which_bundles_still_sign_the_members(flipped, tmp_path, capsys):
    """Exported again from the same verdict, the members are byte for byte the same: a
    bundle that signed them still does, and the export says nothing of it; a stale one and
    the missing ones are named with the fork's signing command."""
    corpus, verdict, tiny, _ = flipped
    other = hashlib.sha256(b"old").hexdigest()
    target = signed_copy(tiny, tmp_path, {0: bundle_v03(member_sha(tiny, 0)), 1: bundle_v03(other)})
    capsys.readouterr()
    assert run_export(verdict, corpus, target, "--force") == EXIT_OK
    err = capsys.readouterr().err
    assert f"{ENS}_seed0:" not in err
    assert f"{ENS}_seed1: signature stale" in err
    for seed in (2, 3, 4):
        assert f"{ENS}_seed{seed}: signature missing" in err
        member = target / f"{ENS}_seed{seed}.onnx"
        assert f"sign: cosign sign-blob --yes --bundle {member}.sigstore.json {member}" in err
    assert fork_validate(registry(target), target) == []
