"""``openssl s_client``: an independent client that shows which certificate a port serves.

Independent of our probe engine, so the daemons' setup is proven on its own. Note that
s_client exits 0 and prints "Verify return code: 0 (ok)" even when no handshake happened
(e.g. the server refused STARTTLS), so the proof is the certificate in its output.
"""

from __future__ import annotations

import re
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.daemons.runner import LOOPBACK

_PEM = re.compile(r"-----BEGIN CERTIFICATE-----\n.+?\n-----END CERTIFICATE-----", re.DOTALL)
TIMEOUT = 20.0


@dataclass(frozen=True)
class Handshake:
    """What s_client printed: the leaf certificate (DER) if it got one, and the text."""

    certificate: bytes | None
    verified: bool
    output: str


def s_client(
    port: int,
    ca: Path,
    *,
    starttls: str | None = None,
    server_name: str = "localhost",
) -> Handshake:
    argv = [
        "openssl", "s_client",
        "-connect", f"{LOOPBACK}:{port}",
        "-CAfile", str(ca),
        "-verify_return_error",
        "-verify_hostname", server_name,
        "-servername", server_name,
    ]  # fmt: skip
    if starttls is not None:
        argv += ["-starttls", starttls]
        if starttls == "xmpp":
            argv += ["-xmpphost", server_name]
    # stdin at EOF: s_client closes the connection right after the handshake.
    completed = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    output = completed.stdout + completed.stderr
    match = _PEM.search(completed.stdout)
    der = ssl.PEM_cert_to_DER_cert(match.group(0)) if match else None
    verified = der is not None and "Verify return code: 0 (ok)" in completed.stdout
    return Handshake(der, verified, output)
