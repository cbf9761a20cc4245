// Market dashboard: sign-in, market choice, live stats, hourly chart, the
// live order feed with status actions, customer details and the time left
// before the hub cancels a pending order, new-order alerts and printed
// tickets; and the Products tab (products.js).

import "./i18n-market.js";
import { api, apiList, ApiError } from "./api.js";
import { getToken } from "./session.js";
import { t, onLocaleChange } from "./i18n.js";
import { money, count, time, shortId } from "./format.js";
import { connectLive } from "./live.js";
import { initAuth } from "./auth.js";
import { createChart } from "./chart.js";
import { OrderFeed } from "./feed.js";
import { STATUSES } from "./states.js";
import { h, show, announce, setConnState, errorText } from "./ui.js";
import { createWebhooksPanel } from "./webhooks.js";
import { NewOrderAlerts } from "./alerts.js";
import { ProductsPanel } from "./products.js";
import { initTabs } from "./tabs.js";
import { printTicket } from "./ticket.js";

const $ = (id) => document.getElementById(id);
const MARKET_KEY = "markethub.market";

let user = null;
let markets = [];
let current = null; // {market, live, chart, feed, products}
let generation = 0; // bumps on every market switch / sign-out: late answers are ignored
let clockSkewMs = 0; // server clock - this clock, from the stats' `at`

// ORDER_CONFIRM_TIMEOUT_MINUTES, written into the page by the server (handlers/pages.py).
const confirmTimeoutMs = (() => {
  const seconds = Number(document.querySelector('meta[name="order-confirm-timeout-seconds"]')?.content);
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : null;
})();

const alerts = new NewOrderAlerts({
  soundButton: $("sound-toggle"),
  notifyButton: $("notify-ask"),
  onMessage: (text) => feedError(text),
});

const tabs = initTabs(document.querySelector(".dash-tabs"), {
  onSelect: (id) => {
    // The Products tab loads (and opens its live stock) the first time it is shown.
    if (id === "tab-products" && current && !current.products) {
      current.products = new ProductsPanel({ market: current.market });
    }
  },
});

const webhooks = createWebhooksPanel($("webhooks-panel"));
const auth = initAuth({ onSignedIn: start, onSignedOut: stop });

// ---------------------------------------------------------------- markets

async function loadMarkets() {
  const all = [];
  for (let skip = 0; skip < 1000; skip += 100) {
    const { items, total } = await apiList("/markets", { limit: 100, skip });
    all.push(...items);
    if (items.length < 100 || all.length >= total) break;
  }
  return all;
}

async function start(u) {
  user = u;
  const gen = ++generation;
  setConnState("offline");
  show($("market-view"), false);
  show($("market-picker"), false);
  message("");
  if (u.role !== "market_admin" && u.role !== "super_admin") {
    message(t("dash.forbidden"));
    return;
  }
  try {
    markets = await loadMarkets();
  } catch (err) {
    if (gen === generation) message(errorText(err));
    return;
  }
  if (gen !== generation) return;

  if (u.role === "market_admin") {
    const mine = markets.find((m) => m.owner_id === u.id);
    if (!mine) { message(t("dash.market.none")); return; }
    openMarket(mine);
    return;
  }

  // super_admin: choose from the list or type an id
  fillPicker();
  show($("market-picker"), true);
  let remembered = null;
  try { remembered = sessionStorage.getItem(MARKET_KEY); } catch { /* ignore */ }
  const first = markets.find((m) => m.id === remembered) || markets[0];
  if (first) {
    $("market-select").value = first.id;
    openMarket(first);
  } else {
    message(t("dash.market.none"));
  }
}

function fillPicker() {
  const sel = $("market-select");
  const keep = sel.value;
  sel.replaceChildren(...markets.map((m) => h("option", { value: m.id }, `${m.name} (${shortId(m.id)})`)));
  if (keep) sel.value = keep;
}

$("market-select").addEventListener("change", () => {
  const m = markets.find((x) => x.id === $("market-select").value);
  if (m) { $("market-id").value = ""; openMarket(m); }
});

$("market-picker").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const typed = $("market-id").value.trim();
  const id = typed || $("market-select").value;
  if (!/^[0-9a-fA-F]{24}$/.test(id)) { $("market-id").reportValidity(); return; }
  let m = markets.find((x) => x.id === id);
  if (!m) {
    try { m = await api(`/markets/${id}`); } catch (err) { message(errorText(err)); return; }
  }
  openMarket(m);
});

function stop() {
  generation++;
  closeMarket();
  user = null;
  markets = [];
  setConnState("offline");
}

function message(text) {
  const el = $("dash-message");
  el.textContent = text;
  show(el, Boolean(text));
}

// ---------------------------------------------------------------- one market

function closeMarket() {
  if (!current) return;
  current.products?.close();
  current.live?.close();
  current.chart?.destroy();
  current.feed?.clear();
  webhooks.close();
  current = null;
}

async function openMarket(market) {
  closeMarket();
  const gen = ++generation;
  try { sessionStorage.setItem(MARKET_KEY, market.id); } catch { /* ignore */ }
  message("");
  $("market-name").textContent = market.name ? ` · ${market.name}` : "";
  show($("market-view"), true);
  resetStats();

  const currency = market.currency || "UAH";
  const chart = createChart(document.querySelector('[data-testid="chart"]'), { currency });
  const feed = new OrderFeed({
    tbody: $("order-rows"),
    empty: $("feed-empty"),
    filter: $("status-filter"),
    currency,
    onAction: (order, status) => changeStatus(order, status),
    onFilter: () => loadOrders(gen),
    onPrint: (order) => printTicket(order, market),
    confirmTimeoutMs,
    now: () => Date.now() + clockSkewMs,
  });
  current = { market, chart, feed, live: null, products: null };
  tabs.select("tab-orders");

  // 1) chart seed first: live order:created events after its `to` are added on top
  await loadAnalytics(gen);
  if (gen !== generation) return;

  // 2) live stream (events merge by order version, so REST and live may interleave)
  current.live = connectLive({
    namespace: "/dashboard",
    token: getToken(),
    getToken,
    marketId: market.id,
    sequenced: {
      "order:created": (p, meta) => onOrderEvent(p, true, meta && meta.replayed),
      "order:updated": (p) => onOrderEvent(p, false),
    },
    plain: { stats: (p) => renderStats(p) },
    onResync: () => reloadAll(gen),
    onState: (s) => setConnState(s),
    onConnect: () => {
      current?.live?.request("stats:get", {}).then(renderStats, () => {});
    },
    onRefused: (err) => {
      if (err && err.message === "unauthorized") auth.signOut(t("error.UNAUTHORIZED"));
      else message(t("error.FORBIDDEN"));
    },
  });

  // 3) initial feed
  webhooks.open(market);
  await loadOrders(gen);
}

async function loadAnalytics(gen) {
  if (!current) return;
  try {
    const a = await api(`/analytics/markets/${current.market.id}`, { query: { bucket: "hour" } });
    if (gen !== generation) return;
    current.chart.seed(a);
  } catch (err) {
    if (gen === generation) feedError(errorText(err));
  }
}

async function loadOrders(gen) {
  if (!current) return;
  const status = $("status-filter").value;
  try {
    const { items } = await apiList("/orders", { market_id: current.market.id, limit: 50, status: status || undefined });
    if (gen !== generation) return;
    for (const o of items) current.feed.upsert(o);
    current.feed.refresh();
    feedError("");
  } catch (err) {
    if (gen === generation) feedError(errorText(err));
  }
}

/** resync: reload everything the stream feeds, over REST. */
async function reloadAll(gen) {
  if (gen !== generation || !current) return;
  await Promise.all([loadAnalytics(gen), loadOrders(gen)]);
  current?.live?.request("stats:get", {}).then(renderStats, () => {});
}

function feedError(text) {
  const el = $("feed-error");
  el.textContent = text;
  show(el, Boolean(text));
}

// ---------------------------------------------------------------- live events

function onOrderEvent(payload, created, replayed = false) {
  if (!current || !payload || !payload.order) return;
  const order = payload.order;
  if (order.market_id && order.market_id !== current.market.id) return;
  const before = current.feed.get(order.id);
  const res = current.feed.upsert(order, { highlight: created });
  if (created) {
    current.chart.addOrder(order);
    if (res.inserted) {
      const text = t("announce.new_order", { id: shortId(order.id), total: money(order.total_cents, order.currency || current.market.currency) });
      announce(text);
      if (!replayed) alerts.newOrder({ id: order.id, text });
    }
  } else {
    // chart.removeRevenue counts each order once, whoever saw the change first
    const prev = payload.previous_status || (before && before.status);
    if (order.status === "cancelled" && prev !== "cancelled") current.chart.removeRevenue(order);
  }
}

// ---------------------------------------------------------------- stats

function resetStats() {
  for (const id of ["stat-orders-total", "stat-revenue", "stat-aov"]) {
    document.querySelector(`[data-testid="${id}"]`).textContent = "—";
  }
  document.querySelector('[data-testid="stat-by-status"]').replaceChildren();
  $("stat-updated").textContent = "";
  lastStats = null;
}

let lastStats = null;
function renderStats(s) {
  if (!current || !s || typeof s !== "object" || s.error) return;
  if (s.market_id && s.market_id !== current.market.id) return;
  lastStats = s;
  const serverNow = Date.parse(s.at);
  if (!Number.isNaN(serverNow)) clockSkewMs = serverNow - Date.now();
  const cur = current.market.currency || "UAH";
  document.querySelector('[data-testid="stat-orders-total"]').textContent = count(s.orders_total ?? 0);
  document.querySelector('[data-testid="stat-revenue"]').textContent = money(s.revenue_cents ?? 0, cur);
  document.querySelector('[data-testid="stat-aov"]').textContent = money(s.average_order_value_cents ?? 0, cur);
  const by = s.orders_by_status || {};
  document.querySelector('[data-testid="stat-by-status"]').replaceChildren(
    ...STATUSES.filter((st) => by[st]).map((st) =>
      h("li", { class: `status-${st}`, "data-status": st },
        h("span", { class: "by-status-name" }, t(`status.${st}`)),
        h("span", { class: "by-status-n" }, count(by[st])))),
  );
  $("stat-updated").textContent = t("stat.updated", { time: time(s.at || new Date(), true) });
}

// ---------------------------------------------------------------- actions

async function changeStatus(order, status) {
  const feed = current?.feed;
  if (!feed) return;
  feed.setBusy(order.id, true);
  feed.setError(order.id, "");
  try {
    const updated = await api(`/orders/${order.id}/status`, {
      method: "PATCH",
      body: { status, expected_version: order.version },
    });
    feed.upsert(updated);
    if (updated.status === "cancelled") current?.chart.removeRevenue(updated);
  } catch (err) {
    feed.setError(order.id, errorText(err));
    if (err instanceof ApiError && (err.status === 409 || err.status === 404)) {
      // the order moved on meanwhile: show its current state
      try { feed.upsert(await api(`/orders/${order.id}`)); } catch { /* keep the row */ }
    }
  } finally {
    feed.setBusy(order.id, false);
    feed.focusRow(order.id);
  }
}

// ---------------------------------------------------------------- locale

onLocaleChange(() => {
  alerts.render();
  alerts.updateTitle();
  if (current) {
    current.products?.rerender();
    current.feed.rerenderAll();
    current.chart.render();
    if (lastStats) renderStats(lastStats);
  }
  if (markets.length) fillPicker();
});
