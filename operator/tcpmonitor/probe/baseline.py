"""tls.baseline: what a security review would flag in the session and the presented chain.

Each finding carries the rule's action: Fail makes the probe Down, Degrade adds a warning. The
facts come from the result (tls.chain, tls.version, tls.cipher), so what is flagged is exactly
what the user can read next to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..api import TlsInfo
from ..api.spec import BaselineAction, TlsVersion
from .plan import BaselinePlan

_VERSION_ORDER = {"TLSv1": 0, "TLSv1.1": 1, "TLSv1.2": 2, "TLSv1.3": 3}
_MINIMUM = {TlsVersion.TLS1_0: 0, TlsVersion.TLS1_1: 1, TlsVersion.TLS1_2: 2, TlsVersion.TLS1_3: 3}
_WEAK_HASHES = ("md2", "md4", "md5", "sha1")
# Pieces of OpenSSL cipher names that mark a weak cipher.
_WEAK_CIPHER_PARTS = ("RC4", "DES", "NULL", "EXP", "MD5", "ADH", "AECDH", "ANON")
_FORWARD_SECRET_PREFIXES = ("ECDHE-", "DHE-", "EDH-")


@dataclass(frozen=True)
class Finding:
    code: str
    action: BaselineAction
    message: str


def _weak_signature(algorithm: str | None) -> bool:
    if algorithm is None:
        return False
    name = algorithm.lower().replace("-", "")
    # sha1WithRSAEncryption, ecdsa-with-SHA1, dsa-with-sha1, md5WithRSAEncryption...; never
    # the SHA-2 family (sha1 is a prefix of no SHA-2 name written this way).
    return any(f"{h}with" in name or name.endswith(f"with{h}") for h in _WEAK_HASHES)


def cipher_weakness(version: str | None, cipher: str | None) -> str | None:
    """Why the negotiated cipher is weak or not forward secret, or None."""
    if cipher is None:
        return None
    upper = cipher.upper()
    weak = [part for part in _WEAK_CIPHER_PARTS if part in upper.replace("_", "-").split("-")]
    if "3DES" in upper or "DES-CBC3" in upper:
        weak.append("3DES")
    if weak:
        return f"cipher {cipher} is weak ({', '.join(sorted(set(weak)))})"
    if version == "TLSv1.3":
        return None  # every TLS 1.3 suite is forward secret
    if not upper.startswith(_FORWARD_SECRET_PREFIXES):
        return f"cipher {cipher} is not forward secret (no ECDHE/DHE key exchange)"
    return None


def findings(plan: BaselinePlan, tls: TlsInfo) -> list[Finding]:
    out: list[Finding] = []
    if plan.key_size is not None:
        for index, cert in enumerate(tls.chain):
            if cert.key_size is None or cert.key_type is None:
                continue
            floor = plan.min_ec_bits if cert.key_type == "EC" else plan.min_rsa_bits
            if cert.key_type in ("RSA", "DSA", "EC") and cert.key_size < floor:
                out.append(
                    Finding(
                        "TLS_WEAK_KEY",
                        plan.key_size,
                        f"chain certificate {index} ({cert.subject}) has a {cert.key_size}-bit "
                        f"{cert.key_type} key, below {floor} bits",
                    )
                )
                break
    if plan.signature is not None:
        for index, cert in enumerate(tls.chain):
            self_signed = cert.subject == cert.issuer and index == len(tls.chain) - 1
            if not self_signed and _weak_signature(cert.signature_algorithm):
                out.append(
                    Finding(
                        "TLS_WEAK_SIGNATURE",
                        plan.signature,
                        f"chain certificate {index} ({cert.subject}) is signed with "
                        f"{cert.signature_algorithm}",
                    )
                )
                break
    if plan.cipher is not None:
        weakness = cipher_weakness(tls.version, tls.cipher)
        if weakness is not None:
            out.append(Finding("TLS_WEAK_CIPHER", plan.cipher, weakness))
    negotiated = _VERSION_ORDER.get(tls.version or "")
    if (
        plan.version is not None
        and negotiated is not None
        and negotiated < _MINIMUM[plan.min_version]
    ):
        out.append(
            Finding(
                "TLS_OLD_VERSION",
                plan.version,
                f"negotiated {tls.version}, below the baseline's {plan.min_version.value}",
            )
        )
    return out
