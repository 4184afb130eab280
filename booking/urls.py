from django.urls import include, path

from booking import api

urlpatterns = [
    path("locations/", api.LocationList.as_view(), name="api-locations"),
    path("appointment-types/", api.AppointmentTypeList.as_view(), name="api-appointment-types"),
    path("availability/", api.Availability.as_view(), name="api-availability"),
    path("bookings/", api.BookingCreate.as_view(), name="api-bookings"),
    path("", include("booking.urls_plans")),
    path("", include("booking.urls_series")),
]
