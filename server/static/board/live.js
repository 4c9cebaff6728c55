// A live feed: one subscription of a stream (`lockEvents`, `gpuEvents`) over
// graphql-transport-ws, resumed with `since` after a drop.
//
// It remembers the last seq it delivered; after a dropped connection (network, server restart,
// close 1013 for falling behind, an access token that expired) it reconnects with backoff and
// resubscribes with `since: last`, so the page misses nothing and sees nothing twice. When the
// server no longer keeps events that old it asks the page to reload (`onRefetch`).
//
// A page that has no seq to start from (its list does not say one) starts with `since: null`
// and reads its list in `onJoined`: the feed subscribes, pings, and calls it at the pong, which
// the server sends only once the subscription has its place in the stream, so a list read then
// misses no later change. Events can arrive while the list loads: the page applies them after.
// The same happens on a reconnect while no event has come yet.

const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 5_000;

export class LiveFeed {
  /**
   * @param {object} options
   * @param {string} options.query the subscription document; it takes `$since: Long`
   * @param {string} options.field the subscription's field, e.g. "lockEvents"
   * @param {object} [options.variables] its other variables
   * @param {number|null} options.since the seq the page's list was read at, or null
   * @param {(renew: boolean) => Promise<string>} options.token a fresh access token (a new
   *   one when `renew`: the server refused the last)
   * @param {(event: object) => void} options.onEvent
   * @param {(state: "connecting"|"live"|"reconnecting") => void} options.onState
   * @param {() => void} [options.onJoined] subscribed without a seq: read the list now
   * @param {() => void} options.onRefetch events since `since` are gone: reload the list
   * @param {(error: Error) => void} options.onFatal
   */
  constructor(options) {
    Object.assign(this, options);
    this.variables = options.variables || {};
    this.last = options.since;
    this.joining = false;
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
            id: this.field,
            type: "subscribe",
            payload: { query: this.query, variables: { ...this.variables, since: this.last } },
          }),
        );
        this.joining = this.last === null && Boolean(this.onJoined);
        if (this.joining) socket.send(JSON.stringify({ type: "ping" }));
        this.delay = FIRST_DELAY_MS;
        this.onState("live");
        break;
      case "ping":
        socket.send(JSON.stringify({ type: "pong" }));
        break;
      case "pong":
        if (!this.joining) return;
        this.joining = false;
        this.onJoined();
        break;
      case "next": {
        const { data, errors } = message.payload;
        if (errors && errors.length) return this.failed(socket, errors);
        const event = data[this.field];
        if (this.last !== null && event.seq <= this.last) return;
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
