// The Parking page: each lot's free, occupied and reserved counts, live; parking now, leaving,
// reserving ahead and cancelling; the user's bookings with a running cost. Built on the public
// GraphQL API only.
//
// Each lot has its own stream (`lotAvailability`): the page reads the lots, subscribes to each
// lot's stream and reads that lot again once its subscription has joined (LiveFeed's
// `onJoined`); events that arrive while it loads are applied after. Each event carries the
// lot's counts after it, so applying them in order leaves the newest. The user's bookings are
// read again after every lot event naming them (a reservation expiring, another tab parking).
//
// The running cost is for display only: the booking's rate (the lot's price per hour when it was
// booked) times the whole hours begun, at least one, worked out here in exact decimal
// arithmetic; the cost the server gives on leaving is the truth.

import { LiveFeed } from "./live.js";
import { $, ask, button, cell, describe, notify, setLive, since } from "./ui.js";

const LOT_FIELDS = "id name address pricePerHour spotCount active free occupied reserved";
const BOOKING_FIELDS = `id status vehicleNumber reservedFrom reservedUntil parkedAt leftAt rate cost
  spot { number lot { id name pricePerHour } }`;
const LOT_EVENTS = `subscription($lotId: ID!, $since: Long) {
  lotAvailability(lotId: $lotId, since: $since) {
    seq kind at message spotNumber actor { username } holder { username } lot { ${LOT_FIELDS} } }
}`;
const ACTIVE = new Set(["PARKED", "RESERVED"]);
const VEHICLE_KEY = "holdfast.vehicle";
const TICK_MS = 1_000;
const HOUR_MS = 3_600_000;

const me = () => page.session.user && page.session.user.username;

const page = {
  session: null,
  lots: new Map(),
  bookings: [],
  feeds: new Map(),
  states: new Map(),
  pending: new Map(),
  run: 0,
  reading: null,
  again: false,
};

// --- money ----------------------------------------------------------------------------------

/** `price` (a decimal string) × a whole number, exactly, as a decimal string. */
export function times(price, count) {
  const text = String(price);
  const [whole, fraction = ""] = text.replace(/^-/, "").split(".");
  const digits = BigInt(whole + fraction) * BigInt(count);
  let out = digits.toString().padStart(fraction.length + 1, "0");
  if (fraction.length) out = `${out.slice(0, -fraction.length)}.${out.slice(-fraction.length)}`;
  return (text.startsWith("-") ? "-" : "") + out;
}

/** Whole hours begun since `fromIso`, at least one. */
export function hoursBegun(fromIso, now = Date.now()) {
  return Math.max(1, Math.ceil((now - Date.parse(fromIso)) / HOUR_MS));
}

/** A decimal string with two places at least: 2.5 → 2.50. */
function money(amount) {
  const text = String(amount);
  const [whole, fraction = ""] = text.split(".");
  return `${whole}.${fraction.padEnd(2, "0")}`;
}

// --- showing things -------------------------------------------------------------------------

function showError(error) {
  const box = $("#parking-error");
  box.textContent = error ? describe(error) : "";
  box.hidden = !error;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : "—";
}

function renderLots(changedId) {
  const body = $("#lots tbody");
  body.replaceChildren();
  const lots = [...page.lots.values()].sort((a, b) => a.name.localeCompare(b.name));
  for (const lot of lots) {
    const row = body.insertRow();
    row.dataset.lot = lot.id;
    if (!lot.active) row.classList.add("inactive");
    if (changedId === lot.id) row.classList.add("changed");
    cell(row, "Lot", lot.name, "name");
    cell(row, "Address", lot.address || "—");
    cell(row, "Per hour", money(lot.pricePerHour), "price");
    cell(row, "Free", `${lot.free}`, "free-count");
    cell(row, "Occupied", `${lot.occupied}`, "occupied");
    cell(row, "Reserved", `${lot.reserved}`, "reserved");
    const actions = cell(row, "Actions", "", "actions");
    if (!lot.active) {
      actions.textContent = "closed";
      continue;
    }
    const park = button("Park", `Park in ${lot.name}`, () => parkIn(lot));
    park.disabled = lot.free === 0;
    actions.append(park, button("Reserve", `Reserve in ${lot.name}`, () => reserveIn(lot)));
  }
  const free = lots.reduce((sum, lot) => sum + (lot.active ? lot.free : 0), 0);
  $("#lot-counts").textContent = `${lots.length} ${lots.length === 1 ? "lot" : "lots"} · ${free} free`;
  $("#lots").hidden = lots.length === 0;
  $("#lot-empty").hidden = lots.length > 0;
  const select = $("#reserve-lot");
  const chosen = select.value;
  select.replaceChildren(...lots.filter((lot) => lot.active).map((lot) => new Option(lot.name, lot.id)));
  if (lots.some((lot) => lot.id === chosen)) select.value = chosen;
}

function runningCost(booking, now) {
  if (booking.status !== "PARKED" || !booking.parkedAt) return null;
  return money(times(booking.rate ?? booking.spot.lot.pricePerHour, hoursBegun(booking.parkedAt, now)));
}

function renderBookings() {
  const body = $("#bookings tbody");
  body.replaceChildren();
  const now = Date.now();
  const active = page.bookings.filter((booking) => ACTIVE.has(booking.status));
  for (const booking of active) {
    const row = body.insertRow();
    row.dataset.booking = booking.id;
    row.classList.add("mine");
    cell(row, "Lot", booking.spot.lot.name, "lot");
    cell(row, "Spot", `${booking.spot.number}`, "spot");
    cell(row, "Vehicle", booking.vehicleNumber, "vehicle");
    cell(row, "Status", booking.status === "PARKED" ? "parked" : "reserved", "status");
    const window =
      booking.status === "PARKED"
        ? `since ${when(booking.parkedAt)} (${since(booking.parkedAt, now)})`
        : `${when(booking.reservedFrom)} – ${when(booking.reservedUntil)}`;
    cell(row, "When", window, "when");
    cell(row, "Cost so far", runningCost(booking, now) || "—", "cost");
    const actions = cell(row, "Actions", "", "actions");
    if (booking.status === "PARKED") {
      actions.append(button("Leave", `Leave ${booking.spot.lot.name} spot ${booking.spot.number}`, () => leave(booking)));
    } else {
      actions.append(
        button("Cancel", `Cancel the reservation in ${booking.spot.lot.name}`, () => cancel(booking), "quiet"),
      );
    }
  }
  $("#bookings").hidden = active.length === 0;
  $("#no-bookings").hidden = active.length > 0;
}

function tick() {
  if ($("#parking-view").hidden) return;
  const now = Date.now();
  const byId = new Map(page.bookings.map((booking) => [booking.id, booking]));
  for (const row of $("#bookings tbody").rows) {
    const booking = byId.get(row.dataset.booking);
    if (!booking || booking.status !== "PARKED") continue;
    row.querySelector(".cost").textContent = runningCost(booking, now);
    row.querySelector(".when").textContent = `since ${when(booking.parkedAt)} (${since(booking.parkedAt, now)})`;
  }
}

// --- data ---------------------------------------------------------------------------------------

function applyLot(lot) {
  page.lots.set(lot.id, lot);
  renderLots(lot.id);
}

/** The user's bookings, read one read at a time (one more when asked during a read). */
function readBookings() {
  if (page.reading) {
    page.again = true;
    return page.reading;
  }
  const run = page.run;
  page.reading = (async () => {
    try {
      do {
        page.again = false;
        const data = await page.session.call(
          `{ mySpotBookings(first: 100) { edges { node { ${BOOKING_FIELDS} } } } }`,
        );
        if (run !== page.run) return;
        page.bookings = data.mySpotBookings.edges.map((edge) => edge.node);
        renderBookings();
      } while (page.again && run === page.run);
    } catch (error) {
      if (run === page.run) showError(error);
    } finally {
      if (run === page.run) page.reading = null;
    }
  })();
  return page.reading;
}

/** An event about the user's booking: read the bookings again, and say what others did. */
function told(event) {
  const mine = (user) => Boolean(user) && user.username === me();
  if (!mine(event.holder) && !mine(event.actor)) return;
  readBookings();
  if (!mine(event.holder) || mine(event.actor)) return;
  const who = event.actor ? event.actor.username : "Someone";
  const where = `${event.lot.name}${event.spotNumber ? `, spot ${event.spotNumber}` : ""}`;
  const said = event.message ? `: “${event.message}”` : ".";
  if (event.kind === "RELEASE_REQUESTED") notify(`${who} asks you to free your spot in ${where}${said}`);
  else if (event.kind === "FORCE_RELEASED") notify(`${who} ended your parking in ${where}${said}`);
}

/** A lot's subscription has joined: read the lot, then what came meanwhile. */
async function loadLot(lotId, run) {
  page.pending.set(lotId, []);
  let data;
  try {
    data = await page.session.call(`query($id: ID!) { parkingLot(id: $id) { ${LOT_FIELDS} } }`, { id: lotId });
  } catch (error) {
    if (run !== page.run) return;
    page.pending.delete(lotId);
    showError(error);
    return;
  }
  if (run !== page.run) return;
  const pending = page.pending.get(lotId) || [];
  page.pending.delete(lotId);
  if (data.parkingLot) page.lots.set(lotId, data.parkingLot);
  else page.lots.delete(lotId);
  for (const event of pending) page.lots.set(lotId, event.lot);
  renderLots();
}

function showState(feed, state) {
  page.states.set(feed, state);
  const states = [...page.states.values()];
  setLive(states.includes("reconnecting") ? "reconnecting" : states.includes("connecting") ? "connecting" : "live");
}

function followLot(lotId) {
  const run = page.run;
  const feed = new LiveFeed({
    query: LOT_EVENTS,
    field: "lotAvailability",
    variables: { lotId },
    since: null,
    token: (renew) => (renew ? page.session.refresh() : page.session.fresh()),
    onJoined: () => loadLot(lotId, run),
    onEvent: (event) => {
      if (run !== page.run) return;
      if (page.pending.has(lotId)) page.pending.get(lotId).push(event);
      else applyLot(event.lot);
      told(event);
    },
    onState: (state) => showState(feed, state),
    onRefetch: () => {
      if (run !== page.run) return;
      page.states.delete(feed);
      followLot(lotId);
    },
    onFatal: (error) => {
      setLive("offline");
      showError(error);
    },
  });
  page.feeds.set(lotId, feed);
  page.states.set(feed, "connecting");
  feed.start();
}

async function follow() {
  stop();
  const run = page.run;
  setLive("connecting");
  let data;
  try {
    data = await page.session.call(`{ parkingLots { ${LOT_FIELDS} } }`);
  } catch (error) {
    if (run !== page.run) return;
    setLive("offline");
    showError(error);
    return;
  }
  if (run !== page.run) return;
  page.lots = new Map(data.parkingLots.map((lot) => [lot.id, lot]));
  renderLots();
  readBookings();
  if (page.lots.size === 0) setLive("live");
  for (const lotId of page.lots.keys()) followLot(lotId);
}

function stop() {
  page.run++;
  page.reading = null;
  page.again = false;
  page.pending = new Map();
  for (const feed of page.feeds.values()) feed.stop();
  page.feeds = new Map();
  page.states = new Map();
}

// --- actions ------------------------------------------------------------------------------------

async function act(work) {
  try {
    await work();
    showError(null);
  } catch (error) {
    showError(error);
  }
  await readBookings();
}

function vehicle() {
  const input = $("#vehicle");
  const number = input.value.trim();
  if (!number) {
    input.focus();
    showError(new Error("Enter your vehicle number first."));
    return null;
  }
  localStorage.setItem(VEHICLE_KEY, number);
  return number;
}

function parkIn(lot) {
  const number = vehicle();
  if (!number) return;
  return act(async () => {
    const data = await page.session.call(
      `mutation($lot: ID!, $v: String!) { park(lotId: $lot, vehicleNumber: $v) { ${BOOKING_FIELDS} } }`,
      { lot: lot.id, v: number },
    );
    const booking = data.park;
    notify(`Parked ${booking.vehicleNumber} in ${booking.spot.lot.name}, spot ${booking.spot.number}.`);
  });
}

async function leave(booking) {
  const text = `Leave ${booking.spot.lot.name}, spot ${booking.spot.number}? About ${runningCost(booking, Date.now())} so far.`;
  if (!(await ask(text, "Leave", false))) return;
  await act(async () => {
    const data = await page.session.call(`mutation($id: ID!) { leave(bookingId: $id) { ${BOOKING_FIELDS} } }`, {
      id: booking.id,
    });
    const left = data.leave;
    notify(`You left ${left.spot.lot.name}: ${left.cost === null ? "no charge" : `cost ${money(left.cost)}`}.`);
  });
}

function reserveIn(lot) {
  $("#reserve").open = true;
  $("#reserve-lot").value = lot.id;
  $("#reserve-form").elements.from.focus();
}

function reserve(form) {
  const number = vehicle();
  if (!number) return;
  const from = form.elements.from.value;
  const until = form.elements.until.value;
  return act(async () => {
    const data = await page.session.call(
      `mutation($lot: ID!, $from: DateTime!, $until: DateTime!, $v: String!) {
        reserveSpot(lotId: $lot, from: $from, until: $until, vehicleNumber: $v) { ${BOOKING_FIELDS} } }`,
      { lot: $("#reserve-lot").value, from: new Date(from).toISOString(), until: new Date(until).toISOString(), v: number },
    );
    const booking = data.reserveSpot;
    notify(`Reserved spot ${booking.spot.number} in ${booking.spot.lot.name} for ${booking.vehicleNumber}.`);
    form.reset();
    $("#reserve").open = false;
  });
}

async function cancel(booking) {
  const text = `Cancel the reservation in ${booking.spot.lot.name} from ${when(booking.reservedFrom)}?`;
  if (!(await ask(text, "Cancel reservation", false))) return;
  await act(() =>
    page.session.call("mutation($id: ID!) { cancelSpotBooking(bookingId: $id) { id } }", { id: booking.id }),
  );
}

// --- the page -----------------------------------------------------------------------------------

export function showParking(session) {
  page.session = session;
  $("#parking-view").hidden = false;
  if (!$("#vehicle").value) $("#vehicle").value = localStorage.getItem(VEHICLE_KEY) || "";
  follow();
}

export function hideParking() {
  stop();
  page.lots = new Map();
  page.bookings = [];
  $("#lots tbody").replaceChildren();
  $("#bookings tbody").replaceChildren();
  $("#parking-view").hidden = true;
}

$("#reserve-form").addEventListener("submit", (event) => {
  event.preventDefault();
  reserve(event.target);
});
setInterval(tick, TICK_MS);
