"""Staff pages under /staff/: sign-in, calendar, day board, appointment detail, waitlist, audit."""

from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from booking.desk import audit, board, calendar, patients, record, waitlist

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="staff/login.html", redirect_authenticated_user=True
        ),
        name="staff-login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="staff-logout"),
    path("", RedirectView.as_view(pattern_name="staff-board"), name="staff-home"),
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
    path("audit/", audit.audit_log, name="staff-audit"),
    path("audit/export.csv", audit.audit_export, name="staff-audit-export"),
]
