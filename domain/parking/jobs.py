"""Parking's background work, on the job system (once per cluster), with real mail:

- a reminder to users who have not parked for `parking_reminder_days` days (only users who
  parked before and do not park now), at most once a day per user (`parking_reminders`);
- the monthly report to admins for the month that just ended (computed from the clock), once a
  month (`parking_reports`, written in the transaction that queues the mails);
- `exportMySpotBookings`: a CSV of the caller's bookings as an export job with progress; the
  file is kept 7 days behind the job's short-lived Download, and a mail says when it is ready.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from db import parking as store
from db.base import insert_unless_exists
from db.engine import Database, try_cluster_lock
from db.identity import User
from db.jobs import Job
from db.parking import ParkingReminder, ParkingReport
from domain.jobs import JobContext
from domain.mails import export_ready, parking_reminder, parking_report
from domain.notify import Notifier
from domain.parking import Parking
from domain.parking.records import month_bounds, previous_month
from domain.transfers import ExportFile, Transfers

EXPORT_JOB = "spot-bookings-export"
EXPORT_KEPT = timedelta(days=7)
CSV_COLUMNS = (
    "id",
    "lot",
    "spot",
    "status",
    "vehicle_number",
    "vehicle_model",
    "vehicle_colour",
    "reserved_from",
    "reserved_until",
    "parked_at",
    "left_at",
    "rate",
    "cost",
)
REPORT_HOUR = 6
"""The monthly report goes out from this hour (UTC) of the 1st on."""


def _iso(value) -> str:
    return "" if value is None else value.isoformat()


class ParkingJobs:
    def __init__(
        self, db: Database, parking: Parking, notifier: Notifier, transfers: Transfers
    ) -> None:
        self.db = db
        self.parking = parking
        self.notifier = notifier
        self.transfers = transfers
        transfers.exporter(
            EXPORT_JOB, self._export, keep_for=EXPORT_KEPT, when_ready=self._export_ready
        )

    # -- reminders -------------------------------------------------------------------------

    async def remind_idle(self) -> int:
        """Mail each active user whose last parking is `parking_reminder_days` old, at most
        once a day; returns how many were mailed."""
        now = self.parking.clock()
        days = self.parking.setting("parking_reminder_days")
        if not days:
            return 0
        today = now.date()
        mailed = 0
        async with self.db.transaction() as session:
            if not await try_cluster_lock(session, "parking-reminders"):
                return 0
            idle = [
                user_id
                for user_id, last, parked_now in await store.last_parked(session)
                if not parked_now and last is not None and last < now - timedelta(days=days)
            ]
            if not idle:
                return 0
            users = await store.users_by_id(session, idle)
            reminded = {
                row.user_id: row.reminded_on
                for row in (
                    await session.execute(
                        select(ParkingReminder).where(ParkingReminder.user_id.in_(idle))
                    )
                ).scalars()
            }
            for user_id in idle:
                user = users.get(user_id)
                if user is None or not user.active or reminded.get(user_id) == today:
                    continue
                await self.notifier.queue(
                    session,
                    "parking-reminder",
                    user.email,
                    parking_reminder(days, self.notifier.public_url),
                )
                row = await session.get(ParkingReminder, user_id)
                if row is None:
                    session.add(ParkingReminder(user_id=user_id, reminded_on=today))
                else:
                    row.reminded_on = today
                mailed += 1
        return mailed

    # -- the monthly report ----------------------------------------------------------------

    async def monthly_report(self) -> str | None:
        """The report for the month that just ended, once: returns the month it sent."""
        now = self.parking.clock()
        if now.day == 1 and now.hour < REPORT_HOUR:
            return None
        month = previous_month(now)
        _, end = month_bounds(month)
        lines = [
            line for line in await self.parking.summary(None, month) if line.lot.created_at < end
        ]
        if not lines:
            return None  # no lot existed in that month: nothing to report
        rows = [
            (
                line.lot.name,
                line.stays,
                str(line.occupied_hours),
                f"{line.occupancy * 100:.1f}%",
                str(line.revenue),
            )
            for line in lines
        ]
        async with self.db.transaction() as session:
            if not await try_cluster_lock(session, "parking-report"):
                return None
            await insert_unless_exists(session, ParkingReport, None, month=month, sent_at=None)
            report = (
                await session.execute(
                    select(ParkingReport)
                    .where(ParkingReport.month == month)
                    .with_for_update()
                    .execution_options(populate_existing=True)
                )
            ).scalar_one()
            if report.sent_at is not None:
                return None
            admins = (
                await session.execute(
                    select(User)
                    .where(User.role == "admin", User.active.is_(True))
                    .order_by(User.id)
                )
            ).scalars()
            mail = parking_report(month, rows)
            for admin in admins:
                await self.notifier.queue(session, "parking-report", admin.email, mail)
            report.sent_at = now
        return month

    # -- export ----------------------------------------------------------------------------

    async def start_export(self, actor: User) -> Job:
        return await self.transfers.start_export(actor, EXPORT_JOB)

    async def _export(self, payload: dict[str, Any], context: JobContext) -> ExportFile:
        bookings = await self.parking.all_bookings_of(context.created_by)
        names = {lot.lot.id: lot.lot.name for lot in await self.parking.lots()}
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for index, booking in enumerate(bookings, 1):
            writer.writerow(
                (
                    booking.id,
                    names.get(booking.lot_id, booking.lot_id),
                    booking.spot_number,
                    booking.status,
                    booking.vehicle_number,
                    booking.vehicle_model or "",
                    booking.vehicle_colour or "",
                    _iso(booking.reserved_from),
                    _iso(booking.reserved_until),
                    _iso(booking.parked_at),
                    _iso(booking.left_at),
                    "" if booking.rate is None else str(booking.rate),
                    "" if booking.cost is None else str(booking.cost),
                )
            )
            if index % 200 == 0:
                await context.report(index / len(bookings))
        return ExportFile("spot-bookings.csv", "text/csv", out.getvalue().encode())

    async def _export_ready(self, session, context: JobContext) -> None:
        user = await session.get(User, context.created_by)
        if user is not None and user.active:
            mail = export_ready(
                "parking history", context.job_id, EXPORT_KEPT.days, self.notifier.public_url
            )
            await self.notifier.queue(session, "spot-bookings-export", user.email, mail)
