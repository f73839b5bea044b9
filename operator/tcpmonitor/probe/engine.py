"""One probe: resolve, connect, TLS, send, read, judge; one deadline over all of it.

The engine never raises for anything the target does: every failure becomes a stable error code
in the result, with the timing of each phase up to the point of failure, because *where* a probe
failed is half of the diagnosis.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from ..api import (
    Certificate,
    ErrorCode,
    ProbeResult,
    Problem,
    ProtocolInfo,
    RequestSummary,
    ResponseSummary,
    StepOutcome,
    Timings,
    TlsInfo,
    Verdict,
)
from ..api import WarningCode as W
from ..api.printable import printable
from ..api.result import (
    MAX_CIPHER,
    MAX_MESSAGE,
    MAX_PROTOCOL_DETAIL,
    MAX_WARNINGS,
    RevocationInfo,
    RevocationSource,
    RevocationStatus,
)
from ..api.spec import BaselineAction, RefusalAlert
from .assertions import ReplyDecider, data_outcome, time_outcome
from .baseline import findings
from .excerpt import printable_excerpt
from .failures import (
    ProbeFailure,
    classify_socket_error,
    classify_tls_error,
    drop_tracebacks,
)
from .pins import check_pins
from .plan import ProbePlan
from .protocols import PROTOCOLS
from .reader import Reader
from .resolver import ResolutionClock, process_resolver
from .session import Session
from .steps import StepTiming, run_steps
from .tls_socket import TlsSocket
from .trust_cache import TRUST_CACHE, TrustVerdict
from .withholding import withhold_reply

# What reads certificates (certificate, chain, hostname, revocation, ocsp_responder) needs
# cryptography, about 8 MB once imported: the TLS steps below import it (``TLS only``) when a
# TLS probe first runs, so that a runner whose monitors are not TLS never loads it.
if TYPE_CHECKING:
    from .certificate import Inspection, Peer

_T = TypeVar("_T")

# RFC 6761: names under .invalid never resolve, so no resolver is asked (and none can time out).
_RESERVED_INVALID = ".invalid"
# Leave the engine this much of the deadline to build the result after an inner timeout.
_INNER_MARGIN = 0.005
_SSL_SHUTDOWN_TIMEOUT = 1.0
# The payload goes out in chunks, the next one only once the last has left our buffers: memory
# per probe stays at about two chunks whatever the payload and however slowly the target reads.
_SEND_CHUNK = 64 * 1024
# How often to look whether the last chunk has left the buffers when no reply is awaited.
_DRAIN_POLL = 0.02


# With spec.expect Unreachable these are the proof that the path is closed; DNS failures are not
# (a misspelt name would pass for ever) and stay Down.
_UNREACHABLE_CODES = frozenset(
    {
        ErrorCode.CONNECTION_REFUSED,
        ErrorCode.CONNECT_TIMEOUT,
        ErrorCode.HOST_UNREACHABLE,
        ErrorCode.NETWORK_UNREACHABLE,
    }
)


class _CertificateRead(Exception):
    """Ends a side connection's dialog once its handshake is done (or failed)."""


_PENDING = TrustVerdict(None, "not checked: the probe ended first")


def _read_peer(ssl_object: ssl.SSLObject | None) -> Peer:
    """What the server presented over ``ssl_object`` (None: nothing was read)."""
    from .certificate import read_peer  # noqa: PLC0415 - TLS only

    return read_peer(ssl_object)


@dataclasses.dataclass(frozen=True)
class _Side:
    """What a side connection's handshake showed, and the error it ended with, if any; with a
    linger, what the server did next: sent data, or ended the connection (with ``after``)."""

    peer: Peer
    error: BaseException | None
    received: bool = False
    ended: bool = False
    after: BaseException | None = None
    waited: float = 0.0  # seconds the linger lasted


# How long a client without a certificate waits for its refusal once its handshake is done,
# at most: a TLS 1.3 server judges the client's (empty) Certificate after the client's
# Finished and sends certificate_required within a round trip, but a slow or loaded server
# must not read as "let in". A server that let the client in and says nothing costs the wait,
# and is Down anyway. Never past the probe's deadline: with less time left than the minimum,
# the check says nothing rather than guess.
_REFUSAL_WAIT = 5.0
_REFUSAL_MIN_WAIT = 0.5


def _alert_name(exc: BaseException | None) -> str | None:
    """certificate_required from OpenSSL's TLSV13_ALERT_CERTIFICATE_REQUIRED, and so on."""
    reason = getattr(exc, "reason", None) if isinstance(exc, ssl.SSLError) else None
    if isinstance(reason, str) and "_ALERT_" in reason:
        return reason.split("_ALERT_", 1)[1].lower()
    return None


async def _linger(reader: Reader, seconds: float) -> tuple[bool, bool, float]:
    """(data arrived, connection ended, seconds waited) within ``seconds`` after a handshake."""
    loop = asyncio.get_running_loop()
    start = len(reader.buffer)
    began = loop.time()
    until = began + seconds
    for _ in range(64):  # each turn is data, an end or the timer; bounded all the same
        if len(reader.buffer) > start:
            return True, False, loop.time() - began
        if reader.eof or reader.lost:
            return False, True, loop.time() - began
        left = until - loop.time()
        if left <= 0:
            break
        await reader.wait(left)
    return len(reader.buffer) > start, reader.eof or reader.lost, loop.time() - began


def format_address(sockaddr: tuple[object, ...], family: int) -> str:
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"


class _Attempt:
    """The state of one probe attempt as it moves through the phases."""

    def __init__(self, plan: ProbePlan, *, direct_tls: bool = True) -> None:
        self.plan = plan
        # A probe that only handshakes does so on its socket (probe/tls_socket.py), unless
        # told to go through asyncio's TLS transport like every other probe.
        self.direct_tls = direct_tls
        self.loop = asyncio.get_running_loop()
        self.phase = "dns"
        self.timings: dict[str, float] = {}
        self.error: ProbeFailure | None = None
        self.remote: str | None = None
        self.tls: TlsInfo | None = None
        self.reader: Reader | None = None
        self.read_timed_out = False
        # The TCP transport and, once TLS is up, the TLS transport on top of it.
        self.raw_transport: asyncio.Transport | None = None
        self.transport: asyncio.Transport | None = None
        # Instead of both, for a probe that only handshakes.
        self.tls_socket: TlsSocket | None = None
        self.certificate_problem: str | None = None
        self.payload_left = 0  # bytes of the payload not yet handed to the transport
        self.session: Session | None = None
        self.step_timings: list[StepTiming] = []
        self.trust_task: asyncio.Task[TrustVerdict] | None = None
        # Where the probe connected, for the side connections made after it.
        self.family: int = socket.AF_INET
        self.sockaddr: tuple[object, ...] | None = None
        self.refusal_failure: ProbeFailure | None = None
        # The target policy's rule for the connected address: whether the reply may be kept.
        self.withheld_by: str | None = None
        self.revocation_task: asyncio.Task[RevocationInfo] | None = None
        self.staple_missing = False  # stapling was asked for and the server sent none

    def _ms(self, since: float) -> float:
        return round((time.perf_counter() - since) * 1000, 3)

    async def run(self) -> ProbeResult:
        try:
            return await self._run()
        finally:
            for task in (self.trust_task, self.revocation_task):
                if task is not None and not task.done():
                    task.cancel()
            for failure in (self.error, self.refusal_failure):
                drop_tracebacks(failure)

    async def _run(self) -> ProbeResult:
        now = datetime.now(UTC)
        started_at = now.replace(microsecond=now.microsecond // 1000 * 1000)
        t0 = time.perf_counter()
        self.deadline = self.loop.time() + self.plan.timeout
        finished = False
        try:
            async with asyncio.timeout_at(self.deadline):
                addresses = await self._resolve()
                sock, family, sockaddr = await self._connect(addresses)
                self.family, self.sockaddr = family, sockaddr
                if self.plan.expect_unreachable:
                    sock.close()
                    raise ProbeFailure(
                        ErrorCode.UNEXPECTEDLY_REACHABLE,
                        f"{self.remote}: accepted the connection, expected to be refused or "
                        "to time out",
                    )
                if self._handshake_only():
                    await self._handshake_directly(sock, family, sockaddr)
                elif (
                    self.plan.tls
                    or self.plan.payload is not None
                    or self.plan.data_checks
                    or self.plan.dialog
                ):
                    await self._converse(sock, family, sockaddr)
                else:
                    sock.close()
            finished = True
        except TimeoutError:
            self._timed_out()
        except ProbeFailure as failure:
            self.error = failure
        finally:
            self._close(graceful=finished)
        total_ms = self._ms(t0)
        await self._settle_trust()
        await self._settle_revocation()
        await self._check_refusal()
        return self._result(started_at, total_ms)

    def _unsent(self) -> int:
        """Payload bytes still on our side: the target has not taken them."""
        buffered = sum(t.get_write_buffer_size() for t in {self.transport, self.raw_transport} if t)
        return self.payload_left + buffered

    def _close(self, *, graceful: bool) -> None:
        """Close politely only when all went well and nothing waits to be sent.

        ``close()`` keeps the socket until the write buffer drains, which with a target that
        never reads is forever: a socket and the unsent payload leaked per probe. Every other
        way out (a failure, the deadline, a cancellation) therefore aborts.
        """
        if self.tls_socket is not None:
            self.tls_socket.close(graceful=graceful)
            return
        transport = self.transport or self.raw_transport
        if transport is None:
            return
        if graceful and self._unsent() == 0:
            transport.close()
        else:
            transport.abort()
            if self.raw_transport is not None and self.raw_transport is not transport:
                self.raw_transport.abort()

    async def _resolve(self) -> list[tuple[int, tuple[object, ...]]]:
        plan = self.plan
        if plan.ip_literal:
            family = socket.AF_INET6 if ":" in plan.host else socket.AF_INET
            return [(family, (plan.host, plan.port))]
        if plan.host.rstrip(".").lower().endswith(_RESERVED_INVALID):
            self.timings["dns"] = 0.0
            raise ProbeFailure(
                ErrorCode.DNS_NOT_FOUND, f"{plan.host}: reserved .invalid name (RFC 6761)"
            )
        # The clock runs only while the resolver works on the name: a wait for one of its
        # slots is our queue, not the user's DNS.
        clock = ResolutionClock()
        try:
            addresses = await process_resolver().resolve(
                plan.host, plan.port, plan.family, clock, self.deadline - self.loop.time()
            )
        finally:
            self.timings["dns"] = clock.ms()
        seen: set[tuple[object, ...]] = set()
        unique: list[tuple[int, tuple[object, ...]]] = []
        for resolved_family, sockaddr in addresses:
            if sockaddr not in seen:
                seen.add(sockaddr)
                unique.append((resolved_family, sockaddr))
        return unique

    async def _connect(
        self, addresses: list[tuple[int, tuple[object, ...]]]
    ) -> tuple[socket.socket, int, tuple[object, ...]]:
        """Try the addresses in turn, each getting a fair share of the time that is left."""
        self.phase = "connect"
        started = time.perf_counter()
        failures: list[ProbeFailure] = []
        try:
            for index, (family, sockaddr) in enumerate(addresses):
                address = format_address(sockaddr, family)
                self.remote = address
                left = len(addresses) - index
                refusal = self._refusal(sockaddr, address)
                if refusal is not None:
                    failures.append(refusal)
                    continue
                budget = (self.deadline - self.loop.time()) / left
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setblocking(False)
                try:
                    if left == 1:
                        await self.loop.sock_connect(sock, sockaddr)
                    else:
                        async with asyncio.timeout(budget):
                            await self.loop.sock_connect(sock, sockaddr)
                except TimeoutError:
                    sock.close()
                    failures.append(
                        ProbeFailure(ErrorCode.CONNECT_TIMEOUT, f"{address}: connect timed out")
                    )
                    continue
                except OSError as exc:
                    sock.close()
                    failures.append(classify_socket_error(exc, address))
                    continue
                except BaseException:
                    sock.close()
                    raise
                return sock, family, sockaddr
        finally:
            self.timings["connect"] = self._ms(started)
        # TARGET_FORBIDDEN only when policy refused every address: an address that was tried
        # and failed says more about the target.
        tried = [f for f in failures if f.code is not ErrorCode.TARGET_FORBIDDEN]
        last = tried[-1] if tried else failures[-1]
        if len(failures) > 1:
            raise ProbeFailure(last.code, "; ".join(f.message for f in failures))
        raise last

    def _refusal(self, sockaddr: tuple[object, ...], address: str) -> ProbeFailure | None:
        """Ask the target policy about the exact address about to be connected."""
        guard = self.plan.guard
        if guard is None:
            return None
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        decision = guard.check(self.plan.host, ip, self.plan.port)
        if not decision.allowed:
            return ProbeFailure(
                ErrorCode.TARGET_FORBIDDEN, f"{address}: {decision.describe()} (target policy)"
            )
        self.withheld_by = None if decision.record_responses else decision.rule
        return None

    def _handshake_only(self) -> bool:
        """TLS on connect and nothing after it: no payload, no assertion on the reply, no
        dialog."""
        plan = self.plan
        return (
            self.direct_tls
            and plan.tls is not None
            and plan.payload is None
            and not plan.data_checks
            and not plan.dialog
        )

    async def _handshake_directly(
        self, sock: socket.socket, family: int, sockaddr: tuple[object, ...]
    ) -> None:
        """The handshake and its checks as _handshake makes them, without a transport."""
        tls = self.plan.tls
        assert tls is not None
        try:
            connection = TlsSocket(sock, tls.handshake_context, tls.server_name)
        except BaseException:
            sock.close()
            raise
        self.tls_socket = connection
        self.phase = "tls"
        started = time.perf_counter()
        try:
            try:
                await connection.handshake()
            except (ssl.SSLError, OSError, UnicodeError) as exc:
                raise await self._handshake_failure(exc, family, sockaddr) from None
            self._judge_handshake(connection.ssl_object, family, sockaddr)
        finally:
            # As _converse times _handshake: the checks of what the handshake showed too.
            self.timings["tls"] = self._ms(started)

    async def _converse(
        self, sock: socket.socket, family: int, sockaddr: tuple[object, ...]
    ) -> None:
        plan = self.plan
        reader = Reader(plan.read_cap)
        try:
            transport, _ = await self.loop.create_connection(lambda: reader, sock=sock)
        except BaseException:
            sock.close()
            raise
        self.raw_transport = self.transport = transport
        if plan.tls is not None and not plan.upgrades_in_dialog:
            self.phase = "tls"
            started = time.perf_counter()
            try:
                self.transport = await self._handshake(transport, reader, family, sockaddr)
            finally:
                self.timings["tls"] = self._ms(started)
        if plan.dialog:
            self.phase = "dialog"
            self.reader = reader
            started = time.perf_counter()
            self.session = self._session(
                reader,
                lambda: self.transport or transport,
                self._upgrader(reader, family, sockaddr),
            )
            try:
                await self._run_dialog(self.session, self.step_timings)
            finally:
                self.timings["data"] = self._ms(started)
            return
        if plan.payload is None and not plan.data_checks:
            return
        self.phase = "data"
        self.reader = reader
        started = time.perf_counter()
        try:
            await self._exchange(self.transport, reader)
        finally:
            self.timings["data"] = self._ms(started)

    def _session(
        self,
        reader: Reader,
        transport: Callable[[], asyncio.Transport],
        upgrade: Callable[[], Awaitable[None]],
    ) -> Session:
        plan = self.plan
        return Session(
            reader,
            transport,
            remote=self.remote or "?",
            server_name=plan.tls.server_name if plan.tls else plan.host,
            # Before the engine's own deadline, so a read that runs out of time can still say
            # what it was waiting for and what it got.
            deadline=self.deadline - _INNER_MARGIN,
            upgrade=upgrade,
            redactor=plan.redactor,
        )

    async def _run_dialog(self, session: Session, step_timings: list[StepTiming]) -> None:
        plan = self.plan
        try:
            if plan.protocol is not None:
                await PROTOCOLS[plan.protocol](session, plan.start_tls)
            else:
                await run_steps(session, plan.steps, step_timings)
        except (ProbeFailure, _CertificateRead, OSError, ssl.SSLError):
            raise
        except Exception as exc:
            # A reply the protocol module could not take apart (a length that lies, a field
            # cut short) is the target not speaking the protocol; the probe never raises.
            raise ProbeFailure(
                ErrorCode.PROTOCOL_ERROR,
                f"{session.remote}: reply not understood ({type(exc).__name__}): "
                f'"{session.quoted(session.pending() or bytes(session.last_message))}"',
            ) from None

    def _upgrader(
        self, reader: Reader, family: int, sockaddr: tuple[object, ...]
    ) -> Callable[[], Awaitable[None]]:
        """The TLS upgrade a dialog asks for: the same handshake, checks and certificate
        report as TLS on connect, on the connection the dialog has been speaking on."""

        async def upgrade() -> None:
            assert self.raw_transport is not None
            if self.plan.tls is None:
                raise ProbeFailure(ErrorCode.STARTTLS_REFUSED, "startTLS without tls")
            self.phase = "tls"
            started = time.perf_counter()
            try:
                self.transport = await self._handshake(self.raw_transport, reader, family, sockaddr)
            finally:
                self.timings["tls"] = self._ms(started)
            self.phase = "dialog"

        return upgrade

    async def _exchange(self, transport: asyncio.Transport, reader: Reader) -> None:
        """Send the payload as the target takes it, and read until the assertions are decided.

        Without assertions the probe ends once the whole payload has left our buffers: only
        then was it sent.
        """
        plan = self.plan
        payload = memoryview(plan.payload or b"")
        offset = 0
        self.payload_left = len(payload)
        # Paused as soon as a chunk is left over, resumed only once the buffer is empty.
        transport.set_write_buffer_limits(high=_SEND_CHUNK, low=0)
        decider = ReplyDecider(plan.data_checks)
        while True:
            while offset < len(payload) and not reader.writing_paused and not reader.lost:
                transport.write(payload[offset : offset + _SEND_CHUNK])
                offset = min(offset + _SEND_CHUNK, len(payload))
                self.payload_left = len(payload) - offset
            if plan.data_checks:
                if decider.all_decided(reader.buffer):
                    return
                if reader.error is not None:
                    raise self._lost_failure(reader.error)
                if reader.eof or reader.lost or len(reader.buffer) >= plan.read_cap:
                    return
                await reader.wait()
                continue
            if reader.error is not None:
                raise self._lost_failure(reader.error)
            if reader.lost and self.payload_left:
                raise ProbeFailure(
                    ErrorCode.CONNECTION_CLOSED,
                    f"{self.remote}: closed by the peer before it took the whole payload",
                )
            if reader.lost or not self._unsent():
                return
            # Under TLS the last bytes sit in the TCP transport beneath, which tells no one
            # when it drains: look again shortly.
            await reader.wait(_DRAIN_POLL if offset == len(payload) else None)

    def _lost_failure(self, exc: BaseException) -> ProbeFailure:
        address = self.remote or "?"
        if isinstance(exc, ssl.SSLError):
            return classify_tls_error(exc, address)
        if isinstance(exc, OSError):
            return classify_socket_error(exc, address)
        return ProbeFailure(ErrorCode.CONNECTION_RESET, f"{address}: {exc!r}")

    async def _handshake(
        self,
        transport: asyncio.Transport,
        reader: Reader,
        family: int,
        sockaddr: tuple[object, ...],
    ) -> asyncio.Transport:
        tls = self.plan.tls
        assert tls is not None
        try:
            tls_transport = await self.loop.start_tls(
                transport,
                reader,
                tls.handshake_context,
                server_hostname=tls.server_name,
                ssl_handshake_timeout=self.plan.timeout + 1,
                ssl_shutdown_timeout=_SSL_SHUTDOWN_TIMEOUT,
            )
        except (ssl.SSLError, OSError, UnicodeError) as exc:
            raise await self._handshake_failure(exc, family, sockaddr) from None
        if tls_transport is None:
            raise ProbeFailure(ErrorCode.CONNECTION_CLOSED, f"{self.remote}: closed during TLS")
        try:
            self._judge_handshake(tls_transport.get_extra_info("ssl_object"), family, sockaddr)
        except ProbeFailure:
            tls_transport.abort()
            raise
        return tls_transport

    async def _handshake_failure(
        self, exc: BaseException, family: int, sockaddr: tuple[object, ...]
    ) -> ProbeFailure:
        """The failure of a handshake that raised ``exc``, with the certificate read over a
        side connection where it is what the user needs to see."""
        tls = self.plan.tls
        assert tls is not None
        if not isinstance(exc, UnicodeError):
            failure = classify_tls_error(exc, self.remote or "?")
            if isinstance(exc, ssl.SSLCertVerificationError):
                side = await self._side_handshake(family, sockaddr, tls.inspecting)
                trust = TrustVerdict(False, printable(exc.verify_message or "", MAX_MESSAGE))
                self.tls = self._tls_info(
                    None, None, printable(failure.message, MAX_MESSAGE), side.peer, trust
                )
            return failure
        # The chain verified, then asyncio decoded the certificate into a dict and Python's
        # ssl failed on a name that is not UTF-8; the connection is gone with it.
        side = await self._side_handshake(family, sockaddr, tls.inspecting)
        info = self._tls_info(None, None, None, side.peer, TrustVerdict(True))
        if info.hostname_verified is False:
            failure = ProbeFailure(
                ErrorCode.TLS_HOSTNAME_MISMATCH,
                f"certificate verify failed: {info.hostname_error}",
            )
        else:
            failure = ProbeFailure(
                ErrorCode.TLS_HANDSHAKE_FAILED,
                f"{self.remote}: the certificate verified but Python's ssl cannot decode "
                f"its names ({exc})",
            )
        self.tls = info.model_copy(
            update={"verified": False, "verify_error": printable(failure.message, MAX_MESSAGE)}
        )
        return failure

    def _judge_handshake(
        self, ssl_object: ssl.SSLObject | None, family: int, sockaddr: tuple[object, ...]
    ) -> None:
        """Read what a finished handshake showed into ``self.tls``; raises the pin or host
        name failure (the caller drops the connection then)."""
        tls = self.plan.tls
        assert tls is not None
        cipher = ssl_object.cipher() if ssl_object else None
        peer = _read_peer(ssl_object)
        if tls.insecure:
            trust = self._start_trust_check(peer, family, sockaddr)
        else:
            trust = TrustVerdict(True)
        info = self._tls_info(
            ssl_object.version() if ssl_object else None,
            printable(cipher[0], MAX_CIPHER) if cipher else None,
            None,
            peer,
            trust,
            self._revocation(peer),
        )
        self.tls = info
        if tls.pin is not None and (pin_failure := check_pins(tls.pin, info)) is not None:
            # Before the hostname verdict: a pinned certificate is what the user asked for,
            # and whoever fails the pin gets nothing, not even the payload.
            raise pin_failure
        if not tls.insecure and info.hostname_verified is False:
            message = f"certificate verify failed: {info.hostname_error}"
            self.tls = info.model_copy(
                update={"verified": False, "verify_error": printable(message, MAX_MESSAGE)}
            )
            raise ProbeFailure(ErrorCode.TLS_HOSTNAME_MISMATCH, message)

    def _tls_info(
        self,
        version: str | None,
        cipher: str | None,
        verify_error: str | None,
        peer: Peer,
        trust: TrustVerdict,
        revocation: RevocationInfo | None = None,
    ) -> TlsInfo:
        from .hostname import HostnameVerdict, check_hostname  # noqa: PLC0415 - TLS only

        tls = self.plan.tls
        assert tls is not None
        chain = peer.chain
        earliest = chain.earliest if chain is not None else None
        leaf = peer.leaf_der
        if leaf is None:
            name = HostnameVerdict(None, "no certificate was read")
        else:
            name = check_hostname(leaf, tls.server_name)
        return TlsInfo.assemble(
            version=version,
            cipher=cipher,
            verified=verify_error is None
            and not tls.insecure
            and trust.trusted is True
            and name.matches is not False,
            verify_error=verify_error,
            chain_trusted=trust.trusted,
            chain_error=trust.reason,
            hostname_verified=name.matches,
            hostname_error=printable(name.reason, MAX_MESSAGE) if name.reason else None,
            certificate=self._inspected(peer.inspection),
            chain=chain.certificates if chain is not None else [],
            chain_length=chain.presented if chain is not None else None,
            chain_expiry=earliest.not_after if earliest is not None else None,
            chain_expiry_subject=earliest.subject if earliest is not None else None,
            client_certificate_enforced=None,
            refusal_alert=None,
            revocation=revocation,
        )

    def _revocation(self, peer: Peer) -> RevocationInfo:
        """The stapled OCSP status; with queryResponder and no staple, the responder is asked
        beside the probe (settled like the trust verdict, outside the probe's timings)."""
        from . import ocsp_responder, revocation  # noqa: PLC0415 - TLS only

        tls = self.plan.tls
        assert tls is not None
        if peer.staple is not None and peer.leaf_der is not None:
            return revocation.STAPLE_VERDICTS.judge(
                peer.staple, peer.leaf_der, peer.chain_ders, datetime.now(UTC)
            )
        if not tls.revocation.query_responder:
            if tls.stapling_problem is not None:
                return revocation.info(RevocationStatus.NOT_CHECKED, tls.stapling_problem)
            self.staple_missing = True
            return revocation.info(RevocationStatus.NONE, "the server stapled no OCSP response")
        self.staple_missing = tls.stapling_problem is None and peer.staple is None
        if tls.insecure:
            # The responder's address comes from the certificate: from an unverified one it
            # would send the probe wherever the target likes.
            return revocation.info(
                RevocationStatus.NOT_CHECKED,
                "the OCSP responder is asked only about a verified certificate "
                "(insecureSkipVerify is set)",
            )
        leaf = revocation.load_certificate(peer.leaf_der)
        issuer = revocation.find_issuer(leaf, peer.chain_ders) if leaf is not None else None
        if leaf is None or issuer is None:
            return revocation.info(RevocationStatus.NOT_CHECKED, revocation.NO_ISSUER)
        left = self.deadline - _INNER_MARGIN - self.loop.time()
        self.revocation_task = self.loop.create_task(
            ocsp_responder.ask_responder(leaf, issuer, left, guard=self.plan.guard)
        )
        return revocation.info(
            RevocationStatus.NOT_CHECKED, "the OCSP responder did not answer in time"
        )

    async def _side_answer(self, task: asyncio.Task[_T] | None, late: _T) -> _T | None:
        """What a side task (trust check, OCSP responder) found by the probe's deadline, or
        ``late``; None when there was none."""
        if task is None:
            return None
        try:
            async with asyncio.timeout_at(self.deadline):
                return await task
        except TimeoutError:
            return late

    async def _settle_revocation(self) -> None:
        if self.revocation_task is None:
            return  # no responder asked (every probe comes here, TLS or not)
        from .revocation import info  # noqa: PLC0415 - TLS only

        late = info(
            RevocationStatus.NOT_CHECKED,
            "the OCSP responder did not answer within the probe's timeout",
            RevocationSource.RESPONDER,
        )
        answer = await self._side_answer(self.revocation_task, late)
        if answer is not None and self.tls is not None:
            self.tls = self.tls.model_copy(update={"revocation": answer})

    def _inspected(self, inspection: Inspection | None) -> Certificate | None:
        if inspection is None:
            return None
        self.certificate_problem = inspection.problem
        return inspection.certificate

    def _start_trust_check(
        self, peer: Peer, family: int, sockaddr: tuple[object, ...]
    ) -> TrustVerdict:
        """The chain verdict under insecureSkipVerify, remembered for this chain, or pending.

        A miss needs a second handshake with the trusting context. It runs beside the probe
        and is awaited after the probe's timings are taken, so it never counts in them, and a
        server that serves one connection at a time gets it after the probe's own.
        """
        tls = self.plan.tls
        assert tls is not None
        presented = peer.fingerprints
        if presented:
            cached = TRUST_CACHE.get(tls.trusting, presented, time.time())
            if cached is not None:
                return cached
        self.trust_task = self.loop.create_task(self._trust_verdict(peer, family, sockaddr))
        return _PENDING

    async def _settle_trust(self) -> None:
        late = TrustVerdict(None, "not checked: the probe's timeout ran out first")
        verdict = await self._side_answer(self.trust_task, late)
        if verdict is not None and self.tls is not None:
            self.tls = self.tls.model_copy(
                update={"chain_trusted": verdict.trusted, "chain_error": verdict.reason}
            )

    async def _check_refusal(self) -> None:
        """tls.clientCertificateEnforced: a client without a certificate must be refused."""
        tls = self.plan.tls
        if tls is None or tls.anonymous is None or self.tls is None or self.error is not None:
            return
        if self.sockaddr is None:
            return
        side = await self._side_handshake(
            self.family, self.sockaddr, tls.anonymous, linger=_REFUSAL_WAIT
        )
        quiet = side.error is None and not (side.received or side.ended)
        if quiet and side.waited < _REFUSAL_MIN_WAIT:
            return  # too little time was left to tell a slow refusal from none
        if side.error is not None:
            alert = _alert_name(side.error)
            if alert is None and not isinstance(side.error, ssl.SSLError | ConnectionError):
                return  # a timeout or no connection: nothing learnt about client certificates
            refused, alert = True, alert or "connection_closed"
        elif side.after is not None or (side.ended and not side.received):
            refused, alert = True, _alert_name(side.after) or "connection_closed"
        else:
            refused, alert = False, None
        self.tls = self.tls.model_copy(
            update={
                "client_certificate_enforced": refused,
                # OpenSSL's reason text, but from its table, not the peer: bounded all the same.
                "refusal_alert": printable(alert, 64, ascii_only=True) if alert else None,
            }
        )
        expected = tls.refusal_alert
        if not refused:
            how = "got data" if side.received else f"was not refused within {side.waited:.1f}s"
            self.refusal_failure = ProbeFailure(
                ErrorCode.TLS_CLIENT_CERTIFICATE_NOT_ENFORCED,
                f"{self.remote}: a client without a certificate completed the handshake and {how}",
            )
        elif expected is not RefusalAlert.ANY and alert != expected.value:
            self.refusal_failure = ProbeFailure(
                ErrorCode.TLS_CLIENT_CERTIFICATE_WRONG_ALERT,
                f"{self.remote}: a client without a certificate was refused with {alert}, "
                f"not {expected.value}",
            )

    async def _trust_verdict(
        self, peer: Peer, family: int, sockaddr: tuple[object, ...]
    ) -> TrustVerdict:
        tls = self.plan.tls
        assert tls is not None
        presented = peer.fingerprints
        now = time.time()
        side = await self._side_handshake(family, sockaddr, tls.trusting)
        if side.error is None and side.peer.leaf_der is not None:
            verdict = TrustVerdict(True)
        elif isinstance(side.error, UnicodeError):
            # Raised after the chain verified (see _handshake): trusted, names aside.
            verdict = TrustVerdict(True)
        elif isinstance(side.error, ssl.SSLCertVerificationError):
            verdict = TrustVerdict(False, printable(side.error.verify_message or "", MAX_MESSAGE))
        else:
            why = str(side.error) if side.error is not None else "the connection closed"
            return TrustVerdict(None, printable(f"not checked: {why}", MAX_MESSAGE))
        # Only when the second connection was shown the same chain (a balancer may hold
        # several): then the verdict is this chain's.
        if presented and side.peer.fingerprints in ((), presented):
            chain = peer.chain
            earliest = chain.earliest if chain is not None else None
            expires = earliest.not_after.timestamp() if earliest and earliest.not_after else None
            TRUST_CACHE.put(tls.trusting, presented, verdict, now, expires)
        return verdict

    async def _side_handshake(
        self,
        family: int,
        sockaddr: tuple[object, ...],
        context: ssl.SSLContext,
        linger: float = 0.0,
    ) -> _Side:
        """Connect again, only to handshake with ``context``: to read the certificate that
        failed verification (inspecting), or to verify the chain of an insecure monitor.

        Best effort within the probe's own deadline: the probe's own outcome stays the result.
        """
        tls = self.plan.tls
        assert tls is not None
        if self.plan.upgrades_in_dialog:
            return await self._side_handshake_by_dialog(family, sockaddr, context, linger)
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        transport: asyncio.Transport | None = None
        reader = Reader(64)
        try:
            async with asyncio.timeout_at(self.deadline - _INNER_MARGIN):
                await self.loop.sock_connect(sock, sockaddr)
                transport, _ = await self.loop.create_connection(lambda: reader, sock=sock)
                tls_transport = await self.loop.start_tls(
                    transport,
                    reader,
                    context,
                    server_hostname=tls.server_name,
                    ssl_shutdown_timeout=_SSL_SHUTDOWN_TIMEOUT,
                )
                if tls_transport is None:
                    return _Side(_read_peer(None), None, ended=True)
                transport = tls_transport
                peer = _read_peer(tls_transport.get_extra_info("ssl_object"))
                if linger <= 0:
                    return _Side(peer, None)
                received, ended, waited = await _linger(reader, self._linger_for(linger))
                return _Side(peer, None, received, ended, reader.error, waited)
        except (OSError, ssl.SSLError, TimeoutError, ValueError) as exc:
            return _Side(_read_peer(None), exc)
        finally:
            if transport is not None:
                transport.abort()
            else:
                sock.close()

    async def _side_handshake_by_dialog(
        self,
        family: int,
        sockaddr: tuple[object, ...],
        context: ssl.SSLContext,
        linger: float = 0.0,
    ) -> _Side:
        """The dialog again up to its upgrade, which only handshakes: STARTTLS servers show
        their certificate only to a client that asked in their protocol."""
        tls = self.plan.tls
        assert tls is not None
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        reader = Reader(self.plan.read_cap)
        transports: list[asyncio.Transport] = []
        found: list[Peer] = []
        errors: list[BaseException] = []
        after: list[tuple[bool, bool, BaseException | None, float]] = []

        async def upgrade() -> None:
            try:
                tls_transport = await self.loop.start_tls(
                    transports[-1],
                    reader,
                    context,
                    server_hostname=tls.server_name,
                    ssl_shutdown_timeout=_SSL_SHUTDOWN_TIMEOUT,
                )
            except (OSError, ssl.SSLError) as exc:
                errors.append(exc)
                raise _CertificateRead from None
            if tls_transport is not None:
                transports.append(tls_transport)
                found.append(_read_peer(tls_transport.get_extra_info("ssl_object")))
                if linger > 0:
                    received, ended, waited = await _linger(reader, self._linger_for(linger))
                    after.append((received, ended, reader.error, waited))
            raise _CertificateRead

        try:
            async with asyncio.timeout_at(self.deadline - _INNER_MARGIN):
                await self.loop.sock_connect(sock, sockaddr)
                transport, _ = await self.loop.create_connection(lambda: reader, sock=sock)
                transports.append(transport)
                session = self._session(reader, lambda: transports[-1], upgrade)
                session.deadline -= _INNER_MARGIN
                await self._run_dialog(session, [])
        except _CertificateRead:
            pass
        except (ProbeFailure, OSError, ssl.SSLError, TimeoutError, ValueError) as exc:
            errors.append(exc)
        finally:
            for transport in transports:
                transport.abort()
            if not transports:
                sock.close()
        received, ended, after_error, waited = after[0] if after else (False, False, None, 0.0)
        return _Side(
            found[0] if found else _read_peer(None),
            errors[0] if errors else None,
            received,
            ended,
            after_error,
            waited,
        )

    def _linger_for(self, wanted: float) -> float:
        """``wanted`` seconds, ending before the side connection's own deadline does."""
        return max(0.0, min(wanted, self.deadline - _INNER_MARGIN - self.loop.time() - 0.05))

    def _timed_out(self) -> None:
        plan = self.plan
        if self.phase == "dns":
            self.error = ProbeFailure(
                ErrorCode.DNS_TIMEOUT, f"{plan.host}: not resolved within {plan.timeout:g}s"
            )
        elif self.phase == "connect":
            self.error = ProbeFailure(
                ErrorCode.CONNECT_TIMEOUT,
                f"{self.remote}: no connection within {plan.timeout:g}s",
            )
        elif self.phase == "tls":
            self.error = ProbeFailure(
                ErrorCode.TLS_HANDSHAKE_FAILED,
                f"{self.remote}: TLS handshake not finished within {plan.timeout:g}s",
            )
        elif self.phase == "dialog":
            what = f"{plan.protocol.value} exchange" if plan.protocol else "steps"
            self.error = ProbeFailure(
                ErrorCode.READ_TIMEOUT,
                f"{self.remote}: the {what} did not finish within {plan.timeout:g}s",
            )
        elif (unsent := self._unsent()) and not (self.reader and self.reader.buffer):
            self.error = ProbeFailure(
                ErrorCode.SEND_TIMEOUT,
                f"{self.remote}: {unsent} bytes of the payload still unsent after "
                f"{plan.timeout:g}s: the target stopped reading",
            )
        else:
            # Running out of time while reading is how a read ends when the peer keeps the
            # connection open; the assertions decide whether that is a failure.
            self.read_timed_out = True

    def _result(self, started_at: datetime, total_ms: float) -> ProbeResult:
        plan = self.plan
        outcomes = []
        response = None
        error = self.error
        if plan.expect_unreachable:
            if error is not None and error.code in _UNREACHABLE_CODES:
                error = None
            # Only whether a connection was accepted counts; its time says nothing.
            plan = dataclasses.replace(plan, degraded_after=None, max_response_time=None)
        if self.reader is not None and (plan.data_checks or plan.dialog):
            received = bytes(self.reader.buffer)
            text = received.decode("utf-8", "replace")
            excerpt = plan.redactor.excerpt(received)
            response = ResponseSummary.model_construct(bytes=len(received), excerpt=excerpt)
            for check in plan.data_checks:
                passed = check.outcome(text, final=True) is True
                outcomes.append(data_outcome(check, excerpt, passed))
            if error is None and not all(o.passed for o in outcomes):
                error = self._data_failure(received)
        outcomes.extend(time_outcome(check, total_ms) for check in plan.time_checks)
        if error is None and not all(o.passed for o in outcomes):
            failed = [f"{o.source} {o.comparison} {o.target!r}" for o in outcomes if not o.passed]
            error = ProbeFailure(ErrorCode.ASSERTION_FAILED, "failed: " + ", ".join(failed))
        limit = plan.max_response_time
        if error is None and limit is not None and total_ms > limit * 1000:
            error = ProbeFailure(
                ErrorCode.RESPONSE_TIME_EXCEEDED,
                f"took {total_ms:.1f}ms, more than maxResponseTime {limit * 1000:g}ms",
            )
        if error is None and self.refusal_failure is not None:
            error = self.refusal_failure
        if error is None and plan.tls is not None:
            error = self._revocation_failure(plan)
        warnings = self._warnings(plan, total_ms)
        baseline = plan.tls.baseline if plan.tls is not None else None
        if baseline is not None and self.tls is not None:
            for finding in findings(baseline, self.tls):
                if finding.action is BaselineAction.FAIL and error is None:
                    error = ProbeFailure(ErrorCode(finding.code), finding.message)
                else:
                    # A Fail finding on a probe already Down is kept, as a warning.
                    warnings.append(_problem(W(finding.code), finding.message))
            warnings = warnings[:MAX_WARNINGS]
        state = Verdict.DOWN if error else (Verdict.DEGRADED if warnings else Verdict.UP)
        t = self.timings
        result = ProbeResult.assemble(
            state=state,
            location=None,
            started_at=started_at,
            remote_address=self.remote,
            timings=Timings.assemble(
                dns=t.get("dns"),
                connect=t.get("connect"),
                tls=t.get("tls"),
                data=t.get("data"),
                total=total_ms,
            ),
            error=_problem(error.code, error.message) if error else None,
            warnings=warnings,
            request=self._request(),
            response=response,
            assertions=outcomes,
            tls=self.tls,
            protocol=self._protocol(),
            steps=[
                StepOutcome.model_construct(time=t.milliseconds, passed=t.passed)
                for t in self.step_timings
            ],
        )
        return result if self.withheld_by is None else withhold_reply(result, self.withheld_by)

    def _revocation_failure(self, plan: ProbePlan) -> ProbeFailure | None:
        revocation = self.tls.revocation if self.tls is not None else None
        if revocation is None or plan.tls is None:
            return None
        if revocation.status is RevocationStatus.REVOKED:
            return ProbeFailure(
                ErrorCode.TLS_CERTIFICATE_REVOKED,
                f"{revocation.message or 'the leaf is revoked'} (OCSP, {revocation.source})",
            )
        if plan.tls.revocation.require_staple and self.staple_missing:
            return ProbeFailure(
                ErrorCode.TLS_OCSP_STAPLE_MISSING,
                f"{self.remote}: the server stapled no OCSP response (tls.revocation."
                "requireStaple)",
            )
        return None

    def _protocol(self) -> ProtocolInfo | None:
        if self.plan.protocol is None:
            return None
        detail = self.session.detail if self.session is not None else None
        if detail:
            detail = printable(self.plan.redactor.text(detail.strip()), MAX_PROTOCOL_DETAIL)
        return ProtocolInfo.model_construct(name=self.plan.protocol.value, detail=detail or None)

    def _request(self) -> RequestSummary | None:
        payload = self.plan.payload
        if payload is None:
            return None
        sent = len(payload) - self.payload_left if self.reader is not None else 0
        if self.plan.payload_secret:
            return RequestSummary.model_construct(bytes=sent, excerpt=None, from_secret=True)
        return RequestSummary.model_construct(
            bytes=sent, excerpt=printable_excerpt(payload), from_secret=False
        )

    def _data_failure(self, received: bytes) -> ProbeFailure:
        reader = self.reader
        assert reader is not None
        if reader.error is not None:
            return self._lost_failure(reader.error)
        if not received and self.read_timed_out:
            return ProbeFailure(
                ErrorCode.READ_TIMEOUT,
                f"{self.remote}: no data within {self.plan.timeout:g}s",
            )
        if not received and (reader.eof or reader.lost):
            return ProbeFailure(
                ErrorCode.CONNECTION_CLOSED, f"{self.remote}: closed by the peer with no data"
            )
        failed = [
            f"{c.assertion.comparison} {c.assertion.target!r}"
            for c in self.plan.data_checks
            if c.outcome(received.decode("utf-8", "replace"), final=True) is not True
        ]
        return ProbeFailure(ErrorCode.ASSERTION_FAILED, "response failed: " + ", ".join(failed))

    def _warnings(self, plan: ProbePlan, total_ms: float) -> list[Problem]:
        warnings = []
        if plan.degraded_after is not None and total_ms > plan.degraded_after * 1000:
            warnings.append(
                _problem(
                    W.RESPONSE_TIME_DEGRADED,
                    f"took {total_ms:.1f}ms, more than degradedResponseTime "
                    f"{plan.degraded_after * 1000:g}ms",
                )
            )
        cert = self.tls.certificate if self.tls else None
        if plan.tls is not None and cert is not None:
            days = cert.days_remaining
            if days < 0:
                if plan.tls.insecure:
                    warnings.append(
                        _problem(
                            W.TLS_CERTIFICATE_EXPIRED,
                            f"certificate expired {-days:.1f} days ago "
                            f"({cert.not_after.isoformat()})",
                        )
                    )
            elif days * 86400 < plan.tls.expiry_warning_seconds:
                warnings.append(
                    _problem(
                        W.TLS_CERTIFICATE_EXPIRING,
                        f"certificate expires in {days:.1f} days ({cert.not_after.isoformat()})",
                    )
                )
        if self.certificate_problem is not None:
            warnings.append(
                _problem(
                    W.TLS_CERTIFICATE_UNREADABLE,
                    f"certificate {self.certificate_problem}",
                )
            )
        if plan.tls is not None and self.tls is not None:
            chain_warning = self._chain_warning(self.tls, plan.tls.expiry_warning_seconds)
            if chain_warning is not None:
                warnings.append(chain_warning)
            revocation_warning = self._revocation_warning(self.tls.revocation)
            if revocation_warning is not None:
                warnings.append(revocation_warning)
        return warnings[:MAX_WARNINGS]

    @staticmethod
    def _revocation_warning(revocation: RevocationInfo | None) -> Problem | None:
        if revocation is None:
            return None
        message = revocation.message or revocation.status.value
        if revocation.status is RevocationStatus.UNKNOWN:
            return _problem(W.TLS_REVOCATION_UNKNOWN, f"OCSP ({revocation.source}): {message}")
        if revocation.status is RevocationStatus.INVALID:
            return _problem(W.TLS_OCSP_RESPONSE_INVALID, f"{revocation.source}: {message}")
        if (
            revocation.status is RevocationStatus.NOT_CHECKED
            and revocation.source == RevocationSource.RESPONDER
        ):
            return _problem(W.TLS_OCSP_RESPONDER_FAILED, message)
        return None

    @staticmethod
    def _chain_warning(tls: TlsInfo, warn_seconds: float) -> Problem | None:
        """The intermediate (or root) that expires first, if it has or soon will.

        The leaf has its own codes; this is the outage behind a fine leaf. An expired one is
        reported even when verification failed for it: OpenSSL's message does not say which
        certificate of the chain expired, this one does.
        """
        dated = [(c.not_after, i) for i, c in enumerate(tls.chain[1:], 1) if c.not_after]
        if not dated:
            return None
        not_after, index = min(dated)
        cert = tls.chain[index]
        seconds = (not_after - datetime.now(UTC)).total_seconds()
        where = f"chain certificate {index} ({cert.subject})"
        if seconds < 0:
            return _problem(
                W.TLS_CHAIN_CERTIFICATE_EXPIRED,
                f"{where} expired {-seconds / 86400:.1f} days ago ({not_after.isoformat()})",
            )
        if seconds < warn_seconds:
            return _problem(
                W.TLS_CHAIN_CERTIFICATE_EXPIRING,
                f"{where} expires in {seconds / 86400:.1f} days ({not_after.isoformat()})",
            )
        return None


def _problem(code: ErrorCode | W, message: str) -> Problem:
    """A result's error or warning: its message may quote the target, so it is escaped here."""
    return Problem.assemble(code=code.value, message=printable(message, MAX_MESSAGE))


async def probe_once(plan: ProbePlan, *, direct_tls: bool = True) -> ProbeResult:
    """One attempt, bounded by ``plan.timeout``.

    ``direct_tls=False`` takes a probe that only handshakes through asyncio's TLS transport
    too, as any other probe: the tests compare the two ways, the bench weighs them.
    """
    return await _Attempt(plan, direct_tls=direct_tls).run()


async def run_probe(
    plan: ProbePlan, *, retries_dropped: Callable[[int], None] | None = None
) -> ProbeResult:
    """A probe with the plan's immediate re-tries: the first non-Down attempt wins.

    The probe with its re-tries never takes longer than ``plan.budget`` (the interval): a
    re-try is made only if it would end in time even if it ran to its timeout, so the next
    slot never finds this one still running. ``retries_dropped`` hears how many did not fit.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await probe_once(plan)
    for attempt in range(plan.retries):
        if result.state is not Verdict.DOWN:
            break
        if plan.budget is not None and loop.time() - started + plan.timeout > plan.budget:
            if retries_dropped is not None:
                retries_dropped(plan.retries - attempt)
            break
        result = await probe_once(plan)
    return result
