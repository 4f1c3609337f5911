"""Required literals of a regular expression (retrieval/literals.py): the sets found for known shapes,
and, for detect-secrets' own token formats and tricky hand-made ones, the property the secrets
prefilter rests on: any text a pattern matches in holds one of its literals, and `Lines` names
every line a pattern or a literal is in."""

from __future__ import annotations

import random
import re
import string

import pytest

from retrieval.literals import Lines, across_lines, folded, required_literals, sre_parse
from retrieval.secrets import _MORE_FORMATS, _denylist, _plugins


def any_in(literals, text: str) -> bool:
    return any(lit in text for lit in literals)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"AKIA[0-9A-Z]{16}", {"akia"}),
        (r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}", {"a3t", "abia", "acca", "akia", "asia"}),
        (r"(ghp|gho)_[A-Za-z0-9_]{36}", {"ghp_", "gho_"}),
        (r"(?i)api_?key\s*=", {"apikey", "api_key"}),
        (r"colou?r", {"color", "colour"}),
        (r"[Pp]assword", {"password"}),
        (r"sk_live_[0-9a-z]{24}", {"sk_live_"}),
        (r"\bhf[A-Za-z0-9]{34,}\b", None),  # "hf" is fixed but shorter than MIN_LENGTH
        (r"\bhf_[A-Za-z0-9]{34,}\b", {"hf_"}),
        (r"x{3}yz", {"xxxyz"}),
    ],
)
def test_known_shapes(pattern: str, expected: set[str] | None):
    found = required_literals(re.compile(pattern))
    assert (set(found) if found is not None else None) == expected


@pytest.mark.parametrize(
    "pattern",
    [
        r"[A-Z]{20}",  # nothing fixed
        r"abc|[0-9]+",  # one alternative without a fixed part
        r"(?=secret)\w+",  # a look-ahead's text is not consumed: not counted
        r"contraseña",  # the fixed part before the non-ASCII letter is kept, the rest is not
        r"a.c",
        r"(abc)?def?",
    ],
)
def test_no_literal_claimed_beyond_what_is_fixed(pattern: str):
    found = required_literals(pattern)
    if found is not None:
        text = {r"contraseña": "contraseña", r"(abc)?def?": "de"}.get(pattern)
        assert text is not None and re.search(pattern, text) and any_in(found, folded(text))


def test_a_run_too_long_to_multiply_out_carries_on_from_its_ends():
    # detect-secrets' Cloudant key: 108 spellings before the key's name, 6 names; searched over whole
    # files until a run of more than _CAP strings started afresh and found nothing of 3 characters.
    cloudant = re.compile(
        r"""(?:(?<=\W)|(?<=^))(?:\[|)(?:"|\'|)(?:cloudant|cl|clou)(?:_|-|)(?:api|)"""
        r"""(?:key|pwd|pw|password|pass|token)(?:"|\'|)(?:\]|)(?: *)(?:=|:|:=|=>| +|::)(?: *)"""
        r"""(?:"|\'|)([0-9a-f]{64})(?:"|\'|)""",
        re.IGNORECASE,
    )
    found = required_literals(cloudant)
    assert found is not None and min(map(len, found)) >= 4
    assert {"clkey", "cl_pw", "ou_token", "apipass"} <= found
    secret = "0123456789abcdef" * 4
    for text in [f"CL_KEY = '{secret}'", f'cloudant_apipassword: "{secret}"', f"[clou_pw]: {secret}"]:
        assert cloudant.search(text) and any_in(found, folded(text)), text
    assert not any_in(found, folded("token = get_token(key, pw)"))  # ordinary code: not searched


def test_folding_meets_case_insensitive_matching():
    """re's IGNORECASE takes a dotless i for "i" and a long s for "s"; lower() does not."""
    assert re.search("(?i)key_id", "KEY_ıD") and any_in(
        required_literals("(?i)key_id") or (), folded("KEY_ıD")
    )
    assert folded("ſecret") == "secret"
    assert folded("SECRET") == "secret"


def _sample(items: list, rng: random.Random, flags: int) -> str:
    """A random string the parsed expression could match (often does; the test checks with re)."""
    out = []
    for op, av in items:
        if op is sre_parse.LITERAL:
            ch = chr(av)
            out.append(ch.swapcase() if flags & re.IGNORECASE and rng.random() < 0.5 else ch)
        elif op is sre_parse.NOT_LITERAL:
            out.append(rng.choice([c for c in "a Z9_-.:=\"'" if ord(c) != av]))
        elif op is sre_parse.ANY:
            out.append(rng.choice(string.ascii_letters + string.digits + " _-."))
        elif op is sre_parse.IN:
            out.append(_pick_in(av, rng))
        elif op is sre_parse.BRANCH:
            out.append(_sample(list(rng.choice(av[1])), rng, flags))
        elif op is sre_parse.SUBPATTERN:
            add = av[1] or 0
            out.append(_sample(list(av[-1]), rng, flags | add))
        elif op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT):
            low, high, body = av
            count = rng.randint(low, min(high, low + 3) if high != sre_parse.MAXREPEAT else low + 3)
            out.append("".join(_sample(list(body), rng, flags) for _ in range(count)))
        # AT, ASSERT, ASSERT_NOT, GROUPREF: nothing consumed; the match check below decides
    return "".join(out)


_CATEGORIES = {
    sre_parse.CATEGORY_DIGIT: r"\d",
    sre_parse.CATEGORY_NOT_DIGIT: r"\D",
    sre_parse.CATEGORY_SPACE: r"\s",
    sre_parse.CATEGORY_NOT_SPACE: r"\S",
    sre_parse.CATEGORY_WORD: r"\w",
    sre_parse.CATEGORY_NOT_WORD: r"\W",
}
_POOL = string.ascii_letters + string.digits + " _-.:=/@!#'\""


def _pick_in(items: list, rng: random.Random) -> str:
    negated = bool(items) and items[0][0] is sre_parse.NEGATE
    members = items[1:] if negated else items

    def inside(c: str) -> bool:
        for op, av in members:
            if op is sre_parse.LITERAL and ord(c) == av:
                return True
            if op is sre_parse.RANGE and av[0] <= ord(c) <= av[1]:
                return True
            if op is sre_parse.CATEGORY and re.fullmatch(_CATEGORIES.get(av, "(?!)"), c):
                return True
        return False

    choices = [c for c in _POOL if inside(c) != negated]
    return rng.choice(choices or ["a"])


def _patterns() -> list[re.Pattern[str]]:
    formats, _ = _plugins()
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    out: list[re.Pattern[str]] = []
    for cls in get_mapping_from_secret_type_to_class().values():
        out += _denylist(cls()) or []
    out += [p for _, p in _MORE_FORMATS]
    out += [
        re.compile(r"(?i)(?:api|auth)_?(?:key|token)\s*[:=]\s*['\"]?[a-z0-9]{8,}"),
        re.compile(r"(?:^|\s)ab(?:cd|ef)?gh(?=\d)"),
        re.compile(r"x(?:yz){2,3}w|q[rs]{1,2}tuv"),
    ]
    assert len(formats) >= 20 and len(out) >= 40
    return out


@pytest.mark.parametrize("pattern", _patterns(), ids=lambda p: p.pattern[:40])
def test_every_match_holds_a_literal_and_every_matching_line_is_named(pattern: re.Pattern[str]):
    rng = random.Random(pattern.pattern)
    literals = required_literals(pattern)
    guard = across_lines(pattern)
    tree = list(sre_parse.parse(pattern.pattern, pattern.flags))
    matched = 0
    for _ in range(150):
        token = _sample(tree, rng, pattern.flags)
        before = rng.choice(["", " ", "x = '", "\t", "key: ", "İ ", "ſ"])
        line = before + token + rng.choice(["", "'", " # note", "7", "\n"]).rstrip("\n")
        if not pattern.search(line):
            continue
        matched += 1
        if literals is not None:
            assert any_in(literals, folded(line)), (line, literals)
        lines = ["first line", "", line, "last: x"]
        text = Lines(lines)
        if literals is not None:
            assert 2 in text.holding(literals)
        if guard is not None:
            assert 2 in text.matching(guard), line
    assert matched >= 10, f"the sampler made only {matched} matching lines"


def test_guards_are_made_only_where_a_whole_text_search_cannot_miss_a_line():
    assert across_lines(re.compile(r"\d{8,10}:[0-9A-Za-z_-]{35}")) is not None
    anchored = across_lines(re.compile(r"^AP[\dABCDEF]"))
    assert anchored is not None and anchored.flags & re.MULTILINE
    assert across_lines(re.compile(r"key(?!\s)")) is None  # a newline after it would not count
    assert across_lines(re.compile(r"(?<!\w)tok")) is None
    assert across_lines(re.compile(r"\Atoken")) is None
    assert across_lines(re.compile(r"x*")) is None  # matches everywhere
