"""The front desk's waitlist, /staff/waitlist/.

The list shows one location's open entries (``?location=<slug>``, one of the user's own: any
other is a 404, as is an entry or a patient out of scope). Adding and removing need
``MANAGE_WAITLIST``; every read and write is audited.
"""

from __future__ import annotations

from collections.abc import Sequence

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from booking.access.audit import audit
from booking.access.decorators import staff_required
from booking.access.roles import MANAGE_WAITLIST, VIEW
from booking.access.scoping import (
    get_scoped,
    location_ids,
    locations_for,
    patients_find,
    patients_for,
)
from booking.errors import BookingError
from booking.models import (
    AuditAction,
    OfferStatus,
    Patient,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from booking.validators import validate_date_in_range
from booking.waitlist import waitlist_add, waitlist_remove
from scheduling.models import AppointmentType, Location


class WaitlistAddForm(forms.Form):
    patient = forms.IntegerField(min_value=1, label="Patient record number")
    appointment_type = forms.ModelChoiceField(
        queryset=AppointmentType.objects.none(), label="Visit type"
    )
    earliest_date = forms.DateField(
        label="From (date)",
        widget=forms.DateInput({"type": "date"}),
        validators=[validate_date_in_range],
    )
    latest_date = forms.DateField(
        label="Until (date)",
        widget=forms.DateInput({"type": "date"}),
        validators=[validate_date_in_range],
    )
    earliest_time = forms.TimeField(
        required=False, label="Not before (time)", widget=forms.TimeInput({"type": "time"})
    )
    latest_time = forms.TimeField(
        required=False, label="Not after (time)", widget=forms.TimeInput({"type": "time"})
    )
    note = forms.CharField(required=False, max_length=500, label="Note")

    def __init__(
        self,
        *args: object,
        location: Location,
        found: Sequence[Patient] = (),
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        field = self.fields["appointment_type"]
        assert isinstance(field, forms.ModelChoiceField)  # noqa: S101 - narrows the type
        field.queryset = AppointmentType.objects.filter(location=location, is_active=True)
        if found:
            # The patients a search found, to choose from instead of typing a record number.
            patient = self.fields["patient"]
            patient.label = "Patient"
            patient.widget = forms.RadioSelect(
                choices=[
                    (p.pk, f"{p.last_name}, {p.first_name} · born {p.date_of_birth} · #{p.pk}")
                    for p in found
                ]
            )


def _staff_location(request: HttpRequest) -> Location | None:
    """The location asked for (the first of the user's when none is): another's is a 404."""
    locations = list(locations_for(request.user).order_by("name"))
    if not locations:
        return None
    wanted = request.GET.get("location")
    location = (
        next((loc for loc in locations if loc.slug == wanted), None) if wanted else locations[0]
    )
    if location is None:
        raise Http404("Not found.")
    return location


def _find(request: HttpRequest) -> str:
    """The words the desk searched patients for, if it did."""
    return request.GET.get("find", "").strip()[:100]


def _list_url(location: Location) -> str:
    return f"{reverse('staff-waitlist')}?location={location.slug}"


def _staff_page(
    request: HttpRequest, location: Location | None, form: WaitlistAddForm | None, status: int = 200
) -> HttpResponse:
    context: dict[str, object] = {
        "nav": "waitlist",
        "location": location,
        "form": form,
        "find": _find(request),
    }
    if location is not None:
        entries = list(
            WaitlistEntry.objects.filter(
                location=location,
                status__in=(WaitlistStatus.WAITING, WaitlistStatus.OFFERED),
            )
            .select_related("patient", "appointment_type")
            .order_by("created_at", "id")
        )
        open_offers = {
            o.entry_id: o
            for o in WaitlistOffer.objects.filter(entry__in=entries, status=OfferStatus.OPEN).only(
                "entry_id", "start", "expires_at", "emailed_at", "texted_at"
            )
        }
        context.update(
            entries=[(entry, open_offers.get(entry.pk)) for entry in entries],
            locations=list(locations_for(request.user).order_by("name")),
            zone=location.timezone,
            can_manage=request.user.has_perm(MANAGE_WAITLIST),
        )
        audit(
            request,
            AuditAction.VIEW,
            object_type="waitlist",
            object_id=location.slug,
            location_id=location.pk,
            entries=len(entries),
        )
    return render(request, "staff/waitlist.html", context, status=status)


@require_http_methods(["GET", "POST"])
@never_cache
@staff_required(VIEW)
def staff_waitlist(request: HttpRequest) -> HttpResponse:
    location = _staff_location(request)
    if request.method == "GET":
        form = None
        if location is not None and request.user.has_perm(MANAGE_WAITLIST):
            text = _find(request)
            found = patients_find(request, text, location_id=location.pk) if text else []
            form = WaitlistAddForm(
                location=location,
                found=found,
                initial={"patient": found[0].pk if len(found) == 1 else ""},
            )
        return _staff_page(request, location, form)
    if not request.user.has_perm(MANAGE_WAITLIST):
        raise PermissionDenied
    if location is None:
        raise Http404("Not found.")
    form = WaitlistAddForm(request.POST, location=location)
    if not form.is_valid():
        return _staff_page(request, location, form, status=400)
    data = form.cleaned_data
    patient = get_scoped(patients_for(request.user), pk=data["patient"])
    try:
        entry = waitlist_add(
            patient=patient,
            location=location,
            appointment_type=data["appointment_type"],
            earliest_date=data["earliest_date"],
            latest_date=data["latest_date"],
            earliest_time=data["earliest_time"],
            latest_time=data["latest_time"],
            note=data["note"],
            by=request.user,
            now=timezone.now(),
        )
    except BookingError as refused:
        form.add_error(refused.field if refused.field in form.fields else None, refused.message)
        return _staff_page(request, location, form, status=refused.status)
    audit(request, AuditAction.CREATE, entry, patient=patient, location_id=location.pk)
    messages.success(request, f"{patient} is on the waitlist.")
    return redirect(_list_url(location))


@require_POST
@staff_required(MANAGE_WAITLIST)
def staff_waitlist_remove(request: HttpRequest, entry_id: int) -> HttpResponse:
    entry = get_scoped(
        WaitlistEntry.objects.filter(location_id__in=location_ids(request.user)).select_related(
            "patient", "location", "appointment_type"
        ),
        pk=entry_id,
    )
    try:
        waitlist_remove(entry=entry, by=request.user, now=timezone.now())
    except BookingError as refused:
        messages.error(request, refused.message)
    else:
        audit(
            request,
            AuditAction.UPDATE,
            entry,
            patient=entry.patient,
            location_id=entry.location_id,
            status=WaitlistStatus.REMOVED,
        )
        messages.success(request, f"{entry.patient} is off the waitlist.")
    return redirect(_list_url(entry.location))
