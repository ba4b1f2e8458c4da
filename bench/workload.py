"""What the benchmark asks of the portal: varied inputs taken from the seeded patients,
the HTTP requests a browser's search box and patient links send, and checks of the answers.
"""

from __future__ import annotations

import random
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date

import requests
from sqlalchemy import bindparam, create_engine, text

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
PATIENT_LINK = re.compile(r'href="/patients/(\d+)"')
USER_AGENT = "practice-portal-bench/1"


@dataclass
class SampledPatient:
    id: int
    mrn: str
    given_name: str
    family_name: str
    birth_date: date
    phone_mobile: str


@dataclass
class Case:
    """One request: a search text (or None for the patient page) and the patient it came from."""

    query: str | None
    patient: SampledPatient
    must_find_patient: bool = False


@dataclass
class Benchmark:
    name: str
    kind: str  # "prefix", "given_family", "near_miss", "dob", "mrn", "phone" or "page"
    cases: list[Case] = field(default_factory=list)

    @property
    def is_search(self) -> bool:
        return self.kind != "page"


def sample_patients(url: str, count: int, seed: int = 7) -> list[SampledPatient]:
    """``count`` patients picked at random (repeatably) from the whole table."""
    rng = random.Random(seed)
    engine = create_engine(url)
    with engine.connect() as connection:
        low, high = connection.execute(text("SELECT min(id), max(id) FROM patients")).one()
        span = range(low, high + 1)
        ids = (
            rng.sample(span, count)
            if len(span) >= count
            else [rng.choice(span) for _ in range(count)]
        )
        found: dict[int, SampledPatient] = {}
        unique = sorted(set(ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            rows = connection.execute(
                text(
                    "SELECT id, mrn, given_name, family_name, birth_date, phone_mobile "
                    "FROM patients "
                    "WHERE id IN :ids"
                ).bindparams(bindparam("ids", expanding=True)),
                {"ids": chunk},
            )
            for row in rows:
                birth = row.birth_date
                if isinstance(birth, str):  # SQLite through a plain engine returns text
                    birth = date.fromisoformat(birth)
                found[row.id] = SampledPatient(
                    row.id, row.mrn, row.given_name, row.family_name, birth, row.phone_mobile
                )
    engine.dispose()
    return [found[i] for i in ids if i in found]


def _dob_text(value: date, variant: int) -> str:
    # The formats people type: ISO, US numeric, and day-month-name-year.
    if variant == 0:
        return value.isoformat()
    if variant == 1:
        return value.strftime("%m/%d/%Y")
    return f"{value.day} {value.strftime('%b %Y')}"


def _phone_text(e164: str, variant: int) -> str:
    area, exchange, line = e164[2:5], e164[5:8], e164[8:]
    return (
        f"({area}) {exchange}-{line}",
        f"{area}-{exchange}-{line}",
        e164,
        f"{area}.{exchange}.{line}",
        f"{area}{exchange}{line}",
    )[variant % 5]


def misspelt(name: str) -> str:
    """A near miss of a name as people type one: its middle letter typed twice ("Johnnson"),
    so no name starts with it and only the near-miss search can find it."""
    middle = len(name) // 2
    return name[: middle + 1] + name[middle:]


def build_benchmarks(patients: list[SampledPatient]) -> list[Benchmark]:
    """The seven benchmarks, each with one case per sampled patient (formats rotate)."""
    prefix = Benchmark("search: family-name prefix", "prefix")
    # "Rosalind Quibbleworth" (with a date of birth every other time): the given name
    # first, as the name is said.
    given_family = Benchmark("search: given family", "given_family")
    # A misspelt family name alone: the heaviest name search (exact and prefix find nothing,
    # then every patient of that name and its sound-alikes is a candidate to rank).
    near_miss = Benchmark("search: near miss", "near_miss")
    dob = Benchmark("search: date of birth", "dob")
    mrn = Benchmark("search: MRN", "mrn")
    phone = Benchmark("search: phone", "phone")
    page = Benchmark("patient page", "page")
    for index, patient in enumerate(patients):
        three = patient.family_name[:3]
        prefix.cases.append(Case(three if index % 2 else three.lower(), patient))
        # Every other case adds the date of birth: then the patient must be among the
        # results (a common "Mary Smith" alone has more than 20 at a million patients).
        with_birth_date = index % 2 == 1
        typed = f"{patient.given_name} {patient.family_name}"
        if with_birth_date:
            typed += " " + _dob_text(patient.birth_date, index % 3)
        given_family.cases.append(Case(typed, patient, must_find_patient=with_birth_date))
        near_miss.cases.append(Case(misspelt(patient.family_name), patient))
        dob.cases.append(Case(_dob_text(patient.birth_date, index % 3), patient))
        mrn.cases.append(Case(patient.mrn, patient, must_find_patient=True))
        phone.cases.append(Case(_phone_text(patient.phone_mobile, index), patient, True))
        page.cases.append(Case(None, patient))
    return [prefix, given_family, near_miss, dob, mrn, phone, page]


class SignInFailed(RuntimeError):
    pass


def sign_in(base: str, username: str, password: str) -> tuple[requests.Session, float]:
    """A fresh browser-like session signed in; returns it and the POST's time in ms."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    page = session.get(base + "/auth/sign-in", timeout=30)
    token = _csrf(page.text)
    started = time.perf_counter()
    response = session.post(
        base + "/auth/sign-in",
        data={"csrf_token": token, "username": username, "password": password},
        allow_redirects=False,
        timeout=60,
    )
    elapsed = (time.perf_counter() - started) * 1000
    location = response.headers.get("Location", "")
    if response.status_code not in (302, 303) or "sign-in" in location or "second" in location:
        raise SignInFailed(f"sign-in answered {response.status_code} -> {location!r}")
    return session, elapsed


def _csrf(html: str) -> str:
    match = CSRF_META.search(html)
    if not match:
        raise SignInFailed("no <meta name='csrf-token'> on the page")
    return match.group(1)


def page_csrf_token(session: requests.Session, base: str) -> str:
    """The CSRF token of the signed-in session, as htmx would read it from the page."""
    return _csrf(session.get(base + "/", timeout=30).text)


@dataclass
class Timings:
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0
    first_failure: str | None = None

    def add(self, elapsed: float, problem: str | None) -> None:
        self.latencies_ms.append(elapsed)
        if problem:
            self.failures += 1
            self.first_failure = self.first_failure or problem


def timed_request(
    session: requests.Session, base: str, token: str, bench: Benchmark, case: Case
) -> tuple[float, str | None]:
    """One request as the browser sends it: (milliseconds, what was wrong or None)."""
    started = time.perf_counter()
    if bench.is_search:
        response = session.post(
            base + "/patients/search",
            data={"q": case.query},
            headers={"HX-Request": "true", "X-CSRFToken": token},
            timeout=30,
        )
    else:
        response = session.get(f"{base}/patients/{case.patient.id}", timeout=30)
    body = response.text
    elapsed = (time.perf_counter() - started) * 1000
    return elapsed, _check(bench, case, response.status_code, body)


def _check(bench: Benchmark, case: Case, status: int, body: str) -> str | None:
    """Why an answer is not what a user would need (None when it is)."""
    if status != 200:
        return f"HTTP {status}"
    if bench.is_search:
        ids = PATIENT_LINK.findall(body)
        if not ids:
            return "no results"
        if case.must_find_patient and str(case.patient.id) not in ids:
            return "the searched-for patient is not among the results"
        return None
    mrn = case.patient.mrn
    if mrn not in body and f"{mrn[:-1]}-{mrn[-1]}" not in body:
        return "the page does not show the patient's MRN"
    return None


@dataclass
class SignInThroughput:
    sequential_per_second: float
    sequential_latencies_ms: list[float]
    concurrent_per_second: float
    concurrent_clients: int
    concurrent_count: int


def sign_in_throughput(
    base: str, username: str, password: str, count: int, clients: int
) -> SignInThroughput:
    """Sign-ins per second: ``count`` one after another, then ``clients`` at once."""
    latencies = []
    started = time.perf_counter()
    for _ in range(count):
        session, elapsed = sign_in(base, username, password)
        session.close()
        latencies.append(elapsed)
    sequential = count / (time.perf_counter() - started)

    per_client = max(1, count // clients)

    def client(_):
        for _ in range(per_client):
            session, _elapsed = sign_in(base, username, password)
            session.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    concurrent = per_client * clients / (time.perf_counter() - started)
    return SignInThroughput(sequential, latencies, concurrent, clients, per_client * clients)
