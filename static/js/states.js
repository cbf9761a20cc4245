// Order state machine as seen by the MARKET (owner / super_admin).
//
// This table MIRRORS THE SERVER'S order state machine (DESIGN.md, "Order
// states"); the server is the authority and answers 409 INVALID_TRANSITION
// for anything it does not allow. Keep the two in step: this is the only
// place in static/ that knows the transitions.
//
//   pending → confirmed → preparing → ready → picked_up            (pickup)
//                                      ready → out_for_delivery → delivered   (delivery)
//   pending | confirmed | preparing → cancelled
//   terminal: picked_up, delivered, cancelled
//
// A customer may only cancel, and only while the order is pending.

export const STATUSES = [
  "pending", "confirmed", "preparing", "ready",
  "picked_up", "out_for_delivery", "delivered", "cancelled",
];

export const TERMINAL = new Set(["picked_up", "delivered", "cancelled"]);

const MARKET_MOVES = {
  pending: ["confirmed", "cancelled"],
  confirmed: ["preparing", "cancelled"],
  preparing: ["ready", "cancelled"],
  // ready depends on how the order leaves the market
  ready: (order) => (order.delivery_option === "delivery" ? ["out_for_delivery"] : ["picked_up"]),
  out_for_delivery: ["delivered"],
  picked_up: [],
  delivered: [],
  cancelled: [],
};

/** Next statuses the market may move `order` to (in button order). */
export function marketMoves(order) {
  const m = MARKET_MOVES[order && order.status];
  if (!m) return [];
  return typeof m === "function" ? m(order) : m.slice();
}

/** True when the customer may cancel the order (only while pending). */
export function customerCanCancel(order) {
  return Boolean(order) && order.status === "pending";
}

export function isTerminal(status) {
  return TERMINAL.has(status);
}
