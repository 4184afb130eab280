"""A clean start: a new location with the defaults a clinic starts from, and nothing else; then
the lists a clinic keeps as its own (the booking form's questions, the contraindications).

:func:`clinic_create` is the one way a location comes to exist outside a test: the
``clinic_create`` command, the first-run page and the "add a location" page call it, and the demo
(``seed_demo``) builds on it, so a real clinic and the demo start from the same defaults. It
installs the default appointment types, their protocols, the booking form's intake questions and
the clinic-wide contraindication list, then announces ``location_set_up`` (booking.signals) so
notifications installs the reminder rules of the new types, all in one transaction. It creates no
sign-in, no staff, chairs or rooms and no demo data: those are the clinic's own, added from the
setup pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from booking.defaults import (
    contraindications_install_defaults,
    intake_options_install_defaults,
    protocols_install_defaults,
)
from booking.errors import BookingError
from booking.models import (
    Contraindication,
    IntakeOption,
    IntakeOptionKind,
    Protocol,
    StaffProfile,
)
from booking.signals import location_set_up
from scheduling.defaults import appointment_types_install_defaults
from scheduling.models import AppointmentType, Location

# The order a form or the command names the fields in, so the first error reported is the first
# field a person would look at.
FIELDS = ("name", "public_name", "timezone", "slug", "address", "phone")


class ClinicInvalid(BookingError):
    """The new location's details are refused; ``field`` names the one to fix, ``message``
    starts with its label, ``reason`` is the message without it (for a form that shows the
    label itself)."""

    code = "invalid_location"

    def __init__(self, reason: str, *, field: str) -> None:
        label = field.replace("_", " ").capitalize()
        super().__init__(f"{label}: {reason}", field=field)
        self.reason = reason


@dataclass
class ClinicSetUp:
    """What :func:`clinic_set_up` made: the location and the defaults installed for it.

    ``announced`` holds the lines the ``location_set_up`` receivers returned (e.g. notifications'
    "12 reminder rules"), so the command can say what was installed without booking importing
    the apps that installed it."""

    location: Location
    appointment_types: list[AppointmentType] = field(default_factory=list)
    protocols: list[Protocol] = field(default_factory=list)
    intake_options: list[IntakeOption] = field(default_factory=list)
    contraindications: list[Contraindication] = field(default_factory=list)
    announced: list[str] = field(default_factory=list)

    def summary(self) -> list[str]:
        """One line per kind of thing installed, for a person to read."""
        lines = [
            f"{len(self.appointment_types)} appointment types: "
            + ", ".join(t.name for t in self.appointment_types),
            f"{len(self.protocols)} protocols: " + ", ".join(p.name for p in self.protocols),
            f"{len(self.intake_options)} intake questions (conditions and screening)",
        ]
        if self.contraindications:
            lines.append(f"{len(self.contraindications)} contraindications (clinic-wide)")
        lines.extend(self.announced)
        return lines


_TAKEN = "another location already has this slug; choose another."


def _refusal(error: ValidationError) -> ClinicInvalid:
    """The first of ``error``'s messages, naming its field, as a :class:`ClinicInvalid`."""
    by_field: dict[str, list[str]] = getattr(error, "message_dict", {"name": error.messages})
    for name in FIELDS:
        if not by_field.get(name):
            continue
        if name == "slug" and any("already exists" in m for m in by_field[name]):
            return ClinicInvalid(_TAKEN, field="slug")
        return ClinicInvalid(by_field[name][0], field=name)
    return ClinicInvalid(error.messages[0], field="name")


def _contraindications_install() -> list[Contraindication]:
    """The clinic-wide defaults, the first time only. Two first clinics created at once would
    both find the list empty: the slower one's insert meets the faster one's rows (the unique
    slug), and the list is there either way."""
    try:
        with transaction.atomic():
            return contraindications_install_defaults()
    except IntegrityError:
        return []


def clinic_create(
    *,
    name: str,
    public_name: str,
    timezone: str,
    slug: str | None = None,
    address: str = "",
    phone: str = "",
    by: Any = None,
) -> Location:
    """Create a location with the defaults a new clinic starts from: see :func:`clinic_set_up`,
    which does the work and also says what it installed."""
    return clinic_set_up(
        name=name,
        public_name=public_name,
        timezone=timezone,
        slug=slug,
        address=address,
        phone=phone,
        by=by,
    ).location


def clinic_set_up(
    *,
    name: str,
    public_name: str,
    timezone: str,
    slug: str | None = None,
    address: str = "",
    phone: str = "",
    by: Any = None,
) -> ClinicSetUp:
    """Create a location and install the defaults a new clinic starts from (types, protocols,
    intake questions, contraindications, and through ``location_set_up`` the reminder rules),
    in one transaction.

    ``slug`` (the location's part of the booking address, ``/book/<slug>/``) defaults to one
    made from ``name``. A slug already taken is refused with :class:`ClinicInvalid` naming
    ``slug``, like any other invalid detail: calling this twice never makes two locations nor
    installs anything twice. ``by`` (the person creating it), when they have a staff profile,
    is added to the new location so they can set it up.
    """
    name, public_name, timezone = name.strip(), public_name.strip(), timezone.strip()
    slug = (slug or "").strip() or slugify(name)[:50]
    if not slug and name:
        raise ClinicInvalid(
            "the name gives no usable slug; give one (letters, digits, hyphens).",
            field="slug",
        )
    location = Location(
        name=name,
        public_name=public_name,
        timezone=timezone,
        slug=slug,
        address=address.strip(),
        phone=phone.strip(),
    )
    try:
        location.full_clean()
    except ValidationError as error:
        raise _refusal(error) from error
    try:
        with transaction.atomic():
            location.save(force_insert=True)
            set_up = ClinicSetUp(location=location)
            set_up.appointment_types = appointment_types_install_defaults(location=location)
            set_up.protocols = protocols_install_defaults(location=location)
            set_up.intake_options = intake_options_install_defaults(location=location)
            set_up.contraindications = _contraindications_install()
            if by is not None and getattr(by, "pk", None) is not None:
                profile = StaffProfile.objects.filter(user=by).first()
                if profile is not None:
                    profile.locations.add(location)
            for _receiver, answer in location_set_up.send(sender=Location, location=location):
                if isinstance(answer, str) and answer:
                    set_up.announced.append(answer)
    except IntegrityError as error:
        # Two people creating the same slug at once: full_clean passed for both, the unique
        # index lets one through.
        if not Location.objects.filter(slug=slug).exists():
            raise
        raise ClinicInvalid(_TAKEN, field="slug") from error
    return set_up


# --- The booking form's questions ---------------------------------------------------------------
#
# A question is reworded, moved or retired, never deleted: what a patient answered is stored
# with the wording they saw (``Intake.conditions`` and ``Intake.screening`` hold texts, not ids),
# so a past intake reads as it was answered whatever happens to the list later.


class SetupInvalid(BookingError):
    """A setup change to a list (intake questions, contraindications) is refused; ``field``
    names the input to fix."""

    code = "invalid_setup"


INTAKE_TEXT_MAX = IntakeOption._meta.get_field("text").max_length or 300
CONTRAINDICATION_LABEL_MAX = Contraindication._meta.get_field("label").max_length or 200


def _wording(text: str, *, limit: int, field: str, what: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise SetupInvalid(f"Write the {what}.", field=field)
    if len(text) > limit:
        raise SetupInvalid(f"Keep the {what} to {limit} characters.", field=field)
    return text


def _renumber(rows: list[Any]) -> None:
    """Positions 0, 1, 2… in the order of ``rows`` (one statement)."""
    for position, row in enumerate(rows):
        row.position = position
    if rows:
        type(rows[0]).objects.bulk_update(rows, ["position"])


def _moved(rows: list[Any], row: Any, step: int) -> bool:
    """Move ``row`` one place up (``step`` -1) or down (+1) in ``rows`` and renumber them all;
    False when it is already first or last."""
    index = next((n for n, r in enumerate(rows) if r.pk == row.pk), None)
    if index is None:  # retired meanwhile: it has no place in the list
        return False
    target = index + step
    if step not in (-1, 1) or not 0 <= target < len(rows):
        return False
    rows[index], rows[target] = rows[target], rows[index]
    _renumber(rows)
    return True


def _intake_list(location: Location, kind: str) -> list[IntakeOption]:
    """One list of the booking form (a location's conditions, or its screening questions), in
    form order, locked against a concurrent edit of the same list."""
    return list(
        IntakeOption.objects.select_for_update()
        .filter(location=location, kind=kind, is_active=True)
        .order_by("position", "pk")
    )


@transaction.atomic
def intake_option_add(*, location: Location, kind: str, text: str) -> IntakeOption:
    """Add a condition or a screening question at the end of its list on ``location``'s form."""
    if kind not in IntakeOptionKind.values:
        raise SetupInvalid("Choose a condition or a screening question.", field="kind")
    text = _wording(text, limit=INTAKE_TEXT_MAX, field="text", what="question")
    rows = _intake_list(location, kind)
    if any(row.text.casefold() == text.casefold() for row in rows):
        raise SetupInvalid("This is already on the form.", field="text")
    return IntakeOption.objects.create(location=location, kind=kind, text=text, position=len(rows))


@transaction.atomic
def intake_option_reword(*, option: IntakeOption, text: str) -> bool:
    """New wording for ``option`` from now on; past answers keep the wording they were given
    with. False when nothing changed."""
    text = _wording(text, limit=INTAKE_TEXT_MAX, field="text", what="question")
    if text == option.text:
        return False
    taken = IntakeOption.objects.filter(
        location_id=option.location_id, kind=option.kind, is_active=True, text__iexact=text
    ).exclude(pk=option.pk)
    if taken.exists():
        raise SetupInvalid("Another question on the form already says this.", field="text")
    option.text = text
    option.save(update_fields=["text"])
    return True


@transaction.atomic
def intake_option_move(*, option: IntakeOption, step: int) -> bool:
    """Move an active ``option`` one place up (-1) or down (+1) in its list."""
    return _moved(_intake_list(option.location, option.kind), option, step)


@transaction.atomic
def intake_option_retire(*, option: IntakeOption, active: bool = False) -> bool:
    """Take ``option`` off the booking form (or, ``active=True``, put it back at the end of its
    list). The row stays: it is never deleted. False when nothing changed."""
    rows = _intake_list(option.location, option.kind)
    if option.is_active == active:
        return False
    option.is_active = active
    option.save(update_fields=["is_active"])
    if active:
        option.position = len(rows)
        option.save(update_fields=["position"])
    else:
        _renumber([row for row in rows if row.pk != option.pk])
    return True


# --- The contraindications prescribers review (clinic-wide) -------------------------------------


def _contraindication_list() -> list[Contraindication]:
    return list(
        Contraindication.objects.select_for_update()
        .filter(is_active=True)
        .order_by("position", "pk")
    )


@transaction.atomic
def contraindication_add(*, label: str) -> Contraindication:
    """Add a contraindication to the end of the list every eligibility decision answers."""
    label = _wording(label, limit=CONTRAINDICATION_LABEL_MAX, field="label", what="label")
    rows = _contraindication_list()
    if Contraindication.objects.filter(label__iexact=label).exists():
        raise SetupInvalid(
            "The list already has this one (restore it if it was retired).", field="label"
        )
    base = slugify(label)[:56] or "contraindication"
    slug, n = base, 1
    while Contraindication.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return Contraindication.objects.create(slug=slug, label=label, position=len(rows))


@transaction.atomic
def contraindication_relabel(*, contraindication: Contraindication, label: str) -> bool:
    """New wording for a contraindication. Past answers point at it and show the new label, so
    this is for clearer wording of the same condition; a different one is retired and added."""
    label = _wording(label, limit=CONTRAINDICATION_LABEL_MAX, field="label", what="label")
    if label == contraindication.label:
        return False
    taken = Contraindication.objects.filter(label__iexact=label).exclude(pk=contraindication.pk)
    if taken.exists():
        raise SetupInvalid("Another contraindication already says this.", field="label")
    contraindication.label = label
    contraindication.save(update_fields=["label"])
    return True


@transaction.atomic
def contraindication_move(*, contraindication: Contraindication, step: int) -> bool:
    """Move an active contraindication one place up (-1) or down (+1) in the decision form."""
    return _moved(_contraindication_list(), contraindication, step)


@transaction.atomic
def contraindication_retire(*, contraindication: Contraindication, active: bool = False) -> bool:
    """Stop asking a contraindication at new decisions (or, ``active=True``, ask it again, at
    the end of the list). Its answers stay, and the row with them."""
    rows = _contraindication_list()
    if contraindication.is_active == active:
        return False
    contraindication.is_active = active
    if active:
        contraindication.position = len(rows)
    contraindication.save(update_fields=["is_active", "position"])
    if not active:
        _renumber([row for row in rows if row.pk != contraindication.pk])
    return True


@transaction.atomic
def contraindication_delete(*, contraindication: Contraindication) -> None:
    """Delete a contraindication nobody ever answered (added by mistake); one with answers is
    refused: it is retired instead, so every past decision keeps its question."""
    Contraindication.objects.select_for_update().filter(pk=contraindication.pk).first()
    if contraindication.answers.exists():
        raise SetupInvalid(
            "Decisions have answered this one: retire it instead of deleting it.", field="label"
        )
    contraindication.delete()
