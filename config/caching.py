"""No staff answer is kept by a browser or a proxy: every answer of the staff API and of the
staff pages carries ``Cache-Control: no-store`` (with the rest of Django's never-cache headers),
so a shared front-desk computer's cache, its back button after sign-out, or a proxy on the way
never holds a patient's data.

It is the default for everything under ``/api/v1/`` and ``/staff/``, errors included, so a new
endpoint is private without anybody remembering to say so. Only the public catalogue, which
is the same for every caller and names no patient, may be cached: ``PUBLIC_CACHEABLE``.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.cache import add_never_cache_headers

PRIVATE_PREFIXES = ("/api/v1/", "/staff/")
# URL names of the answers anybody gets alike (DESIGN §4): locations, their appointment types
# and open times.
PUBLIC_CACHEABLE = frozenset({"api-locations", "api-appointment-types", "api-availability"})


def is_private(request: HttpRequest) -> bool:
    if not request.path_info.startswith(PRIVATE_PREFIXES):
        return False
    match = request.resolver_match
    return match is None or match.url_name not in PUBLIC_CACHEABLE


class NoStoreMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if is_private(request):
            add_never_cache_headers(response)
        return response
