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


def test_purge_sessions_deletes_only_old_ended_and_expired_ones(app, signed_in):
    from datetime import timedelta

    from portal.auth.models import ServerSession
    from portal.extensions import db
    from portal.timeutil import utcnow

    signed_in("nurse")  # one live session
    with app.app_context():
        old = utcnow() - timedelta(days=40)
        db.session.add_all(
            [
                ServerSession(
                    token_hash="a" * 64,
                    created_at=old,
                    last_seen_at=old,
                    ended_at=old,
                    end_reason="signed_out",
                ),
                ServerSession(token_hash="b" * 64, created_at=old, last_seen_at=old),
            ]
        )
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["purge-sessions"])
    assert result.exit_code == 0, result.output
    assert "Deleted 1 ended and 1 expired sessions." in result.output
    with app.app_context():
        remaining = db.session.scalars(db.select(ServerSession.token_hash)).all()
        assert "a" * 64 not in remaining and "b" * 64 not in remaining
        assert (
            db.session.scalar(
                db.select(db.func.count())
                .select_from(ServerSession)
                .where(ServerSession.user_id.is_not(None), ServerSession.ended_at.is_(None))
            )
            == 1
        )
