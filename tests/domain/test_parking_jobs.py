"""Parking's jobs with real mail (aiosmtpd): unused reservations expire and free their spot,
the idle reminder goes at most once a day, the monthly report covers the month that just ended
once, and the CSV export is a job with a 7-day file behind a Download and a mail."""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from db.engine import Database
from db.files import StoredFile
from db.parking import ParkingLot, SpotBooking
from server.app import create_app
from tests.support.factories import users
from tests.support.graphql import GraphQL
from tests.support.parking import LEAVE, LOT, RESERVE, lot, park


@pytest.fixture
def mail_settings(settings, smtp_server):
    return settings.replace(
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        smtp_tls="none",
        mail_from="holdfast@studio.example",
        run_jobs=False,
        public_url="https://park.studio.example",
    )


async def execute(url: str, statement) -> None:
    db = Database(url)
    try:
        async with db.transaction() as session:
            await session.execute(statement)
    finally:
        await db.dispose()


async def scalars(url: str, query) -> list:
    db = Database(url)
    try:
        async with db.read() as session:
            return list((await session.execute(query)).scalars())
    finally:
        await db.dispose()


async def send_mail(app) -> None:
    services = app.state.services
    await services.notifier.mail_about_events()
    while await services.jobs._run_one_job():
        pass


async def test_an_unused_reservation_expires_after_the_grace_period_and_its_holder_is_told(
    mail_settings, smtp_server
):
    app = create_app(mail_settings)
    async with app.router.lifespan_context(app):
        api = GraphQL(app)
        people = await users(api, "mira")
        made = await lot(api, people["admin"], spotCount=1)
        start = datetime.now(UTC) + timedelta(hours=1)
        booking = (
            await api.data(
                RESERVE,
                {
                    "lot": made["id"],
                    "from": start.isoformat(),
                    "until": (start + timedelta(hours=2)).isoformat(),
                    "v": "AB12",
                },
                token=people["mira"],
            )
        )["reserveSpot"]
        parking = app.state.services.parking
        assert await parking.expire_due() == 0
        parking.clock = lambda: start + timedelta(minutes=14)  # within the 15 minutes' grace
        assert await parking.expire_due() == 0
        parking.clock = lambda: start + timedelta(minutes=16)
        assert await parking.expire_due() == 1
        assert await parking.expire_due() == 0  # once
        [status] = await scalars(
            mail_settings.database_url,
            select(SpotBooking.status).where(SpotBooking.id == int(booking["id"])),
        )
        assert status == "EXPIRED"
        lot_now = (await api.data(LOT, {"id": made["id"]}, token=people["mira"]))["parkingLot"]
        assert (lot_now["free"], lot_now["reserved"]) == (1, 0)
        await send_mail(app)
    assert [m["Subject"] for m in smtp_server.messages] == ["Your reservation of spot 1 expired"]
    assert smtp_server.messages[0]["To"] == "mira@example.com"


async def test_the_idle_reminder_goes_once_a_day_to_those_who_have_not_parked_for_n_days(
    mail_settings, smtp_server
):
    app = create_app(mail_settings)
    async with app.router.lifespan_context(app):
        api = GraphQL(app)
        people = await users(api, "mira", "noor", "omar")
        made = await lot(api, people["admin"], spotCount=3)
        for name in ("mira", "noor"):
            booking = (await park(api, people[name], made["id"], vehicle="AB12"))["data"]["park"]
            await api.data(LEAVE, {"id": booking["id"]}, token=people[name])
        await park(api, people["omar"], made["id"], vehicle="CD34")  # parked now: not idle
        await execute(
            mail_settings.database_url,
            update(SpotBooking).values(parked_at=datetime.now(UTC) - timedelta(days=15)),
        )
        jobs = app.state.services.parking_jobs
        parking = app.state.services.parking
        assert await jobs.remind_idle() == 2  # mira and noor (14 days by default)
        assert await jobs.remind_idle() == 0  # not again today
        parking.clock = lambda: datetime.now(UTC) + timedelta(days=1)
        assert await jobs.remind_idle() == 2  # the next day
        await send_mail(app)
    assert sorted(m["To"] for m in smtp_server.messages) == [
        "mira@example.com",
        "mira@example.com",
        "noor@example.com",
        "noor@example.com",
    ]
    assert smtp_server.messages[0]["Subject"] == "Park with us again"


async def test_the_monthly_report_covers_the_month_that_just_ended_once(mail_settings, smtp_server):
    app = create_app(mail_settings)
    async with app.router.lifespan_context(app):
        api = GraphQL(app)
        people = await users(api, "mira")
        made = await lot(api, people["admin"], name="Harbour", pricePerHour="2.00", spotCount=2)
        booking = (await park(api, people["mira"], made["id"]))["data"]["park"]
        await api.data(LEAVE, {"id": booking["id"]}, token=people["mira"])
        # The stay was in February 2027: 10:00 to 12:30, 3 hours billed.
        parked = datetime(2027, 2, 10, 10, 0, tzinfo=UTC)
        await execute(
            mail_settings.database_url,
            update(SpotBooking).values(
                parked_at=parked,
                starts_at=parked,
                left_at=parked + timedelta(hours=2, minutes=30),
                ends_at=parked + timedelta(hours=2, minutes=30),
                cost=Decimal("6.00"),
            ),
        )
        await execute(
            mail_settings.database_url,
            update(ParkingLot).values(created_at=datetime(2027, 1, 5, tzinfo=UTC)),
        )
        jobs = app.state.services.parking_jobs
        app.state.services.parking.clock = lambda: datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
        assert await jobs.monthly_report() == "2027-02"
        assert await jobs.monthly_report() is None  # once a month
        await send_mail(app)
    [report] = smtp_server.messages
    assert (report["Subject"], report["To"]) == ("Parking report for 2027-02", "admin@example.com")
    html = report.get_body(("html",)).get_content()
    assert "<table>" in html and "Harbour" in html and "6.00" in html and "2.50" in html


async def test_the_csv_export_is_a_job_with_a_download_kept_seven_days_and_a_mail(
    mail_settings, smtp_server
):
    app = create_app(mail_settings)
    async with app.router.lifespan_context(app):
        api = GraphQL(app)
        people = await users(api, "mira", "noor")
        made = await lot(api, people["admin"], name="North, east", pricePerHour="1.50")
        booking = (await park(api, people["mira"], made["id"], vehicle="ab 12"))["data"]["park"]
        await api.data(LEAVE, {"id": booking["id"]}, token=people["mira"])
        await park(api, people["noor"], made["id"])  # not mira's
        job = (
            await api.data("mutation { exportMySpotBookings { id status } }", token=people["mira"])
        )["exportMySpotBookings"]
        assert job["status"] == "queued"
        await send_mail(app)
        done = await api.data(
            "query($id: ID!) { job(id: $id) { status progress download { url } } }",
            {"id": job["id"]},
            token=people["mira"],
        )
        assert (done["job"]["status"], done["job"]["progress"]) == ("succeeded", 1.0)
        other = await api.post(
            "query($id: ID!) { job(id: $id) { status } }", {"id": job["id"]}, token=people["noor"]
        )
        assert "errors" in other
        response = await api.http.get(done["job"]["download"]["url"])
        assert response.status_code == 200
        [header, row] = list(csv.reader(io.StringIO(response.text)))
        assert header[:4] == ["id", "lot", "spot", "status"]
        assert row[:5] == [booking["id"], "North, east", "1", "COMPLETED", "AB12"]
        assert row[-2:] == ["1.50", "1.50"]
        [expires] = await scalars(mail_settings.database_url, select(StoredFile.expires_at))
        assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)
        await send_mail(app)
    subjects = [m["Subject"] for m in smtp_server.messages if m["To"] == "mira@example.com"]
    assert subjects == ["Your parking history export is ready"]
