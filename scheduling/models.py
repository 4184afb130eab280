"""Locations, their resources (staff, rooms, chairs) and when those can be used.

Nothing here knows about patients: booking builds on these models, never the other way round.
"""

from datetime import time
from functools import cache, cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q


def validate_timezone(value: str) -> None:
    if value not in _zone_names():
        raise ValidationError(f"{value!r} is not an IANA time zone name.")


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


class Location(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=120, help_text="Internal name, seen by staff only.")
    public_name = models.CharField(
        max_length=120,
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
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

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


class Resource(models.Model):
    """Anything a visit occupies. ``capacity`` is how many patients it serves at once: a nurse
    watching three chairs has capacity 3, and each patient takes one of its lanes."""

    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="resources")
    kind = models.CharField(max_length=16, choices=ResourceKind.choices)
    role = models.CharField(max_length=16, choices=StaffRole.choices, blank=True, default="")
    name = models.CharField(max_length=120)
    capacity = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(20)]
    )
    is_active = models.BooleanField(default=True)

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
    """A weekly shift in the location's wall-clock time; several rows make a split shift."""

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="working_hours")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    start = models.TimeField()
    end = models.TimeField()

    class Meta:
        ordering = ["resource", "weekday", "start"]
        verbose_name_plural = "working hours"
        constraints = [
            models.CheckConstraint(condition=Q(start__lt=F("end")), name="working_hours_order"),
            models.CheckConstraint(condition=Q(weekday__lte=6), name="working_hours_weekday"),
        ]

    def __str__(self) -> str:
        return f"{self.resource} {self.get_weekday_display()} {self.start:%H:%M}-{self.end:%H:%M}"


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


class AppointmentType(models.Model):
    location = models.ForeignKey(
        Location, on_delete=models.PROTECT, related_name="appointment_types"
    )
    slug = models.SlugField()
    name = models.CharField(max_length=120, help_text="Internal name, seen by staff only.")
    public_name = models.CharField(
        max_length=120, help_text="Neutral name shown to patients and used in messages."
    )
    kind = models.CharField(max_length=16, choices=AppointmentKind.choices)
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

    class Meta:
        ordering = ["location", "name"]
        constraints = [
            models.UniqueConstraint(fields=["location", "slug"], name="appointment_type_slug"),
            models.CheckConstraint(
                condition=Q(grid_minutes__in=[g for g, _ in GRID_CHOICES]),
                name="appointment_type_grid",
            ),
            models.CheckConstraint(
                condition=Q(duration_minutes__gte=5), name="appointment_type_duration"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.location.slug})"


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
