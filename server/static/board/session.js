// Signing in, staying signed in, and GraphQL over HTTP with the current access token.
//
// Refresh tokens rotate and presenting a rotated one again ends the whole login, so a refresh
// must never run twice with the same token. Within a tab, callers share one refresh in flight.
// Across tabs, where the browser has Web Locks (https, or localhost), the tokens live in
// localStorage (a reload and every tab stay signed in) and tabs refresh one at a time, a tab
// finding the stored token already rotated by another just using it. Without Web Locks (plain
// http to another host) each tab keeps its own login in sessionStorage, which survives reloads
// of that tab. The access token is kept under the key the GraphiQL page reads.

const ACCESS = "holdfast.accessToken";
const ACCESS_EXPIRES = "holdfast.accessTokenExpiresAt";
const REFRESH = "holdfast.refreshToken";
const REFRESH_EARLY_MS = 60_000;
const storage = navigator.locks ? localStorage : sessionStorage;

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

function acrossTabs(work) {
  return navigator.locks ? navigator.locks.request("holdfast-refresh", work) : work();
}

export class Session {
  constructor() {
    this.user = null;
    this.onSignedOut = () => {};
    this.refreshing = null;
  }

  get accessToken() {
    return storage.getItem(ACCESS);
  }

  get signedIn() {
    return this.user !== null;
  }

  store(auth) {
    storage.setItem(ACCESS, auth.accessToken);
    storage.setItem(ACCESS_EXPIRES, auth.accessTokenExpiresAt);
    storage.setItem(REFRESH, auth.refreshToken);
    this.user = auth.user;
  }

  forget() {
    for (const key of [ACCESS, ACCESS_EXPIRES, REFRESH]) storage.removeItem(key);
    this.user = null;
  }

  async signIn(username, password) {
    const data = await post(
      `mutation($u: String!, $p: String!) { login(username: $u, password: $p) { ${AUTH_FIELDS} } }`,
      { u: username, p: password },
    );
    this.store(data.login);
    return this.user;
  }

  /** Resume after a reload: a still-valid access token, else the refresh token. */
  async resume() {
    if (!storage.getItem(REFRESH)) return null;
    try {
      await this.fresh();
      const data = await post("{ me { id username role } }", {}, this.accessToken);
      this.user = data.me;
    } catch (error) {
      if (error.code !== "UNAUTHENTICATED") throw error;
      this.forget();
    }
    return this.user;
  }

  async signOut() {
    const refresh = storage.getItem(REFRESH);
    this.forget();
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
    const expires = Date.parse(storage.getItem(ACCESS_EXPIRES) || "");
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
    const used = storage.getItem(REFRESH);
    return acrossTabs(async () => {
      const current = storage.getItem(REFRESH);
      if (!current) throw new ApiError("Signed out.", "UNAUTHENTICATED");
      if (current !== used && this.accessToken) return this.accessToken; // another tab did it
      try {
        const data = await post(
          `mutation($r: String!) { refreshToken(refreshToken: $r) { ${AUTH_FIELDS} } }`,
          { r: current },
        );
        this.store(data.refreshToken);
      } catch (error) {
        if (error.code === "UNAUTHENTICATED") {
          this.forget();
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
