"""Smaller answers: the static files' compressed copies, kept a year, and compressed data.

Static files are served by WhiteNoise from what collectstatic wrote (config/settings.py): each
under a hashed name beside its ``.gz`` and ``.br``, which WhiteNoise picks by the request's
``Accept-Encoding``. A hashed name never changes content, so it is kept a year.

The API's JSON (a busy week of the calendar is over a megabyte) and calendar files are
compressed on the way out. HTML pages are not, on purpose: a page carries a CSRF token and may
echo what was typed into a search, and compressing a secret beside attacker-chosen text leaks
the secret through the compressed size (BREACH). JSON and calendar files hold neither.
"""

from __future__ import annotations

import re

import brotli
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.middleware.gzip import GZipMiddleware
from django.utils.cache import patch_vary_headers
from whitenoise.middleware import WhiteNoiseMiddleware

ONE_YEAR = 365 * 24 * 60 * 60

# The only media types compressed here; an HTML page never is (see above).
COMPRESSED_TYPES = frozenset({"application/json", "text/calendar"})
# Below about a kilobyte an answer fits one network packet anyway: nothing to gain.
MIN_COMPRESSED_SIZE = 1024
# Brotli's quality 5 is what servers use for answers made on the fly: on a week of the calendar
# it takes about what gzip does and is a tenth smaller; its top quality (11, for the static
# files, compressed once) would take seconds.
BROTLI_QUALITY = 5

_accepts_brotli = re.compile(r"\bbr\b")


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, with a hashed file kept one year rather than its ten: a year is the longest
    HTTP/1.1 let a server promise (RFC 2616, 14.21) and what caches expect of a hashed name; a
    release renames whatever it changes anyway."""

    FOREVER = ONE_YEAR


class CompressedDataMiddleware(GZipMiddleware):
    """Django's gzip middleware for JSON and calendar answers only, with Brotli first when the
    client takes it."""

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        media_type = response.get("Content-Type", "").partition(";")[0].strip().lower()
        if media_type not in COMPRESSED_TYPES or response.has_header("Content-Encoding"):
            return response
        if not isinstance(response, HttpResponse):
            # A streaming answer is left to gzip, which Django compresses chunk by chunk.
            return super().process_response(request, response)
        if len(response.content) < MIN_COMPRESSED_SIZE:
            return response
        if not _accepts_brotli.search(request.META.get("HTTP_ACCEPT_ENCODING", "")):
            return super().process_response(request, response)
        patch_vary_headers(response, ("Accept-Encoding",))
        compressed = brotli.compress(response.content, quality=BROTLI_QUALITY)
        if len(compressed) >= len(response.content):
            return response
        response.content = compressed
        response.headers["Content-Length"] = str(len(compressed))
        # The compressed body is not the same bytes: a strong validator would claim it is.
        etag = response.get("ETag")
        if etag and etag.startswith('"'):
            response.headers["ETag"] = "W/" + etag
        response.headers["Content-Encoding"] = "br"
        return response
