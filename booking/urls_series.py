"""Staff API for infusion series, under ``/api/v1/``."""

from django.urls import path

from booking import series_api

urlpatterns = [
    path("series/", series_api.SeriesCreate.as_view(), name="api-series"),
    path("series/proposals/", series_api.ProposalCreate.as_view(), name="api-series-proposals"),
    path("series/<int:pk>/", series_api.SeriesDetail.as_view(), name="api-series-detail"),
    path("series/<int:pk>/hold/", series_api.SeriesHold.as_view(), name="api-series-hold"),
    path("series/<int:pk>/resume/", series_api.SeriesResume.as_view(), name="api-series-resume"),
    path(
        "series/<int:pk>/cancel-rest/",
        series_api.SeriesCancelRest.as_view(),
        name="api-series-cancel-rest",
    ),
    path("series/<int:pk>/review/", series_api.SeriesReview.as_view(), name="api-series-review"),
    path(
        "series/sessions/<str:reference>/reschedule/",
        series_api.SessionReschedule.as_view(),
        name="api-series-session-reschedule",
    ),
]
