"""Request heads before h11 sees them: where a head ends, whether its bytes can be HTTP at all.

The connection loop (:mod:`emulator.fakegcs.front.loop`) collects a request head without a
thread; :func:`head_problem` lets it answer junk (a TLS hello on the plain port, binary noise,
a malformed request line) with 400 as soon as the bytes so far cannot start an HTTP/1.x head,
instead of waiting for a head end that never comes.

Invariants: pure functions of the bytes given; :func:`head_problem` never rejects a prefix of a
head h11 accepts (leading empty lines, bare LF line ends, any token method, obs-text in the
target); :func:`strip_te_identity` changes nothing but whole ``Transfer-Encoding: identity``
lines of the head.
"""

from __future__ import annotations

import re

MAX_HEAD = 64 * 1024
HEAD_END = re.compile(rb"\r?\n\r?\n")
_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]"
_REQUEST_LINE = re.compile(rb"%s{1,64} [\x21-\x7e\x80-\xff]+ HTTP/\d\.\d\r?" % _TOKEN)
# a prefix of a request line: method, then target, then the version, each possibly cut short
_LINE_PREFIX = re.compile(
    rb"%s{1,64}(?: (?:[\x21-\x7e\x80-\xff]{1,%d}(?: (?:H(?:T(?:T(?:P(?:/(?:\d(?:\.(?:\d)?)?)?)?)?)?)?)?)?)?)?\r?"
    % (_TOKEN, MAX_HEAD)
)
_HEADER_LINE = re.compile(rb"(?:%s+:|[ \t])[^\r\n]*\r?" % _TOKEN)  # a field, or a folded line
_HEADER_PREFIX = re.compile(rb"(?:%s*(?::[^\r\n]*)?|[ \t][^\r\n]*)\r?" % _TOKEN)
_TE_IDENTITY = re.compile(rb"(?i)^transfer-encoding[ \t]*:[ \t]*identity[ \t]*$")


def head_problem(data: bytes | bytearray) -> str | None:
    """Why ``data`` (the start of what a client sent) cannot begin an HTTP/1.x request head,
    or None while it still can. Only the head part (up to the first empty line) is judged."""
    text = bytes(data).lstrip(b"\r\n")  # empty lines before a request line are allowed
    if not text:
        return None
    m = HEAD_END.search(text)
    if m:
        text = text[: m.start()]
    lines = text.split(b"\n")
    if len(lines) == 1 and m is None:
        return None if _LINE_PREFIX.fullmatch(lines[0]) else "not an HTTP/1.x request line"
    if not _REQUEST_LINE.fullmatch(lines[0]):
        return "not an HTTP/1.x request line"
    whole, last = (lines[1:], b"") if m else (lines[1:-1], lines[-1])
    for line in whole:
        if not _HEADER_LINE.fullmatch(line):
            return "malformed header line"
    if last and not _HEADER_PREFIX.fullmatch(last):
        return "malformed header line"
    if len(data) > MAX_HEAD and m is None:
        return f"request head over {MAX_HEAD} bytes"
    return None


def head_complete(data: bytes | bytearray) -> bool:
    """True when ``data`` holds a whole head (an empty line after the request line)."""
    return HEAD_END.search(bytes(data).lstrip(b"\r\n")) is not None


def strip_te_identity(data: bytes) -> bytes:
    """``data`` with ``Transfer-Encoding: identity`` lines dropped from its head.

    libcurl as used by TF sends ``Transfer-Encoding: identity`` on body-less POSTs (upload
    initiation), which h11 (correctly, per RFC 9112) rejects; it means "no coding", so the
    line is removed before h11 parses the head.
    """
    m = HEAD_END.search(data)
    if m and b"identity" in data[: m.start()].lower():
        lines = re.split(rb"\r?\n", data[: m.start()])
        kept = [ln for ln in lines if not _TE_IDENTITY.match(ln)]
        return b"\r\n".join(kept) + data[m.start() :]
    return data
