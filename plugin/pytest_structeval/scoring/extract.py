"""Pull the code out of a generation exactly as upstream StructEval does (scoring-spec §1).

Upstream (``render_utils.py:extract_code_and_save``) uses two regexes: ``<|BEGIN_CODE|>`` tags
and a markdown fence, with "a fence anywhere wins" and "otherwise the whole text". The regexes
have lazy bodies with optional closers, which backtrack quadratically on fence soup, so this
module reproduces their *results* with linear ``str.find`` scans instead. The equivalence is
covered by property tests (testing/scoring/test_extract.py).

Besides the code, the result records what had to be removed to get it, so a report can tell
"valid only after extraction" (lenient) from "valid as returned" (strict).
"""

from __future__ import annotations

import codecs
import re
import warnings
from dataclasses import dataclass
from typing import Literal

from ..tasks import ScoringMode

Source = Literal["fence", "begin_code", "code_tag", "whole"]

# Upstream removes only this exact empty think block; a non-empty one or one with a single
# newline stays in the text (spec §1.1 step 2).
EMPTY_THINK = "<think>\n\n</think>\n\n"
FENCE = "```"
_BEGIN = re.compile(re.escape("<|BEGIN_CODE|>"), re.IGNORECASE)
_END = re.compile(re.escape("<|END_CODE|>"), re.IGNORECASE)
# Strict mode also accepts the older ``<code>…</code>`` convention (spec §7 item 8).
_CODE_OPEN = re.compile(r"<code>", re.IGNORECASE)
_CODE_CLOSE = re.compile(r"</code>", re.IGNORECASE)
_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Extraction:
    """The code that gets parsed, and what was removed around it.

    ``stripped`` uses a closed vocabulary: ``fence``, ``begin_code``, ``code_tag``,
    ``prose_before``, ``prose_after``, ``think``, ``entities`` (``&lt;``/``&gt;`` replaced),
    ``unescaped`` (the unicode_escape step changed the text).
    """

    code: str
    source: Source
    stripped: tuple[str, ...]
    decode_failed: bool = False
    # Why upstream's extraction itself raises on this generation (the task then scores 0).
    failed: str | None = None
    # The same span before the unicode_escape step: the document as the model wrote it, for
    # people to read (snapshots), since the decode turns non-ASCII text into mojibake.
    # ``code`` whenever the decode did not change the text.
    document: str = ""


def preprocess(
    text: str, *, mode: ScoringMode = "upstream", unescape: bool = True
) -> tuple[str, tuple[str, ...], bool]:
    """Spec §1.1: entity replacement, empty-think removal, unicode_escape (upstream only, and
    only with ``unescape``).

    Returns the text, the stripped markers and whether the decode raised (and was skipped).
    """
    marks: list[str] = []
    replaced = text.replace("&lt;", "<").replace("&gt;", ">")
    if replaced != text:
        marks.append("entities")
    without_think = replaced.replace(EMPTY_THINK, "")
    if without_think != replaced:
        marks.append("think")
    if mode == "strict" or not unescape:
        return without_think, tuple(marks), False
    try:
        # codecs encodes a str argument as UTF-8 before decoding byte-wise as latin-1, which
        # is where upstream's mojibake comes from; lone surrogates make the encode raise.
        with warnings.catch_warnings():  # "invalid escape sequence" is upstream's normal case
            warnings.simplefilter("ignore", DeprecationWarning)
            decoded = codecs.decode(without_think, "unicode_escape")
    except Exception:  # upstream swallows any failure and keeps the text as it was
        return without_think, tuple(marks), True
    if decoded != without_think:
        marks.append("unescaped")
    return decoded, tuple(marks), False


def _fence_span(text: str) -> tuple[int, int, int] | None:
    """Leftmost match of upstream's fence regex: (opener start, payload start, payload end).

    The header is everything up to the first newline after the opening backticks; a newline is
    mandatory. If the leftmost opener has no newline after it, no later opener has one either.
    """
    start = text.find(FENCE)
    if start < 0:
        return None
    newline = text.find("\n", start + len(FENCE))
    if newline < 0:
        return None
    end = text.find(FENCE, newline + 1)
    return start, newline + 1, len(text) if end < 0 else end


def _tag_span(
    text: str, opener: re.Pattern[str], closer: re.Pattern[str]
) -> tuple[int, int, int] | None:
    found = opener.search(text)
    if found is None:
        return None
    close = closer.search(text, found.end())
    return found.start(), found.end(), len(text) if close is None else close.start()


# After the opening tag upstream's pattern takes ``[ \t]*\n?`` before the (lazy) payload.
_AFTER_BEGIN = re.compile(r"[ \t]*\n?")


def _empty_begin_payload(text: str, fence: tuple[int, int, int] | None) -> bool:
    """Whether upstream's first search (tags or fence, leftmost) matches the tags with an
    empty payload: it then takes ``group(1) or group(2)``, the fence group is None, and
    ``.strip()`` raises AttributeError (issue 10), whatever follows in the text.

    The lazy payload is empty when the closing tag or the end of the text (``$``: the very end
    or just before a final newline) comes right after the optional blanks and newline.
    """
    found = _BEGIN.search(text)
    if found is None or (fence is not None and fence[0] < found.start()):
        return False
    at = _AFTER_BEGIN.match(text, found.end()).end()  # type: ignore[union-attr]
    return (
        _END.match(text, at) is not None
        or at == len(text)
        or (at == len(text) - 1 and text[at] == "\n")
    )


def _closer_end(text: str, end: int, token: str | re.Pattern[str]) -> int:
    """Index just past the closer that ended the payload (or ``end`` if it ran to the end)."""
    if end >= len(text):
        return end
    if isinstance(token, str):
        return end + len(token)
    found = token.match(text, end)
    return found.end() if found else end


def extract_code(
    generation: str, *, mode: ScoringMode = "upstream", unescape: bool = True
) -> Extraction:
    """Spec §1.2: fence anywhere wins, then BEGIN_CODE tags, then the whole text (stripped).

    Strict mode skips the unicode_escape decode and also recognises ``<code>`` tags (after a
    fence and BEGIN_CODE), as competitor tooling does. ``unescape=False`` skips the decode in
    upstream mode too. ``document`` is the extracted span without the decode in any case, so
    one call serves both the scorer and the snapshots.
    """
    text, marks, decode_failed = preprocess(generation, mode=mode, unescape=unescape)
    code, source, stripped, failed = _locate(text, mode, marks)
    document = code
    if "unescaped" in marks:
        # The decode changed the text, and with it possibly where the code is.
        raw, _, _ = preprocess(generation, mode=mode, unescape=False)
        document = _locate(raw, mode, marks)[0]
    return Extraction(code, source, stripped, decode_failed, failed, document)


def _locate(
    text: str, mode: ScoringMode, marks: tuple[str, ...]
) -> tuple[str, Source, tuple[str, ...], str | None]:
    """The code in a preprocessed text, where it came from, what was stripped (``marks``, the
    preprocessing's, then what surrounded the code), and why upstream would raise on it."""
    span = _fence_span(text)
    failed = (
        "upstream's extraction raises on an empty <|BEGIN_CODE|> payload (AttributeError), "
        "so upstream scores the task 0"
        if mode == "upstream" and _empty_begin_payload(text, span)
        else None
    )
    source: Source
    if span is not None:
        source, closer = "fence", _closer_end(text, span[2], FENCE)
    else:
        span = _tag_span(text, _BEGIN, _END)
        if span is not None:
            source, closer = "begin_code", _closer_end(text, span[2], _END)
        elif mode == "strict" and (span := _tag_span(text, _CODE_OPEN, _CODE_CLOSE)) is not None:
            source, closer = "code_tag", _closer_end(text, span[2], _CODE_CLOSE)
        else:
            return text.strip(), "whole", marks, failed
    start, body_start, body_end = span
    stripped = [*marks, source]
    before, after = text[:start], text[closer:]
    if _THINK.search(before) and "think" not in stripped:
        stripped.append("think")
    if _THINK.sub("", before).strip():
        stripped.append("prose_before")
    if after.strip():
        stripped.append("prose_after")
    return text[body_start:body_end].strip(), source, tuple(stripped), failed


def as_returned(generation: str) -> str:
    """The generation as a strict consumer would take it: only surrounding whitespace dropped."""
    return generation.strip()


def normalise_newlines(code: str) -> str:
    """Spec §7 step 3: upstream writes the code to a file and reads it back in text mode."""
    return code.replace("\r\n", "\n").replace("\r", "\n")
