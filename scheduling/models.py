"""Locations, their resources (staff, rooms, chairs) and when those can be used.

Nothing here knows about patients: booking builds on these models, never the other way round.
"""

from __future__ import annotations

import re
from datetime import time
from functools import cache, cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from scheduling.wording import validate_neutral


def validate_timezone(value: str) -> None:
    if value not in _zone_names():
        raise ValidationError(f"{value!r} is not an IANA time zone name.")


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def validate_dark_colour(value: str) -> None:
    """A colour white text stays readable on (WCAG AA, 4.5:1): the calendar writes its event
    titles in white."""
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", value):
        raise ValidationError("A colour as #rrggbb, e.g. #1f6feb.")

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(value[i : i + 2], 16) for i in (1, 3, 5))
    luminance = 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
    if 1.05 / (luminance + 0.05) < 4.5:
        raise ValidationError(
            f"{value} is too light for the calendar's white text: choose a darker colour."
        )


def region_codes(value: str) -> list[str]:
    """``"us, ca"`` → ``["US", "CA"]``: the region codes of a comma-separated setting."""
    return [code.strip().upper() for code in value.split(",") if code.strip()]


def validate_regions(value: str) -> None:
    unknown = [c for c in region_codes(value) if c not in phonenumbers.SUPPORTED_REGIONS]
    if unknown:
        raise ValidationError(
            f"Not a country's region code: {', '.join(unknown)} (use two letters, e.g. US, CA)."
        )


class Location(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=120, help_text="Internal name, seen by staff only.")
    public_name = models.CharField(
        max_length=120,
        validators=[validate_neutral],
        help_text="Neutral name shown to patients and used in messages; must not reveal the "
        "treatment.",
    )
    timezone = models.CharField(max_length=64, validators=[validate_timezone])
    phone = models.CharField(max_length=32, blank=True)
    address = models.CharField(max_length=255, blank=True)
    quiet_hours_start = models.TimeField(default=time(21, 0))
    quiet_hours_end = models.TimeField(default=time(8, 0))
    late_cancel_hours = models.PositiveSmallIntegerField(
        default=24, help_text="Online self-service changes close this many hours before a visit."
    )
    no_show_after_minutes = models.PositiveSmallIntegerField(default=15)
    arrive_early_minutes = models.PositiveSmallIntegerField(default=15)
    hold_keeps_chairs = models.BooleanField(
        default=False,
        help_text="A series put on hold keeps its sessions' chairs and staff (otherwise they are "
        "released for others and re-checked on resume).",
    )
    # Online bookings (security issue #15): a time is held, not booked, until the patient proves
    # their e-mail address; how long, and how much of a day such holds may take.
    verify_online_bookings = models.BooleanField(
        default=True,
        help_text="An online booking only holds its time until the patient follows the link "
        "e-mailed to them; unconfirmed, it lapses. Off: online bookings are booked at once.",
    )
    tentative_hold_minutes = models.PositiveSmallIntegerField(
        default=15,
        validators=[MinValueValidator(5), MaxValueValidator(120)],
        help_text="How long an unconfirmed online booking holds its time.",
    )
    tentative_day_percent = models.PositiveSmallIntegerField(
        default=25,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="The most of a day's visits unconfirmed online bookings may hold at once, in "
        "per cent (always at least one).",
    )
    sms_regions = models.CharField(
        max_length=200,
        blank=True,
        validators=[validate_regions],
        help_text="Countries whose mobile numbers may be given online and receive texts, as "
        "region codes separated by commas (e.g. US,CA). Empty: the clinic's own country.",
    )
    two_factor_for_all_staff = models.BooleanField(
        default=False,
        help_text="Every staff account working here signs in with a second factor. Admins and "
        "prescribers always do.",
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(tentative_hold_minutes__gte=5) & Q(tentative_hold_minutes__lte=120),
                name="location_tentative_hold_range",
            ),
            models.CheckConstraint(
                condition=Q(tentative_day_percent__gte=1) & Q(tentative_day_percent__lte=100),
                name="location_tentative_percent_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def home_region(self) -> str:
        """The clinic's own country: its phone number's, else ``DEFAULT_PHONE_REGION``."""
        if self.phone:
            try:
                number = phonenumbers.parse(self.phone, settings.DEFAULT_PHONE_REGION)
            except phonenumbers.NumberParseException:
                number = None
            region = phonenumbers.region_code_for_number(number) if number else None
            if region and region in phonenumbers.SUPPORTED_REGIONS:
                return str(region)
        return str(settings.DEFAULT_PHONE_REGION).upper()

    @property
    def text_regions(self) -> frozenset[str]:
        """The countries whose mobiles may book online and receive texts (``sms_regions``, or
        the clinic's own)."""
        return frozenset(region_codes(self.sms_regions) or [self.home_region])

    @cached_property
    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:  # pragma: no cover - validated on save
            raise ValidationError(f"Unknown time zone {self.timezone!r}") from exc


class ResourceKind(models.TextChoices):
    STAFF = "staff", "Staff member"
    ROOM = "room", "Room"
    CHAIR = "chair", "Chair"


class StaffRole(models.TextChoices):
    NONE = "", "—"
    PRESCRIBER = "prescriber", "Prescriber"
    NURSE = "nurse", "Nurse"


class ResourceQuerySet(models.QuerySet["Resource"]):
    def at(self, location: Location | int) -> ResourceQuerySet:
        """The resources that can serve ``location``: its own, and staff who also work there."""
        location_id = location if isinstance(location, int) else location.pk
        also_here = Resource.sites.through.objects.filter(location_id=location_id).values(
            "resource_id"
        )
        return self.filter(Q(location_id=location_id) | Q(pk__in=also_here))


class Resource(models.Model):
    """Anything a visit occupies. ``capacity`` is how many patients it serves at once: a nurse
    watching three chairs has capacity 3, and each patient takes one of its lanes.

    A person is one resource wherever they work: ``location`` is their home site and ``sites``
    the others, each with its own weekly hours. A visit anywhere takes their time everywhere
    (the allocations' exclusion constraint is per resource, whatever the location)."""

    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="resources")
    sites = models.ManyToManyField(
        Location,
        related_name="visiting_resources",
        blank=True,
        help_text="Other locations this person also works at, with hours of their own there.",
    )
    kind = models.CharField(max_length=16, choices=ResourceKind.choices)
    role = models.CharField(max_length=16, choices=StaffRole.choices, blank=True, default="")
    name = models.CharField(max_length=120)
    capacity = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(20)]
    )
    is_active = models.BooleanField(default=True)

    objects = ResourceQuerySet.as_manager()

    class Meta:
        ordering = ["location", "kind", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(capacity__gte=1) & Q(capacity__lte=20), name="resource_capacity_range"
            ),
            models.CheckConstraint(
                condition=Q(kind=ResourceKind.STAFF) | Q(role=""), name="resource_role_only_staff"
            ),
        ]
        indexes = [models.Index(fields=["location", "kind", "role"])]

    def __str__(self) -> str:
        return self.name


class Weekday(models.IntegerChoices):
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


class WorkingHours(models.Model):
    """A weekly shift at one location, in its wall-clock time; several rows make a split shift.

    ``valid_from`` and ``valid_until`` (exclusive) bound the local dates a shift applies to, so
    hours that change from a future date are new rows from that date and old rows until it."""

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="working_hours")
    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="+")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    start = models.TimeField()
    end = models.TimeField()
    valid_from = models.DateField(null=True, blank=True, help_text="Empty: since always.")
    valid_until = models.DateField(
        null=True, blank=True, help_text="The first day it no longer applies; empty: for good."
    )

    class Meta:
        ordering = ["resource", "location", "weekday", "start"]
        verbose_name_plural = "working hours"
        constraints = [
            models.CheckConstraint(condition=Q(start__lt=F("end")), name="working_hours_order"),
            models.CheckConstraint(condition=Q(weekday__lte=6), name="working_hours_weekday"),
            models.CheckConstraint(
                condition=Q(valid_from__isnull=True)
                | Q(valid_until__isnull=True)
                | Q(valid_from__lt=F("valid_until")),
                name="working_hours_validity",
            ),
        ]
        indexes = [models.Index(fields=["resource", "location"])]

    def __str__(self) -> str:
        return f"{self.resource} {self.get_weekday_display()} {self.start:%H:%M}-{self.end:%H:%M}"


class DateOverride(models.Model):
    """One day's hours at a location that replace the weekly ones (Cal.com's date overrides):
    extra hours on a day off, a shorter day. A day's rows together are its hours; a row without
    times means not working there that day."""

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="date_overrides")
    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="+")
    date = models.DateField()
    start = models.TimeField(null=True, blank=True)
    end = models.TimeField(null=True, blank=True)
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["date", "start"]
        constraints = [
            models.CheckConstraint(
                condition=Q(start__isnull=True, end__isnull=True) | Q(start__lt=F("end")),
                name="date_override_order",
            ),
        ]
        indexes = [models.Index(fields=["resource", "location", "date"])]

    def __str__(self) -> str:
        if self.start is None:
            return f"{self.resource} off on {self.date}"
        return f"{self.resource} {self.date} {self.start:%H:%M}-{self.end:%H:%M}"


class TimeOff(models.Model):
    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="time_off")
    start = models.DateTimeField()
    end = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["start"]
        verbose_name_plural = "time off"
        constraints = [
            models.CheckConstraint(condition=Q(start__lt=F("end")), name="time_off_order"),
        ]
        indexes = [models.Index(fields=["resource", "start"])]

    def __str__(self) -> str:
        return f"{self.resource}: {self.start:%Y-%m-%d %H:%M}"


class Closure(models.Model):
    """The whole location is closed (a holiday, a training afternoon)."""

    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="closures")
    start = models.DateTimeField()
    end = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["start"]
        constraints = [
            models.CheckConstraint(condition=Q(start__lt=F("end")), name="closure_order"),
        ]
        indexes = [models.Index(fields=["location", "start"])]

    def __str__(self) -> str:
        return f"{self.location}: {self.reason or 'closed'}"


class AppointmentKind(models.TextChoices):
    CONSULTATION = "consultation", "Consultation"
    INFUSION = "infusion", "Infusion"
    SPRAVATO = "spravato", "Nasal spray session"
    BOOSTER = "booster", "Booster"


class ObservationStart(models.TextChoices):
    SEATED = "seated", "From dosing (the patient seated)"
    RECOVERING = "recovering", "From the end of the infusion (recovery)"


GRID_CHOICES = [
    (5, "5 min"),
    (10, "10 min"),
    (15, "15 min"),
    (20, "20 min"),
    (30, "30 min"),
    (60, "60 min"),
]


class AppointmentTypeQuerySet(models.QuerySet["AppointmentType"]):
    def with_patient_slug(self, slug: str) -> AppointmentTypeQuerySet:
        """The type whose :attr:`AppointmentType.patient_slug` is ``slug``."""
        return self.filter(Q(public_slug=slug) | Q(public_slug="", slug=slug))


class AppointmentType(models.Model):
    location = models.ForeignKey(
        Location, on_delete=models.PROTECT, related_name="appointment_types"
    )
    slug = models.SlugField()
    public_slug = models.SlugField(
        blank=True,
        help_text="The type's name in patients' addresses and the public API, neutral like the "
        "public name; empty: the slug.",
    )
    name = models.CharField(max_length=120, help_text="Internal name, seen by staff only.")
    public_name = models.CharField(
        max_length=120,
        validators=[validate_neutral],
        help_text="Neutral name shown to patients and used in messages.",
    )
    kind = models.CharField(max_length=16, choices=AppointmentKind.choices)
    colour = models.CharField(
        max_length=7,
        blank=True,
        validators=[validate_dark_colour],
        help_text="The type's colour on the staff calendar; empty: one of the calendar's own, "
        "by the type's place in the list.",
    )
    duration_minutes = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(5), MaxValueValidator(12 * 60)]
    )
    grid_minutes = models.PositiveSmallIntegerField(choices=GRID_CHOICES, default=15)
    min_notice_minutes = models.PositiveIntegerField(default=12 * 60)
    horizon_days = models.PositiveSmallIntegerField(default=90)
    bookable_online = models.BooleanField(default=False)
    # A type added later is gated until someone decides otherwise: treatment needs a
    # prescriber's approval unless the clinic says it does not.
    needs_approval = models.BooleanField(default=True)
    min_age_years = models.PositiveSmallIntegerField(
        default=0, help_text="The youngest a patient may be on the day of the visit; 0 for any age."
    )
    # Preparation, used by reminders and the pre-visit checklist.
    fasting_solids_hours = models.PositiveSmallIntegerField(null=True, blank=True)
    fasting_clear_liquids_hours = models.PositiveSmallIntegerField(null=True, blank=True)
    escort_required = models.BooleanField(default=False)
    no_driving_hours = models.PositiveSmallIntegerField(default=0)
    # The least observation before discharge: Spravato's REMS asks two hours from dosing; an
    # infusion, a recovery after it ends. A prescriber may discharge earlier, with a reason.
    observation_minutes = models.PositiveSmallIntegerField(
        default=0, help_text="The least time a patient is observed before discharge; 0 for none."
    )
    observation_from = models.CharField(
        max_length=12, choices=ObservationStart.choices, default=ObservationStart.RECOVERING
    )
    is_active = models.BooleanField(default=True)

    objects = AppointmentTypeQuerySet.as_manager()

    class Meta:
        ordering = ["location", "name"]
        constraints = [
            models.UniqueConstraint(fields=["location", "slug"], name="appointment_type_slug"),
            models.UniqueConstraint(
                fields=["location", "public_slug"],
                condition=~Q(public_slug=""),
                name="appointment_type_public_slug",
            ),
            models.CheckConstraint(
                condition=Q(grid_minutes__in=[g for g, _ in GRID_CHOICES]),
                name="appointment_type_grid",
            ),
            models.CheckConstraint(
                condition=Q(duration_minutes__gte=5), name="appointment_type_duration"
            ),
            # Treatment is a prescriber's decision: only a consultation may be booked unapproved.
            models.CheckConstraint(
                condition=Q(kind=AppointmentKind.CONSULTATION) | Q(needs_approval=True),
                name="appointment_type_treatment_approved",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.location.slug})"

    @property
    def patient_slug(self) -> str:
        """What patients' addresses and the public API call the type: the staff's slug may name
        the treatment ("spravato"), this one must not."""
        return self.public_slug or self.slug

    def clean(self) -> None:
        if self.location_id is None:
            return
        others = AppointmentType.objects.filter(location_id=self.location_id).exclude(pk=self.pk)
        if others.with_patient_slug(self.patient_slug).exists():
            raise ValidationError(
                {"public_slug": "Another type at this location is known to patients by this name."}
            )


class ResourceRequirement(models.Model):
    """One resource a visit of this type needs, and for which part of it.

    The resource is held from ``offset - buffer_before`` to ``offset + duration + buffer_after``
    minutes after the visit starts: an infusion holds its chair for 90 minutes plus turnover,
    while the prescriber is needed only for the first 15. Either a specific resource or any
    active resource of the location with this kind (and role) will do.
    """

    appointment_type = models.ForeignKey(
        AppointmentType, on_delete=models.CASCADE, related_name="requirements"
    )
    resource_kind = models.CharField(max_length=16, choices=ResourceKind.choices)
    role = models.CharField(max_length=16, choices=StaffRole.choices, blank=True, default="")
    resource = models.ForeignKey(
        Resource, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    offset_minutes = models.PositiveSmallIntegerField(default=0)
    duration_minutes = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Empty: until the end of the visit."
    )
    buffer_before_minutes = models.PositiveSmallIntegerField(default=0)
    buffer_after_minutes = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["appointment_type", "id"]
        constraints = [
            # Two requirements of one type must draw on different pools: the availability
            # engine intersects them independently.
            models.UniqueConstraint(
                fields=["appointment_type", "resource_kind", "role"],
                name="requirement_one_per_pool",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.appointment_type}: {self.role or self.resource_kind}"

    def held_span(self, visit_minutes: int) -> tuple[int, int]:
        """Minutes (from, to) relative to the visit start during which the resource is held."""
        duration = self.duration_minutes or max(visit_minutes - self.offset_minutes, 0)
        start = self.offset_minutes - self.buffer_before_minutes
        return start, self.offset_minutes + duration + self.buffer_after_minutes

    def clean(self) -> None:
        if self.offset_minutes >= self.appointment_type.duration_minutes:
            raise ValidationError({"offset_minutes": "Must fall inside the visit."})
        if self.role and self.resource_kind != ResourceKind.STAFF:
            raise ValidationError({"role": "Only staff have roles."})
