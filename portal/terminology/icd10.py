"""ICD-10-CM diagnoses: billable codes only, searched by code or by words.

Source: the ICD-10-CM release (CDC / NCHS tabular list) bundled with the PyPI package
``simple-icd-10-cm``. Only a billable code (a leaf of the tabular list) is a diagnosis here: a
category such as "E11" is not (``billable`` answers None).

Clinicians type abbreviations and plain words ("HTN", "high blood pressure", "DM2"), so a
code is found by the words of its description, by its inclusion terms in the tabular list,
and by the synonyms of ``data/icd10_synonyms.csv``. Results come best first: the codes the
caller prefers (a user's favourites, the clinic's most used: see ``search``), then the codes
primary care uses most (``data/icd10_primary_care.csv``), then the shortest descriptions.

Search must answer while the clinician types, so each process builds an index once (a few
seconds; ``warm_up`` starts it in the background when the app starts, so no user waits for
it): the billable codes sorted without their dots (a code prefix is a range found by
bisection), and an inverted index from each word to the codes that use it (words typed are
prefixes: "diab" finds "diabetes"). A search then touches only the codes that match, not all
~74,000.
"""

from __future__ import annotations

import bisect
import heapq
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import simple_icd_10_cm as icd

DEFAULT_LIMIT = 20
MAX_QUERY_LENGTH = 100
MIN_PREFIX = 3
_CODE_QUERY = re.compile(r"^[A-Za-z][0-9][0-9A-Za-z.]*$")
_WORD = re.compile(r"[a-z0-9]+")
_LATER_ENCOUNTER = re.compile(r"subsequent encounter|sequela", re.IGNORECASE)
DATA = Path(__file__).with_name("data")
SYNONYMS_FILE = DATA / "icd10_synonyms.csv"
PRIMARY_CARE_FILE = DATA / "icd10_primary_care.csv"


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


def data_rows(path: Path) -> Iterator[list[str]]:
    """The rows of one of the shipped CSV files: comment lines (#) and blank lines skipped."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                yield [part.strip() for part in line.split(",")]


def synonyms() -> dict[str, list[str]]:
    """The shipped synonyms: each code (with its dot) -> the terms that should find it."""
    found: dict[str, list[str]] = {}
    for term, codes in data_rows(SYNONYMS_FILE):
        for code in codes.split():
            found.setdefault(code, []).append(term)
    return found


def primary_care_ranking() -> list[str]:
    """The shipped primary-care codes, most used first."""
    return [row[0] for row in data_rows(PRIMARY_CARE_FILE)]


class _Index:
    """The billable codes of the bundled release, indexed by code and by description word."""

    def __init__(self) -> None:
        # The library lists a few codes twice (a category that is its own leaf: "R99"): once.
        codes = list(dict.fromkeys(c for c in icd.get_all_codes(True) if icd.is_leaf(c)))
        described = [Diagnosis(code, icd.get_description(code)) for code in codes]
        ranking = {_bare(code): rank for rank, code in enumerate(primary_care_ranking())}
        unranked = len(ranking)
        # Ids are ranks: primary care's most used codes first, in the shipped order; then an
        # injury's initial encounter before its later visits and sequelae (the 7th character
        # a first visit needs); then the fewest words ("Type 2 diabetes mellitus without
        # complications" before its dozens of more specific siblings), the shortest text,
        # code order. The best matches of a search are then its smallest ids.
        described.sort(
            key=lambda d: (
                ranking.get(_bare(d.code), unranked),
                bool(_LATER_ENCOUNTER.search(d.description)),
                len(_words(d.description)),
                len(d.description),
                _bare(d.code),
            )
        )
        self.diagnoses = described
        self.id_of = {_bare(d.code): i for i, d in enumerate(described)}
        self.id_of_code = {d.code: i for i, d in enumerate(described)}
        self.by_bare = {_bare(d.code): d for d in described}
        self.bare_codes = sorted(self.by_bare)
        shipped = synonyms()
        postings: dict[str, set[int]] = {}
        for i, diagnosis in enumerate(described):
            # The tabular list's own inclusion terms ("high blood pressure" under I10) and the
            # shipped abbreviations count as words of the code.
            terms = [diagnosis.description, *shipped.get(diagnosis.code, ())]
            terms += icd.get_inclusion_term(diagnosis.code) + icd.get_includes(diagnosis.code)
            for term in terms:
                for word in _words(term):
                    postings.setdefault(word, set()).add(i)
        self.vocabulary = sorted(postings)
        self.postings = postings

    def preferred_ids(self, codes: Iterable[str]) -> list[int]:
        """Ids of the billable codes among ``codes``, in the given order, without repeats."""
        ids: dict[int, None] = {}
        for code in codes:
            # Stored codes are as the index writes them ("E11.9"): a direct hit, no parsing.
            i = self.id_of_code.get(code)
            if i is None:
                i = self.id_of.get(_bare(code))
            if i is not None:
                ids.setdefault(i)
        return list(ids)

    def by_code(self, prefix: str, limit: int, preferred: list[int]) -> list[Diagnosis]:
        # The codes under a prefix, ranked like words' matches ("E11" offers E11.9 and
        # E11.65 before E11.00): a prefix of a letter and a digit spans a few thousand at most.
        bare = _bare(prefix)
        start = bisect.bisect_left(self.bare_codes, bare)
        end = bisect.bisect_left(self.bare_codes, bare + "~", start)  # "~" sorts after A-Z, 0-9
        matched = {self.id_of[code] for code in self.bare_codes[start:end]}
        return self._best(matched, limit, preferred)

    def _matching(self, word_prefix: str) -> set[int]:
        """The ids whose words match; the index's own set for a whole word (never change it)."""
        # One or two characters ("2" of "type 2") match whole words only: as prefixes they
        # would pull in most of the code set.
        if len(word_prefix) < MIN_PREFIX:
            return self.postings.get(word_prefix, set())
        start = bisect.bisect_left(self.vocabulary, word_prefix)
        end = bisect.bisect_left(self.vocabulary, word_prefix + "~", start)  # "~" sorts last
        if end - start == 1:
            return self.postings[self.vocabulary[start]]
        return set().union(*(self.postings[word] for word in self.vocabulary[start:end]))

    def by_words(self, text: str, limit: int, preferred: list[int]) -> list[Diagnosis]:
        words = set(_words(text))
        if not words:
            return []
        # The smallest set first: intersecting from it touches the fewest ids ("of" alone
        # matches half the code set, "fracture of" should cost what "fracture" costs).
        sets = sorted((self._matching(word) for word in words), key=len)
        matched = sets[0].intersection(*sets[1:]) if len(sets) > 1 else sets[0]
        return self._best(matched, limit, preferred)

    def _best(self, matched: set[int], limit: int, preferred: list[int]) -> list[Diagnosis]:
        first = [i for i in preferred if i in matched][:limit]
        if len(first) < limit:
            # A few more than needed instead of copying a large set without the preferred.
            taken = set(first)
            rest = heapq.nsmallest(limit + len(first), matched)
            first += [i for i in rest if i not in taken][: limit - len(first)]
        return [self.diagnoses[i] for i in first]


class _LazyIndex:
    """The process's one index, built on first use (or by ``warm_up``) exactly once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index: _Index | None = None

    @property
    def index(self) -> _Index:
        if self._index is None:
            with self._lock:
                if self._index is None:  # another thread may have built it meanwhile
                    self._index = _Index()
        return self._index

    @property
    def built(self) -> bool:
        return self._index is not None


_lazy = _LazyIndex()


def warm_up() -> None:
    """Build the index in a background thread, once per process, so that the first search
    after a start does not wait seconds for it (a search that comes earlier waits for the
    same build, never starts another)."""
    global _warming
    if _warming or _lazy.built:
        return  # every request asks: answer without the lock once it has started
    with _warm_up_lock:
        if _warming or _lazy.built:
            return
        _warming = True
    threading.Thread(target=lambda: _lazy.index, name="icd10-index", daemon=True).start()


_warm_up_lock = threading.Lock()
_warming = False


def search(
    query: str, limit: int = DEFAULT_LIMIT, preferred: Iterable[str] = ()
) -> list[Diagnosis]:
    """Billable codes matching ``query``: a code prefix ("E11", "e11.6") or words
    ("type 2 diabetes", "HTN"), best first, at most ``limit``. The ``preferred`` codes that
    match come first, in the order given (the caller's favourites, the clinic's most used);
    the others follow by the primary-care ranking."""
    query = (query or "").strip()[:MAX_QUERY_LENGTH]
    if len(query) < 2:
        return []
    index = _lazy.index
    first = index.preferred_ids(preferred)
    if _CODE_QUERY.match(query):
        found = index.by_code(query, limit, first)
        if found:
            return found
    return index.by_words(query, limit, first)


def billable(code: str) -> Diagnosis | None:
    """The billable diagnosis ``code`` names (with or without its dot), or None when the code
    is unknown or is a category/heading rather than a billable code."""
    bare = _bare(code or "")
    index = _lazy.index
    return index.by_bare.get(bare)
