"""The board's Parts page in a real browser (Debian's Chromium driven by Playwright) against a
real server: makers, a reviewer and an admin approve, claim, complete, revert and unclaim parts
and see the cards move between the stage columns live, with the buttons each may use; a part's
page shows its files and draws its 3D model with the three.js Holdfast serves (WebGL on
SwiftShader: headless Chromium has no GPU here). Screenshots land in test-output/."""

from __future__ import annotations

import json
import shutil
import struct
import time
from urllib.parse import urljoin

import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.conftest import ADMIN_PASSWORD, ROOT, free_port, start_server, stop_server
from tests.server.test_board import CHROMIUM, OUTPUT, make_users, open_board
from tests.support.accounts import USER_PASSWORD
from tests.support.graphql import GraphQL

BRACKET = ROOT / "tests" / "fixtures" / "bracket.step"
CREATE = "mutation($input: CreatePartInput!) { createPart(input: $input) { id shortId } }"
GRANT = "mutation($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) { id } }"
CLAIM = "mutation($id: ID!) { claimPart(id: $id) { id } }"
APPROVE = "mutation($id: ID!) { approvePart(id: $id) { id } }"
BACKGROUND = (0xF4, 0xF6, 0xF9)  # the viewer's clear colour


@pytest.fixture
async def browser():
    """Chromium with WebGL on SwiftShader (the CPU), as on a machine without a GPU."""
    assert shutil.which("chromium"), "Chromium is needed (Debian package chromium)"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader",
            ],
        )
        yield launched
        await launched.close()


def cube_glb(half: float = 0.05) -> bytes:
    """A small valid glTF binary: one cube mesh (positions, normals, indices), one material."""
    faces = (  # normal, u, v with u cross v = normal, so each face winds counter-clockwise outside
        ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
        ((-1, 0, 0), (0, 1, 0), (0, 0, -1)),
        ((0, 1, 0), (0, 0, 1), (1, 0, 0)),
        ((0, -1, 0), (0, 0, -1), (1, 0, 0)),
        ((0, 0, 1), (1, 0, 0), (0, 1, 0)),
        ((0, 0, -1), (-1, 0, 0), (0, 1, 0)),
    )
    positions, normals, indices = [], [], []
    for normal, u, v in faces:
        base = len(positions)
        for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            positions.append(
                [half * (n + su * a + sv * b) for n, a, b in zip(normal, u, v, strict=True)]
            )
            normals.append(normal)
        indices += [base, base + 1, base + 2, base, base + 2, base + 3]
    pos = b"".join(struct.pack("<3f", *p) for p in positions)
    nor = b"".join(struct.pack("<3f", *n) for n in normals)
    idx = struct.pack(f"<{len(indices)}H", *indices)
    binary = pos + nor + idx + b"\0" * (-len(idx) % 4)
    document = {
        "asset": {"version": "2.0", "generator": "holdfast tests"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "cube"}],
        "meshes": [
            {
                "primitives": [
                    {"attributes": {"POSITION": 0, "NORMAL": 1}, "indices": 2, "material": 0}
                ]
            }
        ],
        "materials": [
            {
                "pbrMetallicRoughness": {
                    "baseColorFactor": [0.8, 0.3, 0.1, 1.0],
                    "metallicFactor": 0.0,
                    "roughnessFactor": 0.7,
                }
            }
        ],
        "buffers": [{"byteLength": len(binary)}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": len(pos), "target": 34962},
            {"buffer": 0, "byteOffset": len(pos), "byteLength": len(nor), "target": 34962},
            {
                "buffer": 0,
                "byteOffset": len(pos) + len(nor),
                "byteLength": len(indices) * 2,
                "target": 34963,
            },
        ],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": 5126,
                "count": len(positions),
                "type": "VEC3",
                "min": [-half] * 3,
                "max": [half] * 3,
            },
            {"bufferView": 1, "componentType": 5126, "count": len(normals), "type": "VEC3"},
            {"bufferView": 2, "componentType": 5123, "count": len(indices), "type": "SCALAR"},
        ],
    }
    text = json.dumps(document, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return (
        struct.pack("<4sII", b"glTF", 2, total)
        + struct.pack("<I4s", len(text), b"JSON")
        + text
        + struct.pack("<I4s", len(binary), b"BIN\0")
        + binary
    )


async def make_reviewer(url: str, name: str) -> None:
    """A user an admin granted parts.review."""
    admin = GraphQL(url)
    await admin.sign_in("admin", ADMIN_PASSWORD)
    user = await admin.create_user(name)
    await admin.data(GRANT, {"id": user["id"], "input": {"permissions": ["parts.review"]}})
    await admin.close()


async def make_parts(api: GraphQL, *inputs: dict) -> dict[str, str]:
    """Parts made by the signed-in client; their ids by name."""
    ids = {}
    for given in inputs:
        made = (await api.data(CREATE, {"input": given}))["createPart"]
        ids[given["name"]] = made["id"]
    return ids


def card(page: Page, short_id: str):
    return page.locator(f'#part-columns li[data-short-id="{short_id}"]')


def filters(page: Page):
    return page.locator("#parts-board .controls")


def column(page: Page, stage: str):
    return page.locator(f'#part-columns section[data-stage="{stage}"]')


async def open_parts(browser, url: str, username: str, password: str = USER_PASSWORD):
    """Signed in on the lock board, then to the Parts page by its nav link; and every URL the
    page asks for from then on."""
    page = await open_board(browser, url, username, password)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.get_by_role("link", name="Parts").click()
    await expect(page).to_have_url(f"{url}/?page=parts")
    await expect(page.locator("#parts-view")).to_be_visible()
    await expect(page.locator("#board-view")).to_be_hidden()
    await expect(page.locator("#live")).to_have_text("Live", timeout=10_000)
    await expect(page.locator("#part-counts")).not_to_be_empty(timeout=5_000)
    return page, requested


def assert_only_holdfast(url: str, *lists: list[str]) -> None:
    host = url.removeprefix("http://")
    foreign = [seen for requested in lists for seen in requested if seen.split("/")[2] != host]
    assert not foreign, f"the Parts page loads something from elsewhere: {foreign}"


PARTS = (
    {
        "name": "Drive plate",
        "kind": "CNC",
        "subsystem": "Drivetrain",
        "material": "6061 aluminium",
        "quantity": 2,
    },
    {"name": "Bumper frame", "kind": "HAND", "subsystem": "Chassis", "material": "plywood"},
    {"name": "Wire loom", "kind": "MISC", "subsystem": "Electrical", "notes": "zip ties"},
)


async def test_parts_move_between_columns_live_and_buttons_follow_roles(browser, server):
    await make_users(server.url, "alice", "bob")
    await make_reviewer(server.url, "rita")
    api = GraphQL(server.url)
    await api.sign_in("alice", USER_PASSWORD)
    ids = await make_parts(api, *PARTS)
    shorts = {}
    for name, part_id in ids.items():
        found = await api.data("query($id: ID!) { part(id: $id) { shortId } }", {"id": part_id})
        shorts[name] = found["part"]["shortId"]
    plate, bumper, loom = shorts["Drive plate"], shorts["Bumper frame"], shorts["Wire loom"]

    alice, alice_requests = await open_parts(browser, server.url, "alice")
    bob, bob_requests = await open_parts(browser, server.url, "bob")
    rita, rita_requests = await open_parts(browser, server.url, "rita")

    # Everything starts in review, with what a card says about its part.
    await expect(bob.locator("#part-counts")).to_have_text("3 parts · 0 claimed by you")
    await expect(column(bob, "REVIEW").locator(".count")).to_have_text("3")
    await expect(column(bob, "REVIEW").locator(f'li[data-short-id="{plate}"]')).to_be_visible()
    await expect(card(bob, plate).locator(".name")).to_have_text("Drive plate")
    await expect(card(bob, plate).locator(".subsystem")).to_have_text("Drivetrain")
    await expect(card(bob, plate).locator(".material")).to_have_text("6061 aluminium")
    await expect(card(bob, plate).locator(".quantity")).to_have_text("\u00d7 2")
    await expect(card(bob, plate).locator(".claimer")).to_have_text("awaiting review")

    # Only reviewers (and admins) may approve; a maker sees no button for it.
    await expect(bob.get_by_role("button", name=f"Approve {plate}")).to_have_count(0)
    await expect(bob.get_by_role("button", name=f"Claim {plate}")).to_have_count(0)
    await expect(rita.get_by_role("button", name=f"Approve {plate}")).to_be_visible()

    # rita approves: the card moves to the CNC column on bob's page within a second.
    await rita.get_by_role("button", name=f"Approve {plate}").click()
    started = time.monotonic()
    await expect(column(bob, "CNC").locator(f'li[data-short-id="{plate}"]')).to_be_visible(
        timeout=1_000
    )
    assert time.monotonic() - started < 1.0
    await expect(column(bob, "REVIEW").locator(".count")).to_have_text("2")
    await expect(card(bob, plate).locator(".claimer")).to_have_text("free")
    reviewer = GraphQL(server.url)
    await reviewer.sign_in("rita", USER_PASSWORD)
    for name in ("Bumper frame", "Wire loom"):
        await reviewer.data(APPROVE, {"id": ids[name]})
    await expect(column(bob, "HAND").locator(f'li[data-short-id="{bumper}"]')).to_be_visible()
    await expect(column(bob, "MISC").locator(f'li[data-short-id="{loom}"]')).to_be_visible()
    await expect(column(bob, "REVIEW").locator(".count")).to_have_text("0")

    # alice claims the plate in her browser: bob's shows it within a second, without Claim.
    await alice.get_by_role("button", name=f"Claim {plate}").click()
    started = time.monotonic()
    await expect(card(bob, plate).locator(".claimer")).to_have_text(
        "claimed by alice", timeout=1_000
    )
    assert time.monotonic() - started < 1.0
    await expect(card(alice, plate).locator(".claimer")).to_have_text("claimed by alice (you)")
    await expect(bob.get_by_role("button", name=f"Claim {plate}")).to_have_count(0)
    await expect(bob.get_by_role("button", name=f"Complete {plate}")).to_have_count(0)
    await expect(bob.get_by_role("button", name=f"Unclaim {plate}")).to_have_count(0)
    await expect(alice.get_by_role("button", name=f"Complete {plate}")).to_be_visible()
    await expect(alice.get_by_role("button", name=f"Unclaim {plate}")).to_be_visible()
    await expect(alice.locator("#part-counts")).to_have_text("3 parts · 1 claimed by you")

    # bob goes for the bumper just as alice takes it: his page names her (CONFLICT).
    stale = await bob.get_by_role("button", name=f"Claim {bumper}").element_handle()
    await api.data(CLAIM, {"id": ids["Bumper frame"]})
    await expect(card(bob, bumper).locator(".claimer")).to_have_text("claimed by alice")
    await stale.evaluate("button => button.click()")  # the button his page showed a moment ago
    await expect(bob.locator("#parts-error")).to_contain_text("alice")
    await expect(bob.locator("#parts-error")).to_contain_text("CONFLICT")

    # Filters: kind, subsystem, claimer, free text.
    await filters(bob).get_by_label("Kind").select_option(label="Hand")
    await expect(bob.locator("#part-columns li")).to_have_count(1)
    await expect(card(bob, bumper)).to_be_visible()
    await expect(bob.locator("#part-counts")).to_have_text("3 parts · 0 claimed by you · 1 shown")
    await filters(bob).get_by_label("Kind").select_option(label="All kinds")
    options = await filters(bob).get_by_label("Subsystem").locator("option").all_inner_texts()
    assert options == ["All subsystems", "Chassis", "Drivetrain", "Electrical"]
    await filters(bob).get_by_label("Subsystem").select_option(label="Electrical")
    await expect(bob.locator("#part-columns li")).to_have_count(1)
    await expect(card(bob, loom)).to_be_visible()
    await filters(bob).get_by_label("Subsystem").select_option(label="All subsystems")
    await filters(bob).get_by_label("Claimed by").select_option(label="alice")
    await expect(bob.locator("#part-columns li")).to_have_count(2)
    await expect(card(bob, loom)).to_have_count(0)
    await filters(bob).get_by_label("Claimed by").select_option(label="Nobody")
    await expect(bob.locator("#part-columns li")).to_have_count(1)
    await filters(bob).get_by_label("Claimed by").select_option(label="Me")
    await expect(bob.locator("#part-empty")).to_have_text("No parts match the filters.")
    await filters(bob).get_by_label("Claimed by").select_option(label="Anyone")
    await filters(bob).get_by_label("Search").fill("zip")  # in the notes
    await expect(bob.locator("#part-columns li")).to_have_count(1)
    await expect(card(bob, loom)).to_be_visible()
    await filters(bob).get_by_label("Search").fill(plate.lower())
    await expect(bob.locator("#part-columns li")).to_have_count(1)
    await expect(card(bob, plate)).to_be_visible()
    await filters(bob).get_by_label("Search").fill("")
    await expect(bob.locator("#part-columns li")).to_have_count(3)

    # An admin may complete or unclaim anyone's claim; they see the buttons.
    admin, admin_requests = await open_parts(browser, server.url, "admin", ADMIN_PASSWORD)
    await expect(admin.get_by_role("button", name=f"Complete {plate}")).to_be_visible()
    await expect(admin.get_by_role("button", name=f"Unclaim {bumper}")).to_be_visible()

    # alice completes the plate: it moves to Completed everywhere, live.
    await alice.get_by_role("button", name=f"Complete {plate}").click()
    await expect(column(bob, "COMPLETED").locator(f'li[data-short-id="{plate}"]')).to_be_visible(
        timeout=1_000
    )
    await expect(column(rita, "COMPLETED").locator(f'li[data-short-id="{plate}"]')).to_be_visible()
    await expect(card(bob, plate).locator(".claimer")).to_have_text("made by alice")
    await expect(bob.get_by_role("button", name=f"Revert {plate}")).to_have_count(0)
    await expect(alice.get_by_role("button", name=f"Revert {plate}")).to_have_count(0)

    # rita reverts it: back in CNC on alice's page.
    await rita.get_by_role("button", name=f"Revert {plate}").click()
    await expect(column(alice, "CNC").locator(f'li[data-short-id="{plate}"]')).to_be_visible(
        timeout=1_000
    )
    await expect(column(alice, "COMPLETED").locator(".count")).to_have_text("0")

    # The admin unclaims alice's bumper: it is free on bob's page, and alice is told.
    await admin.get_by_role("button", name=f"Unclaim {bumper}").click()
    await expect(card(bob, bumper).locator(".claimer")).to_have_text("free", timeout=1_000)
    await expect(bob.get_by_role("button", name=f"Claim {bumper}")).to_be_visible()
    await expect(alice.locator("#notices")).to_contain_text(
        f"admin unclaimed your part {bumper} (Bumper frame)."
    )

    # A new part from bob's form lands in review on everyone's page.
    await bob.get_by_text("New part").click()
    form = bob.locator("#part-form")
    await form.get_by_label("Name").fill("Gusset")
    await form.get_by_label("Kind").select_option(label="Hand")
    await form.get_by_label("Subsystem").fill("Chassis")
    await form.get_by_label("Quantity").fill("4")
    await form.get_by_role("button", name="Add for review").click()
    gusset = rita.locator('#part-columns section[data-stage="REVIEW"] li', has_text="Gusset")
    await expect(gusset).to_be_visible(timeout=1_000)
    await expect(gusset.locator(".quantity")).to_have_text("\u00d7 4")
    await expect(bob.locator("#notices")).to_contain_text("(Gusset) for review.")

    OUTPUT.mkdir(exist_ok=True)
    await rita.screenshot(path=OUTPUT / "board-parts.png", full_page=True)
    await api.close()
    await reviewer.close()
    assert_only_holdfast(server.url, alice_requests, bob_requests, rita_requests, admin_requests)


async def canvas_pixels(page: Page) -> dict:
    """What the model's WebGL canvas holds: its size, how many pixels differ from the
    background, and how many distinct colours those have (shading, not one flat blot)."""
    return await page.evaluate(
        """([r, g, b]) => {
            const canvas = document.querySelector("#part-model canvas");
            const gl = canvas.getContext("webgl2") || canvas.getContext("webgl");
            const w = gl.drawingBufferWidth, h = gl.drawingBufferHeight;
            const px = new Uint8Array(w * h * 4);
            gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, px);
            let drawn = 0;
            const colours = new Set();
            for (let i = 0; i < px.length; i += 4) {
                const off = Math.abs(px[i] - r) + Math.abs(px[i + 1] - g) + Math.abs(px[i + 2] - b);
                if (off > 30) {
                    drawn++;
                    colours.add((px[i] >> 3) << 10 | (px[i + 1] >> 3) << 5 | (px[i + 2] >> 3));
                }
            }
            return { width: w, height: h, drawn, colours: colours.size };
        }""",
        list(BACKGROUND),
    )


async def test_a_parts_page_shows_its_files_and_draws_its_model(browser, server, tmp_path):
    await make_users(server.url, "alice")
    api = GraphQL(server.url)
    await api.sign_in("alice", USER_PASSWORD)
    ids = await make_parts(
        api,
        {
            "name": "Motor bracket",
            "kind": "CNC",
            "subsystem": "Drivetrain",
            "material": "6061 aluminium",
            "quantity": 4,
            "notes": "deburr the edges",
            "onshapeUrl": "https://cad.onshape.com/documents/0123456789abcdef01234567",
        },
    )
    part_id = ids["Motor bracket"]
    await api.close()

    alice, requested = await open_parts(browser, server.url, "alice")
    await alice.locator("#part-columns a.short-id").click()
    await expect(alice).to_have_url(f"{server.url}/?page=parts&part={part_id}")
    await expect(alice.locator("#part-title")).to_contain_text("Motor bracket")
    await expect(alice.locator("#part-facts .stage")).to_have_text("Review")
    await expect(alice.locator("#part-facts .material")).to_have_text("6061 aluminium")
    await expect(alice.locator("#part-facts .notes")).to_have_text("deburr the edges")
    await expect(alice.get_by_role("link", name="Open in Onshape")).to_be_visible()
    await expect(alice.locator("#part-no-files")).to_be_visible()
    await expect(alice.locator("#part-model-status")).to_contain_text("No 3D model yet")

    # A STEP upload from the page: converted on the server, then drawn in the browser.
    await alice.get_by_label("Upload a file").set_input_files(str(BRACKET))
    await alice.get_by_role("button", name="Upload", exact=True).click()
    row = alice.locator('#part-files tr[data-filename="bracket.step"]')
    await expect(row).to_be_visible(timeout=5_000)
    await expect(row.locator(".model-status")).to_have_text("GLB ready", timeout=60_000)
    model = alice.locator("#part-model")
    await expect(model).to_have_attribute("data-state", "ready", timeout=20_000)
    await expect(model.locator("canvas")).to_have_attribute("data-drawn", "true")

    pixels = await canvas_pixels(alice)
    assert pixels["width"] > 100 and pixels["height"] > 100, pixels
    assert pixels["drawn"] > 0.02 * pixels["width"] * pixels["height"], pixels
    assert pixels["colours"] > 8, pixels  # lit faces, not a flat silhouette
    OUTPUT.mkdir(exist_ok=True)
    await alice.screenshot(path=OUTPUT / "part-model.png", full_page=True)

    # The file's link downloads the original; the model's link the GLB.
    async def fetched(link) -> bytes:
        answer = await alice.request.get(urljoin(server.url, await link.get_attribute("href")))
        assert answer.ok, answer.status
        return await answer.body()

    assert (await fetched(row.locator(".filename a"))).startswith(b"ISO-10303-21;")
    assert (await fetched(row.locator(".model-status a")))[:4] == b"glTF"

    # Back to the board by the link, and forward again with the browser.
    await alice.get_by_role("link", name="← All parts").click()
    await expect(alice).to_have_url(f"{server.url}/?page=parts")
    await expect(alice.locator("#parts-board")).to_be_visible()
    await alice.go_back()
    await expect(alice.locator("#part-model")).to_have_attribute("data-state", "ready")
    assert_only_holdfast(server.url, requested)


async def test_a_glb_upload_is_drawn_as_it_is(browser, server, tmp_path):
    await make_users(server.url, "alice")
    api = GraphQL(server.url)
    await api.sign_in("alice", USER_PASSWORD)
    ids = await make_parts(api, {"name": "Spacer", "kind": "MISC"})
    await api.close()
    cube = tmp_path / "spacer.glb"
    cube.write_bytes(cube_glb())

    alice = await open_board(browser, server.url, "alice")
    requested: list[str] = []
    alice.on("request", lambda request: requested.append(request.url))
    await alice.goto(f"{server.url}/?page=parts&part={ids['Spacer']}")  # a link straight to it
    await expect(alice.locator("#part-title")).to_contain_text("Spacer", timeout=10_000)
    await alice.get_by_label("Upload a file").set_input_files(str(cube))
    await alice.get_by_role("button", name="Upload", exact=True).click()
    await expect(alice.locator('#part-files tr[data-filename="spacer.glb"]')).to_be_visible()
    await expect(alice.locator("#part-model")).to_have_attribute(
        "data-state", "ready", timeout=20_000
    )
    pixels = await canvas_pixels(alice)
    assert pixels["drawn"] > 0.02 * pixels["width"] * pixels["height"], pixels
    assert_only_holdfast(server.url, requested)


async def test_the_parts_page_catches_up_after_the_server_was_gone(browser, settings, tmp_path):
    """The page resubscribes with the last seq it saw: a claim made while it was cut off
    arrives without a reload."""
    port = free_port()
    server = start_server(settings, tmp_path / "server.log", port=port)
    other = None
    try:
        await make_users(server.url, "alice", "bob")
        api = GraphQL(server.url)
        await api.sign_in("admin", ADMIN_PASSWORD)
        ids = await make_parts(api, *PARTS)
        for part_id in ids.values():
            await api.data(APPROVE, {"id": part_id})
        await api.close()
        alice, _ = await open_parts(browser, server.url, "alice")
        first = await alice.locator('#part-columns section[data-stage="CNC"] li').get_attribute(
            "data-short-id"
        )
        await alice.get_by_role("button", name=f"Claim {first}").click()
        await expect(card(alice, first).locator(".claimer")).to_have_text("claimed by alice (you)")
        await alice.evaluate("window.notReloaded = true")

        stop_server(server)
        await expect(alice.locator("#live")).to_have_text("Reconnecting…", timeout=5_000)
        other = start_server(settings, tmp_path / "other.log")
        bob = GraphQL(other.url)
        await bob.sign_in("bob", USER_PASSWORD)
        await bob.data(CLAIM, {"id": ids["Bumper frame"]})
        await bob.close()
        stop_server(other)
        other = None
        server = start_server(settings, tmp_path / "server-again.log", port=port)

        await expect(alice.locator("#live")).to_have_text("Live", timeout=10_000)
        bumper = alice.locator('#part-columns section[data-stage="HAND"] li')
        await expect(bumper.locator(".claimer")).to_have_text("claimed by bob", timeout=5_000)
        assert await alice.evaluate("window.notReloaded") is True
        await expect(alice.locator("#part-counts")).to_have_text("3 parts · 1 claimed by you")
    finally:
        if other is not None:
            stop_server(other)
        stop_server(server)
