// The live lock feed: `lockEvents` over graphql-transport-ws, resumed with `since` after a drop.
//
// It remembers the last seq it delivered; after a dropped connection (network, server restart,
// close 1013 for falling behind, an access token that expired) it reconnects with backoff and
// resubscribes with `since: last`, so the board misses nothing and sees nothing twice. When the
// server no longer keeps events that old it asks the board to reload (`onRefetch`).

const SUBSCRIBE = `subscription($project: String!, $since: Long) {
  lockEvents(project: $project, since: $since) {
    seq kind message at actor { username }
    lock { id path owner { username } branch comment acquiredAt expiresAt }
  }
}`;
const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 5_000;

export class LockFeed {
  /**
   * @param {object} options
   * @param {string} options.project
   * @param {number} options.since the seq the board's list was read at
   * @param {(renew: boolean) => Promise<string>} options.token a fresh access token (a new
   *   one when `renew`: the server refused the last)
   * @param {(event: object) => void} options.onEvent
   * @param {(state: "connecting"|"live"|"reconnecting") => void} options.onState
   * @param {() => void} options.onRefetch events since `since` are gone: reload the list
   * @param {(error: Error) => void} options.onFatal
   */
  constructor(options) {
    Object.assign(this, options);
    this.last = options.since;
    this.delay = FIRST_DELAY_MS;
    this.stopped = false;
    this.socket = null;
    this.timer = null;
  }

  start() {
    this.onState("connecting");
    this.connect();
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, "done");
  }

  async connect(renew = false) {
    if (this.stopped) return;
    let token;
    try {
      token = await this.token(renew);
    } catch (error) {
      if (error.code === "NETWORK") return this.retry();
      return this.onFatal(error);
    }
    if (this.stopped) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/graphql`, "graphql-transport-ws");
    this.socket = socket;
    socket.onopen = () => {
      socket.send(JSON.stringify({ type: "connection_init", payload: { Authorization: `Bearer ${token}` } }));
    };
    socket.onmessage = (message) => this.receive(socket, JSON.parse(message.data));
    socket.onclose = (closed) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.stopped) return;
      this.retry(closed.code === 4403); // 4403: the token was refused, get a new one
    };
  }

  receive(socket, message) {
    switch (message.type) {
      case "connection_ack":
        socket.send(
          JSON.stringify({
            id: "locks",
            type: "subscribe",
            payload: { query: SUBSCRIBE, variables: { project: this.project, since: this.last } },
          }),
        );
        this.delay = FIRST_DELAY_MS;
        this.onState("live");
        break;
      case "ping":
        socket.send(JSON.stringify({ type: "pong" }));
        break;
      case "next": {
        const { data, errors } = message.payload;
        if (errors && errors.length) return this.failed(socket, errors);
        const event = data.lockEvents;
        if (event.seq <= this.last) return;
        this.last = event.seq;
        this.onEvent(event);
        break;
      }
      case "error":
        this.failed(socket, message.payload);
        break;
      case "complete":
        socket.close(1000, "complete");
        break;
    }
  }

  failed(socket, errors) {
    const [first] = errors;
    const extensions = (first && first.extensions) || {};
    if (extensions.reason === "refetch") {
      this.stop();
      this.onRefetch();
      return;
    }
    if (extensions.code === "UNAUTHENTICATED") {
      socket.close(1000, "token expired"); // onclose reconnects with a fresh token
      return;
    }
    this.stop();
    this.onFatal(new Error((first && first.message) || "the subscription failed"));
  }

  retry(renew = false) {
    if (this.stopped) return;
    this.onState("reconnecting");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(renew), this.delay);
    this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
  }
}
