"""Replies of the SMTP family (SMTP, FTP): a three-digit code, ``NNN-`` lines continuing.

RFC 5321 section 4.2 and RFC 959 section 4.2 share the shape: every line but the last has a
hyphen after the code, the last a space (or nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..session import Session


@dataclass(frozen=True)
class Reply:
    code: int | None  # None when the reply is not NNN-shaped: the peer speaks something else
    lines: tuple[str, ...]  # the text after each line's code
    raw: bytes

    @property
    def text(self) -> str:
        return self.lines[0] if self.lines else ""


def reply_framer(data: bytes) -> int | None:
    position = 0
    while True:
        end = data.find(b"\n", position)
        if end < 0:
            return None
        line = data[position:end]
        if line[3:4] != b"-" or not line[:3].isdigit():
            return end + 1
        position = end + 1


def parse_reply(raw: bytes) -> Reply:
    code: int | None = None
    lines: list[str] = []
    for number, line in enumerate(raw.decode("latin-1").splitlines()):
        head = line[:3]
        if not head.isdigit() or line[3:4] not in ("", " ", "-"):
            return Reply(None, (), raw)
        if number == 0:
            code = int(head)
        elif int(head) != code:
            return Reply(None, (), raw)
        lines.append(line[4:].strip())
    return Reply(code, tuple(lines), raw)


async def read_reply(session: Session, expected: str) -> Reply:
    raw = await session.read(reply_framer, expected)
    reply = parse_reply(raw)
    if reply.code is None:
        raise session.protocol_error(expected, raw)
    return reply
