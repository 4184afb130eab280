"""The patient's secure link: a random token, stored only as its hash, scoped to one patient and
expiring. Issued when a message needs one, resolved by the link pages, and requested again by a
patient who lost it (answered the same way whether or not anybody matched).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import date, datetime, timedelta

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from booking.models import Appointment, Patient, PatientLink
from booking.signals import patient_link_requested

LINK_LIFETIME = timedelta(days=30)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def patient_link_issue(
    *, patient: Patient, now: datetime | None = None, token: str | None = None
) -> str:
    """A new secure link token for ``patient``; only its hash is stored.

    It lasts 30 days, or until two days after the patient's last booked visit if that is later,
    so the link in a confirmation stays good until the visit it confirms. ``token`` stores a
    token already sent whose row was lost (a transaction that did not commit).
    """
    now = now or timezone.now()
    token = token or secrets.token_urlsafe(32)  # 256 bits
    last_visit = (
        Appointment.objects.active()
        .filter(patient=patient, start__gt=now)
        .aggregate(last=Max("end"))["last"]
    )
    expires = now + LINK_LIFETIME
    if last_visit is not None:
        expires = max(expires, last_visit + timedelta(days=2))
    PatientLink.objects.create(
        patient=patient, token_hash=hash_token(token), created_at=now, expires_at=expires
    )
    return token


def patient_link_resolve(*, token: str, now: datetime | None = None) -> Patient | None:
    """The patient a token belongs to, or None for unknown, expired or revoked tokens."""
    now = now or timezone.now()
    if not token or len(token) > 128:
        return None
    link = (
        PatientLink.objects.usable(now)
        .select_related("patient")
        .filter(token_hash=hash_token(token))
        .first()
    )
    return link.patient if link else None


def patient_link_request(*, email: str, date_of_birth: date, now: datetime | None = None) -> None:
    """Someone asks for a new link. If a patient matches exactly, earlier links are revoked and
    a new one is sent to the address on record. Nothing tells the caller whether one matched."""
    now = now or timezone.now()
    patient = (
        Patient.objects.on_file()
        .filter(email__iexact=email, date_of_birth=date_of_birth)
        .order_by("id")
        .first()
    )
    if patient is None:
        return
    with transaction.atomic():
        PatientLink.objects.filter(patient=patient, revoked_at__isnull=True).update(revoked_at=now)
        patient_link_requested.send(sender=Patient, patient=patient)
