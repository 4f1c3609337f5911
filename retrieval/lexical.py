"""Identifier-aware tokens for BM25 (SQLite FTS5): `computeShippingCost` and `compute_shipping_cost` meet.

Each identifier is kept whole and also split at camelCase and snake_case boundaries, lowercased.
Keywords and one-letter names carry no signal for retrieval and are dropped.
"""

from __future__ import annotations

import keyword
import re
from functools import lru_cache
from itertools import chain

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
STOPWORDS = frozenset(keyword.kwlist) | frozenset(
    "self cls this none null true false var let const function func fn def return import from export "
    "public private protected static void int str string bool float double char new the and for".split()
)

# FTS5 keeps `_` inside tokens so whole snake_case identifiers stay one token.
FTS_TOKENIZER = "unicode61 tokenchars '_'"


def identifier_tokens(text: str) -> list[str]:
    return list(chain.from_iterable(map(_tokens_of, _IDENTIFIER.findall(text))))


@lru_cache(maxsize=1 << 16)
def _tokens_of(ident: str) -> tuple[str, ...]:
    """One identifier's tokens: split once per distinct name (a file repeats its names many times)."""
    whole = ident.lower()
    parts = [w.lower() for piece in ident.split("_") for w in _WORD.findall(piece)]
    return tuple(
        t for t in ([whole, *parts] if len(parts) > 1 else [whole]) if len(t) > 1 and t not in STOPWORDS
    )


def match_query(text: str, max_terms: int = 24) -> str | None:
    """An FTS5 MATCH expression: any of the distinct identifier tokens, those nearest the end (the cursor) kept."""
    terms = list(dict.fromkeys(identifier_tokens(text)))[-max_terms:]
    return " OR ".join(f'"{t}"' for t in terms) if terms else None
