"""Forms of the types-of-visit and protocols setup pages: a type's details, the resources one
visit of it needs, and a treatment's protocol.

They validate input only, with errors that name the field. The database's own rules are checked
here first, so an admin reads why and never meets a 500: a treatment needs approval
(``appointment_type_treatment_approved``), two needs of one type draw on different pools
(``requirement_one_per_pool``), a protocol's gaps are in order (``protocol_gap_order``). And one
rule of the setup itself: a treatment is bookable (at the desk or online) only once a protocol
says how its sessions are spaced, since an approval is always for a protocol.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import Case, When

from booking.desk.forms import DeskForm
from booking.models import Protocol
from scheduling.models import (
    AppointmentKind,
    AppointmentType,
    Location,
    Resource,
    ResourceKind,
    ResourceRequirement,
    StaffRole,
    Weekday,
)

# The longest buffer around a need: a turnover, not a second visit.
MAX_BUFFER_MINUTES = 240
MAX_SESSIONS = 100
MAX_GAP_DAYS = 365

# A need's pool as the form names it: "kind:<kind>:<role>" for any active resource of that kind
# (and role) serving the location, "resource:<id>" for one named resource.
_KIND_POOLS: tuple[tuple[str, str, str], ...] = (
    (ResourceKind.STAFF, StaffRole.PRESCRIBER, "Any prescriber"),
    (ResourceKind.STAFF, StaffRole.NURSE, "Any nurse"),
    (ResourceKind.STAFF, "", "Any staff member"),
    (ResourceKind.CHAIR, "", "Any chair"),
    (ResourceKind.ROOM, "", "Any room"),
)


def pool_key(kind: str, role: str = "", resource_id: int | None = None) -> str:
    return f"resource:{resource_id}" if resource_id else f"kind:{kind}:{role}"


def pool_label(kind: str, role: str = "", resource: Resource | None = None) -> str:
    """What a need draws on, in words: "Any nurse", "Chair 2"."""
    if resource is not None:
        return resource.name
    for k, r, label in _KIND_POOLS:
        if (k, r) == (kind, role):
            return label
    return f"Any {kind}"


def treatment_bookable_without_protocol(appointment_type: AppointmentType) -> bool:
    """Whether the type is a treatment with no active protocol (so it may not be bookable)."""
    if appointment_type.kind == AppointmentKind.CONSULTATION:
        return False
    if appointment_type.pk is None:
        return True
    return not Protocol.objects.filter(appointment_type=appointment_type, is_active=True).exists()


NO_PROTOCOL = (
    "A treatment can only be booked once it has a protocol at this location (an approval is "
    "always for a protocol). Save it as not active and not bookable online, add its protocol on "
    "the Protocols page, then make it bookable."
)


class AppointmentTypeForm(DeskForm, forms.ModelForm):
    """A type of visit's details. ``instance`` carries its location (a new one too)."""

    class Meta:
        model = AppointmentType
        fields = [
            "public_name",
            "name",
            "slug",
            "public_slug",
            "colour",
            "kind",
            "duration_minutes",
            "grid_minutes",
            "min_notice_minutes",
            "horizon_days",
            "is_active",
            "bookable_online",
            "needs_approval",
            "min_age_years",
            "fasting_solids_hours",
            "fasting_clear_liquids_hours",
            "escort_required",
            "no_driving_hours",
            "observation_minutes",
            "observation_from",
        ]
        labels = {
            "public_name": "Public name",
            "name": "Internal name",
            "slug": "Internal short name (slug)",
            "public_slug": "Public short name",
            "colour": "Colour on the calendar",
            "kind": "Kind of visit",
            "duration_minutes": "Duration (minutes)",
            "grid_minutes": "Start times every",
            "min_notice_minutes": "Minimum notice (minutes)",
            "horizon_days": "Bookable up to (days ahead)",
            "is_active": "Bookable (at the desk)",
            "bookable_online": "Bookable online by patients",
            "needs_approval": "Needs a prescriber's approval",
            "min_age_years": "Minimum age (years)",
            "fasting_solids_hours": "No food for (hours before)",
            "fasting_clear_liquids_hours": "Clear liquids until (hours before)",
            "escort_required": "An escort must take the patient home",
            "no_driving_hours": "No driving for (hours after)",
            "observation_minutes": "Observation before discharge (minutes)",
            "observation_from": "Observation counts",
        }
        help_texts = {
            "public_name": "Shown to patients and in messages: keep it neutral, never naming "
            "the treatment, a drug or a condition.",
            "slug": "Letters, digits and hyphens; used by staff and, when the public short name "
            "is empty, in patients' addresses. It cannot change later.",
            "public_slug": "In patients' addresses and the public API, neutral like the public "
            "name; empty: the internal short name.",
            "colour": "As #rrggbb, dark enough for white text (the calendar's event titles); "
            "empty: one of the calendar's own.",
            "min_notice_minutes": "How long before a visit online booking closes; 720 is 12 hours.",
            "needs_approval": "Required for every kind but a consultation: treatment is a "
            "prescriber's decision.",
            "fasting_solids_hours": "Empty: no fasting.",
            "fasting_clear_liquids_hours": "Empty: clear liquids allowed until the visit.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["duration_minutes"].validators.append(MinValueValidator(5))
        for name in ("fasting_solids_hours", "fasting_clear_liquids_hours"):
            self.fields[name].validators.append(MaxValueValidator(48))
        self.fields["horizon_days"].validators += [MinValueValidator(1), MaxValueValidator(730)]
        self.fields["min_age_years"].validators.append(MaxValueValidator(120))
        self.fields["no_driving_hours"].validators.append(MaxValueValidator(168))
        self.fields["observation_minutes"].validators.append(MaxValueValidator(12 * 60))
        if self.instance.pk is not None:
            # Staff and saved links know the type by it: it stays.
            self.fields["slug"].disabled = True

    @property
    def location(self) -> Location:
        return self.instance.location

    def clean_slug(self) -> str:
        slug = str(self.cleaned_data["slug"])
        others = AppointmentType.objects.filter(location=self.location, slug=slug)
        if others.exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("Another type at this location has this short name.")
        return slug

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        kind = data.get("kind")
        treatment = kind is not None and kind != AppointmentKind.CONSULTATION
        if treatment and "needs_approval" in data and not data["needs_approval"]:
            self.add_error(
                "needs_approval",
                "Only a consultation may be booked without a prescriber's approval: tick "
                "“Needs a prescriber's approval”, or make the kind a consultation.",
            )
        if treatment and (data.get("is_active") or data.get("bookable_online")):
            probe = AppointmentType(pk=self.instance.pk, kind=str(kind))
            if treatment_bookable_without_protocol(probe):
                for name in ("is_active", "bookable_online"):
                    if data.get(name):
                        self.add_error(name, NO_PROTOCOL)
        solids = data.get("fasting_solids_hours")
        liquids = data.get("fasting_clear_liquids_hours")
        if solids is not None and liquids is not None and liquids > solids:
            self.add_error(
                "fasting_clear_liquids_hours",
                "Clear liquids stop nearer the visit than food: at most the hours without food.",
            )
        duration = data.get("duration_minutes")
        if duration is not None and self.instance.pk is not None:
            late = [
                need for need in self.instance.requirements.all() if need.offset_minutes >= duration
            ]
            if late:
                self.add_error(
                    "duration_minutes",
                    f"A need starts {late[0].offset_minutes} minutes into the visit: a visit "
                    "this short ends before it. Change the resource needs first.",
                )
        return data


@dataclass(frozen=True)
class Pool:
    kind: str
    role: str
    resource: Resource | None


def pool_choices(resources: Iterable[Resource]) -> list[tuple[str, Any]]:
    named = [
        (
            pool_key(r.kind, resource_id=r.pk),
            f"{r.name} ({r.get_kind_display().lower()}{'' if r.is_active else ', not active'})",
        )
        for r in resources
    ]
    return [
        ("", "Choose…"),
        ("Any of a kind", [(pool_key(k, r), label) for k, r, label in _KIND_POOLS]),
        ("One by name", named),
    ]


class NeedForm(DeskForm):
    """One resource a visit needs, and for which minutes of it."""

    pool = forms.ChoiceField(label="Needs")
    offset_minutes = forms.IntegerField(
        label="From minute",
        min_value=0,
        max_value=12 * 60,
        initial=0,
        help_text="Minutes after the visit starts.",
    )
    duration_minutes = forms.IntegerField(
        label="For (minutes)",
        required=False,
        min_value=1,
        max_value=12 * 60,
        help_text="Empty: until the end of the visit.",
    )
    buffer_before_minutes = forms.IntegerField(
        label="Buffer before", min_value=0, max_value=MAX_BUFFER_MINUTES, initial=0
    )
    buffer_after_minutes = forms.IntegerField(
        label="Buffer after", min_value=0, max_value=MAX_BUFFER_MINUTES, initial=0
    )

    def __init__(
        self, *args: Any, resources: Sequence[Resource], visit_minutes: int, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.resources = {r.pk: r for r in resources}
        self.visit_minutes = visit_minutes
        field = self.fields["pool"]
        assert isinstance(field, forms.ChoiceField)  # noqa: S101 - narrows the type
        field.choices = pool_choices(resources)
        for name in ("offset_minutes", "duration_minutes"):
            self.fields[name].widget.attrs["inputmode"] = "numeric"

    def clean_pool(self) -> Pool:
        key = str(self.cleaned_data["pool"])
        if key.startswith("resource:"):
            resource = self.resources.get(int(key.split(":", 1)[1]))
            if resource is None:  # pragma: no cover - the choices allow only these
                raise forms.ValidationError("Choose a resource of this location.")
            role = resource.role if resource.kind == ResourceKind.STAFF else ""
            return Pool(resource.kind, role, resource)
        _, kind, role = key.split(":", 2)
        return Pool(kind, role, None)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        offset = data.get("offset_minutes")
        # ResourceRequirement.clean: a need starts inside the visit; only staff have roles.
        if offset is not None and offset >= self.visit_minutes:
            self.add_error(
                "offset_minutes",
                f"Must fall inside the visit: it lasts {self.visit_minutes} minutes, so start "
                f"at minute {self.visit_minutes - 1} at the latest.",
            )
        pool = data.get("pool")
        if isinstance(pool, Pool) and pool.role and pool.kind != ResourceKind.STAFF:
            self.add_error("pool", "Only staff have roles.")  # pragma: no cover - by choices
        return data

    def requirement(self) -> ResourceRequirement:
        data = self.cleaned_data
        pool: Pool = data["pool"]
        return ResourceRequirement(
            resource_kind=pool.kind,
            role=pool.role,
            resource=pool.resource,
            offset_minutes=data["offset_minutes"],
            duration_minutes=data.get("duration_minutes"),
            buffer_before_minutes=data["buffer_before_minutes"],
            buffer_after_minutes=data["buffer_after_minutes"],
        )


def _dropped(form: forms.Form) -> bool:
    """A row left blank, or ticked for removal."""
    return not form.has_changed() or bool(getattr(form, "cleaned_data", {}).get("DELETE"))


class BaseNeedFormSet(forms.BaseFormSet):  # type: ignore[type-arg, unused-ignore]
    """A type's needs: at least one, each drawing on a pool of its own."""

    def clean(self) -> None:
        if any(self.errors):
            return
        seen: dict[tuple[str, str], str] = {}
        kept = 0
        for form in self.forms:
            if _dropped(form):
                continue
            kept += 1
            pool: Pool = form.cleaned_data["pool"]
            label = pool_label(pool.kind, pool.role, pool.resource)
            key = (pool.kind, pool.role)
            if key in seen:
                # requirement_one_per_pool: the engine intersects needs independently, so two
                # of one pool could both count the same person or chair.
                form.add_error(
                    "pool",
                    f"{label} and {seen[key]} draw on the same pool "
                    f"({pool_label(pool.kind, pool.role)}): a type needs each pool once. Keep "
                    "one of them, or adjust its minutes.",
                )
            else:
                seen[key] = label
        if kept == 0:
            raise forms.ValidationError(
                "A visit needs at least one staff member, chair or room.", code="no_needs"
            )

    def requirements(self) -> list[ResourceRequirement]:
        return [form.requirement() for form in self.forms if not _dropped(form)]

    def error_summary(self) -> list[tuple[str, str]]:
        summary: list[tuple[str, str]] = []
        for n, form in enumerate(self.forms, start=1):
            summary.extend((anchor, f"Need {n}, {text}") for anchor, text in form.error_summary())
        summary.extend(("", str(e)) for e in self.non_form_errors())
        return summary


NeedFormSet = forms.formset_factory(NeedForm, formset=BaseNeedFormSet, extra=2, can_delete=True)


def need_initial(requirement: ResourceRequirement) -> dict[str, Any]:
    return {
        "pool": pool_key(requirement.resource_kind, requirement.role, requirement.resource_id),
        "offset_minutes": requirement.offset_minutes,
        "duration_minutes": requirement.duration_minutes,
        "buffer_before_minutes": requirement.buffer_before_minutes,
        "buffer_after_minutes": requirement.buffer_after_minutes,
    }


# --- Protocols -----------------------------------------------------------------------------


class ProtocolForm(DeskForm, forms.ModelForm):
    """A treatment's series template. ``instance`` carries its type, except on the add form,
    which chooses one of ``types`` (the location's treatments)."""

    allowed_weekdays = forms.TypedMultipleChoiceField(
        label="Days sessions may fall on",
        choices=Weekday.choices,
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = Protocol
        fields = [
            "appointment_type",
            "name",
            "slug",
            "sessions",
            "min_gap_days",
            "max_gap_days",
            "window_days",
            "allowed_weekdays",
            "same_time_preference",
            "review_after_session",
            "min_days_since_last",
            "is_active",
        ]
        labels = {
            "appointment_type": "Type of visit",
            "name": "Name",
            "slug": "Short name (slug)",
            "sessions": "Sessions",
            "min_gap_days": "At least (days between starts)",
            "max_gap_days": "At most (days between starts)",
            "window_days": "All sessions within (days)",
            "same_time_preference": "Prefer the same time of day for every session",
            "review_after_session": "Prescriber review after session",
            "min_days_since_last": "Booster: at least (days since the last session)",
            "is_active": "In use (prescribers may approve with it)",
        }
        help_texts = {
            "min_gap_days": "Calendar days between session starts: 2 is a free day between "
            "sessions (Monday, Wednesday, Friday), 1 is consecutive days.",
            "review_after_session": "Sessions after this one stay tentative until a prescriber "
            "confirms; empty: no review.",
            "min_days_since_last": "0 for none.",
        }

    def __init__(
        self, *args: Any, types: Iterable[AppointmentType] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["appointment_type"]
        assert isinstance(field, forms.ModelChoiceField)  # noqa: S101 - narrows the type
        if self.instance.pk is not None:
            field.disabled = True
            field.queryset = AppointmentType.objects.filter(pk=self.instance.appointment_type_id)
            self.fields["slug"].disabled = True
        else:
            # In the order given (the treatments without a protocol first).
            order = [t.pk for t in types or []]
            field.queryset = (
                AppointmentType.objects.filter(pk__in=order).order_by(
                    Case(*(When(pk=pk, then=n) for n, pk in enumerate(order)))
                )
                if order
                else AppointmentType.objects.none()
            )
        field.empty_label = "Choose a treatment…"
        field.label_from_instance = lambda t: str(t.name)  # type: ignore[assignment, method-assign, unused-ignore]
        self.fields["sessions"].validators += [
            MinValueValidator(1),
            MaxValueValidator(MAX_SESSIONS),
        ]
        for name in ("min_gap_days", "max_gap_days"):
            self.fields[name].validators += [MinValueValidator(1), MaxValueValidator(MAX_GAP_DAYS)]
        self.fields["window_days"].validators += [
            MinValueValidator(1),
            MaxValueValidator(2 * MAX_GAP_DAYS),
        ]
        self.fields["min_days_since_last"].validators.append(MaxValueValidator(MAX_GAP_DAYS))
        self.fields["review_after_session"].validators.append(MinValueValidator(1))
        if self.instance.pk is not None or not self.is_bound:
            self.initial["allowed_weekdays"] = [int(d) for d in self.instance.allowed_weekdays]

    def clean_allowed_weekdays(self) -> str:
        days = sorted(set(self.cleaned_data["allowed_weekdays"]))
        return "".join(str(d) for d in days)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        appointment_type = data.get("appointment_type") or (
            self.instance.appointment_type if self.instance.appointment_type_id else None
        )
        if appointment_type is not None:
            slug = data.get("slug")
            clash = Protocol.objects.filter(appointment_type=appointment_type, slug=slug)
            if slug and clash.exclude(pk=self.instance.pk).exists():
                self.add_error("slug", "This type already has a protocol with this short name.")
        sessions = data.get("sessions")
        low, high = data.get("min_gap_days"), data.get("max_gap_days")
        if low is not None and high is not None and low > high:
            self.add_error("max_gap_days", "Must be at least the least number of days apart.")
        window = data.get("window_days")
        if sessions is not None and low is not None and window is not None:
            needed = (sessions - 1) * low + 1
            if window < needed:
                self.add_error(
                    "window_days",
                    f"{sessions} sessions at least {low} day{'s' if low != 1 else ''} apart "
                    f"take at least {needed} days.",
                )
        review = data.get("review_after_session")
        if review is not None and sessions is not None and review >= sessions:
            self.add_error(
                "review_after_session", "Must come before the last session (or stay empty)."
            )
        if (
            self.instance.pk is not None
            and self.instance.is_active
            and data.get("is_active") is False
            and appointment_type is not None
            and (appointment_type.is_active or appointment_type.bookable_online)
            and not Protocol.objects.filter(appointment_type=appointment_type, is_active=True)
            .exclude(pk=self.instance.pk)
            .exists()
        ):
            self.add_error(
                "is_active",
                f"{appointment_type.name} is bookable and this is its only protocol in use: "
                "make the type not bookable first, or add another protocol.",
            )
        return data
