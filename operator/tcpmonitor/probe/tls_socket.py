"""A TLS handshake driven straight on the probe's socket, for a probe that only handshakes.

The commonest TLS monitor sends nothing and reads nothing: it connects, handshakes, judges the
certificate and closes. asyncio's TLS transport (``loop.start_tls``) does that through a
protocol object, a transport, buffer copies and a dozen loop callbacks per connection, and
closes with a close_notify of its own after the handshake's last flight: about a tenth of a
millisecond of CPU per probe beyond OpenSSL's handshake (bench/tls_cost.py), which for a
prober that exists to be cheap is most of what it adds. Here the same ``ssl.SSLObject`` (over
two memory BIOs, from the same context, so the same stapling request and chain reading) is fed
with the loop's ``sock_recv`` and ``sock_sendall``, and the client's last flight leaves with
the close_notify in one segment.

What the handshake raises is what ``start_tls`` raises for the same event, so the engine
classifies both paths alike: OpenSSL's errors as they are, the socket's errors as they are, an
end of the connection mid-handshake as asyncio's bare ``ConnectionResetError``, and the
``UnicodeError`` of a verified certificate whose names Python's ssl cannot decode.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl

# One read takes what a TLS record can hold and more: a handshake flight is a few records.
_RECV_SIZE = 32 * 1024
# A handshake is a few reads; a peer trickling a byte per segment needs as many reads as it
# sends bytes, and OpenSSL refuses a handshake message over its certificate list limit
# (100 KiB) long before this. The probe's deadline ends a slow peer sooner in any case.
MAX_READS = 1 << 18
# Leaf certificates Python's ssl has decoded once (see TlsSocket._handshake); forgotten all at
# once when full, a few kilobytes each.
_DECODED_BOUND = 256
_decoded: set[bytes] = set()


class TlsSocket:
    """One client connection's TLS, on a connected non-blocking socket it now owns.

    ``close`` must be called on every way out (the engine does, in the ``finally`` of the
    probe); it is idempotent and never raises.
    """

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_name: str) -> None:
        self._sock = sock
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.ssl_object = context.wrap_bio(
            self._incoming, self._outgoing, server_hostname=server_name
        )
        self._handshaken = False
        self._closed = False

    async def handshake(self) -> None:
        """Handshake as ``loop.start_tls`` would, raising what it would (see module doc).

        Cancellation-safe: the loop's ``sock_recv`` and ``sock_sendall`` take their reader
        and writer off the loop when cancelled, and the socket is closed.
        """
        try:
            await self._handshake()
        except BaseException:
            # As asyncio's transport does on any failure, the connection goes at once, before
            # the engine's side connections (a server may serve one connection at a time),
            # and without the alert OpenSSL left to send.
            self.close(graceful=False)
            raise
        self._handshaken = True

    async def _handshake(self) -> None:
        loop = asyncio.get_running_loop()
        ssl_object, outgoing = self.ssl_object, self._outgoing
        for _ in range(MAX_READS):
            try:
                ssl_object.do_handshake()
            except ssl.SSLWantReadError:
                pass
            else:
                break
            if outgoing.pending:
                await loop.sock_sendall(self._sock, outgoing.read())
            data = await loop.sock_recv(self._sock, _RECV_SIZE)
            if not data:
                # asyncio's TLS protocol reports a close mid-handshake by this bare class.
                raise ConnectionResetError
            self._incoming.write(data)
        else:
            raise ssl.SSLError(f"handshake not finished after {MAX_READS} reads")
        # asyncio decodes the verified certificate into a dict here, and the engine's report
        # of a certificate Python cannot decode depends on it: the same call, the same error.
        # Whether it decodes depends on the certificate alone, so one that did is not decoded
        # again probe after probe (a few microseconds each). Only a decode counts: without
        # verification Python decodes nothing and raises nothing.
        der = ssl_object.getpeercert(binary_form=True)
        if der not in _decoded:
            ssl_object.getpeercert()
            if der and ssl_object.context.verify_mode != ssl.CERT_NONE:
                if len(_decoded) >= _DECODED_BOUND:
                    _decoded.clear()
                _decoded.add(der)

    def close(self, *, graceful: bool) -> None:
        """Send what is due and close the socket: after a finished handshake the client's
        last flight (held back until now so that it leaves with what follows), and when
        ``graceful`` a close_notify. Best effort: whatever the socket will not take at once
        is dropped, as a transport's abort would."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._handshaken:
                if graceful:
                    # Writes the close_notify, then wants the peer's, which is not awaited.
                    with contextlib.suppress(ssl.SSLError):
                        self.ssl_object.unwrap()
                pending = self._outgoing.read()
                if pending:
                    self._sock.send(pending)
        except OSError:
            pass
        finally:
            self._sock.close()
