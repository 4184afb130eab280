"""Staff pages under /staff/: sign-in, calendar, day board, appointment detail, waitlist, audit."""

from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

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
]
