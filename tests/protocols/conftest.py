"""The real daemons (tests/daemons) as session fixtures, and the ``protocols`` marker.

Each daemon starts on first use and stops at the end of the session, so running one test
starts only the daemon it needs. A daemon that does not come up fails the tests that need
it, with its log tail; nothing here skips: ``.ci/provision-daemons`` and
``.ci/provision-ferretdb`` make every daemon available.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.controlplane.processes import StartupError
from tests.daemons import (
    dovecot,
    mariadb,
    memcached,
    mongodb,
    postfix,
    postgresql,
    prosody,
    redis,
    slapd,
    sshd,
    vsftpd,
)
from tests.daemons.runner import Daemon, Workspace

PROTOCOLS_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # This hook sees the whole session's items, not only this directory's.
    for item in items:
        if item.path.resolve().is_relative_to(PROTOCOLS_DIR):
            item.add_marker(pytest.mark.protocols)


@pytest.fixture(scope="session")
def workspace() -> Iterator[Workspace]:
    if os.geteuid() != 0:
        # postgres, mariadbd and prosody run as their package users, and vsftpd and sshd
        # need their directories under /run: only root can arrange that.
        pytest.fail(
            "tests/protocols start the daemons as root (as CI does); run them as root "
            "after .ci/provision-daemons, or leave them out with -m 'not protocols'",
            pytrace=False,
        )
    with Workspace.temporary() as created:
        yield created


def _run(
    start: Callable[[Workspace], AbstractContextManager[Daemon]], ws: Workspace
) -> Iterator[Daemon]:
    try:
        with start(ws) as daemon:
            yield daemon
    except StartupError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def postfix_daemon(workspace: Workspace) -> Iterator[Daemon]:
    yield from _run(postfix.running, workspace)


@pytest.fixture(scope="session")
def dovecot_daemon(workspace: Workspace) -> Iterator[Daemon]:
    yield from _run(dovecot.running, workspace)


@pytest.fixture(scope="session")
def vsftpd_daemon(workspace: Workspace) -> Iterator[Daemon]:
    yield from _run(vsftpd.running, workspace)


@pytest.fixture(scope="session")
def sshd_daemon(workspace: Workspace) -> Iterator[Daemon]:
    yield from _run(sshd.running, workspace)


@pytest.fixture(scope="session")
def postgresql_daemon(workspace: Workspace) -> Iterator[Daemon]:
    yield from _run(postgresql.running, workspace)


@pytest.fixture(scope="session")
def mariadb_daemon(workspace: Workspace) -> Iterator[Daemon]:
    yield from _run(mariadb.running, workspace)


@pytest.fixture(scope="session")
def redis_daemon(workspace: Workspace) -> Iterator[Daemon]:
    yield from _run(redis.running, workspace)


@pytest.fixture(scope="session")
def memcached_daemon(workspace: Workspace) -> Iterator[Daemon]:
    yield from _run(memcached.running, workspace)


@pytest.fixture(scope="session")
def mongodb_daemon(workspace: Workspace) -> Iterator[Daemon]:
    yield from _run(mongodb.running, workspace)


@pytest.fixture(scope="session")
def slapd_daemon(workspace: Workspace) -> Iterator[Daemon]:
    yield from _run(slapd.running, workspace)


@pytest.fixture(scope="session")
def prosody_daemon(workspace: Workspace) -> Iterator[Daemon]:
    yield from _run(prosody.running, workspace)


@pytest.fixture
def daemon(request: pytest.FixtureRequest) -> Daemon:
    """The daemon named by an indirect parameter, e.g. ``"postfix"``: started on first use."""
    found: Daemon = request.getfixturevalue(f"{request.param}_daemon")
    return found
