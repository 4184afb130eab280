"""Staff pages under /staff/: sign-in, calendar, day board, appointment detail, waitlist, audit,
the prescriber's pages."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from booking.desk import (
    audit,
    board,
    calendar,
    patients,
    prescriber,
    record,
    two_factor,
    waitlist,
)
from booking.desk.setup import accounts as setup_accounts
from booking.desk.setup import new_location

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="staff/login.html", redirect_authenticated_user=True
        ),
        name="staff-login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="staff-logout"),
    path("two-factor/", two_factor.manage, name="two-factor"),
    path("two-factor/enrol/", two_factor.enrol, name="two-factor-enrol"),
    path("two-factor/verify/", two_factor.verify, name="two-factor-verify"),
    # An invited staff member's set-password link (booking.desk.setup.accounts).
    path("welcome/<uidb64>/<token>/", setup_accounts.welcome, name="staff-welcome"),
    path("", new_location.staff_start, name="staff-home"),
    path("calendar/", calendar.calendar_page, name="staff-calendar"),
    path("board/", board.board, name="staff-board"),
    path("board/<str:reference>/<slug:step>/", board.board_step, name="staff-board-step"),
    path("appointments/<str:reference>/", board.appointment_detail, name="staff-appointment"),
    path(
        "appointments/<str:reference>/escort/",
        record.escort_record,
        name="staff-appointment-escort",
    ),
    path(
        "appointments/<str:reference>/allergies/",
        record.allergies_record,
        name="staff-appointment-allergies",
    ),
    path(
        "appointments/<str:reference>/contraindications/",
        record.contraindication_record,
        name="staff-appointment-contraindication",
    ),
    path("patients/new/", patients.patient_new, name="staff-patient-new"),
    path("waitlist/", waitlist.staff_waitlist, name="staff-waitlist"),
    path(
        "waitlist/<int:entry_id>/remove/",
        waitlist.staff_waitlist_remove,
        name="staff-waitlist-remove",
    ),
    path("setup/", include("booking.desk.setup.urls")),
    path("audit/", audit.audit_log, name="staff-audit"),
    path("audit/export.csv", audit.audit_export, name="staff-audit-export"),
    path("prescriber/", prescriber.queue, name="staff-prescriber"),
    path(
        "prescriber/decide/<str:reference>/",
        prescriber.decide,
        name="staff-prescriber-decide",
    ),
    path(
        "prescriber/patients/<int:patient_id>/",
        prescriber.patient_page,
        name="staff-prescriber-patient",
    ),
    path(
        "prescriber/patients/<int:patient_id>/rems/",
        prescriber.rems_enrolment,
        name="staff-prescriber-rems",
    ),
    path(
        "prescriber/plans/<int:plan_id>/revoke/",
        prescriber.plan_revocation,
        name="staff-prescriber-revoke",
    ),
    path(
        "prescriber/series/<int:series_id>/<slug:step>/",
        prescriber.series_step,
        name="staff-prescriber-series",
    ),
]
