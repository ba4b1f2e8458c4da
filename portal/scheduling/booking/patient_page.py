"""The patient page's appointments: the next few and the last few, with "Book" for this
patient (registered with the registry's patient page, which cannot import scheduling).

The front desk answers "when is my next appointment?" and "did I miss one?" from the patient
page, so both lists are there; cancelled and no-show visits are shown among the recent ones
(they are what a caller asks about), never among the upcoming.
"""

from __future__ import annotations

from portal.patients.page_sections import patient_page_section
from portal.scheduling.models import STATUS_LABELS
from portal.scheduling.services import recent_appointments, upcoming_appointments
from portal.timeutil import utcnow

UPCOMING = 5
RECENT = 5


@patient_page_section(
    "scheduling/booking/_patient_appointments.html", permission="schedule.read", position=1
)
def patient_appointments(patient_id: int) -> dict:
    """Two bounded reads on the (patient_id, starts_at) index: the next active appointments
    (soonest first) and the latest past ones (latest first, whatever their status)."""
    now = utcnow()
    upcoming = upcoming_appointments(patient_id, UPCOMING, now)
    recent = recent_appointments(patient_id, RECENT, now)
    return {
        "patient_id": patient_id,
        "upcoming": upcoming,
        "recent": recent,
        "status_labels": STATUS_LABELS,
    }
