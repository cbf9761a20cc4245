// Checkout: the delivery option and payment method the market offers, the address (required for
// delivery), a phone for the market, notes; then POST /orders with ONE Idempotency-Key per
// checkout. The key belongs to the body it was made for: a double click, or pressing "Place order"
// again after a network error or a timeout, sends the same body with the same key, and the hub
// answers with the order it already placed (never a second one). A changed cart gets a new key.
// Errors are shown where they belong: 409 INSUFFICIENT_STOCK on each short line, 422 on its field.

import { request, api, ApiError } from "./api.js";
import { t } from "./i18n.js";
import { h, show, errorText, announce } from "./ui.js";

const $ = (id) => document.getElementById(id);
const FIELDS = ["delivery_option", "delivery_address", "payment_method", "phone", "notes"];

function newKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes); // also outside secure contexts, unlike randomUUID
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class Checkout {
  constructor({ account, onPlaced, onShort }) {
    this.account = account;
    this.onPlaced = onPlaced;
    this.onShort = onShort;
    this.form = $("checkout");
    this.market = null;
    this.cart = null;
    this.pending = null; // {key, body}: the attempt a retry repeats
    this.inFlight = false;
    this.form.addEventListener("submit", (ev) => { ev.preventDefault(); this.submit(); });
    this.form.addEventListener("change", (ev) => { if (ev.target.name === "delivery_option") this.syncAddress(); });
  }

  open(market, cart) {
    this.market = market;
    this.cart = cart;
    this.pending = null;
    this.renderChoices();
    this.clearErrors();
    this.prefill(this.account.user);
  }

  prefill(user) {
    if (!user) return;
    if (!$("phone").value && user.phone) $("phone").value = user.phone;
    if (!$("delivery_address").value && user.address) $("delivery_address").value = user.address;
  }

  renderChoices() {
    const m = this.market;
    const radio = (name, value, label, checked) => h("label", { class: "choice" },
      h("input", { type: "radio", name, value, checked, required: true, dataset: { testid: `${name}-${value}` } }),
      h("span", {}, label));
    const keepDelivery = this.form.elements.delivery_option?.value;
    const keepPayment = this.form.elements.payment_method?.value;
    const options = m.delivery_options || ["pickup"];
    const methods = m.payment_methods || ["cash"];
    $("delivery-options").replaceChildren(...options.map((o, i) =>
      radio("delivery_option", o, t(`delivery.${o}`), keepDelivery ? o === keepDelivery : i === 0)));
    $("payment-methods").replaceChildren(...methods.map((p, i) =>
      radio("payment_method", p, t(`payment.${p}`), keepPayment ? p === keepPayment : i === 0)));
    this.syncAddress();
  }

  syncAddress() {
    const delivery = this.form.elements.delivery_option?.value === "delivery";
    show($("address-field"), delivery);
    $("delivery_address").required = delivery;
  }

  clearErrors() {
    for (const f of FIELDS) this.fieldError(f, "");
    this.formError("");
    $("checkout-status").textContent = "";
  }

  fieldError(field, text) {
    const el = $(`${field}-error`);
    if (!el) return;
    el.textContent = text;
    show(el, Boolean(text));
    const input = this.form.elements[field];
    if (input && input.setAttribute) input.setAttribute("aria-invalid", text ? "true" : "false");
  }

  formError(text) {
    const el = $("checkout-error");
    el.textContent = text;
    show(el, Boolean(text));
  }

  body() {
    const f = this.form.elements;
    const body = {
      market_id: this.market.id,
      items: this.cart.items(),
      delivery_option: f.delivery_option.value,
      payment_method: f.payment_method.value,
    };
    if (body.delivery_option === "delivery") body.delivery_address = $("delivery_address").value.trim();
    const notes = $("notes").value.trim();
    if (notes) body.notes = notes;
    return body;
  }

  async submit() {
    if (this.inFlight || !this.market || !this.cart || this.cart.size === 0) return;
    this.clearErrors();
    if (!this.form.reportValidity()) return;
    this.inFlight = true;
    const button = $("place");
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      const user = await this.account.require(t("checkout.signin_first"));
      if (!user) return;
      this.prefill(user);
      if (await this.savePhone(user)) await this.place();
    } finally {
      this.inFlight = false;
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }

  /** The phone goes on the customer's profile: the order keeps a copy for the market. */
  async savePhone(user) {
    const phone = $("phone").value.trim();
    if (!phone || phone === user.phone) return true;
    try {
      await api("/users/me", { method: "PATCH", body: { phone } });
      return true;
    } catch (err) {
      this.fieldError("phone", errorText(err));
      return false;
    }
  }

  async place() {
    const body = this.body();
    const text = JSON.stringify(body);
    if (!this.pending || this.pending.body !== text) this.pending = { key: newKey(), body: text };
    const { key } = this.pending;
    $("checkout-status").textContent = t("checkout.placing");
    try {
      const { data } = await request("/orders", { method: "POST", body, headers: { "Idempotency-Key": key } });
      this.pending = null;
      $("checkout-status").textContent = t("checkout.placed");
      announce(t("checkout.placed"));
      this.onPlaced(data);
    } catch (err) {
      $("checkout-status").textContent = "";
      this.showError(err);
    }
  }

  showError(err) {
    const known = err instanceof ApiError && err.status >= 400 && err.status < 500 && err.code !== "IDEMPOTENCY_IN_PROGRESS";
    if (known) this.pending = null; // nothing was placed: a changed cart gets a new key anyway
    if (err.code === "INSUFFICIENT_STOCK" && Array.isArray(err.details)) {
      for (const d of err.details) {
        this.cart.mark(d.product_id, { kind: "short", n: d.available, requested: d.requested });
      }
      this.onShort(err.details);
      this.formError(t("checkout.short"));
      return;
    }
    if (err.code === "VALIDATION_ERROR" && Array.isArray(err.details)) {
      const rest = [];
      for (const d of err.details) {
        const loc = Array.isArray(d.loc) ? d.loc : [];
        const field = FIELDS.find((f) => loc.includes(f)) || (/delivery_address/.test(d.msg || "") ? "delivery_address" : null);
        if (field) this.fieldError(field, d.msg);
        else if (loc.includes("items") && Number.isInteger(loc[2])) {
          const line = this.cart.items()[loc[2]];
          if (line) this.cart.mark(line.product_id, { kind: "invalid", msg: d.msg });
        } else rest.push(d.msg);
      }
      this.formError(rest.length ? `${t("error.VALIDATION_ERROR")} ${rest.join("; ")}` : "");
      return;
    }
    const retry = !known && err.code !== "UNAUTHORIZED";
    this.formError(retry ? `${errorText(err)} ${t("checkout.retry")}` : errorText(err));
  }
}
