"""Relay connection pieces shared by every list."""

from __future__ import annotations

import strawberry

from domain.pagination import Page


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None

    @classmethod
    def of(cls, page: Page) -> PageInfo:
        return cls(
            has_next_page=page.has_next, end_cursor=page.cursors[-1] if page.cursors else None
        )
