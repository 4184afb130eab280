"""A waiting patient's answer to an offer, /w/<token>/."""

from django.urls import URLPattern, path

from booking import waitlist_pages

urlpatterns: list[URLPattern] = [
    path("<str:token>/", waitlist_pages.offer, name="waitlist-offer"),
    path("<str:token>/accept/", waitlist_pages.offer_accept_view, name="waitlist-offer-accept"),
    path("<str:token>/decline/", waitlist_pages.offer_decline_view, name="waitlist-offer-decline"),
]
