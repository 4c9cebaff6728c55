// The Assets page: who holds which GPU, live. Built on the public GraphQL API only.
//
// The GPU list says no seq, so the page subscribes to `gpuEvents` first and reads the list once
// the subscription has joined (LiveFeed's `onJoined`); events that arrive while the list loads
// are applied after it. Each event carries its GPU as the event left it, so applying one the
// list already shows changes nothing.

import { LiveFeed } from "./live.js";
import { $, ask, button, cell, describe, notify, setLive, since } from "./ui.js";

const GPU_FIELDS = "id serial model memoryGb version holder { username } heldSince dueBack server { id name }";
const GPU_EVENTS = `subscription($since: Long) {
  gpuEvents(since: $since) { seq kind message actor { username } gpu { ${GPU_FIELDS} } }
}`;
const HOLDING = new Set(["CLAIMED", "ASSIGNED"]);
const FREEING = new Set(["RELEASED", "FORCE_RELEASED"]);
const TICK_MS = 5_000;

const page = { session: null, me: null, gpus: new Map(), feed: null, loading: 0, pending: null };

const me = () => page.me && page.me.username;
const isAdmin = () => page.me && page.me.role === "ADMIN";
const heldByMe = (gpu) => Boolean(gpu.holder) && gpu.holder.username === me();

// --- showing things -------------------------------------------------------------------------

function span(seconds) {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86400)} d`;
}

function dueIn(iso, now = Date.now()) {
  if (!iso) return "—";
  const seconds = Math.round((Date.parse(iso) - now) / 1000);
  return seconds < 0 ? `overdue ${span(-seconds)}` : `in ${span(seconds)}`;
}

function showError(error) {
  const box = $("#assets-error");
  box.textContent = error ? describe(error) : "";
  box.hidden = !error;
}

function visible() {
  const server = $("#gpu-server").value;
  const freeOnly = $("#gpu-free").checked;
  const mineOnly = $("#gpu-mine").checked;
  const serverName = (gpu) => (gpu.server ? gpu.server.name : "");
  return [...page.gpus.values()]
    .filter((gpu) => !server || (gpu.server && gpu.server.id === server))
    .filter((gpu) => !freeOnly || !gpu.holder)
    .filter((gpu) => !mineOnly || heldByMe(gpu))
    .sort((a, b) => serverName(a).localeCompare(serverName(b)) || a.serial.localeCompare(b.serial));
}

function render(changedId) {
  const rows = visible();
  const body = $("#gpus tbody");
  body.replaceChildren();
  const now = Date.now();
  for (const gpu of rows) {
    const row = body.insertRow();
    row.dataset.serial = gpu.serial;
    const mine = heldByMe(gpu);
    if (mine) row.classList.add("mine");
    if (gpu.dueBack && Date.parse(gpu.dueBack) < now) row.classList.add("overdue");
    if (changedId === gpu.id) row.classList.add("changed");
    cell(row, "Serial", gpu.serial, "serial");
    cell(row, "Model", gpu.memoryGb ? `${gpu.model} · ${gpu.memoryGb} GB` : gpu.model);
    cell(row, "Server", gpu.server ? gpu.server.name : "—", "server");
    const holder = gpu.holder ? gpu.holder.username + (mine ? " (you)" : "") : "free";
    cell(row, "Holder", holder, gpu.holder ? "holder" : "holder free");
    const held = cell(row, "Held since", gpu.heldSince ? since(gpu.heldSince, now) : "—", "since");
    if (gpu.heldSince) held.title = new Date(gpu.heldSince).toLocaleString();
    const due = cell(row, "Due back", dueIn(gpu.dueBack, now), "due");
    if (gpu.dueBack) due.title = new Date(gpu.dueBack).toLocaleString();
    const actions = cell(row, "Actions", "", "actions");
    if (!gpu.holder) {
      actions.append(button("Claim", `Claim ${gpu.serial}`, () => claim(gpu)));
    } else if (mine) {
      actions.append(button("Release", `Release ${gpu.serial}`, () => release(gpu)));
    } else {
      const who = gpu.holder.username;
      actions.append(button("Request release", `Ask ${who} to release ${gpu.serial}`, () => requestRelease(gpu)));
      if (isAdmin()) {
        actions.append(button("Force release", `Force release ${gpu.serial}`, () => forceRelease(gpu), "danger"));
      }
    }
  }
  const all = [...page.gpus.values()];
  const free = all.filter((gpu) => !gpu.holder).length;
  const mine = all.filter(heldByMe).length;
  const shown = rows.length !== all.length ? ` · ${rows.length} shown` : "";
  $("#gpu-counts").textContent = `${all.length} ${all.length === 1 ? "GPU" : "GPUs"} · ${free} free · ${mine} yours${shown}`;
  const empty = $("#gpu-empty");
  empty.hidden = rows.length > 0;
  empty.textContent = all.length === 0 ? "There are no GPUs in the inventory yet." : "No GPUs match the filters.";
  $("#gpus").hidden = rows.length === 0;
}

function tick() {
  if ($("#assets-view").hidden) return;
  const now = Date.now();
  const bySerial = new Map([...page.gpus.values()].map((gpu) => [gpu.serial, gpu]));
  for (const row of $("#gpus tbody").rows) {
    const gpu = bySerial.get(row.dataset.serial);
    if (!gpu) continue;
    row.querySelector(".since").textContent = gpu.heldSince ? since(gpu.heldSince, now) : "—";
    row.querySelector(".due").textContent = dueIn(gpu.dueBack, now);
    row.classList.toggle("overdue", Boolean(gpu.dueBack) && Date.parse(gpu.dueBack) < now);
  }
}

function fillServers(servers) {
  const select = $("#gpu-server");
  const chosen = select.value;
  select.replaceChildren(
    new Option("All servers", ""),
    ...servers.filter((server) => server.gpus.length).map((server) => new Option(server.name, server.id)),
  );
  select.value = servers.some((server) => server.id === chosen) ? chosen : "";
}

// --- data ---------------------------------------------------------------------------------------

function apply(event) {
  const gpu = event.gpu;
  const who = event.actor ? event.actor.username : "Someone";
  const said = event.message ? `: “${event.message}”` : ".";
  if (HOLDING.has(event.kind)) {
    page.gpus.set(gpu.id, gpu);
    if (event.kind === "ASSIGNED" && heldByMe(gpu) && who !== me()) {
      notify(`${who} assigned you the GPU ${gpu.serial}.`);
    }
  } else if (FREEING.has(event.kind)) {
    if (gpu.version === null) page.gpus.delete(gpu.id); // the GPU was deleted
    else page.gpus.set(gpu.id, { ...gpu, holder: null, heldSince: null, dueBack: null });
    if (event.kind === "FORCE_RELEASED" && heldByMe(gpu)) {
      notify(`${who} force-released your GPU ${gpu.serial}${said}`);
    }
  } else if (event.kind === "RELEASE_REQUESTED" && heldByMe(gpu)) {
    notify(`${who} asks you to release the GPU ${gpu.serial}${said}`);
  }
  if (!page.pending) render(gpu.id);
}

async function every(query, field) {
  const nodes = [];
  let after = null;
  for (;;) {
    const data = await page.session.call(query, { after });
    if (data.me) page.me = data.me;
    nodes.push(...data[field].edges.map((edge) => edge.node));
    if (!data[field].pageInfo.hasNextPage) return nodes;
    after = data[field].pageInfo.endCursor;
  }
}

/** Read the list (the subscription has joined): what it shows, then what came meanwhile. */
async function load() {
  const loading = ++page.loading;
  page.pending = [];
  let servers;
  let gpus;
  try {
    servers = await every(
      `query($after: String) { me { username role }
        servers(first: 500, after: $after) {
          pageInfo { hasNextPage endCursor } edges { node { id name gpus { id } } } } }`,
      "servers",
    );
    gpus = await every(
      `query($after: String) { gpus(first: 500, after: $after) {
        pageInfo { hasNextPage endCursor } edges { node { ${GPU_FIELDS} } } } }`,
      "gpus",
    );
  } catch (error) {
    if (loading !== page.loading) return;
    page.pending = null;
    showError(error);
    return;
  }
  if (loading !== page.loading) return;
  fillServers(servers);
  page.gpus = new Map(gpus.map((gpu) => [gpu.id, gpu]));
  const pending = page.pending;
  page.pending = null;
  for (const event of pending) apply(event);
  showError(null);
  render();
}

function stop() {
  page.loading++;
  page.pending = null;
  if (page.feed) page.feed.stop();
  page.feed = null;
}

function follow() {
  stop();
  page.feed = new LiveFeed({
    query: GPU_EVENTS,
    field: "gpuEvents",
    since: null,
    token: (renew) => (renew ? page.session.refresh() : page.session.fresh()),
    onJoined: load,
    onEvent: (event) => (page.pending ? page.pending.push(event) : apply(event)),
    onState: setLive,
    onRefetch: follow,
    onFatal: (error) => {
      setLive("offline");
      showError(error);
    },
  }).start();
}

// --- actions ------------------------------------------------------------------------------------

async function act(work) {
  try {
    await work();
    showError(null);
  } catch (error) {
    showError(error);
  }
}

async function claim(gpu) {
  const answer = await ask(`Claim the GPU ${gpu.serial} (${gpu.model})?`, "Claim", false, true);
  if (!answer) return;
  await act(() =>
    page.session.call("mutation($id: ID!, $due: DateTime) { claimGpu(id: $id, dueBack: $due) { id } }", {
      id: gpu.id,
      due: answer.dueBack,
    }),
  );
}

function release(gpu) {
  return act(() => page.session.call("mutation($id: ID!) { releaseGpu(id: $id) { id } }", { id: gpu.id }));
}

async function requestRelease(gpu) {
  const answer = await ask(`Ask ${gpu.holder.username} to release the GPU ${gpu.serial}?`, "Ask", true);
  if (!answer) return;
  await act(async () => {
    await page.session.call("mutation($id: ID!, $m: String) { requestGpuRelease(id: $id, message: $m) { seq } }", {
      id: gpu.id,
      m: answer.message || null,
    });
    notify(`Asked ${gpu.holder.username} to release the GPU ${gpu.serial}.`);
  });
}

async function forceRelease(gpu) {
  const text = `Force release the GPU ${gpu.serial}, held by ${gpu.holder.username}? They will be told.`;
  if (!(await ask(text, "Force release", false))) return;
  await act(() =>
    page.session.call("mutation($id: ID!) { releaseGpu(id: $id, force: true) { id } }", { id: gpu.id }),
  );
}

// --- the page -----------------------------------------------------------------------------------

export function showAssets(session) {
  page.session = session;
  page.me = session.user;
  $("#assets-view").hidden = false;
  follow();
}

export function hideAssets() {
  stop();
  page.gpus = new Map();
  $("#gpus tbody").replaceChildren();
  $("#assets-view").hidden = true;
}

$("#gpu-server").addEventListener("change", () => render());
$("#gpu-free").addEventListener("change", () => render());
$("#gpu-mine").addEventListener("change", () => render());
setInterval(tick, TICK_MS);
