"""Intake questions on the setup pages (issue #16): a location's conditions and screening
questions (add, reword, reorder, retire, never deleted; answers keep the wording the patient
saw), and the clinic-wide contraindications (add, relabel, retire; deleted only if never
answered). Every change is audited; another location's list is a 404."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client

from booking.access.roles import Role
from booking.defaults import intake_options_install_defaults
from booking.eligibility import contraindications_asked
from booking.models import (
    AuditEvent,
    Contraindication,
    ContraindicationAnswer,
    Intake,
    IntakeOption,
    IntakeOptionKind,
)
from scheduling.models import AppointmentType, Location
from tests.staff_helpers import client_for, staff_user

# Tuesday 1 December 2026, 09:00 in New York; the consultation at 09:00 the next day is free.
NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
NINE_AM = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
TWO_PM = datetime(2026, 12, 2, 19, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def form_location(clinic: Location) -> Location:
    """The clinic with the default questions, booking online bookings at once (the booking
    held until the patient confirms by e-mail is tested with booking.online)."""
    Location.objects.filter(pk=clinic.pk).update(verify_online_bookings=False)
    clinic.refresh_from_db()
    intake_options_install_defaults(location=clinic)
    return clinic


@pytest.fixture
def admin(form_location: Location) -> User:
    return staff_user(Role.ADMIN, form_location)


@pytest.fixture
def browser(admin: User) -> Client:
    return client_for(admin)


def intake_url(location: Location) -> str:
    return f"/staff/setup/{location.pk}/intake/"


def option_url(option: IntakeOption) -> str:
    return f"/staff/setup/{option.location_id}/intake/{option.pk}/"


def screening(location: Location) -> list[IntakeOption]:
    return list(
        IntakeOption.objects.filter(
            location=location, kind=IntakeOptionKind.SCREENING, is_active=True
        ).order_by("position", "pk")
    )


def details_page(location: Location) -> str:
    """The patient's booking form for a consultation at 14:00 tomorrow (a time no test
    books)."""
    response = Client().get(
        f"/book/{location.slug}/consultation/details/", {"start": TWO_PM.isoformat()}
    )
    assert response.status_code == 200
    return response.text


def book_online(location: Location, **changes: Any) -> Intake:
    """Book the consultation through the public form, every screening question answered."""
    options = IntakeOption.objects.filter(location=location, is_active=True)
    data: dict[str, Any] = {
        "start": NINE_AM.isoformat(),
        "first_name": "Ada",
        "last_name": "Lovelace",
        "date_of_birth": "1985-12-10",
        "email": "ada@example.com",
        "phone": "(212) 555-0199",
        "conditions": [str(o.pk) for o in options.filter(kind=IntakeOptionKind.CONDITION)[:1]],
        "medications": "",
        "prior_treatments": "",
        "website": "",
        **{f"screening_{o.pk}": "no" for o in options.filter(kind=IntakeOptionKind.SCREENING)},
        **changes,
    }
    response = Client().post(f"/book/{location.slug}/consultation/confirm/", data)
    assert response.status_code == 303, response.content.decode()[:2000]
    return Intake.objects.get()


def last_setup_event(user: User) -> AuditEvent:
    event = AuditEvent.objects.filter(user=user).order_by("-pk").first()
    assert event is not None
    assert event.detail["setup"] is True
    return event


# --- Who may ------------------------------------------------------------------------------------


def test_the_admin_sees_the_forms_questions_in_order(
    browser: Client, form_location: Location
) -> None:
    response = browser.get(intake_url(form_location))

    assert response.status_code == 200
    html = response.text
    texts = [o.text for o in screening(form_location)]
    positions = [html.index(text) for text in texts]
    assert positions == sorted(positions)
    assert "Chronic pain" in html
    assert 'aria-current="page">Intake questions' in html


def test_another_locations_questions_are_not_found(
    browser: Client, form_location: Location, make_location: Any
) -> None:
    elsewhere = make_location(name="Uptown Clinic")
    intake_options_install_defaults(location=elsewhere)
    theirs = IntakeOption.objects.filter(location=elsewhere).first()
    assert theirs is not None

    assert browser.get(intake_url(elsewhere)).status_code == 404
    assert (
        browser.post(intake_url(elsewhere), {"kind": "screening", "text": "Hi?"}).status_code == 404
    )
    # Their question through our location's address: still not ours.
    sneaky = f"/staff/setup/{form_location.pk}/intake/{theirs.pk}/"
    assert browser.post(sneaky, {"action": "retire"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.is_active


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.NURSE, Role.PRESCRIBER])
def test_staff_without_the_setup_permission_are_refused(form_location: Location, role: str) -> None:
    client = client_for(staff_user(role, form_location))
    option = screening(form_location)[0]

    assert client.get(intake_url(form_location)).status_code == 403
    assert client.post(option_url(option), {"action": "retire"}).status_code == 403
    assert client.get("/staff/setup/contraindications/").status_code == 403
    option.refresh_from_db()
    assert option.is_active


# --- Add, reword, reorder, retire ---------------------------------------------------------------


def test_an_added_question_is_on_the_booking_form_at_the_end(
    browser: Client, admin: User, form_location: Location
) -> None:
    text = "Do you take a medicine for epilepsy?"

    response = browser.post(intake_url(form_location), {"kind": "screening", "text": f" {text} "})

    assert response.status_code == 302
    added = IntakeOption.objects.get(text=text)
    assert screening(form_location)[-1] == added
    html = details_page(form_location)
    assert f"<legend>{text}</legend>" in html
    assert html.index(text) > html.index(screening(form_location)[0].text)
    event = last_setup_event(admin)
    assert (event.action, event.object_type, event.object_id) == (
        "create",
        "intakeoption",
        str(added.pk),
    )
    assert event.location_id == form_location.pk


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"kind": "screening", "text": "   "}, "id_text"),
        ({"kind": "", "text": "A new question?"}, "id_kind"),
        ({"kind": "condition", "text": "chronic PAIN"}, "id_text"),  # already on the form
    ],
)
def test_a_question_it_cannot_add_is_refused_naming_the_field(
    browser: Client, form_location: Location, data: dict[str, str], field: str
) -> None:
    before = IntakeOption.objects.count()

    response = browser.post(intake_url(form_location), data)

    assert response.status_code == 400
    assert f'href="#{field}"' in response.text
    assert IntakeOption.objects.count() == before


def test_rewording_changes_the_form_and_never_a_past_answer(
    browser: Client, admin: User, form_location: Location
) -> None:
    question = screening(form_location)[0]
    seen = question.text
    intake = book_online(form_location, **{f"screening_{question.pk}": "yes"})
    assert {"question": seen, "answer": True} in intake.screening
    reworded = "Is your blood pressure high even with medication?"

    response = browser.post(option_url(question), {"action": "reword", "text": reworded})

    assert response.status_code == 302
    question.refresh_from_db()
    assert question.text == reworded
    intake.refresh_from_db()
    assert {"question": seen, "answer": True} in intake.screening
    assert all(answer["question"] != reworded for answer in intake.screening)
    html = details_page(form_location)
    assert f"<legend>{reworded}</legend>" in html
    assert seen not in html
    event = last_setup_event(admin)
    assert (event.action, event.detail["changed"], event.detail["was"]) == (
        "update",
        ["text"],
        seen,
    )


def test_a_condition_reworded_leaves_the_patients_chosen_wording(
    browser: Client, form_location: Location
) -> None:
    condition = IntakeOption.objects.get(location=form_location, text="Depression")
    intake = book_online(form_location, conditions=[str(condition.pk)])

    browser.post(option_url(condition), {"action": "reword", "text": "Low mood or depression"})

    intake.refresh_from_db()
    assert intake.conditions == ["Depression"]
    assert "Low mood or depression" in details_page(form_location)


def test_an_empty_rewording_is_refused_on_its_row(browser: Client, form_location: Location) -> None:
    question = screening(form_location)[1]

    response = browser.post(option_url(question), {"action": "reword", "text": " "})

    assert response.status_code == 400
    assert f'href="#option-{question.pk}"' in response.text
    assert 'aria-invalid="true"' in response.text
    before = question.text
    question.refresh_from_db()
    assert question.text == before


def test_moving_a_question_reorders_the_booking_form(
    browser: Client, admin: User, form_location: Location
) -> None:
    first, second, *_ = screening(form_location)

    assert browser.post(option_url(first), {"action": "down"}).status_code == 302

    assert screening(form_location)[:2] == [second, first]
    html = details_page(form_location)
    assert html.index(second.text) < html.index(first.text)
    assert last_setup_event(admin).detail["changed"] == ["position"]
    # The first cannot move further up: nothing changes, nothing is logged.
    events = AuditEvent.objects.count()
    browser.post(option_url(second), {"action": "up"})
    assert screening(form_location)[:2] == [second, first]
    assert AuditEvent.objects.count() == events


def test_a_retired_question_leaves_the_form_but_is_kept_and_can_come_back(
    browser: Client, admin: User, form_location: Location
) -> None:
    question = screening(form_location)[0]

    browser.post(option_url(question), {"action": "retire"})

    question.refresh_from_db()
    assert not question.is_active
    assert question.text not in details_page(form_location)
    # A booking made now answers the remaining questions only.
    assert len(book_online(form_location).screening) == len(screening(form_location))
    assert last_setup_event(admin).detail["changed"] == ["is_active"]
    assert "Retired" in browser.get(intake_url(form_location)).text

    browser.post(option_url(question), {"action": "restore"})

    question.refresh_from_db()
    assert question.is_active
    assert screening(form_location)[-1] == question
    assert question.text in details_page(form_location)


def test_no_button_deletes_a_question(browser: Client, form_location: Location) -> None:
    question = screening(form_location)[0]

    response = browser.post(option_url(question), {"action": "delete"})

    assert response.status_code == 400
    assert IntakeOption.objects.filter(pk=question.pk, is_active=True).exists()
    assert browser.get(option_url(question)).status_code == 405


# --- Contraindications --------------------------------------------------------------------------

CONTRAINDICATIONS = "/staff/setup/contraindications/"


def row_url(row: Contraindication) -> str:
    return f"{CONTRAINDICATIONS}{row.pk}/"


@pytest.fixture
def listed(db: None) -> list[Contraindication]:
    return contraindications_asked()


def test_any_admin_edits_the_clinics_contraindications(
    browser: Client, admin: User, listed: list[Contraindication]
) -> None:
    page = browser.get(CONTRAINDICATIONS)
    assert page.status_code == 200
    assert listed[0].label in page.text

    response = browser.post(CONTRAINDICATIONS, {"label": "Uncontrolled glaucoma"})

    assert response.status_code == 302
    added = Contraindication.objects.get(label="Uncontrolled glaucoma")
    assert added.slug == "uncontrolled-glaucoma"
    assert contraindications_asked()[-1] == added
    event = last_setup_event(admin)
    assert (event.action, event.object_type, event.location_id) == (
        "create",
        "contraindication",
        None,
    )


def test_a_relabelled_contraindication_is_asked_with_its_new_label(
    browser: Client, admin: User, listed: list[Contraindication]
) -> None:
    row = listed[0]
    was = row.label

    browser.post(row_url(row), {"action": "relabel", "label": "High blood pressure, uncontrolled"})

    row.refresh_from_db()
    assert row.label == "High blood pressure, uncontrolled"
    assert contraindications_asked()[0].label == row.label
    assert last_setup_event(admin).detail["was"] == was


def test_a_duplicate_label_is_refused_naming_the_field(
    browser: Client, listed: list[Contraindication]
) -> None:
    response = browser.post(CONTRAINDICATIONS, {"label": listed[1].label.upper()})

    assert response.status_code == 400
    assert 'href="#id_label"' in response.text
    assert Contraindication.objects.filter(label__iexact=listed[1].label).count() == 1


def test_a_retired_contraindication_is_no_longer_asked(
    browser: Client, listed: list[Contraindication]
) -> None:
    row = listed[2]

    browser.post(row_url(row), {"action": "retire"})

    assert row not in contraindications_asked()
    assert Contraindication.objects.filter(pk=row.pk, is_active=False).exists()

    browser.post(row_url(row), {"action": "restore"})

    assert contraindications_asked()[-1] == row


def test_only_a_contraindication_never_answered_may_be_deleted(
    browser: Client,
    admin: User,
    listed: list[Contraindication],
    make_patient: Any,
) -> None:
    answered, unanswered = listed[0], listed[1]
    ContraindicationAnswer.objects.create(
        patient=make_patient(),
        contraindication=answered,
        present=False,
        recorded_by=admin,
        recorded_at=NOW,
    )
    page = browser.get(CONTRAINDICATIONS).text
    assert 'aria-label="Delete contraindication 1, never answered"' not in page
    assert 'aria-label="Delete contraindication 2, never answered"' in page

    refused = browser.post(row_url(answered), {"action": "delete"})

    assert refused.status_code == 400
    assert "retire it instead" in refused.text
    assert Contraindication.objects.filter(pk=answered.pk).exists()

    deleted = browser.post(row_url(unanswered), {"action": "delete"})

    assert deleted.status_code == 302
    assert not Contraindication.objects.filter(pk=unanswered.pk).exists()
    event = last_setup_event(admin)
    assert (event.action, event.object_id, event.detail["label"]) == (
        "delete",
        str(unanswered.pk),
        unanswered.label,
    )


def test_a_type_of_visit_still_books_with_no_screening_question(
    browser: Client, form_location: Location
) -> None:
    for question in screening(form_location):
        browser.post(option_url(question), {"action": "retire"})

    assert book_online(form_location).screening == []
    assert AppointmentType.objects.filter(location=form_location, slug="consultation").exists()
