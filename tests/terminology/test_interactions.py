"""The shipped interaction rules: the file passes its own validation, every rule fires on a
pair of its members in both directions and not on a near miss (a drug of a neighbouring
class), the ONC lists are all there, and a broken file is refused rather than half read."""

from __future__ import annotations

import json

import pytest

from portal.terminology import interactions
from portal.terminology.interactions import (
    DATA_FILE,
    InteractionDataError,
    interactions_between,
    parse,
    shipped_rules,
)

# Ingredient RxCUIs of the near misses (RxNorm IN concepts, checked like the data file's).
AMLODIPINE, ACETAMINOPHEN, ALISKIREN, ASCORBIC_ACID = "17767", "161", "325646", "1151"
AZATHIOPRINE, AZITHROMYCIN, BUPROPION, CHOLECALCIFEROL = "1256", "18631", "42347", "2418"
CLOPIDOGREL, CYCLOBENZAPRINE, CYCLOPHOSPHAMIDE, DONEPEZIL = "32968", "21949", "3002", "135447"
ELETRIPTAN, EZETIMIBE, FAMOTIDINE, FUROSEMIDE = "231049", "341248", "4278", "4603"
LEFLUNOMIDE, LEVOFLOXACIN, METFORMIN, METHIMAZOLE = "27169", "82122", "6809", "6835"
METHOTREXATE, MODAFINIL, MORPHINE, PRAVASTATIN = "6851", "30125", "7052", "42463"
RALOXIFENE, SERTRALINE, SUMATRIPTAN, TERBINAFINE = "72143", "36437", "37418", "37801"
TRAZODONE, VERAPAMIL, ZOLPIDEM, LEVETIRACETAM = "10737", "11170", "39993", "114477"

# rule id -> (a member of one side, a drug of a neighbouring class that is on neither side of
# the rule but would be if the rule were coded too widely)
NEAR_MISSES = {
    "onc2012-03": ("8123", MODAFINIL),  # phenelzine with a non-amphetamine wakefulness drug
    "onc2012-04": ("343047", FAMOTIDINE),  # atazanavir with an H2 blocker (the panel removed them)
    "onc2012-06": ("73689", METHOTREXATE),  # febuxostat with another antimetabolite
    "onc2012-08": ("8123", TRAZODONE),  # phenelzine with a non-SSRI antidepressant
    "onc2012-11": ("51499", AZITHROMYCIN),  # irinotecan with a macrolide that spares CYP3A4
    "onc2012-16": ("8123", MORPHINE),  # phenelzine with a non-serotonergic opioid
    "onc2012-20": ("8123", BUPROPION),  # phenelzine with a non-tricyclic antidepressant
    "onc2012-21": ("2556", SERTRALINE),  # citalopram with an SSRI not on the known-risk list
    "onc2012-22": ("596205", LEVOFLOXACIN),  # ramelteon with a quinolone other than ciprofloxacin
    "onc2012-23": ("85762", LEVETIRACETAM),  # ritonavir with a non-inducing anticonvulsant
    "onc2012-25": ("4053", PRAVASTATIN),  # erythromycin with a statin not cleared by CYP3A4
    "onc2012-27": ("21212", SUMATRIPTAN),  # clarithromycin with a triptan
    "onc2012-28": ("2551", CYCLOBENZAPRINE),  # ciprofloxacin with another muscle relaxant
    "onc2012-30": ("10734", CYCLOPHOSPHAMIDE),  # tranylcypromine with another alkylating agent
    "onc2012-31": ("8123", ELETRIPTAN),  # phenelzine with a triptan not cleared by MAO-A
    "portal-01": ("29046", FUROSEMIDE),  # lisinopril with a loop diuretic
    "portal-02": ("52175", FUROSEMIDE),  # losartan with a loop diuretic
    "onc2013-01": ("29046", ACETAMINOPHEN),
    "onc2013-02": ("7393", EZETIMIBE),
    "onc2013-03": ("6918", BUPROPION),
    "onc2013-04": ("24947", FAMOTIDINE),
    "onc2013-05": ("29046", FUROSEMIDE),
    "onc2013-06": ("10582", CHOLECALCIFEROL),
    "onc2013-07": ("10582", EZETIMIBE),
    "onc2013-08": ("5487", ACETAMINOPHEN),
    "onc2013-09": ("6918", METHIMAZOLE),
    "onc2013-10": ("8640", AZATHIOPRINE),
    "onc2013-11": ("8640", FAMOTIDINE),
    "onc2013-12": ("1897", RALOXIFENE),
    "onc2013-13": ("11248", FAMOTIDINE),
    "onc2013-14": ("4511", LEFLUNOMIDE),
    "onc2013-15": ("29046", METFORMIN),
    "onc2013-16": ("24947", METHIMAZOLE),
    "onc2013-17": ("8640", CLOPIDOGREL),
    "onc2013-18": (ACETAMINOPHEN, CLOPIDOGREL),
    "onc2013-19": ("24947", FAMOTIDINE),
    "onc2013-20": ("11289", FAMOTIDINE),
    "onc2013-21": ("7646", TERBINAFINE),
    "onc2013-22": ("6918", CHOLECALCIFEROL),
    "onc2013-23": ("29046", ALISKIREN),
    "onc2013-24": ("11289", EZETIMIBE),
    "onc2013-25": ("7646", ZOLPIDEM),
    "onc2013-26": ("11289", ASCORBIC_ACID),
    "onc2013-27": ("39954", AZITHROMYCIN),
    "onc2013-28": ("6918", ACETAMINOPHEN),
    "onc2013-29": ("1191", ACETAMINOPHEN),
    "onc2013-30": ("8640", RALOXIFENE),
    "onc2013-31": ("6918", VERAPAMIL),
    "onc2013-32": ("8640", DONEPEZIL),
    "onc2013-33": ("29046", ACETAMINOPHEN),
}

RULES = shipped_rules().rules


def test_the_shipped_file_passes_validation_and_holds_both_onc_lists():
    ids = [rule.id for rule in RULES]
    assert len(ids) == len(set(ids))
    # The 2012 list has 15 interactions (Table 2's accepted rows), the 2013 list 33.
    assert len([i for i in ids if i.startswith("onc2012-")]) == 15
    assert len([i for i in ids if i.startswith("onc2013-")]) == 33
    for rule in RULES:
        assert rule.a.members and rule.b.members
        assert all(m.rxcui.isdigit() for m in rule.a.members + rule.b.members)
        if rule.id.startswith("onc2012-"):
            assert rule.severity == "high" and "2012" in rule.source
        if rule.id.startswith("onc2013-"):
            assert rule.severity in ("moderate", "low") and "2013" in rule.source
        if rule.id.startswith("portal-"):
            assert rule.source.startswith("Project addition")


def test_every_ingredient_has_one_code_and_one_name():
    """A name coded two ways (or a code named two ways) would be a typo in the data."""
    data = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    by_name: dict[str, str] = {}
    by_code: dict[str, str] = {}
    members = [m for g in data["groups"].values() for m in g["members"]]
    members += [
        m for r in data["rules"] for side in (r["a"], r["b"]) for m in side.get("ingredients", [])
    ]
    for member in members:
        assert by_name.setdefault(member["name"], member["rxcui"]) == member["rxcui"], member
        assert by_code.setdefault(member["rxcui"], member["name"]) == member["name"], member


def test_known_codes_are_the_public_rxnorm_ingredients():
    """Spot checks of codes every RxNorm browser shows (the issue's own examples among them)."""
    names = {m.name: m.rxcui for rule in RULES for m in rule.a.members + rule.b.members}
    assert names["lisinopril"] == "29046"
    assert names["spironolactone"] == "9997"
    assert names["warfarin"] == "11289"
    assert names["simvastatin"] == "36567"
    assert names["omeprazole"] == "7646"
    assert names["ciprofloxacin"] == "2551"
    assert names["ibuprofen"] == "5640"


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.id)
def test_every_rule_fires_on_each_pair_of_its_members_in_both_directions(rule):
    for a in rule.a.members:
        for b in rule.b.members:
            if a.rxcui == b.rxcui:
                continue
            forward = [
                i for i in interactions_between([a.rxcui], [b.rxcui]) if i.rule.id == rule.id
            ]
            backward = [
                i for i in interactions_between([b.rxcui], [a.rxcui]) if i.rule.id == rule.id
            ]
            assert len(forward) == 1, (a.name, b.name)
            assert len(backward) == 1, (b.name, a.name)
            assert (forward[0].ingredient, forward[0].other_ingredient) == (a.rxcui, b.rxcui)
            assert (backward[0].ingredient, backward[0].other_ingredient) == (b.rxcui, a.rxcui)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.id)
def test_no_rule_fires_on_its_near_miss(rule):
    member, near_miss = NEAR_MISSES[rule.id]
    assert member in rule.a.rxcuis | rule.b.rxcuis, "the near miss's partner is a member"
    assert near_miss not in rule.a.rxcuis | rule.b.rxcuis
    for pair in ((member, near_miss), (near_miss, member)):
        fired = {i.rule.id for i in interactions_between([pair[0]], [pair[1]])}
        assert rule.id not in fired


def test_every_rule_has_a_near_miss():
    assert set(NEAR_MISSES) == {rule.id for rule in RULES}


def test_the_issue_scenario_lisinopril_with_spironolactone_is_high():
    found = interactions_between(["29046"], ["9997"])
    assert [(i.rule.id, i.rule.severity) for i in found] == [("portal-01", "high")]
    assert found[0].ingredient_name == "lisinopril"
    assert found[0].other_ingredient_name == "spironolactone"


def test_an_ingredient_does_not_interact_with_itself():
    """Two QT-prolonging drugs interact; the same one twice is a duplicate, not this rule."""
    assert interactions_between(["2556"], ["2556"]) == []
    assert {i.rule.id for i in interactions_between(["2556"], ["4053"])} == {"onc2012-21"}


def test_most_severe_first_and_each_pair_once():
    # Citalopram (QT, SSRI) against phenelzine (MAOI) and erythromycin (QT): high first.
    found = interactions_between(["2556"], ["8123", "4053", "8123"])
    assert [i.rule.id for i in found] == ["onc2012-08", "onc2012-21"]


def _minimal(**changes):
    data = {
        "groups": {"g": {"name": "G", "members": [{"name": "x", "rxcui": "1"}]}},
        "rules": [
            {
                "id": "r1",
                "a": {"group": "g"},
                "b": {"name": "Y", "ingredients": [{"name": "y", "rxcui": "2"}]},
                "severity": "high",
                "mechanism": "m",
                "management": "w",
                "source": "s",
            }
        ],
    }
    data["rules"][0].update(changes)
    return data


def test_validation_accepts_a_minimal_file():
    assert [i.rule.id for i in parse(_minimal()).between(["2"], ["1"])] == ["r1"]


@pytest.mark.parametrize(
    "changes",
    [
        {"a": {"group": "undefined"}},
        {"b": {"name": "Y", "ingredients": [{"name": "y", "rxcui": 2}]}},
        {"b": {"name": "Y", "ingredients": [{"name": "y", "rxcui": "2a"}]}},
        {"b": {"name": "Y", "ingredients": []}},
        {"severity": "severe"},
        {"source": ""},
        {"mechanism": None},
    ],
    ids=[
        "undefined group",
        "numeric code",
        "code with letters",
        "empty side",
        "unknown severity",
        "no source",
        "no mechanism",
    ],
)
def test_validation_refuses_a_broken_rule(changes):
    with pytest.raises(InteractionDataError):
        parse(_minimal(**changes))


def test_an_unreadable_file_is_refused(tmp_path):
    broken = tmp_path / "rules.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(InteractionDataError):
        interactions.load(broken)
    with pytest.raises(InteractionDataError):
        interactions.load(tmp_path / "missing.json")
