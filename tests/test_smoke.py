"""The app starts, signs a user in, and refuses what is not declared."""


def test_health_check_answers_without_sign_in(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_home_requires_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.location.endswith("/auth/sign-in")


def test_each_role_signs_in_and_sees_home(signed_in):
    for role in ("front_desk", "nurse", "prescriber", "admin"):
        browser = signed_in(role)
        page = browser.get("/")
        assert page.status_code == 200
        assert "Good to see you" in page.get_data(as_text=True)
