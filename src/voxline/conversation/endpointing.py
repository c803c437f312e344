"""Does a user utterance look unfinished? Then the turn decision waits a little longer.

A cheap text heuristic on the ASR result that is already in hand when the silence wait ends
(ASR starts at speech end): "my number is 555" or "and" should not get an instant answer.
"""

import re

_TRAILING_WORDS = frozenset(
    "and or but so because is are was were the a an my your to of for with from at in on um uh like if then".split()
)
_WORD = re.compile(r"[\w']+")


def looks_incomplete(text: str) -> bool:
    stripped = text.strip()
    if not stripped:
        return False
    if stripped[-1] in ",-\u2013\u2014" or stripped.endswith("..."):
        return True
    if stripped[-1] in ".?!":
        return False
    words = _WORD.findall(stripped.lower())
    if not words:
        return False
    return words[-1] in _TRAILING_WORDS or words[-1].isdigit()
