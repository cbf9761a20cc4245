// The dashboard's Webhooks panel (docs/webhooks.md): the market's endpoints, a form to add one (its
// secret is shown once, right after), the last deliveries of the chosen endpoint with their status,
// and a retry button. Everything goes through the REST API; no inline styles or scripts (strict CSP).

import "./i18n-webhooks.js";
import { api, apiList } from "./api.js";
import { t, onLocaleChange, translate } from "./i18n.js";
import { dateTime, shortId } from "./format.js";
import { h, show, errorText, announce } from "./ui.js";

const EVENTS = ["order.created", "order.updated"];
const LAST_DELIVERIES = 20;

/** createWebhooksPanel(section) → {open(market), close()}; `section` is an empty element of the page. */
export function createWebhooksPanel(section) {
  let market = null;
  let endpoints = [];
  let chosen = null; // the endpoint whose deliveries are shown
  let deliveries = [];
  let generation = 0;

  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const rows = h("tbody", { "data-testid": "webhook-rows" });
  const empty = h("p", { class: "empty", "data-i18n": "wh.empty" });
  const secretBox = h("div", { class: "notice webhook-secret", hidden: true, "data-testid": "webhook-secret" });
  const url = h("input", { id: "webhook-url", type: "url", required: true, maxlength: "2048", autocomplete: "off",
                           spellcheck: "false", "data-testid": "webhook-url" });
  const description = h("input", { id: "webhook-description", type: "text", maxlength: "500", "data-testid": "webhook-description" });
  const boxes = EVENTS.map((name) => h("input", { type: "checkbox", value: name, checked: true, "data-testid": `webhook-event-${name}` }));
  const form = h("form", { class: "webhook-form", novalidate: true, "data-testid": "webhook-form" },
    h("h3", { "data-i18n": "wh.add" }),
    h("div", { class: "field" }, h("label", { for: "webhook-url", "data-i18n": "wh.url" }), url),
    h("div", { class: "field" }, h("label", { for: "webhook-description", "data-i18n": "wh.description" }), description),
    h("fieldset", { class: "field webhook-events" }, h("legend", { "data-i18n": "wh.events" }),
      ...boxes.map((box) => h("label", { class: "check" }, box, " ", box.value))),
    h("button", { type: "submit", class: "btn btn-primary", "data-testid": "webhook-add", "data-i18n": "wh.submit" }));
  const deliveriesTitle = h("h3", {});
  const deliveryRows = h("tbody", { "data-testid": "webhook-deliveries" });
  const deliveriesEmpty = h("p", { class: "empty", "data-i18n": "wh.deliveries.empty" });
  const deliveriesBox = h("div", { class: "webhook-deliveries", hidden: true },
    deliveriesTitle,
    h("table", { class: "orders" },
      h("thead", {}, h("tr", {}, ...["time", "event", "order", "status", "attempts", "error"].map((c) =>
        h("th", { scope: "col", "data-i18n": `wh.col.${c}` })), h("th", { scope: "col", "data-i18n": "wh.col.actions" }))),
      deliveryRows),
    deliveriesEmpty);

  section.replaceChildren(
    h("div", { class: "section-head" }, h("h2", { id: "webhooks-title", "data-i18n": "wh.title" })),
    h("p", { class: "lead", "data-i18n": "wh.lead" }),
    error,
    h("table", { class: "orders" },
      h("thead", {}, h("tr", {}, ...["url", "events", "state", "actions"].map((c) =>
        h("th", { scope: "col", "data-i18n": `wh.col.${c}` })))),
      rows),
    empty, secretBox, form, deliveriesBox);
  section.setAttribute("aria-labelledby", "webhooks-title");
  translate(section);

  function fail(err) {
    error.textContent = err ? errorText(err) : "";
    show(error, Boolean(err));
  }

  async function load(gen) {
    try {
      const { items } = await apiList(`/markets/${market.id}/webhooks`);
      if (gen !== generation) return;
      endpoints = items;
      renderEndpoints();
      fail(null);
      if (chosen) await loadDeliveries(gen);
    } catch (err) {
      if (gen === generation) fail(err);
    }
  }

  function renderEndpoints() {
    rows.replaceChildren(...endpoints.map((e) => h("tr", { "data-id": e.id },
      h("td", { class: "webhook-url" }, e.url, e.description ? h("span", { class: "muted" }, ` · ${e.description}`) : null),
      h("td", {}, e.events.join(", ")),
      h("td", {}, t(e.is_active ? "wh.active" : "wh.inactive")),
      h("td", { class: "actions" },
        h("button", { type: "button", class: "btn btn-small", "data-testid": "webhook-show", onclick: () => choose(e) }, t("wh.show")),
        h("button", { type: "button", class: "btn btn-small btn-danger", "data-testid": "webhook-delete", onclick: () => remove(e) }, t("wh.delete"))),
    )));
    show(empty, endpoints.length === 0);
  }

  async function choose(endpoint) {
    chosen = endpoint;
    await loadDeliveries(generation);
  }

  async function loadDeliveries(gen) {
    if (!chosen) return;
    try {
      const { items } = await apiList(`/webhooks/${chosen.id}/deliveries`, { limit: LAST_DELIVERIES });
      if (gen !== generation) return;
      deliveries = items;
      renderDeliveries();
    } catch (err) {
      if (gen === generation) fail(err);
    }
  }

  function renderDeliveries() {
    show(deliveriesBox, Boolean(chosen));
    if (!chosen) return;
    deliveriesTitle.textContent = t("wh.deliveries", { url: chosen.url });
    deliveryRows.replaceChildren(...deliveries.map((d) => h("tr", { "data-id": d.id },
      h("td", {}, dateTime(d.created_at)),
      h("td", {}, d.event),
      h("td", {}, shortId(d.order_id)),
      h("td", {}, h("span", { class: `badge webhook-${d.status}`, "data-testid": "delivery-status" }, t(`wh.status.${d.status}`))),
      h("td", {}, String(d.attempts)),
      h("td", {}, d.last_error || (d.last_status_code ? String(d.last_status_code) : "")),
      h("td", {}, h("button", { type: "button", class: "btn btn-small", "data-testid": "delivery-retry", onclick: () => retry(d) }, t("wh.retry"))),
    )));
    show(deliveriesEmpty, deliveries.length === 0);
  }

  async function retry(delivery) {
    try {
      await api(`/webhooks/${chosen.id}/deliveries/${delivery.id}/retry`, { method: "POST" });
      announce(t("wh.retried"));
      await loadDeliveries(generation);
    } catch (err) {
      fail(err);
    }
  }

  async function remove(endpoint) {
    if (!window.confirm(t("wh.delete.confirm"))) return;
    try {
      await api(`/webhooks/${endpoint.id}`, { method: "DELETE" });
      if (chosen && chosen.id === endpoint.id) { chosen = null; show(deliveriesBox, false); }
      await load(generation);
    } catch (err) {
      fail(err);
    }
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!url.reportValidity()) return;
    const events = boxes.filter((box) => box.checked).map((box) => box.value);
    const body = { url: url.value.trim(), events };
    if (description.value.trim()) body.description = description.value.trim();
    try {
      const created = await api(`/markets/${market.id}/webhooks`, { method: "POST", body });
      // The secret exists in this reply only: show it once, never store it.
      secretBox.replaceChildren(h("p", {}, t("wh.secret")), h("code", { "data-testid": "webhook-secret-value" }, created.secret));
      show(secretBox, true);
      form.reset();
      for (const box of boxes) box.checked = true;
      await load(generation);
    } catch (err) {
      fail(err);
    }
  });

  onLocaleChange(() => {
    translate(section);
    renderEndpoints();
    renderDeliveries();
  });

  return {
    open(m) {
      generation++;
      market = m;
      chosen = null;
      deliveries = [];
      show(secretBox, false);
      show(deliveriesBox, false);
      show(section, true);
      load(generation);
    },
    close() {
      generation++;
      market = null;
      endpoints = [];
      chosen = null;
      secretBox.replaceChildren();
      show(secretBox, false);
      show(section, false);
    },
  };
}
