"""Pages of a log, newest first, found from a key: never counted, never skipped to.

On a table of millions of rows an offset page reads every row before it, and a count of pages
reads them all; a page found from the key of the row next to it is an index scan that stops
after a page of rows, as fast on the thousandth page as on the first.

A key is the values of the ordering fields (the last one unique, such as the id), written in a
link as one ``.``-separated string; a date-time is written as microseconds since 1970.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Generic, TypeVar

from django.db import models
from django.db.models import Q, QuerySet
from django.utils import timezone

T = TypeVar("T", bound=models.Model)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_DIGITS = 18  # wider than any id or instant a link can carry


@dataclass
class KeysetPage(Generic[T]):
    rows: list[T]
    newer: str | None  # the link to the newer page: rows after this key
    older: str | None  # the link to the older page: rows before this key
    older_than: str | None  # the key this page was asked from, as understood
    newer_than: str | None


def _field_is_instant(model: type[models.Model], name: str) -> bool:
    return isinstance(model._meta.get_field(name), models.DateTimeField)


def key_encode(row: models.Model, fields: Sequence[str]) -> str:
    parts = []
    for name in fields:
        value = getattr(row, name)
        parts.append(
            str((value - _EPOCH) // _MICROSECOND if isinstance(value, datetime) else value)
        )
    return ".".join(parts)


def key_decode(text: str | None, model: type[models.Model], fields: Sequence[str]) -> list | None:
    """The key's values, or None when ``text`` is not a key of these fields (a link that was
    edited or cut short is the first page, not an error)."""
    parts = (text or "").split(".")
    if len(parts) != len(fields) or not all(p.isdecimal() and len(p) <= _DIGITS for p in parts):
        return None
    values: list = []
    for name, part in zip(fields, parts, strict=True):
        number = int(part)
        if _field_is_instant(model, name):
            try:
                values.append(_EPOCH + number * _MICROSECOND)
            except OverflowError:
                return None
        else:
            values.append(number)
    return values


def _beyond(fields: Sequence[str], values: list, lookup: str) -> Q:
    """Rows whose key is beyond ``values`` in the direction of ``lookup`` (``lt`` or ``gt``):
    (a < x) or (a = x and b < y) ..."""
    clauses = []
    for i, name in enumerate(fields):
        equal = dict(zip(fields[:i], values[:i], strict=True))
        clauses.append(Q(**equal, **{f"{name}__{lookup}": values[i]}))
    return reduce(lambda a, b: a | b, clauses)


def _nearest(
    rows: QuerySet[T],
    fields: Sequence[str],
    size: int,
    *,
    newer: bool,
    start: datetime,
    spans: Sequence[timedelta],
) -> list[T]:
    """The ``size`` + 1 rows of ``rows`` nearest in the direction read. With ``spans``, looked
    for within each span of ``start`` on the first field in turn, and among all rows last: a
    table partitioned by that field is read in its nearest partitions only, until they hold
    more than a page."""
    order = list(fields) if newer else [f"-{name}" for name in fields]
    found: list[T] = []
    for span in [*spans, None]:
        bounded = rows
        if span is not None:
            if newer:
                bounded = rows.filter(**{f"{fields[0]}__lte": start + span})
            else:
                bounded = rows.filter(**{f"{fields[0]}__gte": start - span})
        found = list(bounded.order_by(*order)[: size + 1])
        if len(found) > size:
            break
    return found


def keyset_page(
    rows: QuerySet[T],
    fields: Sequence[str],
    *,
    before: str | None,
    after: str | None,
    size: int,
    spans: Sequence[timedelta] = (),
) -> KeysetPage[T]:
    """The page of ``rows`` (newest first by ``fields``) before the key ``before``, or after
    the key ``after``, or the newest page.

    With ``spans`` (widening; the first field a date-time), rows are looked for within each
    span of the key in turn (of now, for the newest page), and among all of them last."""
    model = rows.model
    older_than = key_decode(before, model, fields)
    newer_than = key_decode(after, model, fields)
    if newer_than is not None:
        found = _nearest(
            rows.filter(_beyond(fields, newer_than, "gt")),
            fields,
            size,
            newer=True,
            start=newer_than[0],
            spans=spans,
        )
        more_newer, found = len(found) > size, found[:size][::-1]
        more_older = True
    else:
        start = timezone.now()
        if older_than is not None:
            rows = rows.filter(_beyond(fields, older_than, "lt"))
            start = older_than[0]
        found = _nearest(rows, fields, size, newer=False, start=start, spans=spans)
        more_older, found = len(found) > size, found[:size]
        more_newer = older_than is not None
    return KeysetPage(
        rows=found,
        newer=key_encode(found[0], fields) if found and more_newer else None,
        older=key_encode(found[-1], fields) if found and more_older else None,
        older_than=before if older_than is not None else None,
        newer_than=after if newer_than is not None else None,
    )
