// The Mine page: everything the signed-in user holds in every area (`heldBy`), newest first,
// live. Built on the public GraphQL API only.
//
// It follows every area's stream (each project's lockEvents, gpuEvents, partEvents, each lot's
// lotAvailability, where the server has them) and reads `heldBy` again whenever an event may
// change what the user holds: one naming them as actor or holder. Each feed subscribes first and the list is read once it has joined, so
// no change between the read and the subscription is missed. Reads never overlap: an event
// during a read asks for one more read after it.

import { LiveFeed } from "./live.js";
import { $, cell, describe, setLive, since } from "./ui.js";

const STREAMS = {
  lockEvents: `subscription($project: String!, $since: Long) {
    lockEvents(project: $project, since: $since) { seq actor { username } lock { owner { username } } } }`,
  gpuEvents: `subscription($since: Long) {
    gpuEvents(since: $since) { seq actor { username } gpu { holder { username } } } }`,
  partEvents: `subscription($since: Long) {
    partEvents(since: $since) { seq actor { username } holder { username } } }`,
  lotAvailability: `subscription($lotId: ID!, $since: Long) {
    lotAvailability(lotId: $lotId, since: $since) { seq actor { username } holder { username } } }`,
};
const AREAS = { locks: "Lock", gpus: "GPU", parts: "Part", spots: "Parking spot" };
const LINKS = { locks: "/", gpus: "/?page=assets", parts: "/?page=parts", spots: "/?page=parking" };
const TICK_MS = 5_000;

const page = { session: null, holds: [], feeds: [], states: new Map(), reading: null, again: false, run: 0 };

const me = () => page.session.user && page.session.user.username;

// --- showing things -------------------------------------------------------------------------

function showError(error) {
  const box = $("#mine-error");
  box.textContent = error ? describe(error) : "";
  box.hidden = !error;
}

function until(iso, now = Date.now()) {
  if (!iso) return "—";
  const seconds = Math.round((Date.parse(iso) - now) / 1000);
  const span = (s) =>
    s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min` : s < 86400 ? `${Math.floor(s / 3600)} h` : `${Math.floor(s / 86400)} d`;
  return seconds < 0 ? `${span(-seconds)} ago` : `in ${span(seconds)}`;
}

function render() {
  const body = $("#holds tbody");
  body.replaceChildren();
  const now = Date.now();
  for (const hold of page.holds) {
    const row = body.insertRow();
    row.dataset.area = hold.area;
    row.dataset.id = hold.id;
    const area = cell(row, "Area", "", "area");
    const link = document.createElement("a");
    link.href = hold.area === "parts" ? `/?page=parts&part=${encodeURIComponent(hold.id)}` : LINKS[hold.area] || "/";
    link.textContent = AREAS[hold.area] || hold.area;
    area.append(link);
    cell(row, "What", hold.what, "what");
    const held = cell(row, "Since", since(hold.since, now), "since");
    held.title = new Date(hold.since).toLocaleString();
    const ends = cell(row, "Until", until(hold.until, now), "until");
    if (hold.until) ends.title = new Date(hold.until).toLocaleString();
  }
  const count = page.holds.length;
  const areas = new Set(page.holds.map((hold) => hold.area)).size;
  $("#mine-counts").textContent =
    count === 0 ? "Nothing held" : `${count} ${count === 1 ? "hold" : "holds"} in ${areas} ${areas === 1 ? "area" : "areas"}`;
  $("#mine-empty").hidden = count > 0;
  $("#holds").hidden = count === 0;
}

function tick() {
  if ($("#mine-view").hidden) return;
  const now = Date.now();
  const rows = $("#holds tbody").rows;
  page.holds.forEach((hold, index) => {
    const row = rows[index];
    if (!row) return;
    row.querySelector(".since").textContent = since(hold.since, now);
    row.querySelector(".until").textContent = until(hold.until, now);
  });
}

// --- data ---------------------------------------------------------------------------------------

/** Read heldBy; one read at a time, and one more when asked during a read. */
function read() {
  if (page.reading) {
    page.again = true;
    return page.reading;
  }
  const run = page.run;
  page.reading = (async () => {
    try {
      do {
        page.again = false;
        const data = await page.session.call("{ heldBy { area id what since until } }");
        if (run !== page.run) return;
        page.holds = data.heldBy;
        showError(null);
        render();
      } while (page.again && run === page.run);
    } catch (error) {
      if (run === page.run) showError(error);
    } finally {
      if (run === page.run) page.reading = null;
    }
  })();
  return page.reading;
}

function namesMe(field, event) {
  const mine = (user) => Boolean(user) && user.username === me();
  if (mine(event.actor)) return true;
  if (field === "lockEvents") return mine(event.lock && event.lock.owner);
  if (field === "gpuEvents") return mine(event.gpu && event.gpu.holder);
  return mine(event.holder); // partEvents, lotAvailability
}

/** The feeds' states as one: live when all are, else the worst. */
function showState(feed, state) {
  page.states.set(feed, state);
  const states = [...page.states.values()];
  setLive(states.includes("reconnecting") ? "reconnecting" : states.includes("connecting") ? "connecting" : "live");
}

function feed(field, variables = {}) {
  const run = page.run;
  const live = new LiveFeed({
    query: STREAMS[field],
    field,
    variables,
    since: null,
    token: (renew) => (renew ? page.session.refresh() : page.session.fresh()),
    onJoined: read,
    onEvent: (event) => {
      if (namesMe(field, event)) read();
    },
    onState: (state) => showState(live, state),
    onRefetch: () => {
      // Events that old are gone: follow the stream afresh, reading the list once it has joined.
      if (run !== page.run) return;
      page.states.delete(live);
      page.feeds = page.feeds.filter((other) => other !== live);
      const again = feed(field, variables);
      page.feeds.push(again);
      again.start();
    },
    onFatal: (error) => {
      setLive("offline");
      showError(error);
    },
  });
  page.states.set(live, "connecting");
  return live;
}

/** The streams there are to follow: every project's locks, and every lot where parking exists. */
async function streams() {
  const data = await page.session.call("{ projects { slug } }");
  const found = [...data.projects.map((project) => ["lockEvents", { project: project.slug }])];
  found.push(["gpuEvents", {}], ["partEvents", {}]);
  try {
    const lots = await page.session.call("{ parkingLots { id } }");
    for (const lot of lots.parkingLots) found.push(["lotAvailability", { lotId: lot.id }]);
  } catch (error) {
    if (error.code !== "GRAPHQL_VALIDATION_FAILED") throw error; // no parking on this server
  }
  return found;
}

async function follow() {
  stop();
  const run = page.run;
  setLive("connecting");
  let found;
  try {
    found = await streams();
  } catch (error) {
    if (run !== page.run) return;
    setLive("offline");
    showError(error);
    return;
  }
  if (run !== page.run) return;
  page.feeds = found.map(([field, variables]) => feed(field, variables));
  for (const live of page.feeds) live.start();
}

function stop() {
  page.run++;
  page.reading = null;
  page.again = false;
  for (const live of page.feeds) live.stop();
  page.feeds = [];
  page.states = new Map();
}

// --- the page -----------------------------------------------------------------------------------

export function showMine(session) {
  page.session = session;
  $("#mine-view").hidden = false;
  follow();
}

export function hideMine() {
  stop();
  page.holds = [];
  $("#holds tbody").replaceChildren();
  $("#mine-view").hidden = true;
}

setInterval(tick, TICK_MS);
