"""Password storage (argon2id), rehash on sign-in, and the password policy."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from portal.auth import services
from portal.auth.passwords import common_passwords, password_problems
from portal.transaction import Refused
from tests.auth.helpers import field_error, get_user
from tests.support.clients import actor_of
from tests.support.database import PASSWORD

ARGON2 = re.compile(r"\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+")
NEW_PASSWORD = "paper lanterns drift over the quiet harbour"


def argon2_parameters(stored: str) -> tuple[int, int, int]:
    match = ARGON2.fullmatch(stored)
    assert match, f"not an argon2id hash: {stored[:30]}"
    return int(match[1]), int(match[2]), int(match[3])


def test_changed_password_is_stored_as_argon2id_with_owasp_parameters(app, signed_in):
    browser = signed_in("nurse")
    response = browser.post_form(
        "/auth/account",
        {
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302
    stored = get_user(app, "nurse").password_hash
    memory_kib, time_cost, parallelism = argon2_parameters(stored)
    assert memory_kib >= 19 * 1024
    assert time_cost >= 2
    assert parallelism == 1
    assert NEW_PASSWORD not in stored


def test_sign_in_rehashes_when_the_parameters_change(app, client):
    _, before, _ = argon2_parameters(get_user(app, "nurse").password_hash)
    app.config["PASSWORD_HASH_TIME_COST"] = before + 1
    client.sign_in("nurse")
    _, after, _ = argon2_parameters(get_user(app, "nurse").password_hash)
    assert after == before + 1
    # The new hash still verifies the same password.
    again = type(client)(app)
    again.sign_in("nurse")
    assert again.get("/").status_code == 200


def test_rehash_also_happens_for_users_with_a_second_factor(app, client):
    app.config["PASSWORD_HASH_TIME_COST"] = 3
    client.sign_in("drlee")
    assert argon2_parameters(get_user(app, "drlee").password_hash)[1] == 3


def problems(app, password, username="nurse", full_name="Sam Okafor"):
    with app.test_request_context():
        return password_problems(password, username=username, full_name=full_name)


def test_length_limits(app):
    assert "at least 12" in problems(app, "h7#kQ2!pz9w")[0]  # 11 characters
    assert problems(app, "h7#kQ2!pz9wM") == []  # 12 characters
    words = "amber canyon orbit willow fjord quartz sprocket lagoon meadow pylon "
    long_one = (words * 3)[:128]
    assert len(long_one) == 128
    assert problems(app, long_one) == []
    maximum = app.config["PASSWORD_MAX_LENGTH"]
    assert maximum >= 128
    assert problems(app, (words * 10)[:maximum]) == []
    assert "at most" in problems(app, (words * 10)[: maximum + 1])[0]


def test_no_composition_rules_a_lower_case_passphrase_is_fine(app):
    assert problems(app, "paper lanterns drift over the quiet harbour") == []
    assert problems(app, "correcthorsebatterystapleridge") == []


def test_the_shipped_list_of_common_passwords_is_refused(app):
    text = resources.files("portal.auth").joinpath("common_passwords.txt").read_text()
    entries = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(entries) >= 10_000
    long_enough = [entry for entry in entries if len(entry) >= 12]
    assert long_enough, "the list should hold entries long enough to pass the length rule"
    for entry in long_enough:
        assert "commonly used" in problems(app, entry)[0], entry
    # Case does not make a common password uncommon.
    assert "commonly used" in problems(app, long_enough[0].upper())[0]
    with app.app_context():
        assert len(common_passwords()) >= 10_000


@pytest.mark.parametrize(
    "password",
    ["okafor and the long walk home", "samokafor was here in spring", "nurse station coffee rota"],
)
def test_own_name_or_username_is_refused(app, password):
    assert "own name" in problems(app, password)[0]


def test_short_name_parts_only_count_as_whole_words(app):
    # Jordan Lee: "sleepless" contains "lee" but is not built from the name.
    assert problems(app, "sleepless nights in seattle", "drlee", "Jordan Lee") == []
    assert "own name" in problems(app, "lee likes long summer days", "drlee", "Jordan Lee")[0]


def test_account_page_refuses_a_weak_password_with_a_message_next_to_the_field(app, signed_in):
    browser = signed_in("nurse")
    response = browser.post_form(
        "/auth/account",
        {
            "current_password": PASSWORD,
            "new_password": "okafor and the long walk home",
            "confirm_password": "okafor and the long walk home",
        },
    )
    assert response.status_code == 422
    assert "own name" in field_error(response, "new_password")
    assert get_user(app, "nurse").password_hash == get_user(app, "frontdesk").password_hash


def test_admin_created_user_gets_the_same_policy(app):
    with app.test_request_context():
        with pytest.raises(Refused) as refused:
            services.create_user(
                actor=actor_of("admin"),
                username="rgarcia",
                full_name="Rosa Garcia",
                email=None,
                roles=["nurse"],
                password="rosa garcia sunday market",
            )
        assert refused.value.field == "password"
