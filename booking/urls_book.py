"""Public booking pages, /book/."""

from django.urls import path

from booking import pages

urlpatterns = [
    path("", pages.book_start, name="book-start"),
    # Before the location slugs, which it would otherwise read as one.
    path("done/", pages.book_done, name="book-done"),
    path("<slug:location_slug>/", pages.book_types, name="book-types"),
    path("<slug:location_slug>/<slug:type_slug>/", pages.book_slots, name="book-slots"),
    path("<slug:location_slug>/<slug:type_slug>/details/", pages.book_details, name="book-details"),
    path("<slug:location_slug>/<slug:type_slug>/times/", pages.book_times, name="book-times"),
    path("<slug:location_slug>/<slug:type_slug>/review/", pages.book_review, name="book-review"),
    path("<slug:location_slug>/<slug:type_slug>/confirm/", pages.book_confirm, name="book-confirm"),
]
