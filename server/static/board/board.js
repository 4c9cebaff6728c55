// The lock board: who holds what in a project, live. Built on the public GraphQL API only.
// Also the frame of every page: signing in, and the nav between Locks, Assets (assets.js),
// Parts (parts.js), Parking (parking.js), Events (events.js) and Mine (mine.js).

import { hideAssets, showAssets } from "./assets.js";
import { hideEvents, showEvents } from "./events.js";
import { LiveFeed } from "./live.js";
import { hideMine, showMine } from "./mine.js";
import { hideParking, showParking } from "./parking.js";
import { hideParts, showParts } from "./parts.js";
import { Session } from "./session.js";
import { $, ask, button, cell, describe, notify, setLive, since } from "./ui.js";

const LOCK_FIELDS = "id path owner { username } branch comment acquiredAt expiresAt";
const LOCK_EVENTS = `subscription($project: String!, $since: Long) {
  lockEvents(project: $project, since: $since) {
    seq kind message at actor { username } lock { ${LOCK_FIELDS} }
  }
}`;
const HOLDING = new Set(["ACQUIRED", "RENEWED"]);
const FREEING = new Set(["RELEASED", "FORCE_RELEASED", "EXPIRED"]);
const PROJECT_KEY = "holdfast.project";
const TICK_MS = 5_000;

const session = new Session();
/** The pages besides the locks, by their `?page=` name. */
const PAGES = {
  assets: { show: () => showAssets(session), hide: hideAssets },
  parts: { show: (params) => showParts(session, params.get("part")), hide: hideParts },
  parking: { show: () => showParking(session), hide: hideParking },
  events: { show: () => showEvents(session), hide: hideEvents },
  mine: { show: () => showMine(session), hide: hideMine },
};
const board = { project: null, caseSensitive: false, locks: new Map(), feed: null, loading: 0 };

const keyOf = (path) => (board.caseSensitive ? path : path.toLowerCase());
const me = () => session.user && session.user.username;
const isAdmin = () => session.user && session.user.role === "ADMIN";

// --- showing things -------------------------------------------------------------------------

function ttlLeft(iso, now = Date.now()) {
  if (!iso) return "—";
  const seconds = Math.round((Date.parse(iso) - now) / 1000);
  if (seconds <= 0) return "expired";
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  return `${Math.floor(seconds / 86400)} d`;
}

function showError(error) {
  const box = $("#error");
  box.textContent = error ? describe(error) : "";
  box.hidden = !error;
}

function visible() {
  const prefix = keyOf($("#prefix").value.trim().replace(/\\/g, "/").replace(/^\.?\//, ""));
  const mineOnly = $("#mine").checked;
  return [...board.locks.values()]
    .filter((lock) => keyOf(lock.path).startsWith(prefix))
    .filter((lock) => !mineOnly || lock.owner.username === me())
    .sort((a, b) => a.path.localeCompare(b.path));
}

function render(changedKey) {
  const rows = visible();
  const body = $("#locks tbody");
  body.replaceChildren();
  const now = Date.now();
  for (const lock of rows) {
    const row = body.insertRow();
    row.dataset.path = lock.path;
    const mine = lock.owner.username === me();
    if (mine) row.classList.add("mine");
    if (changedKey === keyOf(lock.path)) row.classList.add("changed");
    cell(row, "Path", lock.path, "path");
    cell(row, "Holder", mine ? `${lock.owner.username} (you)` : lock.owner.username, "holder");
    const when = cell(row, "Since", since(lock.acquiredAt, now), "since");
    when.title = new Date(lock.acquiredAt).toLocaleString();
    cell(row, "Branch", lock.branch || "—");
    cell(row, "Comment", lock.comment || "");
    cell(row, "TTL left", ttlLeft(lock.expiresAt, now), "ttl");
    const actions = cell(row, "Actions", "", "actions");
    if (mine) {
      actions.append(button("Release", `Release ${lock.path}`, () => release(lock)));
    } else {
      actions.append(button("Ask to release", `Ask ${lock.owner.username} to release ${lock.path}`, () => askRelease(lock)));
      if (isAdmin()) {
        actions.append(button("Force release", `Force release ${lock.path}`, () => forceRelease(lock), "danger"));
      }
    }
  }
  const total = board.locks.size;
  const mineCount = [...board.locks.values()].filter((lock) => lock.owner.username === me()).length;
  const filtered = rows.length !== total ? ` · ${rows.length} shown` : "";
  $("#counts").textContent = `${total} ${total === 1 ? "lock" : "locks"} · ${mineCount} yours${filtered}`;
  const empty = $("#empty");
  empty.hidden = rows.length > 0;
  empty.textContent = total === 0 ? "No locks held in this project." : "No locks match the filters.";
  $("#locks").hidden = rows.length === 0;
}

function tick() {
  const now = Date.now();
  for (const row of $("#locks tbody").rows) {
    const lock = board.locks.get(keyOf(row.dataset.path));
    if (!lock) continue;
    row.querySelector(".since").textContent = since(lock.acquiredAt, now);
    row.querySelector(".ttl").textContent = ttlLeft(lock.expiresAt, now);
  }
}

// --- data ---------------------------------------------------------------------------------------

function hold(lock) {
  board.locks.set(keyOf(lock.path), lock);
  render(keyOf(lock.path));
}

function free(path) {
  board.locks.delete(keyOf(path));
  render();
}

function apply(event) {
  if (HOLDING.has(event.kind)) hold(event.lock);
  else if (FREEING.has(event.kind)) {
    free(event.lock.path);
    if (event.kind === "FORCE_RELEASED" && event.lock.owner.username === me()) {
      notify(`${event.actor ? event.actor.username : "An admin"} force-released your lock on ${event.lock.path}.`);
    }
  } else if (event.kind === "RELEASE_REQUESTED" && event.lock.owner.username === me()) {
    const who = event.actor ? event.actor.username : "Someone";
    notify(`${who} asks you to release ${event.lock.path}${event.message ? `: “${event.message}”` : "."}`);
  }
}

async function loadProject() {
  const loading = ++board.loading;
  if (board.feed) board.feed.stop();
  board.feed = null;
  setLive("connecting");
  const locks = new Map();
  let after = null;
  let seq = null;
  let project = null;
  try {
    for (;;) {
      const data = await session.call(
        `query($p: String!, $after: String) {
          project(slug: $p) { slug caseSensitive }
          locks(project: $p, first: 500, after: $after) {
            seq pageInfo { hasNextPage endCursor } edges { node { ${LOCK_FIELDS} } } } }`,
        { p: board.project, after },
      );
      if (loading !== board.loading) return;
      project = data.project;
      if (seq === null) seq = data.locks.seq;
      board.caseSensitive = project.caseSensitive;
      for (const { node } of data.locks.edges) locks.set(keyOf(node.path), node);
      if (!data.locks.pageInfo.hasNextPage) break;
      after = data.locks.pageInfo.endCursor;
    }
  } catch (error) {
    if (loading !== board.loading) return;
    setLive("offline");
    showError(error);
    return;
  }
  board.locks = locks;
  showError(null);
  render();
  board.feed = new LiveFeed({
    query: LOCK_EVENTS,
    field: "lockEvents",
    variables: { project: board.project },
    since: seq,
    token: (renew) => (renew ? session.refresh() : session.fresh()),
    onEvent: apply,
    onState: setLive,
    onRefetch: loadProject,
    onFatal: (error) => {
      setLive("offline");
      showError(error);
    },
  }).start();
}

async function loadProjects() {
  const data = await session.call("{ projects { slug name } }");
  if ($("#board-view").hidden) return; // gone to another page meanwhile
  const select = $("#project");
  select.replaceChildren(
    ...data.projects.map((project) => new Option(`${project.name} (${project.slug})`, project.slug)),
  );
  const saved = localStorage.getItem(PROJECT_KEY);
  const slugs = data.projects.map((project) => project.slug);
  board.project = slugs.includes(saved) ? saved : slugs[0] || null;
  select.value = board.project || "";
  if (!board.project) {
    showError(new Error("There is no project yet: an admin creates one."));
    return;
  }
  await loadProject();
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

function lockPath(form) {
  const path = form.elements.path.value.trim();
  const comment = form.elements.comment.value.trim() || null;
  return act(async () => {
    await session.call(
      `mutation($p: String!, $path: String!, $comment: String) {
        acquireLock(project: $p, path: $path, comment: $comment) { ${LOCK_FIELDS} } }`,
      { p: board.project, path, comment },
    );
    form.reset();
    form.elements.path.focus();
  });
}

function release(lock) {
  return act(async () => {
    await session.call(
      "mutation($p: String!, $path: String!) { releaseLock(project: $p, path: $path) { id } }",
      { p: board.project, path: lock.path },
    );
  });
}

async function askRelease(lock) {
  const answer = await ask(`Ask ${lock.owner.username} to release ${lock.path}?`, "Ask", true);
  if (!answer) return;
  await act(async () => {
    await session.call(
      `mutation($p: String!, $path: String!, $m: String) {
        requestLockRelease(project: $p, path: $path, message: $m) { seq } }`,
      { p: board.project, path: lock.path, m: answer.message || null },
    );
    notify(`Asked ${lock.owner.username} to release ${lock.path}.`);
  });
}

async function forceRelease(lock) {
  const text = `Force release ${lock.path}, held by ${lock.owner.username}? They will be told.`;
  if (!(await ask(text, "Force release", false))) return;
  await act(async () => {
    await session.call(
      `mutation($p: String!, $path: String!) {
        releaseLock(project: $p, path: $path, force: true) { id } }`,
      { p: board.project, path: lock.path },
    );
  });
}

// --- views ----------------------------------------------------------------------------------

function stopLocks() {
  board.loading++;
  if (board.feed) board.feed.stop();
  board.feed = null;
}

function showSignIn(message = "") {
  stopLocks();
  for (const other of Object.values(PAGES)) other.hide();
  board.locks = new Map();
  setLive("offline");
  $("#board-view").hidden = true;
  $("#pages").hidden = true;
  $("#sign-out").hidden = true;
  $("#who").textContent = "";
  $("#sign-in-view").hidden = false;
  $("#sign-in-error").textContent = message;
  $("#sign-in").elements.username.focus();
}

async function showBoard() {
  $("#sign-in-view").hidden = true;
  $("#sign-in-error").textContent = "";
  $("#pages").hidden = false;
  $("#sign-out").hidden = false;
  const user = session.user;
  $("#who").textContent = `${user.username}${user.role === "ADMIN" ? " (admin)" : ""}`;
  await showPage();
}

/** The page the address names: `?page=assets` (mails link there), `?page=parts` (with
 * `&part=<id>` a part's own page), `?page=parking`, `?page=events`, `?page=mine`, else the
 * locks. */
async function showPage() {
  const params = new URLSearchParams(location.search);
  const page = Object.hasOwn(PAGES, params.get("page")) ? params.get("page") : "locks";
  for (const link of document.querySelectorAll("#pages a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  $("#board-view").hidden = page !== "locks";
  for (const [name, other] of Object.entries(PAGES)) if (name !== page) other.hide();
  if (page !== "locks") {
    stopLocks();
    PAGES[page].show(params);
    return;
  }
  try {
    await loadProjects();
  } catch (error) {
    showError(error);
  }
}

function wire() {
  session.onSignedOut = () => showSignIn("Your session ended: sign in again.");
  $("#sign-in").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const submit = form.querySelector("button");
    submit.disabled = true;
    try {
      await session.signIn(form.elements.username.value.trim(), form.elements.password.value);
      form.reset();
      await showBoard();
    } catch (error) {
      $("#sign-in-error").textContent = describe(error);
      form.elements.password.select();
    } finally {
      submit.disabled = false;
    }
  });
  $("#sign-out").addEventListener("click", async () => {
    await session.signOut();
    showSignIn();
  });
  $("#pages").addEventListener("click", (event) => {
    const link = event.target.closest("a");
    if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    if (link.href !== location.href) history.pushState(null, "", link.href);
    showPage();
  });
  window.addEventListener("popstate", () => {
    if (session.user) showPage();
  });
  $("#project").addEventListener("change", (event) => {
    board.project = event.target.value;
    localStorage.setItem(PROJECT_KEY, board.project);
    loadProject();
  });
  $("#prefix").addEventListener("input", () => render());
  $("#mine").addEventListener("change", () => render());
  $("#lock-form").addEventListener("submit", (event) => {
    event.preventDefault();
    lockPath(event.target);
  });
  setInterval(tick, TICK_MS);
}

async function main() {
  wire();
  try {
    const user = await session.resume();
    if (user) await showBoard();
    else showSignIn();
  } catch (error) {
    showSignIn(describe(error));
  }
}

main();
