// Hourly SVG chart of the last 24 hours: bars = orders, line = revenue.
// Seeded from GET /analytics/markets/{id}?bucket=hour (`timeseries`, `to`),
// then kept current by the dashboard: addOrder() for each order:created that
// the analytics answer did not already count (created after its `to`),
// removeRevenue() when an order is cancelled (revenue excludes cancelled orders).
// Scales: the count axis (left) has integer ticks only (0, 1 for a busiest hour of one order,
// never 0, 1, 1); the revenue axis (right) has round amounts in the market's currency on the
// same grid lines.

import { t } from "./i18n.js";
import { money, count, hour as hourLabel } from "./format.js";
import { intlLocale } from "./i18n.js";

const HOUR = 3600 * 1000;
const SVG_NS = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

const floorHour = (ms) => Math.floor(ms / HOUR) * HOUR;
const MAX_INTERVALS = 4;

/** The smallest "nice" step (multiples × 10^k) at least `raw`, and at least `min`. */
export function niceStep(raw, { min = 0, multiples = [1, 2, 2.5, 5] } = {}) {
  if (!(raw > min)) return Math.max(min, raw > 0 ? raw : 1);
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [...multiples, 10]) if (m * mag >= raw - 1e-9) return m * mag;
  return 10 * mag;
}

/** Count axis: integer steps (1, 2, 5 × 10^k), top = step × intervals >= max; 0..1 for a max of 0 or 1. */
export function countScale(max) {
  const top0 = Math.max(1, Math.ceil(max));
  const step = Math.max(1, niceStep(top0 / MAX_INTERVALS, { min: 1, multiples: [1, 2, 5] }));
  const intervals = Math.max(1, Math.ceil(top0 / step));
  return { step, intervals, top: step * intervals };
}

/** Revenue axis on the same grid lines: a round step in minor units (whole currency units once
 *  the amounts allow it), so that step × intervals >= max. */
export function revenueScale(maxCents, intervals) {
  const raw = Math.max(100, maxCents) / intervals; // an empty day still reads 0 .. 1 unit
  const step = raw >= 100 ? niceStep(raw / 100) * 100 : niceStep(raw);
  return { step, top: step * intervals };
}

const compactCache = new Map();
function compactMoney(cents, currency) {
  const key = `${intlLocale()}|${currency}`;
  let fmt = compactCache.get(key);
  if (!fmt) {
    try {
      fmt = new Intl.NumberFormat(intlLocale(), { style: "currency", currency, notation: "compact", maximumFractionDigits: 1 });
    } catch {
      fmt = new Intl.NumberFormat(intlLocale(), { notation: "compact", maximumFractionDigits: 1 });
    }
    compactCache.set(key, fmt);
  }
  return fmt.format(cents / 100);
}

export function createChart(svg, { currency = "UAH" } = {}) {
  /** hour start (ms) -> {orders, revenue} */
  let buckets = new Map();
  let seededTo = 0; // analytics `to` (ms): orders created up to here are counted
  const counted = new Set(); // order ids added live
  const uncounted = new Set(); // order ids whose revenue was taken out (cancelled)

  function windowStarts() {
    const end = floorHour(Date.now());
    const out = [];
    for (let i = 23; i >= 0; i--) out.push(end - i * HOUR);
    return out;
  }

  function bucketFor(iso) {
    const ms = Date.parse(iso);
    if (Number.isNaN(ms)) return null;
    const start = floorHour(ms);
    if (start < floorHour(Date.now()) - 23 * HOUR) return null; // older than the window
    let b = buckets.get(start);
    if (!b) { b = { orders: 0, revenue: 0 }; buckets.set(start, b); }
    return b;
  }

  function seed(analytics) {
    buckets = new Map();
    counted.clear();
    uncounted.clear();
    const to = Date.parse(analytics && analytics.to);
    seededTo = Number.isNaN(to) ? Date.now() : to;
    for (const p of (analytics && analytics.timeseries) || []) {
      const ms = Date.parse(p.start);
      if (Number.isNaN(ms)) continue;
      const start = floorHour(ms);
      const b = buckets.get(start) || { orders: 0, revenue: 0 };
      b.orders += Number(p.orders) || 0;
      b.revenue += Number(p.revenue_cents) || 0;
      buckets.set(start, b);
    }
    render();
  }

  /** Count a new order in its hour (once; only if analytics did not include it). */
  function addOrder(order) {
    if (!order || counted.has(order.id)) return;
    const created = Date.parse(order.created_at);
    if (Number.isNaN(created) || created <= seededTo) return;
    const b = bucketFor(order.created_at);
    if (!b) return;
    counted.add(order.id);
    b.orders += 1;
    if (order.status !== "cancelled") b.revenue += Number(order.total_cents) || 0;
    else uncounted.add(order.id);
    render();
  }

  /** An order became cancelled: its revenue leaves its hour. */
  function removeRevenue(order) {
    if (!order || uncounted.has(order.id)) return;
    const created = Date.parse(order.created_at);
    // counted either by the analytics seed or by addOrder
    if (Number.isNaN(created) || (created > seededTo && !counted.has(order.id))) return;
    const b = bucketFor(order.created_at);
    if (!b) return;
    uncounted.add(order.id);
    b.revenue = Math.max(0, b.revenue - (Number(order.total_cents) || 0));
    render();
  }

  function series() {
    return windowStarts().map((start) => {
      const b = buckets.get(start) || { orders: 0, revenue: 0 };
      return { start, orders: b.orders, revenue: b.revenue };
    });
  }

  function render() {
    const data = series();
    const width = Math.max(280, Math.round(svg.parentElement?.clientWidth || 640));
    const height = 220;
    const pad = { l: 34, r: 58, t: 14, b: 28 };
    const iw = width - pad.l - pad.r;
    const ih = height - pad.t - pad.b;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    while (svg.firstChild) svg.firstChild.remove();

    const counts = countScale(Math.max(0, ...data.map((d) => d.orders)));
    const revenue = revenueScale(Math.max(0, ...data.map((d) => d.revenue)), counts.intervals);
    const maxOrders = counts.top;
    const maxRevenue = revenue.top;
    const slot = iw / data.length;
    const barW = Math.max(2, slot * 0.62);
    const labelEvery = [1, 2, 3, 4, 6, 12].find((n) => n * slot >= 46) || 12;

    const totalOrders = data.reduce((a, d) => a + d.orders, 0);
    const totalRevenue = data.reduce((a, d) => a + d.revenue, 0);
    const busiest = data.reduce((a, d) => (d.orders > a.orders ? d : a), data[0]);
    const summary = totalOrders
      ? t("chart.summary", {
          orders: count(totalOrders), revenue: money(totalRevenue, currency),
          hour: hourLabel(new Date(busiest.start)), max: count(busiest.orders),
        })
      : t("chart.empty");
    svg.setAttribute("aria-label", summary);
    svg.append(s("title", {}, summary));

    // grid + axis labels: orders (integers) on the left, revenue (round amounts) on the right
    const g = s("g", { class: "chart-grid" });
    for (let i = 0; i <= counts.intervals; i++) {
      const y = pad.t + ih - (i / counts.intervals) * ih;
      g.append(s("line", { x1: pad.l, x2: width - pad.r, y1: y, y2: y }));
      g.append(s("text", { x: pad.l - 6, y: y + 4, "text-anchor": "end", class: "chart-axis", "data-axis": "orders" },
        count(i * counts.step)));
      g.append(s("text", { x: width - pad.r + 6, y: y + 4, "text-anchor": "start", class: "chart-axis", "data-axis": "revenue" },
        compactMoney(i * revenue.step, currency)));
    }
    svg.append(g);

    const bars = s("g", { class: "chart-bars" });
    const pts = [];
    data.forEach((d, i) => {
      const x = pad.l + i * slot + (slot - barW) / 2;
      const bh = (d.orders / maxOrders) * ih;
      const rect = s("rect", {
        x: x.toFixed(1), y: (pad.t + ih - bh).toFixed(1), width: barW.toFixed(1), height: Math.max(0, bh).toFixed(1), rx: 2,
        "data-start": new Date(d.start).toISOString(), "data-orders": d.orders, "data-revenue": d.revenue,
      });
      rect.append(s("title", {}, `${hourLabel(new Date(d.start))}: ${t("chart.orders")} ${count(d.orders)}, ${t("chart.revenue")} ${money(d.revenue, currency)}`));
      bars.append(rect);
      pts.push([pad.l + i * slot + slot / 2, pad.t + ih - (d.revenue / maxRevenue) * ih]);
      if ((data.length - 1 - i) % labelEvery === 0) { // label the current hour and every Nth before it
        svg.append(s("text", { x: (pad.l + i * slot + slot / 2).toFixed(1), y: height - 8, "text-anchor": "middle", class: "chart-axis" },
          hourLabel(new Date(d.start))));
      }
    });
    svg.append(bars);
    svg.append(s("polyline", {
      class: "chart-line",
      points: pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "),
    }));
    for (const [x, y] of pts) svg.append(s("circle", { class: "chart-dot", cx: x.toFixed(1), cy: y.toFixed(1), r: 2.5 }));
  }

  // keep the window sliding and the width right
  const tick = setInterval(render, 60 * 1000);
  let ro = null;
  if (typeof ResizeObserver === "function") {
    let lastW = 0;
    ro = new ResizeObserver(() => {
      const w = Math.round(svg.parentElement?.clientWidth || 0);
      if (w && w !== lastW) { lastW = w; render(); }
    });
    if (svg.parentElement) ro.observe(svg.parentElement);
  }

  render();
  return {
    seed, addOrder, removeRevenue, render,
    setCurrency(c) { currency = c || "UAH"; render(); },
    destroy() { clearInterval(tick); if (ro) ro.disconnect(); },
  };
}
