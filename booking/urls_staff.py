"""Staff pages under /staff/: sign-in, calendar, day board, appointment detail, waitlist, audit."""

from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from booking import audit_pages, board_pages, calendar_pages, waitlist_pages

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
    path("calendar/", calendar_pages.calendar_page, name="staff-calendar"),
    path("board/", board_pages.board, name="staff-board"),
    path("board/<str:reference>/<slug:step>/", board_pages.board_step, name="staff-board-step"),
    path(
        "appointments/<str:reference>/",
        board_pages.appointment_detail,
        name="staff-appointment",
    ),
    path("waitlist/", waitlist_pages.staff_waitlist, name="staff-waitlist"),
    path(
        "waitlist/<int:entry_id>/remove/",
        waitlist_pages.staff_waitlist_remove,
        name="staff-waitlist-remove",
    ),
    path("audit/", audit_pages.audit_log, name="staff-audit"),
    path("audit/export.csv", audit_pages.audit_export, name="staff-audit-export"),
]
