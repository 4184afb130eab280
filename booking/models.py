"""Patients, their appointments and the resource lanes those appointments hold."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateTimeRangeField, RangeOperators
from django.db import models
from django.db.models import F, Func, Q

from scheduling.models import AppointmentType, Location, Resource

# The exact wording a patient agrees to when opting in to text messages. A new wording gets a new
# key; the key stored with the patient says which text they saw.
SMS_CONSENT_VERSION = "2026-11"
SMS_CONSENT_WORDINGS = {
    "2026-11": (
        "Yes, send me appointment reminders by text message. Message frequency varies; message "
        "and data rates may apply. Reply STOP to opt out or HELP for help."
    ),
}

# A signed treatment consent counts as current for a year.
CONSENT_VALID_DAYS = 365


class PatientQuerySet(models.QuerySet["Patient"]):
    def on_file(self) -> PatientQuerySet:
        """The clinic's patients: not the provisional records of online bookings waiting for
        their e-mail to be confirmed (see ``booking.online``)."""
        return self.filter(provisional=False)


class Patient(models.Model):
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    email = models.EmailField()
    phone = models.CharField(max_length=32, help_text="E.164, e.g. +12125550123")
    date_of_birth = models.DateField()
    needs_review = models.BooleanField(
        default=False,
        help_text="Created online while resembling an existing record (same email or phone, "
        "other details different): the front desk checks for a duplicate.",
    )
    sms_consent = models.BooleanField(default=False)
    sms_consent_at = models.DateTimeField(null=True, blank=True)
    sms_consent_version = models.CharField(max_length=16, blank=True)
    # How the patient wants to hear from us; texts also need the consent above.
    email_reminders = models.BooleanField(default=True)
    sms_reminders = models.BooleanField(default=True)
    # Spravato: the patient's REMS enrolment must be on file before a first dose is booked.
    rems_enrolled_at = models.DateTimeField(null=True, blank=True)
    rems_patient_id = models.CharField(max_length=64, blank=True)
    # The signed treatment consent on file; it is current for CONSENT_VALID_DAYS after signing.
    treatment_consent_at = models.DateTimeField(null=True, blank=True)
    # Known allergies, kept beside the medications reviewed at each visit; "" is not "none":
    # ``allergies_recorded_at`` says whether anybody asked.
    allergies = models.TextField(blank=True)
    allergies_recorded_at = models.DateTimeField(null=True, blank=True)
    allergies_recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # What somebody typed on the public booking page, not yet proven by the e-mail link: not a
    # patient of the clinic, matched to nobody, seen by no staff page. On confirmation it
    # becomes a patient, or gives way to the record its e-mail and date of birth match.
    provisional = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PatientQuerySet.as_manager()

    class Meta:
        ordering = ["last_name", "first_name"]
        indexes = [models.Index(fields=["email", "date_of_birth"])]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}"


class AppointmentStatus(models.TextChoices):
    BOOKED = "booked", "Booked"
    CONFIRMED = "confirmed", "Confirmed"
    CHECKED_IN = "checked_in", "Arrived"
    IN_CHAIR = "in_chair", "In chair"
    RECOVERING = "recovering", "Recovering"
    DISCHARGED = "discharged", "Discharged"
    NO_SHOW = "no_show", "No-show"
    CANCELLED = "cancelled", "Cancelled"
    ON_HOLD = "on_hold", "On hold"
    # A freed slot kept for a waitlisted patient while their offer is open: it holds lanes, so
    # nobody else takes it, but it is not a visit (no reminders, not the patient's time).
    HELD = "held", "Held for a waitlist offer"
    # An online booking whose patient has not yet followed the link e-mailed to them: it holds
    # its lanes for a few minutes (``TentativeHold``), like HELD it is not yet a visit, and its
    # patient is provisional until confirmed (``booking.online``). Not the ``tentative`` flag
    # of a series session waiting for review.
    TENTATIVE = "tentative", "Awaiting the patient's e-mail"


# Statuses whose appointment still occupies its resources and its patient's time.
ACTIVE_STATUSES = frozenset(
    {
        AppointmentStatus.BOOKED,
        AppointmentStatus.CONFIRMED,
        AppointmentStatus.CHECKED_IN,
        AppointmentStatus.IN_CHAIR,
        AppointmentStatus.RECOVERING,
        AppointmentStatus.DISCHARGED,
    }
)
# Statuses from which a patient or the desk may still move or cancel the visit.
CHANGEABLE_STATUSES = frozenset({AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED})


class TsTzRange(Func):
    function = "TSTZRANGE"
    output_field = DateTimeRangeField()


class PostgresExclusionConstraint(ExclusionConstraint):
    """An exclusion constraint that exists on PostgreSQL and is skipped elsewhere.

    On SQLite (the embedded default) writes are serialised by IMMEDIATE transactions and the
    booking service's check guards the same invariant; there is no GiST to build there.
    """

    def _is_postgres(self, schema_editor: object) -> bool:
        return getattr(schema_editor, "connection").vendor == "postgresql"  # noqa: B009

    def constraint_sql(self, model, schema_editor):
        return (
            super().constraint_sql(model, schema_editor)
            if self._is_postgres(schema_editor)
            else None
        )

    def create_sql(self, model, schema_editor):
        return (
            super().create_sql(model, schema_editor) if self._is_postgres(schema_editor) else None
        )

    def remove_sql(self, model, schema_editor):
        return (
            super().remove_sql(model, schema_editor) if self._is_postgres(schema_editor) else None
        )

    def validate(self, *args, **kwargs):
        # Model validation would re-run the overlap query per row (expensive, and PostgreSQL-only);
        # the services check availability and the database enforces it at INSERT.
        return None


class AppointmentQuerySet(models.QuerySet["Appointment"]):
    def active(self) -> AppointmentQuerySet:
        return self.filter(status__in=ACTIVE_STATUSES)

    def overlapping(self, start: datetime, end: datetime) -> AppointmentQuerySet:
        return self.filter(start__lt=end, end__gt=start)


def new_reference() -> str:
    # 8 characters of an unambiguous alphabet: short enough to read over the phone.
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(8))


class Appointment(models.Model):
    reference = models.CharField(max_length=12, unique=True, default=new_reference, editable=False)
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="appointments")
    appointment_type = models.ForeignKey(
        AppointmentType, on_delete=models.PROTECT, related_name="appointments"
    )
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="appointments")
    start = models.DateTimeField()
    end = models.DateTimeField()
    status = models.CharField(
        max_length=16, choices=AppointmentStatus.choices, default=AppointmentStatus.BOOKED
    )
    # Raised on every change of time or status: reminders check it before sending and
    # calendar files carry it as their SEQUENCE.
    version = models.PositiveIntegerField(default=0)
    source = models.CharField(max_length=16, default="staff")
    cancel_reason = models.CharField(max_length=500, blank=True)
    escort_name = models.CharField(max_length=120, blank=True)
    escort_phone = models.CharField(max_length=32, blank=True)
    escort_updated_at = models.DateTimeField(null=True, blank=True)
    # Who took the escort's details (by phone, at the desk); empty when the patient gave them
    # through their link.
    escort_recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # The pre-visit checklist and the visit's progress at the desk (see booking.checkin).
    fasting_acknowledged_at = models.DateTimeField(null=True, blank=True)
    medications_reviewed_at = models.DateTimeField(null=True, blank=True)
    medications_reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    checklist_override_reason = models.CharField(max_length=500, blank=True)
    checklist_override_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    checked_in_at = models.DateTimeField(null=True, blank=True)
    seated_at = models.DateTimeField(null=True, blank=True)
    recovering_at = models.DateTimeField(null=True, blank=True)
    escort_present_at = models.DateTimeField(null=True, blank=True)
    discharged_at = models.DateTimeField(null=True, blank=True)
    # Sessions of an infusion series: their place in it, and whether they wait for the
    # prescriber's review gate before they count as firmly booked.
    series = models.ForeignKey(
        "Series", on_delete=models.PROTECT, null=True, blank=True, related_name="sessions"
    )
    series_index = models.PositiveSmallIntegerField(null=True, blank=True)
    tentative = models.BooleanField(default=False)
    # Set when a setup change (hours, time off, a closure, the type's needs) left the visit
    # without a resource it holds, and the admin saved it anyway: the visit waits on the day
    # board's "needs a new time" list until the desk moves or cancels it. Nobody is messaged.
    needs_new_time_since = models.DateTimeField(null=True, blank=True)
    needs_new_time_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AppointmentQuerySet.as_manager()

    class Meta:
        ordering = ["start"]
        constraints = [
            models.CheckConstraint(condition=Q(start__lt=F("end")), name="appointment_order"),
            PostgresExclusionConstraint(
                name="appointment_patient_no_overlap",
                expressions=[
                    ("patient", RangeOperators.EQUAL),
                    (TsTzRange("start", "end"), RangeOperators.OVERLAPS),
                ],
                condition=Q(status__in=sorted(ACTIVE_STATUSES)),
            ),
        ]
        indexes = [
            models.Index(fields=["location", "start"]),
            models.Index(fields=["patient", "start"]),
            models.Index(
                fields=["location", "start"],
                condition=Q(needs_new_time_since__isnull=False),
                name="appointment_needs_new_time",
            ),
        ]
        permissions = [
            ("check_in_appointment", "Can check patients in and mark no-shows"),
            ("care_appointment", "Can seat, move to recovery and discharge patients"),
            ("review_medications", "Can record that a patient's medications were reviewed"),
            ("override_checklist", "Can check in with an incomplete checklist, giving a reason"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.start:%Y-%m-%d %H:%M}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def online_changes_close_at(self) -> datetime:
        """The last moment the patient may move or cancel the visit themselves (the location's
        late-change cutoff); after it only the front desk can."""
        return self.start - timedelta(hours=self.location.late_cancel_hours)

    @property
    def series_label(self) -> str:
        """``Session 2 of 6`` for a session of a series (``series_size`` annotated), else ``""``."""
        if self.series_id is None or self.series_index is None:
            return ""
        size = getattr(self, "series_size", None) or 0
        return f"Session {self.series_index} of {max(size, self.series_index)}"

    @property
    def may_leave_at(self) -> datetime | None:
        """When the type's observation ends: from dosing (seated) or from the end of the
        infusion (recovering). None when the type asks for none, or it has not begun."""
        visit_type = self.appointment_type
        if not visit_type.observation_minutes:
            return None
        began = self.seated_at if visit_type.observation_from == "seated" else self.recovering_at
        return None if began is None else began + timedelta(minutes=visit_type.observation_minutes)

    def is_late(self, now: datetime) -> bool:
        """Past the location's late threshold without having arrived: the board prompts no-show."""
        return self.status in CHANGEABLE_STATUSES and now > self.start + timedelta(
            minutes=self.location.no_show_after_minutes
        )


class Allocation(models.Model):
    """One lane of one resource held by an appointment for ``[start, end)``, turnover included.

    On PostgreSQL the exclusion constraint makes two active allocations of the same lane that
    overlap in time impossible, whatever the application does: it is the last guard against
    double booking.
    """

    appointment = models.ForeignKey(
        Appointment, on_delete=models.CASCADE, related_name="allocations"
    )
    resource = models.ForeignKey(Resource, on_delete=models.PROTECT, related_name="allocations")
    lane = models.PositiveSmallIntegerField(default=0)
    start = models.DateTimeField()
    end = models.DateTimeField()
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(start__lt=F("end")), name="allocation_order"),
            PostgresExclusionConstraint(
                name="allocation_lane_no_overlap",
                expressions=[
                    ("resource", RangeOperators.EQUAL),
                    ("lane", RangeOperators.EQUAL),
                    (TsTzRange("start", "end"), RangeOperators.OVERLAPS),
                ],
                condition=Q(active=True),
            ),
        ]
        # Availability probes one resource at a time from (window start - longest allocation).
        indexes = [
            models.Index(
                fields=["resource", "start"],
                name="allocation_resource_start",
                condition=Q(active=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.resource} lane {self.lane} {self.start:%Y-%m-%d %H:%M}"


class TentativeHold(models.Model):
    """An online booking (an appointment in status TENTATIVE) waiting for its patient to follow
    the link e-mailed to them, until ``expires_at``. The link's token is stored only as its
    SHA-256, issued when the e-mail is sent; ``client`` is a digest of the network the booking
    came from, for the per-client ceiling (see ``booking.online``)."""

    appointment = models.OneToOneField(
        Appointment, on_delete=models.CASCADE, related_name="tentative_hold"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    client = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The expiry sweep's probe.
            models.Index(
                fields=["expires_at"],
                name="tentative_hold_open",
                condition=Q(confirmed_at__isnull=True),
            ),
            models.Index(fields=["client", "expires_at"], name="tentative_hold_client"),
        ]

    def __str__(self) -> str:
        return f"tentative hold of {self.appointment_id} until {self.expires_at:%H:%M}"


class IntakeOptionKind(models.TextChoices):
    CONDITION = "condition", "Condition a patient seeks help for"
    SCREENING = "screening", "Yes/no screening question"


class IntakeOption(models.Model):
    """A clinic's own list of conditions and yes/no screening questions on the booking form."""

    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="intake_options")
    kind = models.CharField(max_length=16, choices=IntakeOptionKind.choices)
    text = models.CharField(max_length=300)
    position = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["location", "kind", "position", "id"]

    def __str__(self) -> str:
        return self.text


class Intake(models.Model):
    """What a patient told us when booking. Staff only: never in a public response."""

    appointment = models.OneToOneField(Appointment, on_delete=models.CASCADE, related_name="intake")
    conditions = models.JSONField(default=list)
    medications = models.TextField(blank=True)
    prior_treatments = models.TextField(blank=True)
    # [{"question": <text as shown>, "answer": true/false}]: the wording is kept with the
    # answer, so a later edit of the question cannot change what the patient said yes to.
    screening = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Intake for {self.appointment}"


class PatientLinkQuerySet(models.QuerySet["PatientLink"]):
    def usable(self, now: datetime) -> PatientLinkQuerySet:
        return self.filter(expires_at__gt=now, revoked_at__isnull=True)


class PatientLink(models.Model):
    """A patient's secure link. Only a SHA-256 of the token is stored: a database leak does not
    hand out working links."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="links")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = PatientLinkQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["patient", "expires_at"])]

    def __str__(self) -> str:
        return f"link for patient {self.patient_id}"


class IdempotencyRecord(models.Model):
    """The answer given to a request carrying an ``Idempotency-Key``, replayed on retries."""

    scope = models.CharField(max_length=64)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="idempotency_scope_key"),
        ]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key}"


class Protocol(models.Model):
    """A series template: how many sessions of which type, and the cadence between them.

    Gaps count calendar days between session starts in the clinic's zone: ``min_gap_days=2``
    is "a free day between sessions" (Mon-Wed-Fri), ``min_gap_days=max_gap_days=1`` is
    "consecutive days".
    """

    appointment_type = models.ForeignKey(
        AppointmentType, on_delete=models.PROTECT, related_name="protocols"
    )
    slug = models.SlugField()
    name = models.CharField(max_length=120)
    sessions = models.PositiveSmallIntegerField()
    min_gap_days = models.PositiveSmallIntegerField(default=1)
    max_gap_days = models.PositiveSmallIntegerField(default=7)
    window_days = models.PositiveSmallIntegerField(help_text="All sessions within this many days.")
    # Monday=0 … Sunday=6, e.g. "01234" for weekdays.
    allowed_weekdays = models.CharField(max_length=7, default="0123456")
    same_time_preference = models.BooleanField(default=True)
    review_after_session = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Sessions after this one stay tentative until a prescriber confirms.",
    )
    # Boosters: the least time since the patient's last session of this protocol's type.
    min_days_since_last = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["appointment_type", "name"]
        constraints = [
            models.UniqueConstraint(fields=["appointment_type", "slug"], name="protocol_slug"),
            models.CheckConstraint(condition=Q(sessions__gte=1), name="protocol_sessions"),
            models.CheckConstraint(
                condition=Q(min_gap_days__lte=F("max_gap_days")), name="protocol_gap_order"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class DecisionOutcome(models.TextChoices):
    APPROVED = "approved", "Approved"
    APPROVED_WITH_CONDITIONS = "approved_conditions", "Approved with conditions"
    DECLINED = "declined", "Declined"


class Contraindication(models.Model):
    """A condition the prescriber asks about at every eligibility decision: the clinic's own
    list, installed with the defaults of ``booking.defaults``. An entry no longer asked is
    retired (``is_active``), never deleted, so every answer keeps its question."""

    slug = models.SlugField(max_length=64, unique=True)
    label = models.CharField(max_length=200)
    position = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.label


class EligibilityDecision(models.Model):
    """A prescriber's decision after a consultation, with the contraindications reviewed (its
    ``answers``)."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="decisions")
    consultation = models.ForeignKey(
        Appointment, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    outcome = models.CharField(max_length=24, choices=DecisionOutcome.choices)
    conditions = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField()

    class Meta:
        ordering = ["-decided_at"]

    def __str__(self) -> str:
        return f"{self.get_outcome_display()} ({self.decided_at:%Y-%m-%d})"


class ContraindicationAnswer(models.Model):
    """Whether a contraindication is present for a patient, who recorded it and when: answered
    at a decision (``decision`` set), or flagged later by clinical staff (``decision`` empty),
    which stops treatment at check-in until a prescriber decides again."""

    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, related_name="contraindication_answers"
    )
    decision = models.ForeignKey(
        EligibilityDecision,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="answers",
    )
    contraindication = models.ForeignKey(
        Contraindication, on_delete=models.PROTECT, related_name="answers"
    )
    present = models.BooleanField()
    note = models.CharField(max_length=500, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["contraindication__position", "contraindication_id", "recorded_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["decision", "contraindication"],
                condition=Q(decision__isnull=False),
                name="contraindication_answered_once",
            ),
        ]
        indexes = [models.Index(fields=["patient", "recorded_at"])]

    def __str__(self) -> str:
        return f"{self.contraindication}: {'present' if self.present else 'absent'}"


class PlanStatus(models.TextChoices):
    IN_FORCE = "in_force", "In force"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"


class TreatmentPlan(models.Model):
    """What an approval authorises: a protocol, how many sessions, until when."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="plans")
    decision = models.OneToOneField(
        EligibilityDecision, on_delete=models.PROTECT, related_name="plan"
    )
    protocol = models.ForeignKey(Protocol, on_delete=models.PROTECT, related_name="plans")
    sessions_authorised = models.PositiveSmallIntegerField()
    valid_until = models.DateField()
    conditions = models.TextField(blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.protocol} for {self.patient}"

    def status(self, *, now: datetime) -> str:
        """In force, expired or revoked, on the clinic's calendar: an approval "valid until the
        30th" in New York still holds at 21:00 there on the 30th (whatever the date in UTC)."""
        if self.revoked_at is not None:
            return PlanStatus.REVOKED
        zone = self.protocol.appointment_type.location.zone
        if self.valid_until < now.astimezone(zone).date():
            return PlanStatus.EXPIRED
        return PlanStatus.IN_FORCE


class SeriesStatus(models.TextChoices):
    BOOKED = "booked", "Booked"
    ON_HOLD = "on_hold", "On hold"
    CANCELLED = "cancelled", "Cancelled"
    COMPLETED = "completed", "Completed"


class Series(models.Model):
    plan = models.ForeignKey(TreatmentPlan, on_delete=models.PROTECT, related_name="series")
    protocol = models.ForeignKey(Protocol, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(
        max_length=12, choices=SeriesStatus.choices, default=SeriesStatus.BOOKED
    )
    hold_reason = models.CharField(max_length=500, blank=True)
    held_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "series"

    def __str__(self) -> str:
        return f"{self.protocol} ({self.get_status_display()})"


class ScheduleOverride(models.Model):
    """A prescriber allowed a session outside its protocol's cadence, and said why."""

    appointment = models.ForeignKey(Appointment, on_delete=models.CASCADE, related_name="overrides")
    reason = models.CharField(max_length=500)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField()

    def __str__(self) -> str:
        return f"override for {self.appointment_id}"


# --- The front desk -----------------------------------------------------------------------


class StaffProfile(models.Model):
    """A staff account's place in the clinic: the locations it works at, and so the only
    locations whose patients and calendars it can see. Its role is its group
    (booking.access.roles)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_profile"
    )
    locations = models.ManyToManyField(Location, related_name="staff_profiles", blank=True)
    # The calendar column this person is, when they are a bookable staff member.
    resource = models.OneToOneField(
        Resource, on_delete=models.SET_NULL, null=True, blank=True, related_name="staff_profile"
    )

    class Meta:
        permissions = [
            (
                "manage_setup",
                "Can set up the clinic at their locations: hours, people, types, rules, accounts",
            ),
        ]

    def __str__(self) -> str:
        return f"staff profile of {self.user}"


class AppointmentEvent(models.Model):
    """One line of an appointment's history: booked, moved, checked in, overridden…"""

    appointment = models.ForeignKey(Appointment, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    kind = models.CharField(max_length=32)
    detail = models.CharField(max_length=500, blank=True)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["appointment", "at"])]

    def __str__(self) -> str:
        return f"{self.kind} at {self.at:%Y-%m-%d %H:%M}"


class AuditAction(models.TextChoices):
    VIEW = "view", "Viewed"
    CREATE = "create", "Created"
    UPDATE = "update", "Changed"
    DELETE = "delete", "Deleted"
    EXPORT = "export", "Exported"


class AuditEvent(models.Model):
    """Who read or wrote which patient's data, when, and from where. Append-only: on
    PostgreSQL a trigger refuses UPDATE and DELETE; the admin shows it read-only."""

    at = models.DateTimeField(db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    # Kept as text too: the record outlives a renamed account.
    username = models.CharField(max_length=150)
    action = models.CharField(max_length=16, choices=AuditAction.choices)
    object_type = models.CharField(max_length=40)
    object_id = models.CharField(max_length=64, blank=True)
    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    location = models.ForeignKey(
        Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    method = models.CharField(max_length=8, blank=True)
    path = models.CharField(max_length=300, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["patient", "at"])]

    def __str__(self) -> str:
        return f"{self.username} {self.action} {self.object_type} {self.object_id}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValueError("Audit events are append-only.")
        super().save(*args, **kwargs)


class WaitlistStatus(models.TextChoices):
    WAITING = "waiting", "Waiting"
    OFFERED = "offered", "Offer open"
    BOOKED = "booked", "Booked"
    REMOVED = "removed", "Removed"


class WaitlistEntry(models.Model):
    """A patient waiting for a visit of one type at one location, inside a window of days
    and (optionally) a daily window of local wall-clock time. First come, first offered."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="waitlist")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="+")
    appointment_type = models.ForeignKey(
        AppointmentType, on_delete=models.PROTECT, related_name="+"
    )
    earliest_date = models.DateField()
    latest_date = models.DateField()
    earliest_time = models.TimeField(null=True, blank=True)
    latest_time = models.TimeField(null=True, blank=True)
    status = models.CharField(
        max_length=12, choices=WaitlistStatus.choices, default=WaitlistStatus.WAITING
    )
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "waitlist entries"
        constraints = [
            models.CheckConstraint(
                condition=Q(earliest_date__lte=F("latest_date")), name="waitlist_date_order"
            ),
        ]
        indexes = [models.Index(fields=["appointment_type", "status", "created_at"])]

    def __str__(self) -> str:
        return f"{self.patient} waiting for {self.appointment_type}"


class OfferStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    EXPIRED = "expired", "Expired"
    WITHDRAWN = "withdrawn", "Withdrawn"


class WaitlistOffer(models.Model):
    """A freed slot offered to one waiting patient, held for them (``hold``, an appointment in
    status HELD) until ``expires_at``. The patient answers through a link whose token is
    stored hashed."""

    entry = models.ForeignKey(WaitlistEntry, on_delete=models.CASCADE, related_name="offers")
    hold = models.OneToOneField(
        Appointment, on_delete=models.PROTECT, null=True, blank=True, related_name="held_for"
    )
    start = models.DateTimeField()
    end = models.DateTimeField()
    expires_at = models.DateTimeField()
    token_hash = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=12, choices=OfferStatus.choices, default=OfferStatus.OPEN)
    appointment = models.ForeignKey(
        Appointment, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    # When the offer went out on each channel (null: not on that one), for the front desk and
    # for the daily cap on texts to one number.
    emailed_at = models.DateTimeField(null=True, blank=True)
    texted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["entry"], condition=Q(status="open"), name="waitlist_one_open_offer"
            ),
        ]
        indexes = [models.Index(fields=["status", "expires_at"])]

    def __str__(self) -> str:
        return f"offer {self.start:%Y-%m-%d %H:%M} to entry {self.entry_id}"


class CalendarFeed(models.Model):
    """A read-only iCalendar feed a calendar app subscribes to: one staff member's or place's
    visits at a location (``resource``), or every visit of the location (no resource, the
    desk's). Its secret URL's token is stored only as its SHA-256; a revoked feed answers 404
    like one that never was. Patients' names appear only when ``show_patient_names`` is on."""

    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="+")
    resource = models.ForeignKey(
        Resource, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    show_patient_names = models.BooleanField(
        default=False,
        help_text="Events name the patient (otherwise the visit's public type and reference).",
    )
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # One live feed per resource and location, and one for the location itself: issuing
            # anew revokes the old one.
            models.UniqueConstraint(
                fields=["location", "resource"],
                condition=Q(revoked_at__isnull=True, resource__isnull=False),
                name="calendar_feed_one_live_per_resource",
            ),
            models.UniqueConstraint(
                fields=["location"],
                condition=Q(revoked_at__isnull=True, resource__isnull=True),
                name="calendar_feed_one_live_per_location",
            ),
        ]

    def __str__(self) -> str:
        target = f"resource {self.resource_id}" if self.resource_id else "location"
        return f"calendar feed of {target} at {self.location_id}"
