"""The patient's secure-link pages, /a/<token>/."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
