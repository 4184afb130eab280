"""The peer's pages at the paths its documentation gives."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("appointment/", include("appointment.urls")),
    path("admin/", admin.site.urls),
]
