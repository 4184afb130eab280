"""Public booking pages, /book/."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
