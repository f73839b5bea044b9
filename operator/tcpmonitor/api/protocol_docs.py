"""What each built-in protocol check does, for the README table generated from it.

Next to the enum so a new protocol cannot be added without saying what it proves; a test
checks every Protocol has a row.
"""

from __future__ import annotations

from dataclasses import dataclass

from .spec import STARTTLS_PROTOCOLS, Protocol


@dataclass(frozen=True)
class ProtocolDoc:
    port: str  # default port, and the implicit-TLS port where there is one
    proves: str
    detail: str


PROTOCOL_DOCS: dict[Protocol, ProtocolDoc] = {
    Protocol.SMTP: ProtocolDoc(
        "25, 587; 465 TLS",
        "220 greeting, 250 to `EHLO` (by address literal), `QUIT`",
        "the greeting: `mx.example.com ESMTP Postfix (Debian/GNU)`",
    ),
    Protocol.IMAP: ProtocolDoc(
        "143; 993 TLS",
        "`* OK` greeting; with STARTTLS, `CAPABILITY` answered over TLS",
        "the greeting text: `Dovecot (Debian) ready.`",
    ),
    Protocol.POP3: ProtocolDoc(
        "110; 995 TLS",
        "`+OK` greeting; with STARTTLS (`STLS`), `CAPA` answered over TLS",
        "the greeting text: `Dovecot (Debian) ready.`",
    ),
    Protocol.FTP: ProtocolDoc(
        "21; 990 TLS",
        "220 greeting; with STARTTLS (`AUTH TLS`), `NOOP` answered over TLS",
        "the first greeting line: `(vsFTPd 3.0.3)`",
    ),
    Protocol.SSH: ProtocolDoc(
        "22",
        "the `SSH-2.0-` identification line",
        "the line: `SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3`",
    ),
    Protocol.POSTGRESQL: ProtocolDoc(
        "5432",
        "a startup message (user `tcpmonitor`) answered by an authentication request or an "
        "error; with STARTTLS, `SSLRequest` answered `S`",
        "`authentication request: SASL`, the error (`FATAL 28000: no pg_hba.conf entry ...`), "
        "or the version when it lets the user in",
    ),
    Protocol.MYSQL: ProtocolDoc(
        "3306",
        "the initial handshake packet (protocol 10); with STARTTLS, an SSL request packet",
        "the server version: `10.11.6-MariaDB-0+deb12u1`, or the error packet",
    ),
    Protocol.REDIS: ProtocolDoc(
        "6379; TLS port",
        "`PING` answered `+PONG` or an error such as `-NOAUTH`; then `INFO server`",
        "`PONG, redis_version 7.0.15` or `NOAUTH Authentication required.`",
    ),
    Protocol.MEMCACHED: ProtocolDoc(
        "11211; TLS port",
        "`version` answered `VERSION ...`",
        "the version: `1.6.18`",
    ),
    Protocol.MONGODB: ProtocolDoc(
        "27017; TLS port",
        "`hello` (OP_MSG) answered `ok: 1`; then `buildInfo`",
        "`version 7.0.14, maxWireVersion 21`",
    ),
    Protocol.LDAP: ProtocolDoc(
        "389; 636 TLS",
        "an anonymous search of the root DSE answered (entry or result code); with "
        "STARTTLS, the StartTLS extended operation first",
        "`OpenLDAP, LDAP versions 3` (vendorName, supportedLDAPVersion) or the result code",
    ),
    Protocol.XMPP: ProtocolDoc(
        "5222; 5223 TLS",
        "a client stream to the domain (tls.serverName, else host) answered with stream "
        "features; with STARTTLS, `<starttls/>`, `<proceed/>` and features again over TLS",
        "`stream from example.com, features: starttls, mechanisms`",
    ),
}


def protocol_table() -> str:
    rows = []
    for protocol in Protocol:
        doc = PROTOCOL_DOCS[protocol]
        if protocol is Protocol.SSH:
            tls = "none: SSH encrypts by itself (tls is refused)"
        elif protocol in (Protocol.POSTGRESQL, Protocol.MYSQL):
            tls = "STARTTLS (implicit TLS only behind a TLS proxy)"
        elif protocol in STARTTLS_PROTOCOLS:
            tls = "STARTTLS or implicit TLS"
        else:
            tls = "implicit TLS"
        rows.append(f"| `{protocol.value}` | {doc.port} | {doc.proves} | {tls} | {doc.detail} |")
    head = (
        "| `protocol` | Default port | What the check proves | TLS | `result.protocol.detail` "
        "shows |\n|---|---|---|---|---|\n"
    )
    return head + "\n".join(rows)
