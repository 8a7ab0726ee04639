"""The one normalisation shared by training and prediction."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from turnout.intent.normalize import _normalize_unicode, normalize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Where IS my Order?", "where is my order"),
        ("Straße", "strasse"),
        ("I don't know, it's   broken!!!", "i dont know its broken"),
        ("I don’t know", "i dont know"),
        ("refund_request/now", "refund request now"),
        ("tabs\tand\nnew\r\nlines", "tabs and new lines"),
        ("nul\x00byte", "nul byte"),
    ],
)
def test_folds_case_and_turns_punctuation_into_spaces(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_keeps_the_shape_of_numbers_but_not_their_value() -> None:
    assert normalize("order #48213, paid $39.99") == "order 00000 paid 00 00"
    assert normalize("iphone15") == "iphone00"
    assert normalize("订单１２３") == "订 单 订单 000"  # full-width digits fold too


def test_splits_chinese_into_characters_and_bigrams() -> None:
    assert normalize("我要退款") == "我 要 退 款 我要 要退 退款"
    assert normalize("退") == "退"


def test_splits_japanese_and_korean_too() -> None:
    assert normalize("カード届かない") == "カ ー ド 届 か な い カー ード ド届 届か かな ない"
    assert normalize("환불해") == "환 불 해 환불 불해"


def test_mixed_chinese_and_english() -> None:
    assert normalize("我想refund这个订单，OK?") == "我 想 我想 refund 这 个 订 单 这个 个订 订单 ok"


def test_full_width_latin_and_punctuation_fold() -> None:
    assert normalize("ＲＥＦＵＮＤ！") == "refund"


@pytest.mark.parametrize("text", ["", "   ", "\t\n", "😀😀😀", "!!! ???", "\ud800", "\udc00\ud800 🎉"])
def test_nothing_to_classify_gives_empty_text(text: str) -> None:
    assert normalize(text) == ""


def test_lone_surrogates_are_dropped_between_words() -> None:
    assert normalize("ab\ud800cd ef") == "ab cd ef"
    normalize("ab\ud800cd").encode("utf-8")  # what fastText receives must be valid UTF-8


def test_length_is_capped_before_processing() -> None:
    megabyte = "refund " * 150_000
    assert normalize(megabyte) == normalize(megabyte[:2000])
    assert len(normalize("x" * 1_000_000)) == 2000
    assert normalize("abcdef", max_chars=3) == "abc"
    # CJK output grows (characters plus bigrams) but stays bounded by the cap.
    assert len(normalize("退款" * 500_000).split()) == 2000 + 1999


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_fast_path_agrees_with_the_unicode_path(text: str) -> None:
    assert normalize(text) == " ".join(_normalize_unicode(text).split())


@given(st.text())
def test_output_is_single_spaced_lowercase_words_and_valid_utf8(text: str) -> None:
    words = normalize(text)
    assert words == " ".join(words.split())
    assert not any(c in words for c in string.punctuation)
    assert words == words.casefold()
    words.encode("utf-8")
