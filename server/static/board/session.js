// Signing in, staying signed in, and GraphQL over HTTP with the current access token.
//
// Refresh tokens rotate, and presenting a rotated one again ends the whole login, so a refresh
// must never run twice with the same token:
// - within a tab, callers share one refresh in flight;
// - across tabs, where the browser has Web Locks (https, or localhost), the tokens live in
//   IndexedDB and tabs refresh one at a time under a lock, a tab finding the stored token
//   already rotated by another just taking the new one. (localStorage is no good here: a write
//   reaches other tabs asynchronously, so a tab could read the old token after the lock.)
// - without Web Locks (plain http to another host) each tab keeps its own login in
//   sessionStorage, which survives reloads of that tab.
// The access token is also written where the GraphiQL page looks for it.

const GRAPHIQL_TOKEN = "holdfast.accessToken";
const SESSION_KEY = "holdfast.session";
const REFRESH_EARLY_MS = 60_000;

export class ApiError extends Error {
  constructor(message, code, extensions = {}) {
    super(message);
    this.code = code;
    this.extensions = extensions;
  }
}

const AUTH_FIELDS = "accessToken refreshToken accessTokenExpiresAt user { id username role }";

async function post(query, variables, token) {
  const headers = { "Content-Type": "application/json", Accept: "application/graphql-response+json, application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers,
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ApiError("The server cannot be reached.", "NETWORK");
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`The server answered ${response.status}.`, "NETWORK");
  }
  if (body.errors && body.errors.length) {
    const [first] = body.errors;
    const extensions = first.extensions || {};
    throw new ApiError(first.message, extensions.code || "ERROR", extensions);
  }
  return body.data;
}

/** One record {accessToken, accessTokenExpiresAt, refreshToken} in IndexedDB. */
const sharedStore = {
  open() {
    this.db ||= new Promise((resolve, reject) => {
      const request = indexedDB.open("holdfast", 1);
      request.onupgradeneeded = () => request.result.createObjectStore("auth");
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    return this.db;
  },
  async run(mode, work) {
    const db = await this.open();
    return new Promise((resolve, reject) => {
      const transaction = db.transaction("auth", mode);
      const request = work(transaction.objectStore("auth"));
      transaction.oncomplete = () => resolve(request.result);
      transaction.onerror = () => reject(transaction.error);
      transaction.onabort = () => reject(transaction.error);
    });
  },
  get() {
    return this.run("readonly", (store) => store.get(SESSION_KEY)).then((found) => found || null);
  },
  set(record) {
    return this.run("readwrite", (store) => store.put(record, SESSION_KEY));
  },
  clear() {
    return this.run("readwrite", (store) => store.delete(SESSION_KEY));
  },
};

/** The same, in this tab's sessionStorage. */
const tabStore = {
  async get() {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
  },
  async set(record) {
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(record));
  },
  async clear() {
    sessionStorage.removeItem(SESSION_KEY);
  },
};

const shared = Boolean(navigator.locks && window.indexedDB);
const store = shared ? sharedStore : tabStore;
const graphiqlStorage = shared ? localStorage : sessionStorage;

function acrossTabs(work) {
  return shared ? navigator.locks.request("holdfast-refresh", work) : work();
}

export class Session {
  constructor() {
    this.user = null;
    this.record = null;
    this.onSignedOut = () => {};
    this.refreshing = null;
  }

  get accessToken() {
    return this.record && this.record.accessToken;
  }

  async keep(auth) {
    this.record = {
      accessToken: auth.accessToken,
      accessTokenExpiresAt: auth.accessTokenExpiresAt,
      refreshToken: auth.refreshToken,
    };
    await store.set(this.record);
    graphiqlStorage.setItem(GRAPHIQL_TOKEN, auth.accessToken);
    this.user = auth.user;
  }

  async forget() {
    this.record = null;
    this.user = null;
    graphiqlStorage.removeItem(GRAPHIQL_TOKEN);
    await store.clear();
  }

  async signIn(username, password) {
    const data = await post(
      `mutation($u: String!, $p: String!) { login(username: $u, password: $p) { ${AUTH_FIELDS} } }`,
      { u: username, p: password },
    );
    await this.keep(data.login);
    return this.user;
  }

  /** Resume after a reload (or in a new tab): the stored login, refreshed if need be. */
  async resume() {
    this.record = await store.get();
    if (!this.record) return null;
    try {
      const data = await post("{ me { id username role } }", {}, await this.fresh());
      this.user = data.me;
      if (!this.user) await this.forget();
    } catch (error) {
      if (error.code !== "UNAUTHENTICATED") throw error;
      await this.forget();
    }
    return this.user;
  }

  async signOut() {
    const refresh = this.record && this.record.refreshToken;
    await this.forget();
    if (refresh) {
      try {
        await post("mutation($r: String!) { logout(refreshToken: $r) }", { r: refresh });
      } catch {
        // Signed out here either way.
      }
    }
  }

  /** An access token that is good for a while yet, refreshing it when it is about to expire. */
  async fresh() {
    const expires = Date.parse((this.record && this.record.accessTokenExpiresAt) || "");
    if (this.accessToken && expires - Date.now() > REFRESH_EARLY_MS) return this.accessToken;
    return this.refresh();
  }

  /** A new access token; concurrent callers in this tab share one refresh. */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = this.rotate().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  async rotate() {
    const used = this.record && this.record.refreshToken;
    return acrossTabs(async () => {
      const current = await store.get();
      if (!current) {
        await this.forget();
        this.onSignedOut();
        throw new ApiError("Signed out.", "UNAUTHENTICATED");
      }
      if (current.refreshToken !== used) {
        this.record = current; // another tab rotated it meanwhile
        return current.accessToken;
      }
      try {
        const data = await post(
          `mutation($r: String!) { refreshToken(refreshToken: $r) { ${AUTH_FIELDS} } }`,
          { r: current.refreshToken },
        );
        await this.keep(data.refreshToken);
      } catch (error) {
        if (error.code === "UNAUTHENTICATED") {
          await this.forget();
          this.onSignedOut();
        }
        throw error;
      }
      return this.accessToken;
    });
  }

  /** Run a query or mutation as the signed-in user; an expired token is refreshed once. */
  async call(query, variables = {}) {
    const token = await this.fresh();
    try {
      return await post(query, variables, token);
    } catch (error) {
      if (error.code !== "UNAUTHENTICATED" || error.extensions.reason !== "expired") throw error;
      return post(query, variables, await this.refresh());
    }
  }
}
