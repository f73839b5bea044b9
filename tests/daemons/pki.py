"""The test CA and one server certificate per daemon, as PEM files the daemons can read."""

from __future__ import annotations

import hashlib
import os
import pwd
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import trustme


@dataclass(frozen=True)
class ServerCertificate:
    """A daemon's certificate and key on disk, and what a client should see of it."""

    common_name: str
    cert_path: Path
    key_path: Path
    ca_path: Path
    der: bytes = field(repr=False)

    @property
    def sha256_fingerprint(self) -> str:
        """In the probe result's format: upper-case hex pairs joined by colons."""
        digest = hashlib.sha256(self.der).hexdigest().upper()
        return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))

    def give_key_to(self, user: str) -> None:
        """Make the key private to ``user``: postgres and others refuse a key others can read."""
        entry = pwd.getpwnam(user)
        os.chown(self.key_path, entry.pw_uid, entry.pw_gid)
        self.key_path.chmod(0o600)


class TestPki:
    """One CA for the session; ``issue`` writes a leaf for one daemon under ``directory``."""

    __test__ = False  # a helper, not a test class, despite the name

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = trustme.CA()
        self.ca_path = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_path))
        self.ca_path.chmod(0o644)

    def issue(self, daemon: str) -> ServerCertificate:
        # A distinct common name per daemon: a test can check that the certificate in a
        # result is the one *this* daemon serves, not merely one from the same CA.
        common_name = f"{daemon}.tcpmonitor.test"
        leaf = self.ca.issue_cert("localhost", "127.0.0.1", common_name=common_name)
        cert_path = self.directory / f"{daemon}.crt"
        key_path = self.directory / f"{daemon}.key"
        # The leaf first, then the CA, as daemons expect a chain file.
        cert_path.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(key_path))
        # Readable by the daemons that drop privileges (dovecot, postfix, prosody); these are
        # throw-away keys in a temp dir. give_key_to() narrows it for the ones that insist.
        cert_path.chmod(0o644)
        key_path.chmod(0o644)
        der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
        return ServerCertificate(common_name, cert_path, key_path, self.ca_path, der)
