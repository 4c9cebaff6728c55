// The Events page: upcoming events grouped by venue, each venue's in order of start, and a form
// to publish one. A venue taken at that time is a CONFLICT naming the other event, shown as the
// server says it. Built on the public GraphQL API only.

import { $, ask, button, describe, notify } from "./ui.js";

const EVENT_FIELDS = "id title startsAt endsAt description venue { id name address } organiser { username }";
const PAGE_SIZE = 200;
const REFRESH_MS = 30_000; // no stream of events: others' new ones show within this

const page = { session: null, events: [], run: 0, timer: null };

const me = () => page.session.user && page.session.user.username;
const isAdmin = () => page.session.user && page.session.user.role === "ADMIN";

function showError(box, error) {
  box.textContent = error ? describe(error) : "";
  box.hidden = !error;
}

function when(iso) {
  return new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

function span(event) {
  if (!event.endsAt) return when(event.startsAt);
  const start = new Date(event.startsAt);
  const end = new Date(event.endsAt);
  const sameDay = start.toDateString() === end.toDateString();
  return `${when(event.startsAt)} – ${sameDay ? end.toLocaleTimeString([], { timeStyle: "short" }) : when(event.endsAt)}`;
}

function render() {
  const list = $("#venues");
  list.replaceChildren();
  const byVenue = new Map();
  for (const event of page.events) {
    const key = event.venue.id;
    if (!byVenue.has(key)) byVenue.set(key, { venue: event.venue, events: [] });
    byVenue.get(key).events.push(event);
  }
  const groups = [...byVenue.values()].sort((a, b) => a.venue.name.localeCompare(b.venue.name));
  for (const { venue, events } of groups) {
    events.sort((a, b) => Date.parse(a.startsAt) - Date.parse(b.startsAt) || a.title.localeCompare(b.title));
    const section = document.createElement("section");
    section.className = "venue";
    section.dataset.venue = venue.name;
    section.setAttribute("aria-label", venue.name);
    const heading = document.createElement("h3");
    heading.textContent = venue.name;
    section.append(heading);
    if (venue.address) {
      const address = document.createElement("p");
      address.className = "address";
      address.textContent = venue.address;
      section.append(address);
    }
    const items = document.createElement("ol");
    for (const event of events) {
      const item = document.createElement("li");
      item.className = "event-card";
      item.dataset.event = event.id;
      if (event.organiser.username === me()) item.classList.add("mine");
      const title = document.createElement("h4");
      title.textContent = event.title;
      const time = document.createElement("p");
      time.className = "when";
      time.textContent = span(event);
      const organiser = document.createElement("p");
      organiser.className = "organiser";
      organiser.textContent = `by ${event.organiser.username}`;
      item.append(title, time, organiser);
      if (event.description) {
        const description = document.createElement("p");
        description.className = "description";
        description.textContent = event.description;
        item.append(description);
      }
      if (event.organiser.username === me() || isAdmin()) {
        const actions = document.createElement("div");
        actions.className = "actions";
        actions.append(button("Delete", `Delete ${event.title}`, () => remove(event), "quiet"));
        item.append(actions);
      }
      items.append(item);
    }
    section.append(items);
    list.append(section);
  }
  const count = page.events.length;
  $("#event-counts").textContent = `${count} upcoming ${count === 1 ? "event" : "events"} · ${groups.length} ${groups.length === 1 ? "venue" : "venues"}`;
  $("#events-empty").hidden = count > 0;
}

async function load() {
  const run = ++page.run;
  const events = [];
  let after = null;
  let venues;
  try {
    const now = new Date().toISOString();
    for (;;) {
      const data = await page.session.call(
        `query($from: DateTime, $first: Int, $after: String) {
          venues { id name address }
          events(from: $from, first: $first, after: $after) {
            pageInfo { hasNextPage endCursor } edges { node { ${EVENT_FIELDS} } } } }`,
        { from: now, first: PAGE_SIZE, after },
      );
      if (run !== page.run) return;
      venues = data.venues;
      events.push(...data.events.edges.map((edge) => edge.node));
      if (!data.events.pageInfo.hasNextPage) break;
      after = data.events.pageInfo.endCursor;
    }
  } catch (error) {
    if (run === page.run) showError($("#events-error"), error);
    return;
  }
  page.events = events;
  $("#venue-names").replaceChildren(...venues.map((venue) => new Option(venue.name)));
  showError($("#events-error"), null);
  render();
}

async function create(form) {
  const fields = form.elements;
  const value = (name) => fields[name].value.trim() || null;
  const input = {
    title: fields.title.value.trim(),
    startsAt: new Date(fields.startsAt.value).toISOString(),
    endsAt: fields.endsAt.value ? new Date(fields.endsAt.value).toISOString() : null,
    venue: fields.venue.value.trim(),
    address: value("address"),
    description: value("description"),
  };
  const submit = form.querySelector("button[type=submit]");
  submit.disabled = true;
  try {
    const data = await page.session.call(
      `mutation($input: CreateEventInput!) { createEvent(input: $input) { ${EVENT_FIELDS} } }`,
      { input },
    );
    showError($("#event-form-error"), null);
    notify(`Published “${data.createEvent.title}” at ${data.createEvent.venue.name}.`);
    form.reset();
    await load();
  } catch (error) {
    showError($("#event-form-error"), error);
  } finally {
    submit.disabled = false;
  }
}

async function remove(event) {
  if (!(await ask(`Delete “${event.title}” at ${event.venue.name}?`, "Delete", false))) return;
  try {
    await page.session.call("mutation($id: ID!) { deleteEvent(id: $id) { id } }", { id: event.id });
    showError($("#events-error"), null);
  } catch (error) {
    showError($("#events-error"), error);
  }
  await load();
}

export function showEvents(session) {
  page.session = session;
  $("#events-view").hidden = false;
  $("#live").hidden = true; // this page is read, not followed
  clearInterval(page.timer);
  page.timer = setInterval(() => {
    if (!document.hidden) load();
  }, REFRESH_MS);
  load();
}

export function hideEvents() {
  clearInterval(page.timer);
  if (!$("#events-view").hidden) $("#live").hidden = false;
  page.run++;
  page.events = [];
  $("#venues").replaceChildren();
  $("#events-view").hidden = true;
}

$("#event-form").addEventListener("submit", (event) => {
  event.preventDefault();
  create(event.target);
});
