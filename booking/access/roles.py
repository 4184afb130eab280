"""Roles and permissions: what each kind of staff account may do.

A role is a Django group whose permissions are kept here, in code, and re-synced after every
migration (``sync_roles``): what a front-desk account may do is reviewed like any other change.
The permission constants are the one table views, the API, the services and the tests' permission
matrix read; :func:`is_prescriber` is the one definition of a prescriber.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission

from booking.models import StaffProfile

# The permission of the prescriber role: deciding eligibility, and revoking what it authorised.
PRESCRIBE = "booking.add_eligibilitydecision"


class Role:
    FRONT_DESK = "Front desk"
    NURSE = "Nurse"
    PRESCRIBER = "Prescriber"
    ADMIN = "Admin"


# What each action on a visit needs. Views, the API and the tests' permission matrix all read
# this one table.
VIEW = "booking.view_appointment"
BOOK = "booking.add_appointment"
CHANGE = "booking.change_appointment"  # reschedule, cancel, checklist items the desk records
CHECK_IN = "booking.check_in_appointment"  # check in, no-show
CARE = "booking.care_appointment"  # in chair, recovering, escort present, discharge
REVIEW_MEDICATIONS = "booking.review_medications"
OVERRIDE_CHECKLIST = "booking.override_checklist"
VIEW_AUDIT = "booking.view_auditevent"
MANAGE_WAITLIST = "booking.change_waitlistentry"
# Setting the clinic up (/staff/setup/): locations, people and hours, types, rules, accounts.
SETUP = "booking.manage_setup"

_DESK = [
    VIEW,
    BOOK,
    CHANGE,
    CHECK_IN,
    "booking.view_patient",
    "booking.view_waitlistentry",
    "booking.add_waitlistentry",
    MANAGE_WAITLIST,
    "booking.view_series",
    "booking.view_treatmentplan",
]
_CLINICAL = [VIEW, CHECK_IN, CARE, REVIEW_MEDICATIONS, OVERRIDE_CHECKLIST, "booking.view_patient"]
_PRESCRIBING = [
    PRESCRIBE,
    "booking.view_eligibilitydecision",
    "booking.add_treatmentplan",
    "booking.change_treatmentplan",
    "booking.view_treatmentplan",
    "booking.add_series",
    "booking.change_series",
    "booking.view_series",
    "booking.add_scheduleoverride",
]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    Role.FRONT_DESK: _DESK,
    Role.NURSE: [*_CLINICAL, "booking.view_series"],
    Role.PRESCRIBER: [*_CLINICAL, BOOK, CHANGE, *_PRESCRIBING],
    # The clinic's administrator runs the desk and reads the audit log; the clinical steps
    # (medication review, overriding the checklist, chair, recovery, discharge) stay with nurses
    # and prescribers. Someone who is both is given both groups.
    Role.ADMIN: [*_DESK, VIEW_AUDIT, "booking.change_patient", SETUP],
}


def sync_roles(**_: Any) -> None:
    """Create the role groups and set exactly the permissions ``ROLE_PERMISSIONS`` gives them
    (a ``post_migrate`` receiver, so a fresh database has its roles)."""
    for name, perms in ROLE_PERMISSIONS.items():
        group, _created = Group.objects.get_or_create(name=name)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".")
            found = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if found is not None:
                wanted.append(found)
        group.permissions.set(wanted)


def is_prescriber(user: Any) -> bool:
    """The one definition of a prescriber: an active, signed-in account whose role may decide
    eligibility. Every prescriber-only step (decisions, revocation, series review, cadence
    overrides) and the API's ``Prescribes`` permission ask this, so a 403 there and a refusal
    in a service never disagree."""
    return bool(
        user is not None and user.is_authenticated and user.is_active and user.has_perm(PRESCRIBE)
    )


def may_flag_contraindication(user: Any) -> bool:
    """Who may flag a contraindication present after the decision: whoever cares for the patient
    in the chair (a nurse) or prescribes. The service refuses anybody else; pages ask this to show
    the form."""
    return is_prescriber(user) or bool(user.has_perm(CARE))


def may_record_allergies(user: Any) -> bool:
    """Who may record a patient's allergies: whoever reviews the medications they sit beside, or
    the desk that takes the patient's details."""
    return bool(user.has_perm(REVIEW_MEDICATIONS) or user.has_perm(CHANGE))


def is_staff_member(user: Any) -> bool:
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and (user.is_superuser or StaffProfile.objects.filter(user=user).exists())
    )
