"""Parsing what people type: ``HOST:PORT`` targets and ``--send`` escapes.

Pure functions raising ValueError with a message fit for ``tcpmonitor: error: ...``.
"""

from __future__ import annotations

import argparse
import re
from typing import NoReturn, TypeAlias

EXIT_USAGE = 2


class OneLineErrorParser(argparse.ArgumentParser):
    """Usage mistakes get one line naming the problem, not a usage dump ahead of it."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# Where each command adds its parser (what ``add_subparsers()`` returns); a string because
# the class is not subscriptable at run time, only in the type stubs.
Commands: TypeAlias = "argparse._SubParsersAction[OneLineErrorParser]"

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "0": "\0"}
_ESCAPE_RE = re.compile(r"\\(x[0-9A-Fa-f]{2}|.?)", re.DOTALL)


def parse_target(text: str) -> tuple[str, int]:
    """``host:port``, ``1.2.3.4:port`` or ``[::1]:port`` into (host, port)."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"invalid target {text!r}: expected [IPv6]:PORT")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"invalid target {text!r}: expected HOST:PORT")
        if ":" in host:
            raise ValueError(f"invalid target {text!r}: write IPv6 addresses as [ADDRESS]:PORT")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"invalid port in {text!r}: expected 1-65535")
    return host, int(port_text)


def unescape(text: str) -> bytes:
    r"""Interpret ``\n \r \t \\ \0 \xHH``; any other escape is an error, not a guess.

    Returns bytes: text is UTF-8 encoded, while ``\xHH`` is one raw byte, so binary protocols
    can be probed from a shell.
    """
    out = bytearray()
    position = 0
    for match in _ESCAPE_RE.finditer(text):
        out += text[position : match.start()].encode("utf-8")
        code = match.group(1)
        if code.startswith("x") and len(code) == 3:
            out.append(int(code[1:], 16))
        elif code in _ESCAPES:
            out += _ESCAPES[code].encode()
        else:
            raise ValueError(f"unknown escape \\{code} in {text!r} (use \\n \\r \\t \\\\ \\xHH)")
        position = match.end()
    out += text[position:].encode("utf-8")
    return bytes(out)
