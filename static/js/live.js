// Live stream client over Socket.IO (window.io from /static/vendor/socket.io.min.js).
//
// Every pushed event of a stream carries {stream, seq}; seq grows by one per
// event of that stream. This client
//   * remembers the last seq applied per stream and drops duplicates (seq <= last);
//   * on a gap (seq > last + 1) asks the server `replay` {stream, since: last};
//     the ack is the list of missed events, oldest first, applied in order
//     (events arriving meanwhile are queued and applied afterwards);
//   * on `resync` {stream, seq} (history no longer holds what we miss) calls
//     onResync(stream) to reload state over REST, then sets last = seq;
//   * keeps `socket.auth.since` = {stream: last} current (mutated in place and
//     refreshed on every reconnect attempt), so a reconnect first receives the
//     missed events from the server;
//   * reports the connection state: "connected" | "reconnecting" | "offline".
//
// Usage:
//   const live = connectLive({
//     namespace: "/dashboard", token, marketId,
//     sequenced: { "order:created": fn, "order:updated": fn },   // fn(payload, {replayed})
//     plain: { stats: fn },                                        // events without seq
//     onResync: async (stream) => { ...reload over REST... },
//     onState: (state, detail) => {}, onRefused: (err) => {},
//   });

const REPLAY_TIMEOUT_MS = 8000;

export function connectLive({
  namespace,
  token,
  getToken = null,
  marketId = null,
  sequenced = {},
  plain = {},
  onResync = async () => {},
  onState = () => {},
  onRefused = () => {},
  onConnect = () => {},
}) {
  const io = window.io;
  if (typeof io !== "function") throw new Error("socket.io client not loaded");

  const since = {};
  const auth = { token, since };
  if (marketId) auth.market_id = marketId;

  const socket = io(namespace, {
    auth,
    // websocket first; long-polling only if the websocket cannot be opened
    transports: ["websocket", "polling"],
    tryAllTransports: true,
    reconnection: true,
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
    randomizationFactor: 0.5,
    timeout: 10000,
    forceNew: true, // one manager per client: sign-out/sign-in starts clean
  });

  /** per stream: {last, busy, queue, gen} */
  const streams = new Map();
  let state = null;
  let closed = false;
  let serverKickTimer = null;
  let kickAttempts = 0;

  function setState(next, detail) {
    if (state === next) return;
    state = next;
    onState(next, detail);
  }

  function st(stream) {
    let s = streams.get(stream);
    if (!s) {
      s = { last: null, busy: false, queue: [], gen: 0 };
      streams.set(stream, s);
    }
    return s;
  }

  function setLast(stream, seq) {
    const s = st(stream);
    s.last = seq;
    if (seq === null || seq === undefined) delete since[stream];
    else since[stream] = seq; // socket.auth.since is this object: always current
  }

  function deliver(name, payload, replayed) {
    const fn = sequenced[name];
    if (!fn) return;
    try {
      fn(payload, { replayed });
    } catch (err) {
      // A rendering bug must not stop the stream; report it once.
      setTimeout(() => { throw err; });
    }
  }

  // Apply one sequenced event, or start a replay on a gap.
  function process(name, payload, replayed = false) {
    const stream = payload && payload.stream;
    const seq = payload && payload.seq;
    if (typeof stream !== "string" || !Number.isInteger(seq)) {
      deliver(name, payload, replayed);
      return;
    }
    const s = st(stream);
    if (s.busy) {
      s.queue.push({ name, payload });
      return;
    }
    if (s.last === null) {
      // first event seen on this stream: it is the baseline
      deliver(name, payload, replayed);
      setLast(stream, seq);
    } else if (seq <= s.last) {
      // duplicate (already applied): drop
    } else if (seq === s.last + 1) {
      deliver(name, payload, replayed);
      setLast(stream, seq);
    } else {
      s.busy = true;
      s.queue.push({ name, payload });
      replay(stream);
    }
  }

  function drain(stream) {
    const s = st(stream);
    s.busy = false;
    const q = s.queue;
    s.queue = [];
    for (const { name, payload } of q) process(name, payload); // may set busy again: then it re-queues
  }

  function replay(stream) {
    const s = st(stream);
    const gen = ++s.gen;
    const from = s.last;
    socket.timeout(REPLAY_TIMEOUT_MS).emit("replay", { stream, since: from }, (err, events) => {
      if (closed || s.gen !== gen) return; // superseded (resync, disconnect)
      if (err || !Array.isArray(events)) {
        // no usable answer (timeout, error object): reload over REST instead
        fullReload(stream, null);
        return;
      }
      const sorted = events
        .map(normalize)
        .filter((e) => e && Number.isInteger(e.seq))
        .sort((a, b) => a.seq - b.seq);
      for (const e of sorted) {
        if (e.seq <= s.last) continue;
        if (e.seq !== s.last + 1) {
          // the history could not fill the hole: reload instead
          fullReload(stream, null);
          return;
        }
        deliver(eventName(e), e, true);
        setLast(stream, e.seq);
      }
      drain(stream);
    });
  }

  // Replayed items are the stored events. The expected shape is the pushed
  // payload itself ({stream, seq, order, previous_status?}, optionally with an
  // `event` name); {event, data: payload} and [event, payload] are accepted too.
  function normalize(e) {
    if (Array.isArray(e) && e.length === 2 && typeof e[0] === "string" && e[1] && typeof e[1] === "object") {
      return { ...e[1], event: e[0] };
    }
    if (e && typeof e === "object" && !Number.isInteger(e.seq) && e.data && typeof e.data === "object") {
      return { ...e.data, event: e.event || e.name || e.type };
    }
    return e;
  }

  function eventName(e) {
    if (typeof e.event === "string") return e.event;
    if (typeof e.name === "string") return e.name;
    if (typeof e.type === "string") return e.type;
    return "previous_status" in e ? "order:updated" : "order:created";
  }

  async function fullReload(stream, seq) {
    const s = st(stream);
    const gen = ++s.gen;
    s.busy = true;
    try {
      await onResync(stream);
    } catch {
      // page shows its own error; keep going with live events
    }
    if (closed || s.gen !== gen) return;
    setLast(stream, seq);
    drain(stream);
  }

  socket.on("resync", (msg) => {
    if (!msg || typeof msg.stream !== "string") return;
    const seq = Number.isInteger(msg.seq) ? msg.seq : null;
    fullReload(msg.stream, seq);
  });

  for (const name of Object.keys(sequenced)) {
    socket.on(name, (payload) => process(name, payload));
  }
  for (const [name, fn] of Object.entries(plain)) {
    socket.on(name, (payload) => fn(payload));
  }

  socket.on("connect", () => {
    kickAttempts = 0;
    setState("connected");
    onConnect();
  });

  socket.on("disconnect", (reason) => {
    // Pending replays die with the connection; the reconnect's `since` makes
    // the server resend what is missing, so queued events can be dropped.
    for (const s of streams.values()) {
      s.gen++;
      s.busy = false;
      s.queue = [];
    }
    if (closed || reason === "io client disconnect") {
      setState("offline", reason);
      return;
    }
    if (reason === "io server disconnect") {
      // e.g. a slow consumer cut off by the server: reconnect ourselves
      setState("reconnecting", reason);
      const delay = Math.min(10000, 500 * 2 ** kickAttempts++) * (0.5 + Math.random() / 2);
      clearTimeout(serverKickTimer);
      serverKickTimer = setTimeout(() => { if (!closed) { refreshAuth(); socket.connect(); } }, delay);
      return;
    }
    setState(navigator.onLine === false ? "offline" : "reconnecting", reason);
  });

  socket.on("connect_error", (err) => {
    if (socket.active) {
      // temporary failure, the manager retries by itself
      setState(navigator.onLine === false ? "offline" : "reconnecting", err && err.message);
    } else if (err && err.message === "busy") {
      // the instance admits a bounded number of handshakes (a reconnect storm): retry, spread out
      setState("reconnecting", "busy");
      const delay = Math.min(10000, 1000 * 2 ** kickAttempts++) * (0.5 + Math.random());
      clearTimeout(serverKickTimer);
      serverKickTimer = setTimeout(() => { if (!closed) { refreshAuth(); socket.connect(); } }, delay);
    } else {
      // refused by the server (unauthorized / forbidden): no retry
      setState("offline", err && err.message);
      onRefused(err);
    }
  });

  function refreshAuth() {
    const fresh = getToken ? getToken() : null;
    if (fresh) auth.token = fresh;
    socket.auth = auth; // same object; `since` already holds the last seqs
  }

  socket.io.on("reconnect_attempt", () => {
    refreshAuth();
    setState(navigator.onLine === false ? "offline" : "reconnecting");
  });
  socket.io.on("reconnect_failed", () => setState("offline"));

  const onOffline = () => setState("offline");
  const onOnline = () => {
    if (!closed && !socket.connected) {
      setState("reconnecting");
      if (!socket.active) { refreshAuth(); socket.connect(); }
    }
  };
  window.addEventListener("offline", onOffline);
  window.addEventListener("online", onOnline);

  setState("reconnecting");

  return {
    socket,
    /** Last applied seq of a stream (null when none yet). */
    lastSeq(stream) { return streams.has(stream) ? streams.get(stream).last : null; },
    /** Emit with an ack; resolves to the ack value, rejects on timeout. */
    request(event, data, timeoutMs = 8000) {
      return new Promise((resolve, reject) => {
        socket.timeout(timeoutMs).emit(event, data, (err, res) => (err ? reject(err) : resolve(res)));
      });
    },
    close() {
      closed = true;
      clearTimeout(serverKickTimer);
      window.removeEventListener("offline", onOffline);
      window.removeEventListener("online", onOnline);
      socket.removeAllListeners();
      socket.io.off("reconnect_attempt");
      socket.io.off("reconnect_failed");
      socket.disconnect();
    },
  };
}
