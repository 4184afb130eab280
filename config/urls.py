from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config.health import healthz
from config.metrics import metrics
from notifications import setup as reminder_setup
from notifications.views import message_log
from notifications.webhooks import sms_webhook
from notifications.webhooks_setup import webhook_edit, webhooks_list

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("api/v1/", include("booking.api.urls")),
    path("fhir/", include("booking.fhir.urls")),
    path("", include("booking.portal.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file: the pages' CSP runs no inline
    # script. Its template takes the page's few styles from a file too.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="api/swagger_ui.html"),
        name="api-docs",
    ),
    path("webhooks/sms/<slug:provider>/", sms_webhook, name="sms-webhook"),
    path("staff/messages/", message_log, name="staff-messages"),
    # The reminder rules' setup pages live beside the rules (booking never imports notifications).
    path(
        "staff/setup/<int:location_id>/reminders/",
        reminder_setup.reminders_list,
        name="setup-reminders",
    ),
    path(
        "staff/setup/<int:location_id>/reminders/<int:type_id>/",
        reminder_setup.reminder_rules_edit,
        name="setup-reminders-type",
    ),
    path(
        "staff/setup/<int:location_id>/reminders/<int:type_id>/preview/",
        reminder_setup.reminder_rule_preview,
        name="setup-reminders-preview",
    ),
    path(
        "staff/setup/<int:location_id>/reminders/jobs/<int:job_id>/",
        reminder_setup.replan_job_status,
        name="setup-reminders-job",
    ),
    path("staff/setup/<int:location_id>/webhooks/", webhooks_list, name="setup-webhooks"),
    path(
        "staff/setup/<int:location_id>/webhooks/<int:subscription_id>/",
        webhook_edit,
        name="setup-webhook",
    ),
    path("staff/", include("booking.desk.urls")),
    path("admin/", admin.site.urls),
]

handler404 = "config.api.json_404"
handler500 = "config.api.json_500"
