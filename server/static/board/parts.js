// The Parts page: fabrication parts in a column per stage, live; and a part's own page (its
// fields, files and 3D model). Built on the public GraphQL API only.
//
// The part list says no seq, so the page subscribes to `partEvents` first and reads the list
// once the subscription has joined (LiveFeed's `onJoined`); events that arrive while the list
// loads are applied after it. Each event carries its part, so a card simply takes the part as
// the event brings it, and moves to the column of its stage. The filters work on what the page
// holds, so live changes and filters never disagree.

import { LiveFeed } from "./live.js";
import { ApiError } from "./session.js";
import { $, button, describe, notify, setLive, since } from "./ui.js";

const STAGES = [
  ["REVIEW", "Review"],
  ["CNC", "CNC"],
  ["HAND", "Hand"],
  ["MISC", "Misc"],
  ["COMPLETED", "Completed"],
];
const KIND_NAMES = { CNC: "CNC", HAND: "Hand", MISC: "Misc" };
const MAKING = new Set(["CNC", "HAND", "MISC"]);
const PART_FIELDS =
  "id shortId name kind stage subsystem material quantity notes claimedBy { username } claimedAt completedAt reviewer { username }";
const FILE_FIELDS =
  "id filename size uploadedAt modelStatus modelError download { url expiresAt } model { url expiresAt }";
const PART_EVENTS = `subscription($since: Long) {
  partEvents(since: $since) { seq kind at actor { username } holder { username } part { ${PART_FIELDS} } }
}`;
const UPLOAD = "mutation($p: ID!, $f: Upload!) { uploadPartFile(partId: $p, file: $f) { id } }";
const PENDING_POLL_MS = 2_000;
const LINK_EARLY_MS = 10_000;

const page = {
  session: null,
  me: null,
  parts: new Map(),
  feed: null,
  loading: 0,
  pending: null,
  partId: null, // the part whose page is open, or null for the board
  detail: null, // that part as last read, with its files
  detailLoading: 0,
  viewer: null, // {key, handle}: the model on screen
  poll: null,
};

const me = () => page.me && page.me.username;
const isAdmin = () => Boolean(page.me) && page.me.role === "ADMIN";
const mayReview = () => isAdmin() || ((page.me && page.me.permissions) || []).includes("parts.review");
const claimer = (part) => (part.claimedBy ? part.claimedBy.username : null);
const claimedByMe = (part) => Boolean(me()) && claimer(part) === me();

// --- showing things -------------------------------------------------------------------------

function showError(error) {
  const box = $("#parts-error");
  box.textContent = error ? describe(error) : "";
  box.hidden = !error;
}

function partLink(part, text) {
  const link = document.createElement("a");
  link.href = `/?page=parts&part=${encodeURIComponent(part.id)}`;
  link.textContent = text;
  link.addEventListener("click", (event) => {
    if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    history.pushState(null, "", link.href);
    openPart(part.id);
  });
  return link;
}

/** The buttons a person may use on a part, as the server would allow them. */
function actionsFor(part) {
  const id = part.shortId;
  const buttons = [];
  if (part.stage === "REVIEW" && mayReview()) {
    buttons.push(button("Approve", `Approve ${id}`, () => act("approvePart", part)));
  }
  if (MAKING.has(part.stage)) {
    if (!part.claimedBy) {
      buttons.push(button("Claim", `Claim ${id}`, () => act("claimPart", part)));
    } else if (claimedByMe(part) || isAdmin()) {
      buttons.push(button("Complete", `Complete ${id}`, () => act("completePart", part)));
      buttons.push(button("Unclaim", `Unclaim ${id}`, () => act("unclaimPart", part), "quiet"));
    }
  }
  if (part.stage === "COMPLETED" && mayReview()) {
    buttons.push(button("Revert", `Revert ${id}`, () => act("revertPart", part), "quiet"));
  }
  return buttons;
}

function whoHolds(part) {
  const name = claimer(part);
  const you = claimedByMe(part) ? " (you)" : "";
  if (part.stage === "REVIEW") return "awaiting review";
  if (part.stage === "COMPLETED") return name ? `made by ${name}${you}` : "done";
  return name ? `claimed by ${name}${you}` : "free";
}

function matches(part, words) {
  const haystack = [part.shortId, part.name, part.notes, part.subsystem, part.material, claimer(part)]
    .filter(Boolean)
    .join("\n")
    .toLowerCase();
  return words.every((word) => haystack.includes(word));
}

function visible() {
  const kind = $("#part-kind").value;
  const subsystem = $("#part-subsystem").value;
  const who = $("#part-claimer").value;
  const words = $("#part-search").value.trim().toLowerCase().split(/\s+/).filter(Boolean);
  return [...page.parts.values()]
    .filter((part) => !kind || part.kind === kind)
    .filter((part) => !subsystem || part.subsystem === subsystem)
    .filter((part) => {
      if (!who) return true;
      if (who === "@me") return claimedByMe(part);
      if (who === "@none") return !part.claimedBy;
      return claimer(part) === who;
    })
    .filter((part) => matches(part, words))
    .sort((a, b) => a.shortId.localeCompare(b.shortId, undefined, { numeric: true }));
}

function card(part, changedId, now) {
  const item = document.createElement("li");
  item.className = "part-card";
  item.dataset.shortId = part.shortId;
  item.dataset.stage = part.stage;
  if (claimedByMe(part)) item.classList.add("mine");
  if (changedId === part.id) item.classList.add("changed");
  const title = document.createElement("h4");
  const short = partLink(part, part.shortId);
  short.className = "short-id";
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = part.name;
  title.append(short, " ", name);
  const facts = document.createElement("p");
  facts.className = "facts";
  const bits = [
    ["subsystem", part.subsystem],
    ["material", part.material],
    ["quantity", `× ${part.quantity}`],
    ["kind", KIND_NAMES[part.kind]],
  ];
  for (const [className, text] of bits) {
    if (!text) continue;
    const bit = document.createElement("span");
    bit.className = className;
    bit.textContent = text;
    facts.append(bit);
  }
  const holder = document.createElement("p");
  holder.className = part.claimedBy ? "claimer" : "claimer free";
  holder.textContent = whoHolds(part);
  if (part.claimedAt && MAKING.has(part.stage)) {
    holder.title = `since ${new Date(part.claimedAt).toLocaleString()} (${since(part.claimedAt, now)})`;
  }
  item.append(title, facts, holder);
  const actions = actionsFor(part);
  if (actions.length) {
    const row = document.createElement("div");
    row.className = "actions";
    row.append(...actions);
    item.append(row);
  }
  return item;
}

function fillChoices(select, values, first) {
  const chosen = select.value;
  select.replaceChildren(...first.map(([text, value]) => new Option(text, value)), ...values.map((v) => new Option(v, v)));
  select.value = [...select.options].some((option) => option.value === chosen) ? chosen : "";
}

function fillFilters() {
  const all = [...page.parts.values()];
  const distinct = (values) => [...new Set(values.filter(Boolean))].sort((a, b) => a.localeCompare(b));
  fillChoices($("#part-subsystem"), distinct(all.map((part) => part.subsystem)), [["All subsystems", ""]]);
  fillChoices($("#part-claimer"), distinct(all.map(claimer)).filter((name) => name !== me()), [
    ["Anyone", ""],
    ["Me", "@me"],
    ["Nobody", "@none"],
  ]);
}

function render(changedId) {
  fillFilters();
  const shown = visible();
  const now = Date.now();
  for (const [stage] of STAGES) {
    const column = document.querySelector(`#part-columns [data-stage="${stage}"]`);
    const parts = shown.filter((part) => part.stage === stage);
    column.querySelector(".count").textContent = String(parts.length);
    column.querySelector("ol").replaceChildren(...parts.map((part) => card(part, changedId, now)));
  }
  const total = page.parts.size;
  const mine = [...page.parts.values()].filter((part) => MAKING.has(part.stage) && claimedByMe(part)).length;
  const filtered = shown.length !== total ? ` · ${shown.length} shown` : "";
  $("#part-counts").textContent = `${total} ${total === 1 ? "part" : "parts"} · ${mine} claimed by you${filtered}`;
  const empty = $("#part-empty");
  empty.hidden = shown.length > 0;
  empty.textContent = total === 0 ? "There are no parts yet." : "No parts match the filters.";
}

// --- a part's page ------------------------------------------------------------------------------

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function fact(list, label, value, className) {
  const term = document.createElement("dt");
  term.textContent = label;
  const detail = document.createElement("dd");
  if (className) detail.className = className;
  if (value instanceof Node) detail.append(value);
  else detail.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
  list.append(term, detail);
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : null);

/** The file to show in 3D: the newest with a ready model, or a GLB uploaded as it is. */
function modelOf(files) {
  for (const file of [...files].reverse()) {
    if (file.modelStatus === "READY" && file.model) return { file, link: "model" };
    if (!file.modelStatus && /\.glb$/i.test(file.filename)) return { file, link: "download" };
  }
  return null;
}

/** A download link that asks for a fresh URL when the one it has is about to expire. */
function downloadLink(file, which, text) {
  const link = document.createElement("a");
  link.href = file[which].url;
  link.textContent = text;
  link.setAttribute("download", which === "model" ? file.filename.replace(/\.[^.]*$/, "") + ".glb" : file.filename);
  link.addEventListener("click", async (event) => {
    if (Date.parse(file[which].expiresAt) - Date.now() > LINK_EARLY_MS) return;
    event.preventDefault();
    try {
      const data = await page.session.call(`query($id: ID!) { part(id: $id) { files { ${FILE_FIELDS} } } }`, {
        id: page.partId,
      });
      const fresh = data.part && data.part.files.find((other) => other.id === file.id);
      if (!fresh || !fresh[which]) throw new Error(`${file.filename} is gone.`);
      location.assign(fresh[which].url);
    } catch (error) {
      showError(error);
    }
  });
  return link;
}

function renderFiles(part) {
  const body = $("#part-files tbody");
  body.replaceChildren();
  for (const file of part.files) {
    const row = body.insertRow();
    row.dataset.filename = file.filename;
    const name = row.insertCell();
    name.dataset.label = "File";
    name.className = "filename";
    name.append(downloadLink(file, "download", file.filename));
    const bytes = row.insertCell();
    bytes.dataset.label = "Size";
    bytes.textContent = size(file.size);
    const at = row.insertCell();
    at.dataset.label = "Uploaded";
    at.textContent = since(file.uploadedAt);
    at.title = when(file.uploadedAt);
    const model = row.insertCell();
    model.dataset.label = "3D model";
    model.className = "model-status";
    if (file.modelStatus === "READY" && file.model) model.append(downloadLink(file, "model", "GLB ready"));
    else if (file.modelStatus === "PENDING") model.textContent = "converting…";
    else if (file.modelStatus === "FAILED") {
      model.textContent = `failed: ${file.modelError || "the conversion failed"}`;
      model.classList.add("failed");
    } else model.textContent = "—";
  }
  $("#part-files").hidden = part.files.length === 0;
  $("#part-no-files").hidden = part.files.length > 0;
}

function dropViewer() {
  if (page.viewer && page.viewer.handle) page.viewer.handle.dispose();
  page.viewer = null;
  $("#part-model").replaceChildren();
}

async function renderModel(part) {
  const status = $("#part-model-status");
  const chosen = modelOf(part.files);
  const box = $("#part-model");
  if (!chosen) {
    dropViewer();
    box.hidden = true;
    const pending = part.files.some((file) => file.modelStatus === "PENDING");
    status.textContent = pending
      ? "The 3D model is being made from the STEP file…"
      : "No 3D model yet: upload a STEP (or GLB) file.";
    return;
  }
  const key = `${chosen.file.id}:${chosen.link}`;
  if (page.viewer && page.viewer.key === key) return; // already on screen
  dropViewer();
  const viewer = { key, handle: null };
  page.viewer = viewer;
  box.hidden = false;
  box.dataset.state = "loading";
  status.textContent = `Loading the 3D model of ${chosen.file.filename}…`;
  try {
    const { showModel } = await import("./viewer.js");
    const handle = await showModel(box, chosen.file[chosen.link].url);
    if (page.viewer !== viewer) return handle.dispose();
    viewer.handle = handle;
    box.dataset.state = "ready";
    status.textContent = `${chosen.file.filename}: drag to turn, scroll to zoom.`;
  } catch (error) {
    if (page.viewer !== viewer) return;
    box.dataset.state = "failed";
    status.textContent = error.message;
  }
}

function renderDetail() {
  const part = page.detail;
  const title = $("#part-title");
  const facts = $("#part-facts");
  facts.replaceChildren();
  const actions = $("#part-actions");
  actions.replaceChildren();
  if (!part) {
    title.textContent = "No such part";
    $("#part-body").hidden = true;
    dropViewer();
    return;
  }
  $("#part-body").hidden = false;
  title.replaceChildren();
  const short = document.createElement("span");
  short.className = "short-id";
  short.textContent = part.shortId;
  title.append(short, " ", part.name);
  const stage = STAGES.find(([value]) => value === part.stage);
  fact(facts, "Stage", stage ? stage[1] : part.stage, "stage");
  fact(facts, "Kind", KIND_NAMES[part.kind] || part.kind);
  fact(facts, "Subsystem", part.subsystem, "subsystem");
  fact(facts, "Material", part.material, "material");
  fact(facts, "Quantity", part.quantity, "quantity");
  fact(facts, "Claimed by", claimer(part) ? claimer(part) + (claimedByMe(part) ? " (you)" : "") : null, "claimer");
  fact(facts, "Claimed", when(part.claimedAt));
  fact(facts, "Reviewer", part.reviewer && part.reviewer.username);
  fact(facts, "Completed", when(part.completedAt));
  let onshape = null;
  if (part.onshapeUrl) {
    onshape = document.createElement("a");
    onshape.href = part.onshapeUrl;
    onshape.rel = "noopener noreferrer";
    onshape.target = "_blank";
    onshape.textContent = "Open in Onshape";
  }
  fact(facts, "Onshape", onshape);
  fact(facts, "Notes", part.notes, "notes");
  actions.append(...actionsFor(part));
  renderFiles(part);
  renderModel(part);
}

async function loadDetail() {
  const id = page.partId;
  if (id === null) return;
  const loading = ++page.detailLoading;
  let part;
  try {
    const data = await page.session.call(
      `query($id: ID!) { part(id: $id) { ${PART_FIELDS} onshapeUrl files { ${FILE_FIELDS} } } }`,
      { id },
    );
    part = data.part;
  } catch (error) {
    if (loading !== page.detailLoading) return;
    showError(error.code === "BAD_USER_INPUT" || error.code === "NOT_FOUND" ? null : error);
    part = null;
  }
  if (loading !== page.detailLoading || page.partId !== id) return;
  page.detail = part;
  renderDetail();
  clearTimeout(page.poll);
  if (part && part.files.some((file) => file.modelStatus === "PENDING")) {
    page.poll = setTimeout(loadDetail, PENDING_POLL_MS);
  }
}

async function upload(form) {
  const file = form.elements.file.files[0];
  if (!file || page.partId === null) return;
  const submit = form.querySelector("button");
  submit.disabled = true;
  try {
    const body = new FormData();
    body.append("operations", JSON.stringify({ query: UPLOAD, variables: { p: page.partId, f: null } }));
    body.append("map", JSON.stringify({ 0: ["variables.f"] }));
    body.append("0", file, file.name);
    const token = await page.session.fresh();
    let response;
    try {
      response = await fetch("/graphql", { method: "POST", headers: { Authorization: `Bearer ${token}` }, body });
    } catch {
      throw new ApiError("The server cannot be reached.", "NETWORK");
    }
    let answer;
    try {
      answer = await response.json();
    } catch {
      throw new ApiError(`The server answered ${response.status}.`, "NETWORK");
    }
    const errors = answer.errors || (answer.data ? [] : [answer]);
    if (errors.length) {
      const extensions = errors[0].extensions || {};
      throw new ApiError(errors[0].message || `The server answered ${response.status}.`, extensions.code || "ERROR");
    }
    form.reset();
    showError(null);
    notify(`Uploaded ${file.name}.`);
    await loadDetail();
  } catch (error) {
    showError(error);
  } finally {
    submit.disabled = false;
  }
}

// --- data ---------------------------------------------------------------------------------------

function apply(event) {
  const part = event.part;
  const before = page.parts.get(part.id);
  const who = event.actor ? event.actor.username : "Someone";
  if (event.kind === "DELETED") page.parts.delete(part.id);
  else page.parts.set(part.id, part);
  const lost = event.holder ? event.holder.username : before && claimer(before); // who had it
  if (event.kind === "UNCLAIMED" && who !== me() && lost === me()) {
    notify(`${who} unclaimed your part ${part.shortId} (${part.name}).`);
  }
  render(part.id);
  if (page.partId === part.id) loadDetail();
}

async function load() {
  const loading = ++page.loading;
  page.pending = [];
  const parts = [];
  try {
    let after = null;
    for (;;) {
      const data = await page.session.call(
        `query($after: String) { me { id username role permissions }
          parts(first: 500, after: $after) {
            pageInfo { hasNextPage endCursor } edges { node { ${PART_FIELDS} } } } }`,
        { after },
      );
      if (loading !== page.loading) return;
      page.me = data.me;
      parts.push(...data.parts.edges.map((edge) => edge.node));
      if (!data.parts.pageInfo.hasNextPage) break;
      after = data.parts.pageInfo.endCursor;
    }
  } catch (error) {
    if (loading !== page.loading) return;
    page.pending = null;
    showError(error);
    return;
  }
  page.parts = new Map(parts.map((part) => [part.id, part]));
  const pending = page.pending;
  page.pending = null;
  for (const event of pending) apply(event);
  showError(null);
  render();
  if (page.partId !== null && page.detail) loadDetail(); // reloaded after a refetch
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
    query: PART_EVENTS,
    field: "partEvents",
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

async function act(mutation, part) {
  try {
    await page.session.call(`mutation($id: ID!) { ${mutation}(id: $id) { id } }`, { id: part.id });
    showError(null);
  } catch (error) {
    showError(error);
  }
}

async function create(form) {
  const fields = form.elements;
  const text = (name) => fields[name].value.trim() || null;
  const quantity = Number.parseInt(fields.quantity.value, 10);
  const input = {
    name: fields.name.value.trim(),
    kind: fields.kind.value,
    subsystem: text("subsystem"),
    material: text("material"),
    quantity: Number.isNaN(quantity) ? null : quantity,
    notes: text("notes"),
    onshapeUrl: text("onshapeUrl"),
  };
  try {
    const data = await page.session.call(
      "mutation($input: CreatePartInput!) { createPart(input: $input) { shortId } }",
      { input },
    );
    form.reset();
    showError(null);
    notify(`Added ${data.createPart.shortId} (${input.name}) for review.`);
  } catch (error) {
    showError(error);
  }
}

// --- the page -----------------------------------------------------------------------------------

function openPart(id) {
  clearTimeout(page.poll);
  page.partId = id;
  $("#parts-board").hidden = id !== null;
  $("#part-view").hidden = id === null;
  if (id === null) {
    page.detail = null;
    page.detailLoading++;
    dropViewer();
    return;
  }
  if (!page.detail || page.detail.id !== id) {
    page.detail = null;
    dropViewer();
    $("#part-title").textContent = "Loading…";
    $("#part-body").hidden = true;
  }
  loadDetail();
}

/** Show the Parts page: the board, or the page of the part `partId`. */
export function showParts(session, partId = null) {
  page.session = session;
  if (!page.me || page.me.username !== session.user.username) page.me = session.user;
  $("#parts-view").hidden = false;
  if (!page.feed) follow();
  openPart(partId);
}

export function hideParts() {
  stop();
  clearTimeout(page.poll);
  page.parts = new Map();
  page.partId = null;
  page.detail = null;
  page.detailLoading++;
  dropViewer();
  for (const list of document.querySelectorAll("#part-columns ol")) list.replaceChildren();
  $("#parts-view").hidden = true;
}

for (const id of ["#part-kind", "#part-subsystem", "#part-claimer"]) {
  $(id).addEventListener("change", () => render());
}
$("#part-search").addEventListener("input", () => render());
$("#part-back").addEventListener("click", (event) => {
  if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
  event.preventDefault();
  history.pushState(null, "", event.currentTarget.href);
  openPart(null);
});
$("#part-form").addEventListener("submit", (event) => {
  event.preventDefault();
  create(event.target);
});
$("#part-upload").addEventListener("submit", (event) => {
  event.preventDefault();
  upload(event.target);
});
