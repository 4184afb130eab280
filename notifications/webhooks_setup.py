"""The webhooks' setup pages: a location's subscriptions, one subscription's settings and its
delivery log, with "Rotate secret", "Send test event" and "Send again".

They sit in notifications beside the outbox, on booking's setup frame
(``booking.desk.setup.base``), like the reminder rules' pages. The log shows events by type,
id and outcome, never their payloads: a setup page shows no patient.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from booking.desk.forms import DeskForm
from booking.desk.setup.base import audit_setup, render_setup, setup_required
from booking.errors import BookingError
from booking.models import AuditAction
from booking.paging import keyset_page
from notifications.models import (
    WebhookDelivery,
    WebhookEventType,
    WebhookSubscription,
)
from notifications.webhooks_outbox import (
    webhook_secret_rotate,
    webhook_send_again,
    webhook_subscription_create,
    webhook_subscription_update,
    webhook_test_send,
)
from scheduling.models import Location

SECTION = "setup-webhooks"
LOG_PAGE_SIZE = 50


class WebhookSubscriptionForm(DeskForm):
    url = forms.URLField(
        label="Address",
        max_length=500,
        assume_scheme="https",
        help_text="Where the events are sent, e.g. https://example.com/hooks. https only.",
        widget=forms.URLInput(attrs={"autocomplete": "off"}),
    )
    description = forms.CharField(
        label="Description",
        max_length=120,
        required=False,
        help_text="What receives them, for whoever reads this list next.",
    )
    events = forms.MultipleChoiceField(
        label="Events",
        choices=WebhookEventType.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one event."},
    )
    include_patient = forms.BooleanField(
        label="Include patient details",
        required=False,
        help_text="Name, date of birth, e-mail and phone in each event. Without it, events "
        "carry ids and times only.",
    )
    is_active = forms.BooleanField(
        label="Active", required=False, initial=True, help_text="Untick to stop sending."
    )

    @classmethod
    def of(cls, subscription: WebhookSubscription, data: Any = None) -> WebhookSubscriptionForm:
        return cls(
            data,
            initial={
                "url": subscription.url,
                "description": subscription.description,
                "events": subscription.events,
                "include_patient": subscription.include_patient,
                "is_active": subscription.is_active,
            },
        )


def _refused(form: WebhookSubscriptionForm, refused: BookingError) -> None:
    form.add_error(refused.field if refused.field in form.fields else None, refused.message)


def _subscription_at(location: Location, subscription_id: int) -> WebhookSubscription:
    # Another location's subscription is not found here: 404, never a hint that it exists.
    return get_object_or_404(WebhookSubscription, pk=subscription_id, location=location)


@never_cache
@require_http_methods(["GET", "POST"])
@setup_required
def webhooks_list(request: HttpRequest, location: Location) -> HttpResponse:
    """The location's subscriptions, and the form that adds one; the new secret is shown once,
    on the page that answers the addition."""
    form = WebhookSubscriptionForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                subscription = webhook_subscription_create(
                    location=location,
                    url=data["url"],
                    events=data["events"],
                    include_patient=data["include_patient"],
                    description=data["description"],
                    by=request.user,
                )
            except BookingError as refused:
                _refused(form, refused)
                status = refused.status
            else:
                audit_setup(
                    request,
                    AuditAction.CREATE,
                    subscription,
                    location=location,
                    changed=["url", "events", "include_patient", "description"],
                )
                return _subscription_page(request, location, subscription, secret=True)
    return render_setup(
        request,
        "notifications/setup/webhooks.html",
        location,
        section=SECTION,
        status=status,
        subscriptions=WebhookSubscription.objects.filter(location=location),
        form=form,
    )


@never_cache
@require_http_methods(["GET", "POST"])
@setup_required
def webhook_edit(request: HttpRequest, location: Location, subscription_id: int) -> HttpResponse:
    """One subscription: its settings, the buttons that act on it, and its delivery log.

    A POST names its ``action``: ``save`` (the form), ``rotate`` (a new secret, shown once),
    ``test`` (a test event) or ``again`` (send ``delivery`` once more, with its own id)."""
    subscription = _subscription_at(location, subscription_id)
    if request.method == "GET":
        return _subscription_page(request, location, subscription)
    action = request.POST.get("action", "save")
    if action == "rotate":
        webhook_secret_rotate(subscription=subscription)
        audit_setup(
            request, AuditAction.UPDATE, subscription, location=location, changed=["secret"]
        )
        return _subscription_page(request, location, subscription, secret=True)
    if action == "test":
        delivery = webhook_test_send(subscription=subscription)
        audit_setup(
            request, AuditAction.CREATE, delivery, location=location, event=delivery.event_type
        )
        messages.success(request, "A test event is on its way: see the log below.")
        return redirect("setup-webhook", location.pk, subscription.pk)
    if action == "again":
        return _send_again(request, location, subscription)
    if action != "save":
        return _subscription_page(
            request, location, subscription, status=400, problem="Unknown action."
        )
    form = WebhookSubscriptionForm.of(subscription, request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            changed = webhook_subscription_update(
                subscription=subscription,
                url=data["url"],
                events=data["events"],
                include_patient=data["include_patient"],
                description=data["description"],
                is_active=data["is_active"],
            )
        except BookingError as refused:
            _refused(form, refused)
            return _subscription_page(
                request, location, subscription, form=form, status=refused.status
            )
        if changed:
            audit_setup(
                request, AuditAction.UPDATE, subscription, location=location, changed=changed
            )
            messages.success(request, "Saved.")
        else:
            messages.info(request, "Nothing changed.")
        return redirect("setup-webhook", location.pk, subscription.pk)
    return _subscription_page(request, location, subscription, form=form, status=400)


def _send_again(
    request: HttpRequest, location: Location, subscription: WebhookSubscription
) -> HttpResponse:
    raw = request.POST.get("delivery", "")
    delivery = (
        WebhookDelivery.objects.filter(subscription=subscription, pk=int(raw)).first()
        if raw.isdigit()
        else None
    )
    if delivery is None:
        return _subscription_page(
            request, location, subscription, status=404, problem="delivery: no such event."
        )
    try:
        webhook_send_again(delivery=delivery)
    except BookingError as refused:
        return _subscription_page(
            request, location, subscription, status=refused.status, problem=refused.message
        )
    audit_setup(
        request, AuditAction.UPDATE, delivery, location=location, changed=["status"], again=True
    )
    messages.success(request, f"Event {delivery.event_id} will be sent again, with the same id.")
    return redirect("setup-webhook", location.pk, subscription.pk)


def _subscription_page(
    request: HttpRequest,
    location: Location,
    subscription: WebhookSubscription,
    *,
    form: WebhookSubscriptionForm | None = None,
    secret: bool = False,
    status: int = 200,
    problem: str = "",
) -> HttpResponse:
    deliveries = keyset_page(
        WebhookDelivery.objects.filter(subscription=subscription),
        ("created_at", "id"),
        before=request.GET.get("before"),
        after=request.GET.get("after"),
        size=LOG_PAGE_SIZE,
    )
    return render_setup(
        request,
        "notifications/setup/webhook.html",
        location,
        section=SECTION,
        status=status,
        subscription=subscription,
        form=form or WebhookSubscriptionForm.of(subscription),
        secret=subscription.secret if secret else "",
        deliveries=deliveries,
        problem=problem,
    )
