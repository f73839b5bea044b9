"""postfix: SMTP with STARTTLS, SMTPS (implicit TLS, 465-style) and SMTP without STARTTLS.

The master runs in the foreground from a config directory in the temp dir (``master -c DIR
-d``); its queue lives there too. No chroot, so nothing has to be copied into a jail. Only
the services an SMTP session up to EHLO and QUIT needs are defined; mail is never accepted
for delivery (no local domains, no relaying).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .runner import LOOPBACK, Daemon, Workspace, free_port, require, run_setup, serving

DAEMON_DIRECTORY = Path("/usr/lib/postfix/sbin")

# Internal services smtpd talks to (anvil for connection counts, tlsmgr for the TLS session
# cache, proxymap for table lookups, postlog for logging to our log file, and the queue
# services cleanup and qmgr need).
_INTERNAL = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


@contextmanager
def running(workspace: Workspace) -> Iterator[Daemon]:
    directory = workspace.directory("postfix")
    certificate = workspace.pki.issue("postfix")
    starttls, implicit, no_starttls = free_port(), free_port(), free_port()
    queue = directory / "queue"
    (directory / "main.cf").write_text(
        f"""\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {directory / "data"}
mail_owner = postfix
setgid_group = postdrop
myhostname = localhost
mydomain = localdomain
mydestination =
relay_domains =
local_recipient_maps =
inet_interfaces = {LOOPBACK}
inet_protocols = ipv4
maillog_file_prefixes = {directory}
maillog_file = {directory / "maillog"}
smtpd_banner = $myhostname ESMTP Postfix (tcpmonitor test)
smtpd_tls_cert_file = {certificate.cert_path}
smtpd_tls_key_file = {certificate.key_path}
smtpd_tls_security_level = may
smtpd_relay_restrictions = reject_unauth_destination
"""
    )
    (directory / "master.cf").write_text(
        f"""\
{LOOPBACK}:{starttls} inet n - n - - smtpd
{LOOPBACK}:{implicit} inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
{LOOPBACK}:{no_starttls} inet n - n - - smtpd
  -o smtpd_tls_security_level=none
{_INTERNAL}"""
    )
    postfix = require("postfix")
    # postfix check creates what is inside the queue directory, not the directory itself.
    queue.mkdir(mode=0o755)
    # Creates the queue directories with the ownership and modes postfix insists on.
    run_setup([postfix, "-c", str(directory), "check"], "postfix check")
    argv = [str(DAEMON_DIRECTORY / "master"), "-c", str(directory), "-d"]
    ports = [starttls, implicit, no_starttls]
    with serving("postfix", argv, directory, ports, log_name="maillog"):
        yield Daemon(
            "postfix",
            {"starttls": starttls, "implicit": implicit, "no_starttls": no_starttls},
            certificate,
            directory,
        )
