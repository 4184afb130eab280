"""A clean start (issue #16): ``clinic_create`` and its command install a new location's
defaults, announce it, and make no accounts, staff, chairs or demo data."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from booking.clinic import ClinicInvalid, clinic_create, clinic_set_up
from booking.defaults import (
    DEFAULT_CONDITIONS,
    DEFAULT_CONTRAINDICATIONS,
    DEFAULT_PROTOCOLS,
    DEFAULT_SCREENING,
)
from booking.models import (
    AuditEvent,
    Contraindication,
    IntakeOption,
    IntakeOptionKind,
    Protocol,
    StaffProfile,
)
from booking.signals import location_set_up
from notifications.models import ReminderRule
from scheduling.defaults import DEFAULT_TYPES
from scheduling.models import AppointmentType, Location, Resource, WorkingHours
from tests.booking.test_concurrency import BOOKED, together

RIVERSIDE = {
    "name": "Riverside Ketamine Clinic (NYC)",
    "public_name": "Riverside Health",
    "timezone": "America/New_York",
}


def run(*args: str) -> str:
    out = StringIO()
    call_command("clinic_create", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_it_installs_every_default_and_nothing_else_from_an_empty_database() -> None:
    assert not Location.objects.exists()

    location = clinic_create(**RIVERSIDE, address="100 Hudson St", phone="+12125550100")

    assert location.slug == "riverside-ketamine-clinic-nyc"
    assert (location.address, location.phone) == ("100 Hudson St", "+12125550100")
    types = AppointmentType.objects.filter(location=location)
    assert sorted(types.values_list("slug", flat=True)) == sorted(t.slug for t in DEFAULT_TYPES)
    assert sorted(
        Protocol.objects.filter(appointment_type__location=location).values_list("slug", flat=True)
    ) == sorted(p.slug for p in DEFAULT_PROTOCOLS)
    intake = IntakeOption.objects.filter(location=location, is_active=True)
    assert list(
        intake.filter(kind=IntakeOptionKind.CONDITION).values_list("text", flat=True)
    ) == list(DEFAULT_CONDITIONS)
    assert list(
        intake.filter(kind=IntakeOptionKind.SCREENING).values_list("text", flat=True)
    ) == list(DEFAULT_SCREENING)
    assert Contraindication.objects.filter(is_active=True).exists()
    # Every type has its reminder schedule: the consultation two rules, a treatment five.
    for appointment_type in types:
        rules = ReminderRule.objects.filter(appointment_type=appointment_type)
        assert rules.count() == (2 if appointment_type.slug == "consultation" else 5)
    # A clean start: no sign-in, no staff, no chairs or rooms, no hours.
    assert not User.objects.exists()
    assert not StaffProfile.objects.exists()
    assert not Resource.objects.exists()
    assert not WorkingHours.objects.exists()


@pytest.mark.django_db
def test_it_announces_the_new_location_inside_its_transaction() -> None:
    heard: list[tuple[str, bool]] = []

    def listener(sender: type, location: Location, **kwargs: object) -> str:
        # The defaults are in by the time receivers hear of it.
        heard.append((location.slug, AppointmentType.objects.filter(location=location).exists()))
        return "1 thing from a listener"

    location_set_up.connect(listener, dispatch_uid="test-listener")
    try:
        set_up = clinic_set_up(**RIVERSIDE, slug="riverside")
    finally:
        location_set_up.disconnect(dispatch_uid="test-listener")

    assert heard == [("riverside", True)]
    assert "1 thing from a listener" in set_up.summary()
    assert any(line.endswith("reminder rules") for line in set_up.announced)


@pytest.mark.django_db
def test_a_second_call_with_the_same_slug_is_refused_naming_the_slug() -> None:
    clinic_create(**RIVERSIDE, slug="riverside")
    counts = (AppointmentType.objects.count(), IntakeOption.objects.count())

    with pytest.raises(ClinicInvalid) as refused:
        clinic_create(**RIVERSIDE, slug="riverside")

    assert refused.value.field == "slug"
    assert "slug" in refused.value.message.lower()
    assert Location.objects.count() == 1
    assert (AppointmentType.objects.count(), IntakeOption.objects.count()) == counts


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"public_name": "  "}, "public_name"),
        ({"public_name": "Riverside Ketamine"}, "public_name"),
        ({"name": ""}, "name"),
        ({"slug": "not a slug!"}, "slug"),
    ],
)
def test_invalid_details_are_refused_naming_the_field(changes: dict[str, str], field: str) -> None:
    with pytest.raises(ClinicInvalid) as refused:
        clinic_create(**{**RIVERSIDE, **changes})

    assert refused.value.field == field
    assert refused.value.message.startswith(field.replace("_", " ").capitalize() + ":")
    assert not Location.objects.exists()
    assert not AppointmentType.objects.exists()


@pytest.mark.django_db
def test_whoever_creates_it_from_a_staff_account_works_there() -> None:
    user = User.objects.create_superuser("owner", "owner@example.com", "unused")
    profile = StaffProfile.objects.create(user=user)

    location = clinic_create(**RIVERSIDE, by=user)

    assert list(profile.locations.all()) == [location]


@pytest.mark.django_db
def test_the_command_prints_what_it_installed() -> None:
    out = run(
        "--name",
        "Foothills Infusion Center",
        "--public-name",
        "Foothills Health",
        "--timezone",
        "America/Denver",
        "--slug",
        "foothills",
        "--phone",
        "+13035550100",
    )

    location = Location.objects.get(slug="foothills")
    assert location.timezone == "America/Denver"
    assert f"{len(DEFAULT_TYPES)} appointment types" in out
    assert f"{len(DEFAULT_PROTOCOLS)} protocols" in out
    assert f"{len(DEFAULT_CONDITIONS) + len(DEFAULT_SCREENING)} intake questions" in out
    rules = ReminderRule.objects.filter(appointment_type__location=location).count()
    assert f"{rules} reminder rules" in out
    assert f"/staff/setup/{location.pk}/" in out
    assert not User.objects.exists()
    assert AuditEvent.objects.filter(
        object_type="location", object_id=str(location.pk), action="create"
    ).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--timezone", "Nowhere/Special"], "--timezone"),
        (["--slug", "riverside"], "--slug"),
    ],
)
def test_the_command_names_the_field_it_refuses(args: list[str], flag: str) -> None:
    clinic_create(**RIVERSIDE, slug="riverside")
    base = {"--name": "Second", "--public-name": "Second Health", "--timezone": "UTC"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))

    with pytest.raises(CommandError) as refused:
        run(*[part for pair in base.items() for part in pair])

    assert flag in str(refused.value)
    assert Location.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_people_racing_to_create_one_slug_make_one_location() -> None:
    def attempt(worker: int, round_no: int) -> object:
        # Round 0: everybody the same slug; round 1: each their own, all at once, on a database
        # where round 0 left the clinic-wide list in place.
        slug = "riverside" if round_no == 0 else f"site-{worker}"
        return clinic_create(**RIVERSIDE, slug=slug)

    same, own = together(6, 2, attempt)

    assert same == {BOOKED: 1, "ClinicInvalid": 5}
    assert own == {BOOKED: 6}
    assert Location.objects.count() == 7
    for location in Location.objects.all():
        assert AppointmentType.objects.filter(location=location).count() == len(DEFAULT_TYPES)
        assert IntakeOption.objects.filter(location=location).count() == len(
            DEFAULT_CONDITIONS
        ) + len(DEFAULT_SCREENING)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_first_clinics_created_at_once_share_one_contraindication_list() -> None:
    # A fresh install has none yet (a migration may have added them to the test database).
    Contraindication.objects.all().delete()

    (ended,) = together(4, 1, lambda worker, _: clinic_create(**RIVERSIDE, slug=f"s{worker}"))

    assert ended == {BOOKED: 4}
    assert Contraindication.objects.count() == len(DEFAULT_CONTRAINDICATIONS)
