"""The board's Events page in a real browser (Debian's Chromium driven by Playwright) against a
real server: upcoming events grouped by venue and sorted by start, and publishing one with the
form, a venue taken at that time refused naming the other event. Screenshots land in
test-output/."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.async_api import Page, expect

from tests.conftest import USER_PASSWORD
from tests.server.test_board import OUTPUT, browser, make_users, open_board
from tests.server.test_board_assets import local_time_in
from tests.support.graphql import GraphQL

__all__ = ["browser"]  # the fixture

CREATE = "mutation($input: CreateEventInput!) { createEvent(input: $input) { id } }"


def venue(page: Page, name: str):
    return page.locator(f'#venues section[data-venue="{name}"]')


async def open_events(browser, url: str, username: str) -> Page:
    page = await open_board(browser, url, username)
    await page.get_by_role("link", name="Events").click()
    await expect(page).to_have_url(f"{url}/?page=events")
    await expect(page.get_by_role("link", name="Events")).to_have_attribute("aria-current", "page")
    await expect(page.locator("#events-view")).to_be_visible()
    await expect(page.locator("#board-view")).to_be_hidden()
    return page


async def test_events_by_venue_and_publishing_one_with_the_form(browser, server):
    await make_users(server.url, "alice", "bob")
    api = GraphQL(server.url)
    await api.sign_in("alice", USER_PASSWORD)
    tomorrow = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=1)

    def at(minutes: int) -> str:
        return (tomorrow + timedelta(minutes=minutes)).isoformat()

    for title, name, start, end, address in (
        ("Sprint review", "Hall A", at(120), at(180), "Main street 1"),
        ("Standup", "Hall A", at(0), at(60), None),
        ("Board games", "Atrium", at(30), None, "Second floor"),
    ):
        given = {"title": title, "venue": name, "startsAt": start, "endsAt": end}
        if address:
            given["address"] = address
        await api.data(CREATE, {"input": given})

    requested = []
    page = await open_events(browser, server.url, "bob")
    page.on("request", lambda request: requested.append(request.url))
    await expect(page.locator("#event-counts")).to_have_text("3 upcoming events · 2 venues")
    names = page.locator("#venues section h3")
    await expect(names).to_have_text(["Atrium", "Hall A"])
    await expect(venue(page, "Atrium").locator(".address")).to_have_text("Second floor")
    await expect(venue(page, "Hall A").locator("h4")).to_have_text(["Standup", "Sprint review"])
    await expect(venue(page, "Hall A").locator(".organiser").first).to_have_text("by alice")
    # Someone else's events are theirs to delete.
    await expect(page.locator("#venues").get_by_role("button", name="Delete")).to_have_count(0)

    # bob publishes one at Hall A while the standup runs: refused, naming the standup.
    form = page.locator("#event-form")
    await page.get_by_text("New event").click()
    await form.get_by_label("Title").fill("Retro")
    await form.get_by_label("Start").fill(await local_time_in(page, 24 * 60 + 30))
    await form.get_by_label("End (optional)").fill(await local_time_in(page, 24 * 60 + 90))
    await form.get_by_label("Venue", exact=True).fill("hall a")
    await form.get_by_label("Description").fill("what went well")
    await form.get_by_role("button", name="Publish").click()
    error = page.locator("#event-form-error")
    await expect(error).to_contain_text("Hall A is taken then by 'Standup'")
    await expect(error).to_contain_text("CONFLICT")
    await expect(venue(page, "Hall A").locator("h4")).to_have_count(2)

    # After the standup and before the review it fits, and shows in its place.
    await form.get_by_label("Start").fill(await local_time_in(page, 24 * 60 + 61))
    await form.get_by_label("End (optional)").fill(await local_time_in(page, 24 * 60 + 119))
    await form.get_by_role("button", name="Publish").click()
    await expect(venue(page, "Hall A").locator("h4")).to_have_text(
        ["Standup", "Retro", "Sprint review"]
    )
    await expect(error).to_be_hidden()
    await expect(page.locator("#notices")).to_contain_text("Published “Retro” at Hall A.")
    retro = venue(page, "Hall A").locator("li", has_text="Retro")
    await expect(retro.locator(".description")).to_have_text("what went well")
    await expect(retro.locator(".organiser")).to_have_text("by bob")
    await expect(page.locator("#event-counts")).to_have_text("4 upcoming events · 2 venues")

    # A new venue with its address, and no end: it shows under its own heading.
    await form.get_by_label("Title").fill("Launch party")
    await form.get_by_label("Start").fill(await local_time_in(page, 2 * 24 * 60))
    await form.get_by_label("Venue", exact=True).fill("Roof terrace")
    await form.get_by_label("Venue address (new venues)").fill("Top floor")
    await form.get_by_role("button", name="Publish").click()
    await expect(names).to_have_text(["Atrium", "Hall A", "Roof terrace"])
    await expect(venue(page, "Roof terrace").locator(".address")).to_have_text("Top floor")
    OUTPUT.mkdir(exist_ok=True)
    await page.screenshot(path=OUTPUT / "board-events.png", full_page=True)

    # bob deletes his retro.
    await retro.get_by_role("button", name="Delete Retro").click()
    await expect(page.locator("#ask")).to_contain_text("Delete “Retro” at Hall A?")
    await page.locator("#ask-ok").click()
    await expect(venue(page, "Hall A").locator("h4")).to_have_text(["Standup", "Sprint review"])
    events = await api.data("{ events { edges { node { title } } } }")
    assert sorted(edge["node"]["title"] for edge in events["events"]["edges"]) == [
        "Board games",
        "Launch party",
        "Sprint review",
        "Standup",
    ]
    await api.close()

    host = server.url.removeprefix("http://")
    foreign = [url for url in requested if url.split("/")[2] != host]
    assert not foreign, f"the Events page loads something from elsewhere: {foreign}"
