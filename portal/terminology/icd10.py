"""ICD-10-CM diagnoses: billable codes only, searched by code or by words.

Source: the ICD-10-CM release (CDC / NCHS tabular list) bundled with the PyPI package
``simple-icd-10-cm``. Only a billable code (a leaf of the tabular list) is a diagnosis here: a
category such as "E11" is not (``billable`` answers None).

Search must answer while the clinician types, so each process builds an index once, on first
use (about a second): the billable codes sorted without their dots (a code prefix is a range
found by bisection), and an inverted index from each description word to the codes that use
it (words typed are prefixes: "diab" finds "diabetes"). A search then touches only the codes
that match, not all ~74,000.
"""

from __future__ import annotations

import bisect
import heapq
import re
import threading
from dataclasses import dataclass
from functools import cached_property

import simple_icd_10_cm as icd

DEFAULT_LIMIT = 20
MAX_QUERY_LENGTH = 100
MIN_PREFIX = 3
_CODE_QUERY = re.compile(r"^[A-Za-z][0-9][0-9A-Za-z.]*$")
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Diagnosis:
    """A billable ICD-10-CM code and its description."""

    code: str  # with its dot, as clinicians write it: "E11.9"
    description: str


def _bare(code: str) -> str:
    """A code without its dot, upper case ("e11.9" -> "E119"); the library's own helper
    validates as well and is far too slow for 74,000 codes."""
    return code.strip().upper().replace(".", "")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class _Index:
    """The billable codes of the bundled release, indexed by code and by description word."""

    def __init__(self) -> None:
        codes = [code for code in icd.get_all_codes(True) if icd.is_leaf(code)]
        described = [Diagnosis(code, icd.get_description(code)) for code in codes]
        # Ids are ranks: the fewest words first ("Type 2 diabetes mellitus without
        # complications" before its dozens of more specific siblings), then the shortest
        # text, then code order. The best matches of a search are then its smallest ids.
        described.sort(
            key=lambda d: (len(_words(d.description)), len(d.description), _bare(d.code))
        )
        self.diagnoses = described
        self.by_bare = {_bare(d.code): d for d in described}
        self.bare_codes = sorted(self.by_bare)
        postings: dict[str, set[int]] = {}
        for i, diagnosis in enumerate(described):
            for word in _words(diagnosis.description):
                postings.setdefault(word, set()).add(i)
        self.vocabulary = sorted(postings)
        self.postings = postings

    def by_code(self, prefix: str, limit: int) -> list[Diagnosis]:
        bare = _bare(prefix)
        start = bisect.bisect_left(self.bare_codes, bare)
        found = []
        for i in range(start, min(start + limit, len(self.bare_codes))):
            if not self.bare_codes[i].startswith(bare):
                break
            found.append(self.by_bare[self.bare_codes[i]])
        return found

    def _matching(self, word_prefix: str) -> set[int]:
        # One or two characters ("2" of "type 2") match whole words only: as prefixes they
        # would pull in most of the code set.
        if len(word_prefix) < MIN_PREFIX:
            return set(self.postings.get(word_prefix, ()))
        start = bisect.bisect_left(self.vocabulary, word_prefix)
        matched: set[int] = set()
        for word in self.vocabulary[start:]:
            if not word.startswith(word_prefix):
                break
            matched |= self.postings[word]
        return matched

    def by_words(self, text: str, limit: int) -> list[Diagnosis]:
        # Longest words first: they match the fewest codes, so the intersection stays small.
        words = sorted(set(_words(text)), key=len, reverse=True)
        if not words:
            return []
        matched = self._matching(words[0])
        for word in words[1:]:
            if not matched:
                break
            matched &= self._matching(word)
        return [self.diagnoses[i] for i in heapq.nsmallest(limit, matched)]


class _LazyIndex:
    _lock = threading.Lock()

    @cached_property
    def index(self) -> _Index:
        with self._lock:
            return _Index()


_lazy = _LazyIndex()


def search(query: str, limit: int = DEFAULT_LIMIT) -> list[Diagnosis]:
    """Billable codes matching ``query``: a code prefix ("E11", "e11.6") or words
    ("type 2 diabetes"), best first, at most ``limit``."""
    query = (query or "").strip()[:MAX_QUERY_LENGTH]
    if len(query) < 2:
        return []
    index = _lazy.index
    if _CODE_QUERY.match(query):
        found = index.by_code(query, limit)
        if found:
            return found
    return index.by_words(query, limit)


def billable(code: str) -> Diagnosis | None:
    """The billable diagnosis ``code`` names (with or without its dot), or None when the code
    is unknown or is a category/heading rather than a billable code."""
    bare = _bare(code or "")
    index = _lazy.index
    return index.by_bare.get(bare)
