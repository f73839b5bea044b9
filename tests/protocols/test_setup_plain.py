"""Each daemon speaks its protocol in plaintext, checked over a bare socket.

Independent of our engine: what a probe of that protocol will see first (greeting, banner,
capability, reply), so the product tests compare against what the daemon really says.
"""

from __future__ import annotations

import struct
import subprocess

import pytest

from tests.daemons.runner import LOOPBACK, Daemon

from .wire import Conversation, at_least, bson, containing, line, op_msg


def _ehlo(port: int) -> tuple[bytes, bytes, bytes]:
    with Conversation(port) as smtp:
        greeting = smtp.read_until(line)
        smtp.send(b"EHLO probe.test\r\n")
        features = smtp.read_until(lambda data: b"\n250 " in b"\n" + data)
        smtp.send(b"STARTTLS\r\n")
        answer = smtp.read_until(line)
    return greeting, features, answer


def test_postfix_offers_starttls(postfix_daemon: Daemon) -> None:
    greeting, features, answer = _ehlo(postfix_daemon.port("starttls"))
    assert greeting.startswith(b"220 localhost ESMTP Postfix"), greeting
    assert b"250-STARTTLS" in features, features
    assert answer.startswith(b"220 "), answer  # ready to start TLS


def test_postfix_without_starttls_refuses_it(postfix_daemon: Daemon) -> None:
    greeting, features, answer = _ehlo(postfix_daemon.port("no_starttls"))
    assert greeting.startswith(b"220 "), greeting
    assert b"STARTTLS" not in features, features
    assert answer.startswith(b"502 "), answer


def test_dovecot_imap_greeting_advertises_starttls(dovecot_daemon: Daemon) -> None:
    with Conversation(dovecot_daemon.port("imap")) as imap:
        greeting = imap.read_until(line)
    assert greeting.startswith(b"* OK "), greeting
    assert b"STARTTLS" in greeting, greeting
    assert b"Dovecot (tcpmonitor test) ready." in greeting


def test_dovecot_imap_without_tls_refuses_starttls(dovecot_daemon: Daemon) -> None:
    with Conversation(dovecot_daemon.port("imap_no_starttls")) as imap:
        greeting = imap.read_until(line)
        imap.send(b"a1 STARTTLS\r\n")
        answer = imap.read_until(line)
    assert greeting.startswith(b"* OK "), greeting
    assert b"STARTTLS" not in greeting, greeting
    assert answer.startswith((b"a1 BAD", b"a1 NO")), answer


def _pop3_capabilities(port: int) -> tuple[bytes, bytes, bytes]:
    with Conversation(port) as pop3:
        greeting = pop3.read_until(line)
        pop3.send(b"CAPA\r\n")
        capabilities = pop3.read_until(containing(b"\r\n.\r\n"))
        pop3.send(b"STLS\r\n")
        answer = pop3.read_until(line)
    return greeting, capabilities, answer


def test_dovecot_pop3_offers_stls(dovecot_daemon: Daemon) -> None:
    greeting, capabilities, answer = _pop3_capabilities(dovecot_daemon.port("pop3"))
    assert greeting.startswith(b"+OK Dovecot (tcpmonitor test) ready."), greeting
    assert b"\r\nSTLS\r\n" in capabilities, capabilities
    assert answer.startswith(b"+OK"), answer


def test_dovecot_pop3_without_tls_refuses_stls(dovecot_daemon: Daemon) -> None:
    greeting, capabilities, answer = _pop3_capabilities(dovecot_daemon.port("pop3_no_starttls"))
    assert greeting.startswith(b"+OK "), greeting
    assert b"STLS" not in capabilities, capabilities
    assert answer.startswith(b"-ERR"), answer


def test_vsftpd_offers_auth_tls(vsftpd_daemon: Daemon) -> None:
    with Conversation(vsftpd_daemon.port("starttls")) as ftp:
        greeting = ftp.read_until(line)
        ftp.send(b"FEAT\r\n")
        features = ftp.read_until(containing(b"211 End"))
    assert greeting.startswith(b"220 vsFTPd (tcpmonitor test) ready"), greeting
    assert b"AUTH TLS" in features, features


def test_vsftpd_without_tls_refuses_auth_tls(vsftpd_daemon: Daemon) -> None:
    with Conversation(vsftpd_daemon.port("no_starttls")) as ftp:
        greeting = ftp.read_until(line)
        ftp.send(b"AUTH TLS\r\n")
        answer = ftp.read_until(line)
    assert greeting.startswith(b"220 "), greeting
    assert answer[:1] == b"5", answer  # a permanent refusal (530 / 500)


def test_sshd_sends_its_version(sshd_daemon: Daemon) -> None:
    with Conversation(sshd_daemon.port("plain")) as ssh:
        banner = ssh.read_until(line)
    assert banner.startswith(b"SSH-2.0-OpenSSH_"), banner


SSL_REQUEST = struct.pack("!ii", 8, 80877103)


@pytest.mark.parametrize(("purpose", "answer"), [("starttls", b"S"), ("no_starttls", b"N")])
def test_postgresql_answers_the_ssl_request(
    postgresql_daemon: Daemon, purpose: str, answer: bytes
) -> None:
    with Conversation(postgresql_daemon.port(purpose)) as pg:
        pg.send(SSL_REQUEST)
        assert pg.read_until(at_least(1)) == answer


def test_postgresql_asks_for_authentication(postgresql_daemon: Daemon) -> None:
    parameters = b"user\x00probe\x00database\x00probe\x00\x00"
    startup = struct.pack("!ii", 8 + len(parameters), 196608) + parameters
    with Conversation(postgresql_daemon.port("no_starttls")) as pg:
        pg.send(startup)
        reply = pg.read_until(at_least(9))
    # 'R' AuthenticationRequest, code 10: SASL (SCRAM-SHA-256), as configured by initdb.
    assert reply[:1] == b"R", reply
    assert struct.unpack("!i", reply[5:9]) == (10,), reply


CLIENT_SSL = 0x0800


def _mariadb_greeting(port: int) -> tuple[bytes, int]:
    """The server version and capability flags from the initial handshake packet."""
    with Conversation(port) as mysql:
        packet = mysql.read_until(at_least(64))
    length = int.from_bytes(packet[:3], "little")
    payload = packet[4 : 4 + length]
    assert payload[0] == 10, packet  # protocol version 10
    version, _, rest = payload[1:].partition(b"\x00")
    # After the version: thread id (4), scramble (8), filler (1), capability flags (2).
    return version, int.from_bytes(rest[13:15], "little")


def test_mariadb_greets_with_tls_capability(mariadb_daemon: Daemon) -> None:
    version, capabilities = _mariadb_greeting(mariadb_daemon.port("starttls"))
    assert b"MariaDB" in version, version
    assert capabilities & CLIENT_SSL, f"CLIENT_SSL not offered: {capabilities:#x}"


def test_mariadb_without_tls_does_not_offer_it(mariadb_daemon: Daemon) -> None:
    version, capabilities = _mariadb_greeting(mariadb_daemon.port("no_starttls"))
    assert b"MariaDB" in version, version
    assert not capabilities & CLIENT_SSL, f"CLIENT_SSL offered: {capabilities:#x}"


def test_redis_answers_ping(redis_daemon: Daemon) -> None:
    with Conversation(redis_daemon.port("plain")) as client:
        client.send(b"PING\r\n")
        assert client.read_until(line) == b"+PONG\r\n"


def test_memcached_tells_its_version(memcached_daemon: Daemon) -> None:
    with Conversation(memcached_daemon.port("plain")) as client:
        client.send(b"version\r\n")
        reply = client.read_until(line)
    assert reply.startswith(b"VERSION 1."), reply


def test_mongodb_wire_protocol_answers_hello(mongodb_daemon: Daemon) -> None:
    with Conversation(mongodb_daemon.port("plain")) as client:
        client.send(op_msg(1, bson({"hello": 1, "$db": "admin"})))
        header = client.read_until(at_least(16))
        length, _, response_to, opcode = struct.unpack("<iiii", header[:16])
        reply = header + client.read_until(at_least(length - len(header)))
    assert (response_to, opcode) == (1, 2013), header
    assert b"isWritablePrimary" in reply, reply
    assert b"maxWireVersion" in reply, reply


def test_slapd_root_dse_lists_starttls(slapd_daemon: Daemon) -> None:
    url = f"ldap://{LOOPBACK}:{slapd_daemon.port('starttls')}"
    argv = ["ldapsearch", "-x", "-LLL", "-H", url, "-s", "base", "-b", "", "supportedExtension"]
    completed = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "supportedExtension: 1.3.6.1.4.1.1466.20037" in completed.stdout, completed.stdout


def _stream_features(port: int) -> bytes:
    with Conversation(port) as xmpp:
        xmpp.send(
            b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
            b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
        )
        return xmpp.read_until(containing(b"</stream:features>"))


def test_prosody_stream_features_offer_starttls(prosody_daemon: Daemon) -> None:
    features = _stream_features(prosody_daemon.port("starttls"))
    assert b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'" in features, features


def test_prosody_without_tls_offers_no_starttls(prosody_daemon: Daemon) -> None:
    features = _stream_features(prosody_daemon.port("no_starttls"))
    assert b"</stream:features>" in features, features  # it did answer, with features
    assert b"starttls" not in features, features
