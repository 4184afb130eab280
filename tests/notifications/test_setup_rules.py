"""The reminder rules' setup pages: who may open them, the editor's validation, the live preview
(rendered as the outbox renders, with the forbidden-word check) and a save that re-plans the
type's booked visits in the background."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from django.test import Client

from booking.access.roles import Role
from booking.models import Appointment, AuditEvent, Patient
from booking.services import appointment_book
from notifications.models import (
    Channel,
    MessageKind,
    OutboundMessage,
    ReminderRule,
    ReplanJob,
    ReplanStatus,
)
from notifications.preview import sample_visit, wording_check
from notifications.rendering import email_subject, link_url, message_context, sms_text
from notifications.setup_forms import reminder_rule_forms
from scheduling.models import AppointmentType, Location
from tests.staff_helpers import client_for, staff_user

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)  # Monday 07:00 in New York (EST)
VISIT = datetime(2026, 12, 10, 15, tzinfo=UTC)  # Thursday 10:00 EST


@pytest.fixture(autouse=True)
def pinned(settings, time_machine) -> None:
    settings.PUBLIC_BASE_URL = "https://clinic.example"
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def admin(clinic: Location) -> Client:
    return client_for(staff_user(Role.ADMIN, clinic))


def page(location: Location, appointment_type: AppointmentType, part: str = "") -> str:
    return f"/staff/setup/{location.pk}/reminders/{appointment_type.pk}/{part}"


def form_data(appointment_type: AppointmentType, **changes: Any) -> dict[str, str]:
    """The editor's form as the browser submits it unchanged, then ``changes``
    (``prep__hours=72``; ``None`` removes a field, as an unticked box or a cleared input)."""
    rules = {r.kind: r for r in ReminderRule.objects.filter(appointment_type=appointment_type)}
    data: dict[str, str] = {}
    for form in reminder_rule_forms(rules):
        data.update(form.initial_data())
    for key, value in changes.items():
        prefix, name = key.split("__")
        if value is None:
            data.pop(f"{prefix}-{name}", None)
        else:
            data[f"{prefix}-{name}"] = str(value)
    return data


# --- Who may open the pages ----------------------------------------------------------------


def test_an_admin_sees_every_type_of_their_location_with_its_reminders(
    clinic, infusion, admin
) -> None:
    response = admin.get(f"/staff/setup/{clinic.pk}/reminders/")

    assert response.status_code == 200
    text = response.content.decode()
    for appointment_type in AppointmentType.objects.filter(location=clinic):
        assert page(clinic, appointment_type) in text
    assert "48 h before · e-mail, text" in text
    assert "19:00 the day before" in text


def test_an_admin_of_another_location_gets_404(clinic, infusion, make_location) -> None:
    elsewhere = client_for(staff_user(Role.ADMIN, make_location()))

    assert elsewhere.get(f"/staff/setup/{clinic.pk}/reminders/").status_code == 404
    assert elsewhere.get(page(clinic, infusion)).status_code == 404
    assert elsewhere.get(page(clinic, infusion, "preview/") + "?kind=prep").status_code == 404


def test_another_locations_type_is_not_found_through_ones_own_location(
    clinic, infusion, make_location
) -> None:
    other = make_location()
    admin_of_both = client_for(staff_user(Role.ADMIN, clinic, other))

    assert admin_of_both.get(page(other, infusion)).status_code == 404
    assert admin_of_both.post(page(other, infusion), form_data(infusion)).status_code == 404


def test_the_front_desk_may_not_open_the_reminder_setup(clinic, infusion) -> None:
    desk = client_for(staff_user(Role.FRONT_DESK, clinic))

    assert desk.get(f"/staff/setup/{clinic.pk}/reminders/").status_code == 403
    assert desk.get(page(clinic, infusion)).status_code == 403
    assert desk.post(page(clinic, infusion), form_data(infusion)).status_code == 403


def test_the_reminders_are_in_the_setup_navigation(clinic, admin) -> None:
    response = admin.get(f"/staff/setup/{clinic.pk}/reminders/")

    assert f'href="/staff/setup/{clinic.pk}/reminders/" aria-current="page"' in (
        response.content.decode()
    )


# --- Validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        pytest.param(
            {"evening_before__hours": "3"},
            "evening_before-local_time",
            "not both",
            id="offset-and-time-of-day",
        ),
        pytest.param(
            {"prep__hours": None, "prep__minutes": None},
            "prep-hours",
            "Say when this message goes out",
            id="no-timing",
        ),
        pytest.param(
            {"prep__hours": "0", "prep__minutes": "0"},
            "prep-hours",
            "at least one minute before",
            id="zero-offset",
        ),
        pytest.param(
            {"morning_of__email": None, "morning_of__sms": None},
            "morning_of-email",
            "Choose e-mail, text message or both",
            id="no-channel",
        ),
        pytest.param(
            {"prep__minutes": "75"}, "prep-minutes", "less than or equal to 59", id="minutes"
        ),
        pytest.param(
            {
                "follow_up__hours": None,
                "follow_up__minutes": None,
                "follow_up__local_time": "18:00",
                "follow_up__days_before": "1",
            },
            "follow_up-days_before",
            "A follow-up goes after the visit",
            id="follow-up-before",
        ),
    ],
)
def test_a_refused_form_names_the_field_and_saves_nothing(
    clinic, infusion, admin, changes, field, message
) -> None:
    before = list(ReminderRule.objects.filter(appointment_type=infusion).values())

    response = admin.post(page(clinic, infusion), form_data(infusion, **changes))

    assert response.status_code == 400
    text = response.content.decode()
    assert f'href="#id_{field}"' in text
    assert message in text
    assert f'id="id_{field}_error"' in text
    assert list(ReminderRule.objects.filter(appointment_type=infusion).values()) == before
    assert not ReplanJob.objects.exists()


# --- The preview ---------------------------------------------------------------------------


def test_the_preview_shows_the_message_as_the_outbox_renders_it_with_its_due_time(
    clinic, infusion, admin
) -> None:
    response = admin.get(
        page(clinic, infusion, "preview/"),
        {
            "kind": "evening_before",
            "evening_before-is_active": "on",
            "evening_before-email": "on",
            "evening_before-sms": "on",
            "evening_before-local_time": "18:00",
            "evening_before-days_before": "1",
            "evening_before-late_cutoff_minutes": "360",
        },
    )

    assert response.status_code == 200
    text = response.content.decode()
    visit = sample_visit(infusion, now=NOW)
    context = message_context(visit, link=link_url("x"))
    template = "notifications/messages/evening_before"
    assert email_subject(template, context) in text
    # The sample is Alex Sample's visit on the next weekday at 10:00 clinic time.
    assert "Hello Alex," in text
    assert "Tue 8 Dec at 10:00 EST" in text
    assert sms_text(template, context).split(" https://")[0] in text
    assert "Midtown Health" in text
    assert "Goes out <strong>Mon 7 Dec at 18:00 EST</strong>" in text
    assert "Wording check passed" in text


def test_the_preview_tells_when_the_timing_is_not_valid_yet(clinic, infusion, admin) -> None:
    response = admin.get(
        page(clinic, infusion, "preview/"),
        {"kind": "prep", "prep-is_active": "on", "prep-hours": "3", "prep-local_time": "18:00"},
    )

    assert response.status_code == 200
    text = response.content.decode()
    assert "Fix this reminder's timing" in text
    assert 'href="#id_prep-local_time"' in text
    assert "not both" in text


def test_the_preview_of_a_text_moved_out_of_quiet_hours_shows_both_times(
    clinic, infusion, admin
) -> None:
    response = admin.get(
        page(clinic, infusion, "preview/"),
        {
            "kind": "confirm_request",
            "confirm_request-is_active": "on",
            "confirm_request-email": "on",
            "confirm_request-sms": "on",
            "confirm_request-hours": "12",  # 22:00 the evening before: quiet hours
            "confirm_request-late_cutoff_minutes": "360",
        },
    )

    text = response.content.decode()
    assert "Goes out <strong>Mon 7 Dec at 22:00 EST</strong>" in text
    assert "the text <strong>Mon 7 Dec at 20:45 EST</strong>" in text


def test_the_preview_flags_a_public_name_that_reveals_the_treatment(
    clinic, infusion, admin
) -> None:
    Location.objects.filter(pk=clinic.pk).update(public_name="Midtown Ketamine Care")

    response = admin.get(page(clinic, infusion, "preview/"), {"kind": "morning_of"})

    text = response.content.decode()
    assert "Wording check failed" in text
    assert "Text message: ketamine" in text


def test_the_wording_check_names_each_forbidden_word_where_it_was_found() -> None:
    verdict = wording_check(
        subject="Your infusion tomorrow",
        email_body="Nothing to eat after 02:00. See you at Riverside.",
        sms="Reminder: nothing to eat after 02:00 at Riverside Ketamine Clinic",
        internal_names=["Riverside Ketamine Clinic"],
    )

    assert not verdict.passed
    assert verdict.found == {
        "E-mail subject": ["infusion"],
        "Text message": ["eat", "riverside ketamine clinic"],
    }
    assert wording_check(subject="Your appointment", email_body="Eat well", sms="Hi").passed


def test_the_preview_button_shows_the_preview_without_javascript_and_saves_nothing(
    clinic, infusion, admin
) -> None:
    data = form_data(infusion, morning_of__local_time="06:30")
    data.update(action="preview", kind="morning_of")

    response = admin.post(page(clinic, infusion), data)

    assert response.status_code == 200
    text = response.content.decode()
    assert "Goes out <strong>Tue 8 Dec at 06:30 EST</strong>" in text
    assert '<option value="morning_of" selected>' in text
    assert ReminderRule.objects.get(appointment_type=infusion, kind="morning_of").local_time != (
        time(6, 30)
    )
    assert not ReplanJob.objects.exists()


def test_the_editor_page_shows_the_saved_rules_and_their_preview(clinic, infusion, admin) -> None:
    response = admin.get(page(clinic, infusion) + "?kind=evening_before")

    assert response.status_code == 200
    text = response.content.decode()
    assert 'name="evening_before-local_time" value="19:00"' in text
    assert 'name="prep-hours" value="48"' in text
    assert "Goes out <strong>Mon 7 Dec at 19:00 EST</strong>" in text
    assert 'src="/static/chairside/rule_preview.js" defer' in text


# --- Saving --------------------------------------------------------------------------------


@pytest.fixture
def make_patient(make_approved_patient: Callable[..., Patient]) -> Callable[..., Patient]:
    return make_approved_patient


@pytest.fixture
def booked(infusion, make_patient) -> Appointment:
    return appointment_book(
        appointment_type=infusion, patient=make_patient(sms_consent=True), start=VISIT, now=NOW
    )


def prep_due(appointment: Appointment) -> set[datetime]:
    return set(
        OutboundMessage.objects.filter(appointment=appointment, kind=MessageKind.PREP).values_list(
            "due_at", flat=True
        )
    )


@pytest.mark.usefixtures("eager_celery")
def test_saving_re_plans_the_booked_visits_in_the_background_and_is_audited(
    clinic, infusion, admin, booked, django_capture_on_commit_callbacks
) -> None:
    assert prep_due(booked) == {VISIT - timedelta(hours=48)}
    evening = set(
        OutboundMessage.objects.filter(
            appointment=booked, kind=MessageKind.EVENING_BEFORE
        ).values_list("due_at", flat=True)
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(page(clinic, infusion), form_data(infusion, prep__hours="72"))

    assert response.status_code == 302
    assert response["Location"] == page(clinic, infusion)
    assert prep_due(booked) == {VISIT - timedelta(hours=72)}
    assert (
        set(
            OutboundMessage.objects.filter(
                appointment=booked, kind=MessageKind.EVENING_BEFORE
            ).values_list("due_at", flat=True)
        )
        == evening
    )
    job = ReplanJob.objects.get()
    assert (job.status, job.kinds, job.total, job.done) == (
        ReplanStatus.DONE,
        [MessageKind.PREP],
        1,
        1,
    )
    assert job.appointment_type == infusion
    rule = ReminderRule.objects.get(appointment_type=infusion, kind=MessageKind.PREP)
    assert rule.offset_minutes == 72 * 60
    event = AuditEvent.objects.get(object_type="appointmenttype", object_id=str(infusion.pk))
    assert event.location_id == clinic.pk
    assert event.detail["setup"] is True
    assert event.detail["changed"] == ["reminder_rule.prep.offset_minutes"]
    assert event.detail["replan_job"] == job.pk

    shown = admin.get(page(clinic, infusion)).content.decode()
    assert 'id="replan-progress"' in shown
    assert "Done: the messages of 1 booked visit follow these rules" in shown


@pytest.mark.usefixtures("eager_celery")
def test_a_new_rule_and_a_switched_off_one_are_re_planned(
    clinic, consultation, admin, make_patient, django_capture_on_commit_callbacks
) -> None:
    visit = appointment_book(
        appointment_type=consultation,
        patient=make_patient(sms_consent=True),
        start=VISIT,
        now=NOW,
    )
    assert not prep_due(visit)
    changes = {
        "prep__is_active": "on",
        "prep__hours": "40",
        "morning_of__is_active": None,
    }

    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(page(clinic, consultation), form_data(consultation, **changes))

    assert response.status_code == 302
    assert prep_due(visit) == {VISIT - timedelta(hours=40)}
    assert set(
        OutboundMessage.objects.filter(appointment=visit, kind=MessageKind.MORNING_OF).values_list(
            "status", flat=True
        )
    ) == {"cancelled"}
    assert sorted(ReplanJob.objects.get().kinds) == [MessageKind.MORNING_OF, MessageKind.PREP]


def test_saving_without_a_change_starts_no_re_plan(clinic, infusion, admin) -> None:
    response = admin.post(page(clinic, infusion), form_data(infusion), follow=True)

    assert response.status_code == 200
    assert "Nothing changed" in response.content.decode()
    assert not ReplanJob.objects.exists()
    assert not AuditEvent.objects.filter(object_type="appointmenttype").exists()


def test_a_follow_up_is_saved_as_minutes_after_the_start(
    clinic, infusion, admin, django_capture_on_commit_callbacks, eager_celery
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        admin.post(page(clinic, infusion), form_data(infusion, follow_up__hours="5"))

    rule = ReminderRule.objects.get(appointment_type=infusion, kind=MessageKind.FOLLOW_UP)
    assert rule.offset_minutes == -5 * 60
    assert rule.channels == [Channel.EMAIL]


# --- The job's progress --------------------------------------------------------------------


def test_the_progress_endpoint_gives_status_total_and_done(clinic, infusion, admin) -> None:
    job = ReplanJob.objects.create(
        appointment_type=infusion,
        kinds=["prep"],
        created_at=NOW,
        status=ReplanStatus.RUNNING,
        total=40,
        done=15,
    )

    response = admin.get(f"/staff/setup/{clinic.pk}/reminders/jobs/{job.pk}/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "id": job.pk,
        "status": "running",
        "status_label": "Running",
        "total": 40,
        "done": 15,
        "finished": False,
        "error": "",
        "finished_at": None,
        "finished_at_label": "",
    }
    shown = admin.get(page(clinic, infusion)).content.decode()
    assert f'data-job-url="/staff/setup/{clinic.pk}/reminders/jobs/{job.pk}/"' in shown
    assert 'max="40" value="15"' in shown
    assert "Re-planning: 15 of 40 booked visits done." in shown
    assert f'<a href="{page(clinic, infusion)}">Refresh</a>' in shown


def test_another_locations_job_is_not_found(clinic, infusion, make_location) -> None:
    job = ReplanJob.objects.create(appointment_type=infusion, kinds=["prep"], created_at=NOW)
    elsewhere = make_location()
    admin_elsewhere = client_for(staff_user(Role.ADMIN, elsewhere))

    response = admin_elsewhere.get(f"/staff/setup/{elsewhere.pk}/reminders/jobs/{job.pk}/")

    assert response.status_code == 404
