"""What a new location starts with: the conditions list and screening questions of its booking
form, and the series templates of DESIGN §2 as protocols.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from booking.models import Contraindication, IntakeOption, IntakeOptionKind, Protocol
from scheduling.models import AppointmentType, Location

DEFAULT_CONDITIONS = (
    "Depression",
    "Anxiety",
    "Post-traumatic stress",
    "Obsessive-compulsive symptoms",
    "Chronic pain",
    "Something else, or not sure",
)

# Yes/no questions that make a prescriber look twice before a first visit. A "yes" does not
# refuse the booking: it puts the answer in front of the prescriber at the consultation.
DEFAULT_SCREENING = (
    "Do you have high blood pressure that is not controlled by medication?",
    "Have you ever been diagnosed with schizophrenia or another psychotic disorder?",
    "Are you pregnant, breastfeeding, or could you be pregnant?",
    "Have you had a heart attack, stroke or serious heart condition in the last six months?",
    "Have you ever had a serious reaction to an anaesthetic or sedative?",
)


@transaction.atomic
def intake_options_install_defaults(*, location: Location) -> list[IntakeOption]:
    """Give ``location`` the default conditions and screening questions, unless it already has
    its own (a clinic's edited list is never overwritten)."""
    if IntakeOption.objects.filter(location=location).exists():
        return []
    rows = [
        IntakeOption(location=location, kind=IntakeOptionKind.CONDITION, text=text, position=n)
        for n, text in enumerate(DEFAULT_CONDITIONS)
    ] + [
        IntakeOption(location=location, kind=IntakeOptionKind.SCREENING, text=text, position=n)
        for n, text in enumerate(DEFAULT_SCREENING)
    ]
    return IntakeOption.objects.bulk_create(rows)


# What a prescriber asks about before approving ketamine or esketamine (DESIGN §2; the ASKP3
# consensus and the Spravato label), as (slug, label). The first six were the decision's own
# fields before the list became the clinic's to edit: their slugs are the old field names.
DEFAULT_CONTRAINDICATIONS = (
    ("uncontrolled_hypertension", "Uncontrolled high blood pressure"),
    ("psychosis_history", "History of psychosis"),
    ("pregnancy", "Pregnancy"),
    ("recent_cardiac_event", "Recent heart attack, stroke or other cardiac event"),
    ("substance_use_concern", "Active substance use"),
    ("anaesthesia_reaction", "Past serious reaction to ketamine or an anaesthetic"),
    ("arrhythmia", "Arrhythmia"),
    ("seizure_disorder", "Seizure disorder"),
    ("raised_intracranial_pressure", "Raised intracranial or intraocular pressure"),
    ("mania", "Current or recent mania"),
    ("breastfeeding", "Breastfeeding"),
)


@transaction.atomic
def contraindications_install_defaults() -> list[Contraindication]:
    """Install the default contraindications, unless the clinic already has a list of its own
    (an edited list is never overwritten)."""
    if Contraindication.objects.exists():
        return []
    return Contraindication.objects.bulk_create(
        Contraindication(slug=slug, label=label, position=n)
        for n, (slug, label) in enumerate(DEFAULT_CONTRAINDICATIONS)
    )


EVERY_DAY = "0123456"
MONDAY_TO_SATURDAY = "012345"


@dataclass(frozen=True)
class ProtocolDefault:
    appointment_type: str  # the slug of a default appointment type
    slug: str
    name: str
    sessions: int
    min_gap_days: int
    max_gap_days: int
    window_days: int
    allowed_weekdays: str = EVERY_DAY
    same_time_preference: bool = True
    review_after_session: int | None = None
    min_days_since_last: int = 0


# Gaps count calendar days between session starts in the clinic's zone (see Protocol).
DEFAULT_PROTOCOLS: tuple[ProtocolDefault, ...] = (
    # Six infusions with a free day between them (Mon-Wed-Fri), starts at most a week apart, all
    # within three weeks; the prescriber reviews the response after the second.
    ProtocolDefault(
        appointment_type="iv-mood",
        slug="mood-induction",
        name="Mood induction series",
        sessions=6,
        min_gap_days=2,
        max_gap_days=7,
        window_days=21,
        allowed_weekdays=MONDAY_TO_SATURDAY,
        review_after_session=2,
    ),
    # Five long infusions on consecutive days: weekends included, or the run would break.
    ProtocolDefault(
        appointment_type="iv-pain",
        slug="pain-series",
        name="Pain series",
        sessions=5,
        min_gap_days=1,
        max_gap_days=1,
        window_days=5,
    ),
    # Twice a week for four weeks.
    ProtocolDefault(
        appointment_type="spravato",
        slug="spravato-induction",
        name="Spravato induction",
        sessions=8,
        min_gap_days=2,
        max_gap_days=5,
        window_days=28,
        allowed_weekdays=MONDAY_TO_SATURDAY,
    ),
    # One session, at least two weeks after the last infusion.
    ProtocolDefault(
        appointment_type="booster",
        slug="booster",
        name="Booster",
        sessions=1,
        min_gap_days=1,
        max_gap_days=1,
        window_days=1,
        allowed_weekdays=MONDAY_TO_SATURDAY,
        min_days_since_last=14,
    ),
)


@transaction.atomic
def protocols_install_defaults(*, location: Location) -> list[Protocol]:
    """Create the default protocols for the location's default appointment types.

    Existing protocols (same type and slug) are left as the clinic edited them; a default whose
    appointment type the location does not have is skipped.
    """
    types = {
        t.slug: t
        for t in AppointmentType.objects.filter(
            location=location, slug__in={d.appointment_type for d in DEFAULT_PROTOCOLS}
        )
    }
    installed = []
    for default in DEFAULT_PROTOCOLS:
        appointment_type = types.get(default.appointment_type)
        if appointment_type is None:
            continue
        protocol, _ = Protocol.objects.get_or_create(
            appointment_type=appointment_type,
            slug=default.slug,
            defaults={
                "name": default.name,
                "sessions": default.sessions,
                "min_gap_days": default.min_gap_days,
                "max_gap_days": default.max_gap_days,
                "window_days": default.window_days,
                "allowed_weekdays": default.allowed_weekdays,
                "same_time_preference": default.same_time_preference,
                "review_after_session": default.review_after_session,
                "min_days_since_last": default.min_days_since_last,
            },
        )
        installed.append(protocol)
    return installed
