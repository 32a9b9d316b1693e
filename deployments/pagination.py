"""Pagination that stays fast on deep pages of a long history.

OFFSET over the joined rows makes PostgreSQL build (and throw away) every joined row
before the page.  Here the offset runs over the primary keys alone (an index-only scan of
(project, -number)), then one query loads the page's rows with their joins: two queries,
whatever the page number or size.
"""

from __future__ import annotations

from functools import partial

from django.core.paginator import Paginator
from rest_framework.pagination import PageNumberPagination


class _KeysFirstSlice:
    def __init__(self, queryset, count: int | None = None):
        self.queryset = queryset
        self.known_count = count

    def count(self) -> int:
        return self.known_count if self.known_count is not None else self.queryset.count()

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, window):
        if not isinstance(window, slice):
            raise TypeError("only slices of a page are supported")
        keys = list(self.queryset.values_list("pk", flat=True)[window])
        if not keys:
            return []
        rows = {row.pk: row for row in self.queryset.filter(pk__in=keys)}
        return [rows[key] for key in keys if key in rows]


class KeysFirstPaginator(Paginator):
    """count: the number of rows when already known (a project's deployment counter: numbers
    are dense and history is append-only), which saves counting 10,000 rows per page."""

    def __init__(self, object_list, per_page, *, count: int | None = None, **kwargs):
        super().__init__(_KeysFirstSlice(object_list, count), per_page, **kwargs)


class HistoryPagination(PageNumberPagination):
    def paginate_queryset(self, queryset, request, view=None):
        count = getattr(view, "history_count", None)
        self.django_paginator_class = partial(KeysFirstPaginator, count=count)
        return super().paginate_queryset(queryset, request, view)
