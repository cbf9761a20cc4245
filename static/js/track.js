// Order tracking page: the signed-in customer's orders, a live timeline of
// the chosen one (namespace /orders, stream user:{id}), and Cancel while pending.

import { api, apiList } from "./api.js";
import { getToken } from "./session.js";
import { t, onLocaleChange } from "./i18n.js";
import { money, dateTime, shortId } from "./format.js";
import { connectLive } from "./live.js";
import { initAuth } from "./auth.js";
import { customerCanCancel } from "./states.js";
import { h, show, announce, setConnState, errorText, statusBadge } from "./ui.js";

const $ = (id) => document.getElementById(id);

let user = null;
let live = null;
let orders = new Map(); // id -> order
let selectedId = null;
let generation = 0;
const marketNames = new Map(); // market id -> name (or a pending promise)

const auth = initAuth({ onSignedIn: start, onSignedOut: stop });

// ---------------------------------------------------------------- lifecycle

async function start(u) {
  user = u;
  const gen = ++generation;
  orders = new Map();
  selectedId = null;
  renderList();
  renderDetail();
  live = connectLive({
    namespace: "/orders",
    token: getToken(),
    getToken,
    sequenced: {
      "order:created": (p) => onOrderEvent(p, true),
      "order:updated": (p) => onOrderEvent(p, false),
    },
    onResync: () => reload(gen),
    onState: (s) => setConnState(s),
    onRefused: (err) => {
      if (err && err.message === "unauthorized") auth.signOut(t("error.UNAUTHORIZED"));
    },
    onConnect: () => { if (selectedId) track(selectedId); },
  });
  await reload(gen);
  // /track?order=<id> (the storefront sends customers here after checkout): open that order.
  const wanted = new URLSearchParams(window.location.search).get("order");
  if (wanted && /^[0-9a-fA-F]{24}$/.test(wanted) && gen === generation) {
    if (!orders.has(wanted)) {
      try { merge(await api(`/orders/${wanted}`)); } catch { /* not this customer's: the list stays */ }
    }
    if (orders.has(wanted) && gen === generation) { renderList(); select(wanted); }
  }
}

function stop() {
  generation++;
  live?.close();
  live = null;
  user = null;
  orders = new Map();
  selectedId = null;
  $("order-list").replaceChildren();
  show($("detail-body"), false);
  show($("detail-placeholder"), true);
  setConnState("offline");
}

async function reload(gen) {
  try {
    const { items } = await apiList("/orders", { limit: 100 });
    if (gen !== generation) return;
    for (const o of items) merge(o);
    message("");
  } catch (err) {
    if (gen === generation) message(errorText(err));
  }
  if (selectedId && gen === generation) {
    try { merge(await api(`/orders/${selectedId}`)); } catch { /* keep what we have */ }
  }
  renderList();
  renderDetail();
}

function message(text) {
  $("track-message").textContent = text;
  show($("track-message"), Boolean(text));
}

/** Keep the newest version of an order. Returns true when it changed. */
function merge(order) {
  if (!order || !order.id) return false;
  const old = orders.get(order.id);
  if (old && Number.isInteger(old.version) && Number.isInteger(order.version) && order.version <= old.version) return false;
  orders.set(order.id, order);
  return true;
}

// ---------------------------------------------------------------- live

function onOrderEvent(payload, created) {
  const order = payload && payload.order;
  if (!order) return;
  if (user && order.customer_id && order.customer_id !== user.id) return;
  const old = orders.get(order.id);
  if (!merge(order)) return;
  renderList();
  if (order.id === selectedId) renderDetail();
  if (!created && old && old.status !== order.status) {
    announce(t("announce.updated", { id: shortId(order.id), status: t(`status.${order.status}`) }));
  } else if (created && !old) {
    announce(t("announce.new_order", { id: shortId(order.id), total: money(order.total_cents, order.currency) }));
  }
}

/** Ask the hub for the order (ack: Order | {error: {code}}). */
async function track(id) {
  if (!live) return;
  try {
    const res = await live.request("track", { order_id: id });
    if (res && res.error) {
      if (id === selectedId) message(errorText({ code: res.error.code, message: res.error.message }));
      return;
    }
    if (merge(res)) { renderList(); if (id === selectedId) renderDetail(); }
  } catch {
    // timeout while reconnecting: REST state stays
  }
}

// ---------------------------------------------------------------- list

function sortedOrders() {
  return [...orders.values()].sort((a, b) => (Date.parse(b.created_at) || 0) - (Date.parse(a.created_at) || 0));
}

function renderList() {
  const list = $("order-list");
  const all = sortedOrders();
  const focusedId = document.activeElement?.closest?.('[data-testid="order-item"]')?.dataset.orderId;
  list.replaceChildren(...all.map((o) => h("li", {},
    h("button", {
      type: "button",
      class: `order-item${o.id === selectedId ? " is-selected" : ""}`,
      dataset: { testid: "order-item", orderId: o.id, status: o.status },
      "aria-pressed": o.id === selectedId ? "true" : "false",
      onclick: () => select(o.id),
    },
    h("span", { class: "order-id" }, shortId(o.id)),
    statusBadge(o.status),
    h("span", { class: "order-item-market muted" }, marketName(o.market_id)),
    h("span", { class: "order-item-meta muted" }, `${dateTime(o.created_at)} · ${money(o.total_cents, o.currency)}`)),
  )));
  show($("list-empty"), all.length === 0);
  if (focusedId) list.querySelector(`[data-order-id="${CSS.escape(focusedId)}"]`)?.focus();
}

function marketName(id) {
  const v = marketNames.get(id);
  if (typeof v === "string") return v;
  if (!v && id) {
    const p = api(`/markets/${id}`, { auth: false })
      .then((m) => { marketNames.set(id, m.name || ""); renderList(); if (selectedId) renderDetail(); })
      .catch(() => marketNames.set(id, ""));
    marketNames.set(id, p);
  }
  return "";
}

function select(id) {
  selectedId = id;
  message("");
  show($("cancel-error"), false);
  renderList();
  renderDetail();
  track(id);
  $("detail").focus();
}

// ---------------------------------------------------------------- detail

function renderDetail() {
  const o = selectedId && orders.get(selectedId);
  show($("detail-placeholder"), !o);
  show($("detail-body"), Boolean(o));
  if (!o) return;
  const name = marketName(o.market_id);
  $("detail-title").textContent = t("track.detail", { id: shortId(o.id) }) + (name ? ` · ${name}` : "");
  $("detail-meta").textContent = [
    t("track.placed", { time: dateTime(o.created_at) }),
    o.delivery_option ? `${t("track.delivery")}: ${t(`delivery.${o.delivery_option}`)}` : "",
  ].filter(Boolean).join(" · ");

  const cur = $("current-status");
  cur.dataset.status = o.status;
  cur.replaceChildren(statusBadge(o.status));

  const history = (o.status_history && o.status_history.length) ? o.status_history : [{ status: o.status, at: o.updated_at || o.created_at }];
  $("timeline").replaceChildren(...history.map((e, i) => h("li", {
    class: `timeline-entry status-${e.status}${i === history.length - 1 ? " is-current" : ""}`,
    dataset: { testid: "timeline-entry", status: e.status },
  },
  h("span", { class: "timeline-status" }, t(`status.${e.status}`)),
  h("time", { class: "timeline-time", datetime: e.at }, dateTime(e.at)),
  e.by === "system" ? h("span", { class: "muted" }, ` · ${t("track.by.system")}`) : null,
  e.reason ? h("span", { class: "timeline-reason" }, t("track.reason", { reason: e.reason })) : null,
  )));

  const cancel = $("cancel-order");
  const couldFocus = document.activeElement === cancel;
  show(cancel, customerCanCancel(o));
  if (couldFocus && cancel.hidden) $("detail").focus();

  $("detail-items").replaceChildren(...(o.items || []).map((it) => h("li", {},
    h("span", {}, `${it.quantity}× ${it.name}`),
    h("span", {}, money(it.line_total_cents, o.currency)))));
  $("detail-total").textContent = money(o.total_cents, o.currency);
}

$("cancel-order").addEventListener("click", async () => {
  const o = selectedId && orders.get(selectedId);
  if (!o) return;
  const btn = $("cancel-order");
  const err = $("cancel-error");
  btn.disabled = true;
  show(err, false);
  try {
    const updated = await api(`/orders/${o.id}/status`, {
      method: "PATCH",
      body: { status: "cancelled", expected_version: o.version },
    });
    if (merge(updated)) { renderList(); renderDetail(); }
  } catch (e) {
    err.textContent = errorText(e);
    show(err, true);
    try { if (merge(await api(`/orders/${o.id}`))) { renderList(); renderDetail(); } } catch { /* keep */ }
  } finally {
    btn.disabled = false;
  }
});

onLocaleChange(() => {
  if (user) { renderList(); renderDetail(); }
});
