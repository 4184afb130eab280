"""The conditions list and screening questions a new location's booking form starts with."""

from __future__ import annotations

from django.db import transaction

from booking.models import IntakeOption, IntakeOptionKind
from scheduling.models import Location

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
