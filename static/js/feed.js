// The dashboard's order table: one row per order id (never twice), newest
// first, updated in place; a newer `version` always wins over an older one,
// so REST answers and live events can arrive in any order. Each row shows who
// ordered (name, phone), the delivery address and the notes; a pending order
// counts down to the hub's automatic cancellation (ORDER_CONFIRM_TIMEOUT_MINUTES,
// given by the server in the page), on the server's clock.

import { t } from "./i18n.js";
import { money, dateTime, shortId } from "./format.js";
import { marketMoves, STATUSES } from "./states.js";
import { h, statusBadge } from "./ui.js";

const MAX_ROWS = 200;
const MAX_ITEMS_SHOWN = 3;

export class OrderFeed {
  constructor({ tbody, empty, filter, currency, onAction, onFilter, onPrint, confirmTimeoutMs, now }) {
    this.tbody = tbody;
    this.onPrint = onPrint;
    this.confirmTimeoutMs = confirmTimeoutMs;
    this.now = now || (() => Date.now());
    this.ticker = setInterval(() => this.tick(), 1000);
    this.empty = empty;
    this.filter = filter;
    this.currency = currency || "UAH";
    this.onAction = onAction;
    this.orders = new Map(); // id -> order
    this.rows = new Map(); // id -> <tr>
    this.ac = new AbortController();
    this.fillFilter();
    filter.addEventListener("change", () => { this.refresh(); if (onFilter) onFilter(filter.value); }, { signal: this.ac.signal });
    this.tbody.addEventListener("animationend", (ev) => ev.target.closest("tr")?.classList.remove("is-new"), { signal: this.ac.signal });
    this.refresh();
  }

  fillFilter() {
    const keep = this.filter.value;
    this.filter.replaceChildren(
      h("option", { value: "" }, t("feed.filter.all")),
      ...STATUSES.map((s) => h("option", { value: s }, t(`status.${s}`))),
    );
    this.filter.value = keep || "";
  }

  get(id) { return this.orders.get(id); }

  /**
   * Insert or update an order. Returns {inserted, applied}.
   * opts.highlight: flash the row when it is new.
   */
  upsert(order, { highlight = false } = {}) {
    if (!order || !order.id) return { inserted: false, applied: false };
    const old = this.orders.get(order.id);
    if (old) {
      const ov = old.version, nv = order.version;
      if (Number.isInteger(ov) && Number.isInteger(nv) && nv <= ov) {
        return { inserted: false, applied: false }; // stale or same
      }
      this.orders.set(order.id, order);
      this.renderRow(this.rows.get(order.id), order);
      this.refresh();
      return { inserted: false, applied: true };
    }
    this.orders.set(order.id, order);
    const row = h("tr", { dataset: { testid: "order-row" } });
    this.renderRow(row, order);
    this.insertSorted(row, order);
    this.rows.set(order.id, row);
    if (highlight) {
      row.classList.add("is-new");
      setTimeout(() => row.classList.remove("is-new"), 3000); // also without animations
    }
    this.trim();
    this.refresh();
    return { inserted: true, applied: true };
  }

  insertSorted(row, order) {
    const ts = Date.parse(order.created_at) || 0;
    for (const other of this.tbody.children) {
      const o = this.orders.get(other.dataset.orderId);
      if (o && (Date.parse(o.created_at) || 0) < ts) {
        this.tbody.insertBefore(row, other);
        return;
      }
    }
    this.tbody.append(row);
  }

  trim() {
    while (this.tbody.children.length > MAX_ROWS) {
      const last = this.tbody.lastElementChild;
      this.rows.delete(last.dataset.orderId);
      this.orders.delete(last.dataset.orderId);
      last.remove();
    }
  }

  renderRow(row, order) {
    const cur = order.currency || this.currency;
    row.dataset.orderId = order.id;
    row.dataset.status = order.status;
    const sid = shortId(order.id);

    const items = order.items || [];
    const shown = items.slice(0, MAX_ITEMS_SHOWN).map((it) => `${it.quantity}× ${it.name}`).join(", ");
    const more = items.length > MAX_ITEMS_SHOWN ? ` ${t("feed.more", { n: items.length - MAX_ITEMS_SHOWN })}` : "";

    // keep the error line across re-renders; it is cleared by the next action
    let error = row.querySelector('[data-testid="row-error"]');
    if (!error) error = h("p", { class: "row-error", role: "alert", dataset: { testid: "row-error" }, hidden: true });

    const actions = h("div", { class: "actions" },
      ...marketMoves(order).map((next) => h("button", {
        type: "button",
        class: `btn btn-small action action-${next}${next === "cancelled" ? " btn-danger" : ""}`,
        dataset: { testid: `action-${next}`, status: next },
        "aria-label": `${t(`action.${next}`)} ${sid}`,
        onclick: () => this.onAction(this.orders.get(order.id) || order, next),
      }, t(`action.${next}`))),
      this.onPrint ? h("button", {
        type: "button", class: "btn btn-small btn-quiet", dataset: { testid: "print-ticket" },
        "aria-label": t("order.print.label", { id: sid }),
        onclick: () => this.onPrint(this.orders.get(order.id) || order),
      }, t("order.print")) : null,
    );

    const cell = (cls, label, ...content) => h("td", { class: cls, "data-label": label }, h("div", { class: "cell" }, ...content));
    row.replaceChildren(
      cell("c-order", t("feed.col.order"),
        h("span", { class: "order-id" }, sid),
        h("span", { class: "order-time" }, h("time", { datetime: order.created_at }, dateTime(order.created_at))),
        order.delivery_option ? h("span", { class: "order-delivery" }, t(`delivery.${order.delivery_option}`)) : null),
      cell("c-customer", t("feed.col.customer"), ...this.customerDetails(order)),
      cell("c-items", t("feed.col.items"), shown + more),
      cell("c-total", t("feed.col.total"), money(order.total_cents, cur)),
      cell("c-status", t("feed.col.status"),
        statusBadge(order.status, { tabindex: "-1", dataset: { testid: "row-status" } }),
        this.countdown(order)),
      cell("c-actions", t("feed.col.actions"), actions, error),
    );
  }

  customerDetails(order) {
    const c = order.customer || {};
    const out = [];
    out.push(h("span", { class: "customer-name", dataset: { testid: "customer-name" } }, c.name || t("order.no_contact")));
    if (c.phone) {
      out.push(h("a", { class: "customer-phone", href: `tel:${c.phone.replace(/[^+0-9]/g, "")}`,
        dataset: { testid: "customer-phone" } }, c.phone));
    }
    if (order.delivery_address) {
      out.push(h("span", { class: "order-address", dataset: { testid: "order-address" } },
        h("span", { class: "visually-hidden" }, `${t("order.address")}: `), order.delivery_address));
    }
    if (order.notes) {
      out.push(h("span", { class: "order-notes", dataset: { testid: "order-notes" } },
        h("span", { class: "visually-hidden" }, `${t("order.notes")}: `), `“${order.notes}”`));
    }
    return out;
  }

  /** A pending order's time left before the hub cancels it (updated every second by tick()). */
  countdown(order) {
    if (order.status !== "pending" || !this.confirmTimeoutMs) return null;
    const deadline = (Date.parse(order.created_at) || 0) + this.confirmTimeoutMs;
    const el = h("span", { class: "countdown", dataset: { testid: "countdown", deadline: String(deadline) } });
    this.renderCountdown(el);
    return el;
  }

  renderCountdown(el) {
    const left = Math.max(0, Number(el.dataset.deadline) - this.now());
    if (left <= 0) { el.textContent = t("order.expiring"); el.dataset.urgent = "true"; return; }
    const total = Math.ceil(left / 1000);
    const mm = Math.floor(total / 60);
    const ss = String(total % 60).padStart(2, "0");
    el.textContent = t("order.expires_in", { time: `${mm}:${ss}` });
    el.dataset.urgent = String(total <= 120);
  }

  tick() {
    for (const el of this.tbody.querySelectorAll('[data-testid="countdown"]')) this.renderCountdown(el);
  }

  /** Apply the status filter and the empty message. */
  refresh() {
    const want = this.filter.value;
    let visible = 0;
    for (const row of this.tbody.children) {
      const hide = Boolean(want) && row.dataset.status !== want;
      row.hidden = hide;
      if (!hide) visible++;
    }
    this.empty.hidden = visible > 0;
  }

  setBusy(id, busy) {
    const row = this.rows.get(id);
    if (!row) return;
    row.setAttribute("aria-busy", busy ? "true" : "false");
    for (const b of row.querySelectorAll(".actions button")) b.disabled = busy;
  }

  setError(id, text) {
    const row = this.rows.get(id);
    const el = row && row.querySelector('[data-testid="row-error"]');
    if (!el) return;
    el.textContent = text;
    el.hidden = !text;
  }

  /** After an action: keep keyboard focus in the row. */
  focusRow(id) {
    const row = this.rows.get(id);
    if (!row) return;
    const target = row.querySelector(".actions button:not([disabled])") || row.querySelector('[data-testid="row-status"]');
    if (target) target.focus();
  }

  rerenderAll() {
    this.fillFilter();
    for (const [id, row] of this.rows) this.renderRow(row, this.orders.get(id));
    this.refresh();
  }

  clear() {
    clearInterval(this.ticker);
    this.ac.abort();
    this.tbody.replaceChildren();
    this.orders.clear();
    this.rows.clear();
    this.empty.hidden = false;
  }
}
