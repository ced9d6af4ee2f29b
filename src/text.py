"""Text from outside made fit to print: one line, no control characters, bounded length.

An API's error body, reason phrase or link is written by someone else. Sent
raw to a terminal, an escape sequence or a carriage return can repaint the
screen (a forged "success" line); sent raw to a log or a table, a megabyte of
HTML buries the message. Every such text passes through `printable` before it
becomes part of a message, and every message leaving a phase through
`one_line`, so a terminal, the log and `etl_runs` only ever see this form.
"""

import unicodedata

DEFAULT_LIMIT = 200
# Categories that print nothing or move the cursor: controls, format characters
# (bidirectional overrides, zero-width marks), line and paragraph separators,
# surrogates and private-use characters.
_UNPRINTABLE = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


def _escape(character: str) -> str:
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text, limit: int = DEFAULT_LIMIT) -> str:
    """`text` (str or bytes) as one line of visible characters, at most about `limit` long.

    Whitespace runs (newlines, tabs, carriage returns included) become one
    space; any other unprintable character is shown as its escape (`\\x1b`),
    so nothing in it acts on a terminal. Longer text is cut and ends in "...".
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text[: limit * 4 + 4]).decode("utf-8", "replace")
    else:
        text = str(text)
    cut = len(text) > limit * 4
    pieces = []
    for character in text[: limit * 4]:
        if character.isspace():
            pieces.append(" ")
        elif unicodedata.category(character) in _UNPRINTABLE:
            pieces.append(_escape(character))
        else:
            pieces.append(character)
    line = " ".join("".join(pieces).split())
    if len(line) > limit or cut:
        return line[:limit].rstrip() + "..."
    return line


def without_controls(text: str) -> str:
    """`text` with line breaks and tabs as spaces and other unprintable characters escaped; nothing cut."""
    if text.isprintable():
        return text
    return "".join(
        (
            " "
            if character.isspace()
            else _escape(character) if unicodedata.category(character) in _UNPRINTABLE else character
        )
        for character in text
    )


def one_line(message, limit: int = 2000) -> str:
    """A message of ours (which may quote others' text) as one printable line."""
    return printable(message, limit)


def first_line(exc) -> str:
    """The first line of an exception's message (libraries add hints on later lines), or its type's name."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
