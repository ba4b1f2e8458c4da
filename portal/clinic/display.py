"""How the portal shows times, ages, dates and phone numbers: Jinja filters, in the clinic's
time zone (a birth date typed at 11 pm is not "tomorrow", a visit at 9:00 is the clinic's
9:00 whatever the server's zone)."""

from __future__ import annotations

import phonenumbers

from portal.clinic.services import clinic_name, clinic_time_zone, prescribing_path
from portal.timeutil import age_on, to_zone, utcnow


def local_time(value, pattern: str = "%Y-%m-%d %H:%M") -> str:
    """A UTC time as the clinic's wall clock shows it."""
    return to_zone(value, clinic_time_zone()).strftime(pattern) if value else ""


def age(birth_date) -> int | str:
    """Age on today's date in the clinic's zone (not the server's)."""
    if not birth_date:
        return ""
    return age_on(birth_date, to_zone(utcnow(), clinic_time_zone()).date())


def phone(value: str | None) -> str:
    """An E.164 number as people write it: national for North America, else international."""
    if not value:
        return ""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return value
    style = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if number.country_code == 1
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(number, style)


def long_date(value) -> str:
    """3 Feb 1980: a date no reader can take for another (no 02/03 ambiguity)."""
    return f"{value.day} {value:%b %Y}" if value else ""


def template_filters() -> dict:
    """The filters, by the names templates use."""
    return {"local_time": local_time, "age": age, "phone": phone, "long_date": long_date}


def template_globals() -> dict:
    """The clinic's name, for every page's title and header; where "Prescribe" leads."""
    return {"clinic_name": clinic_name, "prescribing_path": prescribing_path}
