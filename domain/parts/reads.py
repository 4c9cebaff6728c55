"""Reading parts: lists with filters, sorting and keyset pages; stats; the leaderboard."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, or_

from db import parts as store
from db.base import counted, page
from db.engine import Database
from db.identity import get_user_by_username
from db.parts import Part, PartClaim, PartWorker
from db.streams import get_stream
from domain.checks import invalid
from domain.errors import BadUserInput
from domain.pagination import Page, decode_position, encode_position, page_size
from domain.parts.records import PART_EVENTS
from domain.people import UserRef, missing_user, user_refs
from domain.streams import Change, check_since

DEFAULT_HISTORY_PAGE = 100
MAX_HISTORY_PAGE = 1000
MAX_WEEKS = 104


@dataclass(frozen=True)
class PartView:
    """A part with its claim and claimer (if any)."""

    part: Part
    claim: PartClaim | None
    claimer: UserRef | None
    reviewer: UserRef | None = None


@dataclass(frozen=True)
class Stats:
    by_stage: dict[str, int]
    by_subsystem: list[tuple[str | None, str, int]]
    """(subsystem, stage, count)."""
    weekly: list[tuple[datetime, int]]
    """(Monday 00:00 UTC, parts completed that week), oldest first."""


SORTS = {
    "NUMBER": (Part.number, False),
    "NUMBER_DESC": (Part.number, True),
    "NAME": (Part.name, False),
    "NEWEST": (Part.number, True),
}


class PartReads:
    db: Database

    async def stream_id(self) -> int:
        raise NotImplementedError

    async def get(self, part_id: int) -> PartView | None:
        return (await self.views([part_id])).get(part_id)

    async def views(self, part_ids: list[int], rows: list[Part] | None = None) -> dict:
        async with self.db.read() as session:
            if rows is None:
                rows = await store.rows_by_id(session, set(part_ids))
            claims = await store.claims_of(session, {part.id for part in rows})
            reviewers = await user_refs(session, {p.reviewer_id for p in rows if p.reviewer_id})
        found = {}
        for part in rows:
            claim, user = claims.get(part.id, (None, None))
            found[part.id] = PartView(
                part, claim, UserRef.of(user) if user else None, reviewers.get(part.reviewer_id)
            )
        return found

    async def list(
        self,
        *,
        stage: str | None = None,
        kind: str | None = None,
        subsystem: str | None = None,
        claimed_by: str | None = None,
        text: str | None = None,
        sort: str = "NUMBER",
        first: int | None = None,
        after: str | None = None,
    ) -> Page[PartView]:
        limit = page_size(first)
        if text is not None and len(text) > 200:
            raise invalid("search", "at most 200 characters")
        column, descending = SORTS[sort]
        async with self.db.read() as session:
            claimer_id = None
            if claimed_by is not None:
                user = await get_user_by_username(session, claimed_by)
                claimer_id = -1 if user is None else user.id
            query = store.part_query(
                stage=stage,
                kind=kind,
                subsystem=subsystem,
                claimer_id=claimer_id,
                text=(text or "").strip() or None,
            )
            total = await counted(session, query)
            position = decode_position(f"part:{sort}", after)
            if position is not None:
                value, key = position
                if descending:
                    query = query.where(or_(column < value, and_(column == value, Part.id < key)))
                else:
                    query = query.where(or_(column > value, and_(column == value, Part.id > key)))
            order = (column.desc(), Part.id.desc()) if descending else (column, Part.id)
            rows = await page(session, query.order_by(*order), limit + 1)
        shown = rows[:limit]
        views = await self.views([], shown)
        return Page(
            items=[views[part.id] for part in shown],
            cursors=[
                encode_position(f"part:{sort}", getattr(part, column.key), part.id)
                for part in shown
            ],
            total=total,
            has_next=len(rows) > limit,
        )

    async def workers(self, part_ids: list[int]) -> dict[int, list[PartWorker]]:
        async with self.db.read() as session:
            return await store.workers_of(session, set(part_ids))

    async def history(self, since: int | None = None, first: int | None = None) -> list[Change]:
        if first is not None and not 0 <= first <= MAX_HISTORY_PAGE:
            raise BadUserInput(f"first must be between 0 and {MAX_HISTORY_PAGE}", field="first")
        stream_id = await self.stream_id()
        async with self.db.read() as session:
            stream = await get_stream(session, stream_id)
            check_since(since, stream.purged_through_seq, "parts")
            return await PART_EVENTS.stored(
                session,
                stream_id,
                since or 0,
                limit=DEFAULT_HISTORY_PAGE if first is None else first,
            )

    async def stats(self, weeks: int = 12) -> Stats:
        """Counts per stage and per subsystem, and parts completed per week (Mondays, UTC)."""
        if not 1 <= weeks <= MAX_WEEKS:
            raise BadUserInput(f"weeks must be between 1 and {MAX_WEEKS}", field="weeks")
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        monday = today - timedelta(days=today.weekday())
        start = monday - timedelta(weeks=weeks - 1)
        async with self.db.read() as session:
            counts = await store.stage_counts(session)
            completed = await store.completions_since(session, start)
        by_stage: dict[str, int] = defaultdict(int)
        for stage, _subsystem, count in counts:
            by_stage[stage] += count
        weekly = {start + timedelta(weeks=index): 0 for index in range(weeks)}
        for at in completed:
            day = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            weekly[day - timedelta(days=day.weekday())] += 1
        return Stats(
            by_stage=dict(by_stage),
            by_subsystem=sorted(
                ((subsystem, stage, count) for stage, subsystem, count in counts),
                key=lambda row: (row[0] or "", row[1]),
            ),
            weekly=sorted(weekly.items()),
        )

    async def leaderboard(self) -> list[tuple[UserRef, float]]:
        """Scored as the original tracker scored it: each part's current claimer +1 (-2 when
        the part was completed incorrectly), each earlier hand worker +0.5. Best first."""
        async with self.db.read() as session:
            parts, workers = await store.scoring_rows(session)
            scores: dict[int, float] = defaultdict(float)
            claimers = {}
            for part_id, holder_id, incorrectly in parts:
                claimers[part_id] = holder_id
                scores[holder_id] += -2 if incorrectly else 1
            for part_id, user_id in workers:
                if user_id is not None and user_id != claimers.get(part_id):
                    scores[user_id] += 0.5
            people = await user_refs(session, set(scores))
        ranked = sorted(
            ((people.get(uid) or missing_user(uid), score) for uid, score in scores.items()),
            key=lambda entry: (-entry[1], entry[0].username),
        )
        return ranked
