"""The sandbox's fixture data is well formed: prescriber ids pass their check digits,
pharmacy ids have seven digits, every drug names a known dispense unit and says where
its codes were checked."""

from __future__ import annotations

from portal.integrations.sandbox.dosespot.state import load_fixture


def npi_is_valid(npi: str) -> bool:
    """Luhn over the prefix 80840 and the ten digits (the NPI rule)."""
    digits = [int(c) for c in "80840" + npi]
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2 == 1:
            digit *= 2
            digit -= 9 if digit > 9 else 0
        total += digit
    return len(npi) == 10 and total % 10 == 0


def dea_is_valid(dea: str) -> bool:
    d = [int(c) for c in dea[2:]]
    return (
        len(dea) == 9
        and dea[:2].isalpha()
        and ((d[0] + d[2] + d[4]) + 2 * (d[1] + d[3] + d[5])) % 10 == d[6]
    )


def test_the_check_digit_rules_themselves():
    assert npi_is_valid("1234567893") and not npi_is_valid("1234567890")
    assert dea_is_valid("AB1234563") and not dea_is_valid("AB1234567")


def test_clinicians_carry_valid_npi_and_dea_numbers():
    for clinician in load_fixture("clinicians.json")["clinicians"]:
        assert npi_is_valid(clinician["NPINumber"]), clinician
        assert dea_is_valid(clinician["DEANumber"]), clinician


def test_pharmacies_have_seven_digit_ncpdp_ids_and_one_fails():
    pharmacies = load_fixture("pharmacies.json")["pharmacies"]
    assert all(len(p["NCPDPID"]) == 7 and p["NCPDPID"].isdigit() for p in pharmacies)
    assert any(p["FailsTransmission"] for p in pharmacies)


def test_drugs_name_known_units_and_their_sources():
    units = {u["DispenseUnitId"] for u in load_fixture("dispense_units.json")["units"]}
    drugs = load_fixture("drugs.json")["drugs"]
    assert len({d["DispensableDrugId"] for d in drugs}) == len(drugs)
    for drug in drugs:
        assert drug["DispenseUnitId"] in units
        assert drug["RxCUI"].isdigit() and drug["source"]
        assert drug["NDC"] is None or "NDC" in drug["source"]
    assert any(d["Schedule"] == "2" for d in drugs)
