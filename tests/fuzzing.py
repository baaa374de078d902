"""Hypothesis strategies shared by the fuzz tests: hostile JSON, text and bytes.

The settings keep every fuzz test in seconds on the shared 2-core machine:
a fixed number of cases, no deadline (a case's time depends on the load),
no shrinking database written into the repository.
"""

import gzip
import json

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st


def fuzz_settings(max_examples):
    """Hypothesis settings for `max_examples` cases, reproducible, without a deadline."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# Characters that broke parsers before: unpaired surrogates (JSON's \ud800
# escapes make them; UTF-8 cannot encode them), NUL, BOM, line separators.
TRICKY = ["\ud800", "\udfff", "\x00", "\ufeff", "\u2028", "\r", "\t", "\x85", "\U0010ffff"]
# Every code point, those above more often.
any_text = st.text(st.characters(exclude_categories=()) | st.sampled_from(TRICKY), max_size=24)
# Encodable Unicode (no surrogates): valid, if unusual, text.
unicode_text = st.text(
    st.characters(exclude_categories=["Cs"]) | st.sampled_from(TRICKY[2:]), min_size=1, max_size=24
)
words = st.text(st.sampled_from("abcdefgh ,.-"), min_size=1, max_size=24)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | any_text
    | words
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text | words, children, max_size=4)
    ),
    max_leaves=10,
)


# JSON values that a strict JSON writer can write back: finite numbers, Unicode.
clean_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | unicode_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(unicode_text, children, max_size=3)
    ),
    max_leaves=6,
)


def json_line(value):
    """`value` as one JSON line, NaN and surrogates as Python writes them."""
    return json.dumps(value)


# Deeply nested arrays: Python's json parser recurses once per level.
deep_nesting = st.integers(min_value=900, max_value=200_000).map(lambda n: "[" * n + "]" * n)

# A line of 0.5 to 3 MB: one long description, or garbage.
huge_text = st.integers(min_value=250_000, max_value=1_500_000).map(lambda n: "ab " * (n // 3))

ENCODINGS = ("utf-8", "utf-8-sig", "latin-1", "utf-16", "cp1252")


def encode(text, encoding):
    """`text` in `encoding`, unencodable characters replaced (surrogates kept in UTF-8)."""
    errors = "surrogatepass" if encoding.startswith("utf-8") else "replace"
    return text.encode(encoding, errors=errors)


@st.composite
def gzipped(draw, data):
    """`data` gzip-compressed, then maybe cut short or with a flipped byte."""
    packed = bytearray(gzip.compress(data))
    damage = draw(st.sampled_from(["none", "cut", "flip"]))
    if damage == "cut":
        packed = packed[: draw(st.integers(0, len(packed) - 1))]
    elif damage == "flip" and len(packed) > 10:
        at = draw(st.integers(10, len(packed) - 1))
        packed[at] ^= draw(st.integers(1, 255))
    return bytes(packed)
