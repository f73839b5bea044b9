"""The built-in protocols: one module each, all of one shape, as the blackbox exporter has one
prober per protocol.

``converse(session, start_tls)`` runs the exchange that proves the service answers, sets
``session.detail`` as soon as it learns what the server is, upgrades through
``session.start_tls()`` when asked, and raises a classified failure otherwise. The binary
protocols (PostgreSQL, MySQL, MongoDB, LDAP) frame and decode messages, which regex steps
cannot do; hence modules rather than built-in step lists, on the same session as the steps.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ...api import Protocol
from ..session import Session
from . import (
    ftp,
    imap,
    ldap,
    memcached,
    mongodb,
    mysql,
    pop3,
    postgresql,
    redis,
    smtp,
    ssh,
    xmpp,
)

Converse = Callable[[Session, bool], Awaitable[None]]

PROTOCOLS: dict[Protocol, Converse] = {
    Protocol.SMTP: smtp.converse,
    Protocol.IMAP: imap.converse,
    Protocol.POP3: pop3.converse,
    Protocol.FTP: ftp.converse,
    Protocol.SSH: ssh.converse,
    Protocol.POSTGRESQL: postgresql.converse,
    Protocol.MYSQL: mysql.converse,
    Protocol.REDIS: redis.converse,
    Protocol.MEMCACHED: memcached.converse,
    Protocol.MONGODB: mongodb.converse,
    Protocol.LDAP: ldap.converse,
    Protocol.XMPP: xmpp.converse,
}
