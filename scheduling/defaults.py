"""The clinic defaults of DESIGN §2 as data: the appointment types a new location starts with."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from scheduling.models import (
    AppointmentKind,
    AppointmentType,
    Location,
    ObservationStart,
    ResourceKind,
    ResourceRequirement,
    StaffRole,
)


@dataclass(frozen=True)
class Hold:
    kind: str
    role: str = ""
    offset: int = 0
    duration: int | None = None
    after: int = 0


@dataclass(frozen=True)
class TypeDefault:
    slug: str
    name: str
    public_name: str
    kind: str
    duration: int
    holds: tuple[Hold, ...]
    # What patients' addresses and the public API call it, when the slug names the treatment.
    public_slug: str = ""
    bookable_online: bool = False
    needs_approval: bool = True
    min_age_years: int = 18
    fasting_solids_hours: int | None = None
    fasting_clear_liquids_hours: int | None = None
    escort_required: bool = False
    no_driving_hours: int = 0
    observation_minutes: int = 0
    observation_from: str = ObservationStart.RECOVERING


# A chair is turned over for 10 minutes after every session; the nurse watches up to three
# chairs for the whole visit, the prescriber is needed for its first 15 minutes.
_CHAIR_SESSION = (
    Hold(ResourceKind.CHAIR, after=10),
    Hold(ResourceKind.STAFF, StaffRole.NURSE),
    Hold(ResourceKind.STAFF, StaffRole.PRESCRIBER, duration=15),
)

DEFAULT_TYPES: tuple[TypeDefault, ...] = (
    TypeDefault(
        slug="consultation",
        name="Comprehensive evaluation",
        public_name="New patient consultation",
        kind=AppointmentKind.CONSULTATION,
        duration=60,
        holds=(
            Hold(ResourceKind.STAFF, StaffRole.PRESCRIBER),
            Hold(ResourceKind.ROOM, after=5),
        ),
        bookable_online=True,
        needs_approval=False,
        min_age_years=0,
    ),
    TypeDefault(
        slug="iv-mood",
        public_slug="treatment-session",
        name="IV ketamine infusion (mood)",
        public_name="Treatment session",
        kind=AppointmentKind.INFUSION,
        duration=90,
        holds=_CHAIR_SESSION,
        fasting_solids_hours=6,
        fasting_clear_liquids_hours=2,
        escort_required=True,
        no_driving_hours=24,
        observation_minutes=40,
    ),
    TypeDefault(
        slug="iv-pain",
        public_slug="extended-session",
        name="IV ketamine infusion (pain)",
        public_name="Extended treatment session",
        kind=AppointmentKind.INFUSION,
        duration=300,
        holds=_CHAIR_SESSION,
        fasting_solids_hours=6,
        fasting_clear_liquids_hours=2,
        escort_required=True,
        no_driving_hours=24,
        observation_minutes=40,
    ),
    TypeDefault(
        slug="spravato",
        public_slug="observed-session",
        name="Spravato session (REMS)",
        public_name="Observed treatment session",
        kind=AppointmentKind.SPRAVATO,
        duration=150,
        holds=_CHAIR_SESSION,
        fasting_solids_hours=2,
        fasting_clear_liquids_hours=None,
        escort_required=True,
        no_driving_hours=24,
        observation_minutes=120,
        observation_from=ObservationStart.SEATED,
    ),
    TypeDefault(
        slug="booster",
        public_slug="follow-up-session",
        name="IV ketamine booster",
        public_name="Follow-up treatment session",
        kind=AppointmentKind.BOOSTER,
        duration=90,
        holds=_CHAIR_SESSION,
        fasting_solids_hours=6,
        fasting_clear_liquids_hours=2,
        escort_required=True,
        no_driving_hours=24,
        observation_minutes=40,
    ),
)


@transaction.atomic
def appointment_types_install_defaults(*, location: Location) -> list[AppointmentType]:
    """Create the default appointment types at ``location`` (existing slugs are left alone)."""
    created = []
    for default in DEFAULT_TYPES:
        appointment_type, was_created = AppointmentType.objects.get_or_create(
            location=location,
            slug=default.slug,
            defaults={
                "name": default.name,
                "public_name": default.public_name,
                "public_slug": default.public_slug,
                "kind": default.kind,
                "duration_minutes": default.duration,
                "bookable_online": default.bookable_online,
                "needs_approval": default.needs_approval,
                "min_age_years": default.min_age_years,
                "fasting_solids_hours": default.fasting_solids_hours,
                "fasting_clear_liquids_hours": default.fasting_clear_liquids_hours,
                "escort_required": default.escort_required,
                "no_driving_hours": default.no_driving_hours,
                "observation_minutes": default.observation_minutes,
                "observation_from": default.observation_from,
            },
        )
        if was_created:
            ResourceRequirement.objects.bulk_create(
                ResourceRequirement(
                    appointment_type=appointment_type,
                    resource_kind=hold.kind,
                    role=hold.role,
                    offset_minutes=hold.offset,
                    duration_minutes=hold.duration,
                    buffer_after_minutes=hold.after,
                )
                for hold in default.holds
            )
        created.append(appointment_type)
    return created
