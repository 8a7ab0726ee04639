"""The one text normalisation shared by training and prediction.

A model only sees text that went through `normalize`, at training time and at request
time alike, so the two can never drift apart:

- the text is cut to `max_chars` *first*, so a megabyte of input costs no more than a
  normal message;
- Unicode compatibility forms are folded (NFKC: full-width ``ＡＢＣ１２３`` → ``abc123``),
  then case (``casefold``);
- apostrophes are dropped inside words (``don't`` → ``dont``), every other punctuation
  mark, symbol, emoji, control character and lone surrogate becomes a space;
- every digit becomes ``0``: the *shape* of a number stays (an order number, an amount
  and a year look different) while its value, which never generalises, is dropped;
- runs of Chinese, Japanese or Korean characters become one token per character plus
  one per character bigram (``退款了`` → ``退 款 了 退款 款了``), so CJK messages classify
  without a word segmenter;
- whitespace is collapsed to single spaces.
"""

from __future__ import annotations

import re
import string
import unicodedata

DEFAULT_MAX_CHARS = 2000


def _ascii_table() -> bytes:
    table = bytearray(range(256))
    for code in (*string.punctuation.encode(), *range(32), 127):
        table[code] = ord(" ")
    for code in string.digits.encode():
        table[code] = ord("0")
    for code in string.ascii_uppercase.encode():
        table[code] = code + 32
    return bytes(table)


# Plain-ASCII messages (most English traffic) take a path of one bytes `translate` (case,
# punctuation, digits and apostrophes at once) and one `split`: no regex, no Unicode tables.
_ASCII = _ascii_table()
_DIGIT = re.compile(r"\d")
_NON_WORD = re.compile(r"[\W_]+")
_CJK_CHARS = (
    "\u1100-\u11ff"  # Hangul Jamo
    "\u3005\u3007"  # 々 〇
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3130-\u318f"  # Hangul compatibility Jamo
    "\u31f0-\u31ff"  # Katakana phonetic extensions
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\U00020000-\U0003134f"  # CJK extensions B-G
)
_CJK_RUN = re.compile(f"[{_CJK_CHARS}]+")


def _split_cjk(match: re.Match[str]) -> str:
    run = match.group()
    if len(run) == 1:
        return f" {run} "
    bigrams = [run[i : i + 2] for i in range(len(run) - 1)]
    return f" {' '.join(run)} {' '.join(bigrams)} "


def normalize(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """`text` as the model sees it: capped, folded, punctuation-free, CJK split; may be empty."""
    text = text[:max_chars]
    if text.isascii():
        return b" ".join(text.encode().translate(_ASCII, b"'").split()).decode()
    return _normalize_unicode(text)


def _normalize_unicode(text: str) -> str:
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    # NFKC has already turned the full-width apostrophe into "'".
    text = text.casefold().replace("'", "").replace("\u2019", "").replace("\u02bc", "")
    text = _NON_WORD.sub(" ", _DIGIT.sub("0", text))
    text = _CJK_RUN.sub(_split_cjk, text)
    return " ".join(text.split())
