"""Sigstore bundles of exported members: where each must go, and what frreg can tell
about one without Sigstore's tooling.

The fork's registry names a member's bundle in its entry's ``sigstore_bundle``,
relative to the registry's directory, ``<member>.onnx.sigstore.json`` beside
the member (lusoris/vmaf ``model/tiny/registry.json``; the schema's pattern
``^[a-z0-9][a-z0-9_./-]*\\.sigstore\\.json$``). libvmaf's
``vmaf_dnn_verify_signature`` (``--tiny-model-verify``) refuses a member whose
entry has no bundle or whose bundle file is absent, and otherwise runs
``cosign verify-blob`` on it.

Without cosign (or any Sigstore library), frreg can read a bundle's JSON and
the sha256 it records of what it signs, and compare that with the member:
a bundle that records another digest signs other bytes (stale). It cannot
check the signature, the certificate's identity or the transparency-log
entry: that is ``cosign verify-blob``'s work. File times are not used: a git
checkout gives every file the time of the checkout.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

#: The suffix the fork's registry schema and validator require of a bundle path.
BUNDLE_SUFFIX: Final = ".sigstore.json"
#: The registry schema's pattern for ``sigstore_bundle`` (lusoris/vmaf
#: ``model/tiny/registry.schema.json``).
BUNDLE_PATTERN: Final = r"^[a-z0-9][a-z0-9_./-]*\.sigstore\.json$"
BUNDLE_MAX: Final = 256
#: The identity libvmaf's verifier pins (``libvmaf/src/dnn/model_loader.c``): a keyless
#: signature made by a GitHub Actions workflow of lusoris/vmaf.
CERTIFICATE_IDENTITY_REGEXP: Final = "https://github.com/lusoris/vmaf/.github/workflows/.+"
CERTIFICATE_OIDC_ISSUER: Final = "https://token.actions.githubusercontent.com"

Status = Literal["missing", "signs-this", "stale", "unreadable"]


def bundle_path(onnx: str) -> str:
    """Where a member's bundle goes, as the fork names them: ``<onnx>.sigstore.json``
    beside it (``onnx`` relative to the registry's directory)."""
    return onnx + BUNDLE_SUFFIX


def sign_command(onnx: Path) -> str:
    """The fork's signing invocation (``.github/workflows/supply-chain.yml``: ``cosign
    sign-blob --yes --bundle ...``), writing the bundle where the registry names it."""
    return f"cosign sign-blob --yes --bundle {bundle_path(str(onnx))} {onnx}"


def verify_command(onnx: Path) -> str:
    """What ``--tiny-model-verify`` runs for ``onnx`` (libvmaf ``model_loader.c``)."""
    return (
        f"cosign verify-blob --bundle={bundle_path(str(onnx))} "
        f"--certificate-identity-regexp '{CERTIFICATE_IDENTITY_REGEXP}' "
        f"--certificate-oidc-issuer {CERTIFICATE_OIDC_ISSUER} {onnx}"
    )


@dataclass(frozen=True)
class SignatureState:
    """What a member's bundle file says about the member, as far as frreg can tell."""

    status: Status
    bundle: Path
    #: the sha256 digests (hex) the bundle records of what it signs
    digests: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Not a problem for ``--check``: the bundle records this member's digest, or
        there is none yet (the fork's pre-release state: its validator does not require
        the file, ``--tiny-model-verify`` does)."""
        return self.status in ("signs-this", "missing")

    def describe(self, member: str, sha256: str) -> str:
        name = self.bundle.name
        if self.status == "missing":
            return (
                f"signature missing: {name} does not exist; --tiny-model-verify rejects "
                f"{member} until it is signed (docs/export.md, Signing)"
            )
        if self.status == "stale":
            shown = ", ".join(d[:12] + "…" for d in self.digests)
            return (
                f"signature stale: {name} signs sha256 {shown}, not {member} "
                f"({sha256[:12]}…); sign the member again"
            )
        if self.status == "unreadable":
            return (
                f"signature unreadable: {name} is not a Sigstore bundle that records the "
                f"sha256 of what it signs; sign {member} again"
            )
        return (
            f"signature bundle {name} records this sha256 (the signature itself is "
            "cosign verify-blob's to check)"
        )


def signature_state(bundle: Path, sha256: str) -> SignatureState:
    """The state of ``bundle`` for a member whose sha256 (hex) is ``sha256``."""
    if not bundle.is_file():
        return SignatureState("missing", bundle)
    try:
        doc = json.loads(bundle.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return SignatureState("unreadable", bundle)
    digests = tuple(dict.fromkeys(signed_digests(doc)))
    if not digests:
        return SignatureState("unreadable", bundle)
    if all(d == sha256.lower() for d in digests):
        return SignatureState("signs-this", bundle, digests)
    return SignatureState("stale", bundle, tuple(d for d in digests if d != sha256.lower()))


def signed_digests(doc: Any) -> list[str]:
    """Every sha256 (lowercase hex) a Sigstore bundle records of the artifact it signs:

    - a protobuf-specs bundle (``mediaType`` ``application/vnd.dev.sigstore.bundle...``,
      what cosign 3's ``sign-blob --bundle`` writes): ``messageSignature.messageDigest``
      (``SHA2_256``, base64), and the ``hashedrekord`` body of each
      ``verificationMaterial.tlogEntries[].canonicalizedBody``;
    - cosign's earlier bundle: the ``hashedrekord`` body of ``rekorBundle.Payload.body``.

    Anything else records no digest (an empty list).
    """
    if not isinstance(doc, dict):
        return []
    out: list[str] = []
    message = _get(doc, "messageSignature", "messageDigest")
    if isinstance(message, dict) and message.get("algorithm") == "SHA2_256":
        raw = _b64(message.get("digest"))
        if raw is not None and len(raw) == 32:
            out.append(raw.hex())
    entries = _get(doc, "verificationMaterial", "tlogEntries")
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict):
            out += _rekord_digest(entry.get("canonicalizedBody"))
    out += _rekord_digest(_get(doc, "rekorBundle", "Payload", "body"))
    return out


def _get(doc: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _b64(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _rekord_digest(body: Any) -> list[str]:
    """The artifact digest of a base64 ``hashedrekord`` log entry body."""
    raw = _b64(body)
    if raw is None:
        return []
    try:
        entry = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return []
    if not isinstance(entry, dict) or entry.get("kind") != "hashedrekord":
        return []
    digest = _get(entry, "spec", "data", "hash")
    if not isinstance(digest, dict) or digest.get("algorithm") != "sha256":
        return []
    value = digest.get("value")
    if isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{64}", value):
        return [value.lower()]
    return []
