// Live stock of one market over Socket.IO `/catalog` (window.io from /static/vendor/socket.io.min.js).
//
// The server sends `catalog` {market_id, products: [{product_id, stock, is_available, price_cents}], at}:
// every product of the market on (re)connect, then only the changed ones. These are state
// snapshots, not a stream: the newest value of a product simply replaces the older one.
//
//   const live = connectCatalog({ marketId, token, onLevels: (levels, {full}) => {}, onState: (s) => {} });
//   live.close();

export function connectCatalog({ marketId, token = null, onLevels, onState = () => {}, onRefused = () => {} }) {
  const io = window.io;
  if (typeof io !== "function") throw new Error("socket.io client not loaded");
  const auth = { market_id: marketId };
  if (token) auth.token = token;
  const socket = io("/catalog", {
    auth,
    transports: ["websocket", "polling"],
    tryAllTransports: true,
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
    timeout: 10000,
    forceNew: true,
  });
  let first = true; // the first message after each connect is the full snapshot

  socket.on("connect", () => { first = true; onState("connected"); });
  socket.on("catalog", (message) => {
    if (!message || message.market_id !== marketId || !Array.isArray(message.products)) return;
    const full = first;
    first = false;
    onLevels(message.products, { full });
  });
  socket.on("disconnect", (reason) => {
    onState(reason === "io client disconnect" ? "offline" : "reconnecting");
    if (reason === "io server disconnect") setTimeout(() => socket.connect(), 1000 + Math.random() * 1000);
  });
  socket.on("connect_error", (err) => {
    if (socket.active) onState("reconnecting");
    else {
      onState("offline");
      onRefused(err);
      // refused for the rate limit: try again later, like a 429's Retry-After
      if (err && err.message === "rate_limited") setTimeout(() => socket.connect(), 30000);
      // the instance is admitting a reconnect storm: try again soon, spread out
      if (err && err.message === "busy") setTimeout(() => socket.connect(), 1000 + Math.random() * 2000);
    }
  });
  onState("reconnecting");
  return {
    close() {
      socket.removeAllListeners();
      socket.disconnect();
    },
  };
}
