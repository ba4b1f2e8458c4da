"""Two saves racing on one problem: the one that read the older version loses with a clear
refusal (StaleEdit), never a silent overwrite and never a 500.

The race is staged on PostgreSQL: after the service has checked the version and before it
writes, another connection commits a change. (SQLite takes its write lock at the start of
the transaction, so there the two saves cannot interleave at all.)
"""

from __future__ import annotations

import pytest
from sqlalchemy import event, select, text

from portal.actors import Actor
from portal.auth.models import User
from portal.charting.lists import services as lists
from portal.charting.models import ChartItemRevision, Problem
from portal.extensions import db
from tests.charting.lists_helpers import make_patient


@pytest.mark.postgres_only
def test_a_save_that_loses_the_race_is_refused(app):
    patient_id = make_patient(app)
    with app.app_context():
        nurse = Actor.for_user(
            db.session.scalars(select(User).filter_by(username="nurse")).one(), "127.0.0.1"
        )
        problem = lists.add_problem(nurse, patient_id, {"icd10_code": "I10", "comment": "a"})
        problem_id = problem.id

        raced = []

        def other_save_commits_first(session, flush_context, instances):
            if raced:
                return
            raced.append(True)
            with db.engine.begin() as other:
                other.execute(
                    text("UPDATE problems SET comment = 'b', version = 2 WHERE id = :id"),
                    {"id": problem_id},
                )

        event.listen(db.session, "before_flush", other_save_commits_first)
        values = {"icd10_code": "I10", "status": "active", "comment": "c"}
        try:
            with pytest.raises(lists.StaleEdit) as refused:
                lists.update_problem(nurse, patient_id, problem_id, 1, values)
        finally:
            event.remove(db.session, "before_flush", other_save_commits_first)
        assert raced
        assert refused.value.current.comment == "b"
        db.session.rollback()
        assert db.session.get(Problem, problem_id).comment == "b"
        revisions = db.session.scalars(
            select(ChartItemRevision).filter_by(item_type="problem", item_id=problem_id)
        ).all()
        assert len(revisions) == 1  # only the creation: the lost save left nothing behind
