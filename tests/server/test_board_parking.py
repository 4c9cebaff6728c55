"""The board's Parking page in a real browser (Debian's Chromium driven by Playwright) against a
real server: two people see each lot's free, occupied and reserved counts change live as the
other parks, reserves, cancels and leaves; the running cost; the person's Mine page shows the
spot while they park. Screenshots land in test-output/."""

from __future__ import annotations

import time

from playwright.async_api import Page, expect

from tests.conftest import ADMIN_PASSWORD, USER_PASSWORD
from tests.server.test_board import OUTPUT, browser, make_users, open_board
from tests.server.test_board_assets import local_time_in
from tests.support.graphql import GraphQL

__all__ = ["browser"]  # the fixture

CREATE_LOT = "mutation($input: CreateParkingLotInput!) { createParkingLot(input: $input) { id } }"


async def make_lots(url: str) -> dict[str, str]:
    admin = GraphQL(url)
    await admin.sign_in("admin", ADMIN_PASSWORD)
    ids = {}
    for name, address, price, spots in (
        ("Garage North", "North road 1", "2.50", 3),
        ("Lot South", None, "1.20", 1),
    ):
        given = {"name": name, "address": address, "pricePerHour": price, "spotCount": spots}
        made = await admin.data(CREATE_LOT, {"input": given})
        ids[name] = made["createParkingLot"]["id"]
    await admin.close()
    return ids


def lot_row(page: Page, lot_id: str):
    return page.locator(f'#lots tr[data-lot="{lot_id}"]')


async def expect_counts(page: Page, lot_id: str, free: int, occupied: int, reserved: int, **wait):
    row = lot_row(page, lot_id)
    await expect(row.locator(".free-count")).to_have_text(str(free), **wait)
    await expect(row.locator(".occupied")).to_have_text(str(occupied), **wait)
    await expect(row.locator(".reserved")).to_have_text(str(reserved), **wait)


async def open_parking(browser, url: str, username: str) -> Page:
    page = await open_board(browser, url, username)
    await page.get_by_role("link", name="Parking").click()
    await expect(page).to_have_url(f"{url}/?page=parking")
    await expect(page.get_by_role("link", name="Parking")).to_have_attribute("aria-current", "page")
    await expect(page.locator("#parking-view")).to_be_visible()
    await expect(page.locator("#board-view")).to_be_hidden()
    await expect(page.locator("#live")).to_have_text("Live", timeout=10_000)
    return page


async def test_a_booking_in_one_browser_changes_the_counts_in_another_live(browser, server):
    lots = await make_lots(server.url)
    north, south = lots["Garage North"], lots["Lot South"]
    await make_users(server.url, "alice", "bob")
    alice = await open_parking(browser, server.url, "alice")
    requested = []
    bob = await open_parking(browser, server.url, "bob")
    bob.on("request", lambda request: requested.append(request.url))
    await bob.evaluate("window.notReloaded = true")
    await expect(bob.locator("#lots tbody tr .name")).to_have_text(["Garage North", "Lot South"])
    await expect_counts(bob, north, free=3, occupied=0, reserved=0)
    await expect(lot_row(bob, north).locator(".price")).to_have_text("2.50")
    await expect(lot_row(bob, south).locator(".price")).to_have_text("1.20")
    await expect(bob.locator("#lot-counts")).to_have_text("2 lots · 4 free")
    await expect(bob.locator("#no-bookings")).to_be_visible()

    # alice parks in Garage North; bob's counts change within a second, no reload.
    await alice.get_by_label("Vehicle number").fill("b-hf 1234")
    await lot_row(alice, north).get_by_role("button", name="Park in Garage North").click()
    started = time.monotonic()
    await expect_counts(bob, north, free=2, occupied=1, reserved=0, timeout=1_000)
    assert time.monotonic() - started < 1.0
    assert await bob.evaluate("window.notReloaded") is True
    await expect(bob.locator("#lot-counts")).to_have_text("2 lots · 3 free")
    booking = alice.locator("#bookings tbody tr")
    await expect(booking).to_have_count(1)
    await expect(booking.locator(".lot")).to_have_text("Garage North")
    await expect(booking.locator(".spot")).to_have_text("1")
    await expect(booking.locator(".vehicle")).to_have_text("BHF1234")
    await expect(booking.locator(".status")).to_have_text("parked")
    await expect(booking.locator(".cost")).to_have_text("2.50")  # the first hour begun
    await expect(alice.locator("#notices")).to_contain_text(
        "Parked BHF1234 in Garage North, spot 1."
    )
    await expect(bob.locator("#bookings tbody tr")).to_have_count(0)

    # The running cost: the rate times the whole hours begun, at least one, exactly.
    cost = await alice.evaluate(
        """async () => {
            const { times, hoursBegun } = await import("/static/board/parking.js");
            const start = "2026-01-01T10:00:00Z";
            const at = (minutes) => Date.parse(start) + minutes * 60_000;
            return [hoursBegun(start, at(0)), hoursBegun(start, at(59)), hoursBegun(start, at(60)),
                    hoursBegun(start, at(61)), times("2.50", 3), times("0.10", 3), times("7", 2)];
        }"""
    )
    assert cost == [1, 1, 1, 2, "7.50", "0.30", "14"]

    # Her Mine page (another tab) shows the spot she holds.
    mine = await alice.context.new_page()
    await mine.goto(f"{server.url}/?page=mine")
    await expect(mine.locator("#live")).to_have_text("Live", timeout=10_000)
    await expect(mine.locator("#holds tbody tr .area")).to_have_text(["Parking spot"])
    await expect(mine.locator("#holds tbody tr .what")).to_have_text(["Garage North spot 1"])

    # bob reserves Lot South's only spot for tomorrow; alice sees it reserved, live.
    await lot_row(bob, south).get_by_role("button", name="Reserve in Lot South").click()
    form = bob.locator("#reserve-form")
    await expect(form.get_by_label("From")).to_be_focused()
    await expect(form.get_by_label("Lot")).to_have_value(south)
    await form.get_by_label("From").fill(await local_time_in(bob, 24 * 60))
    await form.get_by_label("Until").fill(await local_time_in(bob, 26 * 60))
    await bob.get_by_label("Vehicle number").fill("HB 42")
    await form.get_by_role("button", name="Reserve").click()
    await expect_counts(alice, south, free=0, occupied=0, reserved=1, timeout=1_000)
    reserved = bob.locator("#bookings tbody tr")
    await expect(reserved.locator(".status")).to_have_text("reserved")
    await expect(reserved.locator(".lot")).to_have_text("Lot South")
    await expect(reserved.locator(".cost")).to_have_text("—")
    await expect(
        lot_row(alice, south).get_by_role("button", name="Park in Lot South")
    ).to_be_disabled()

    # bob parks in Garage North too; a number that is none is refused by the server.
    await lot_row(bob, north).get_by_role("button", name="Park in Garage North").click()
    await expect_counts(alice, north, free=1, occupied=2, reserved=0, timeout=1_000)
    await expect_counts(bob, north, free=1, occupied=2, reserved=0)
    await expect(bob.locator("#bookings tbody tr")).to_have_count(2)
    await bob.get_by_label("Vehicle number").fill("H!")
    await lot_row(bob, north).get_by_role("button", name="Park in Garage North").click()
    await expect(bob.locator("#parking-error")).to_contain_text("vehicleNumber must be")
    await expect(bob.locator("#parking-error")).to_contain_text("BAD_USER_INPUT")
    await expect_counts(alice, north, free=1, occupied=2, reserved=0)

    # bob cancels his reservation (after confirming); alice sees the spot free again.
    await reserved.get_by_role("button", name="Cancel the reservation in Lot South").click()
    await bob.locator("#ask-ok").click()
    await expect_counts(alice, south, free=1, occupied=0, reserved=0, timeout=1_000)
    await expect(bob.locator("#bookings tbody tr")).to_have_count(1)  # his parking in North

    OUTPUT.mkdir(exist_ok=True)
    await alice.screenshot(path=OUTPUT / "board-parking.png", full_page=True)

    # alice leaves: the server's cost is shown, bob sees the spot free, her Mine page empties.
    await booking.get_by_role("button", name="Leave Garage North spot 1").click()
    await expect(alice.locator("#ask")).to_contain_text("About 2.50 so far.")
    await alice.locator("#ask-ok").click()
    await expect(alice.locator("#notices")).to_contain_text("You left Garage North: cost 2.50.")
    await expect_counts(bob, north, free=2, occupied=1, reserved=0, timeout=1_000)
    await expect(alice.locator("#bookings tbody tr")).to_have_count(0)
    await expect(mine.locator("#mine-empty")).to_be_visible(timeout=2_000)

    api = GraphQL(server.url)
    await api.sign_in("alice", USER_PASSWORD)
    history = await api.data("{ mySpotBookings { edges { node { status cost } } } }")
    assert [edge["node"] for edge in history["mySpotBookings"]["edges"]] == [
        {"status": "COMPLETED", "cost": "2.50"}
    ]
    await api.close()

    host = server.url.removeprefix("http://")
    foreign = [url for url in requested if url.split("/")[2] != host]
    assert not foreign, f"the Parking page loads something from elsewhere: {foreign}"
