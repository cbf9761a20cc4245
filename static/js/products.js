// The dashboard's Products tab: the market's products (stock live from `/catalog`), a form to add
// one, and per row: edit price, stock and availability, or remove (a second press confirms).

import { api, apiList } from "./api.js";
import { t } from "./i18n.js";
import { money, count } from "./format.js";
import { h, show, announce, errorText } from "./ui.js";
import { connectCatalog } from "./catalog-live.js";

const $ = (id) => document.getElementById(id);
const MAX_PRODUCTS = 500;

/** "12.50" / "12,50" / "12" in the currency's main unit -> integer minor units, or null. */
export function toCents(text) {
  const m = /^\s*(\d{1,9})(?:[.,](\d{1,2}))?\s*$/.exec(String(text));
  if (!m) return null;
  return Number(m[1]) * 100 + Number((m[2] || "0").padEnd(2, "0"));
}

function fromCents(cents) {
  return (cents / 100).toFixed(2);
}

export class ProductsPanel {
  constructor({ market }) {
    this.market = market;
    this.products = new Map(); // id -> product
    this.rows = new Map(); // id -> <tr>
    this.editing = new Set();
    this.ac = new AbortController();
    const signal = this.ac.signal;
    $("product-form").addEventListener("submit", (ev) => { ev.preventDefault(); this.create(); }, { signal });
    this.renderFormLabels();
    this.live = connectCatalog({
      marketId: market.id, // public: no token needed
      onLevels: (levels) => this.applyLevels(levels),
    });
    this.load();
  }

  renderFormLabels() {
    $("pf-price-label").textContent = t("products.price", { currency: this.market.currency || "UAH" });
  }

  async load() {
    const all = [];
    try {
      for (let skip = 0; skip < MAX_PRODUCTS; skip += 100) {
        const { items, total } = await apiList("/products", { market_id: this.market.id, limit: 100, skip });
        all.push(...items);
        if (items.length < 100 || all.length >= total) break;
      }
    } catch (err) {
      this.error(errorText(err));
      return;
    }
    for (const p of all) this.products.set(p.id, p);
    this.renderAll();
  }

  error(text) {
    $("products-error").textContent = text;
    show($("products-error"), Boolean(text));
  }

  applyLevels(levels) {
    for (const level of levels) {
      const p = this.products.get(level.product_id);
      if (!p) continue;
      const removed = !level.is_available && level.stock === 0 && level.price_cents === 0;
      if (removed) { this.forget(p.id); continue; }
      Object.assign(p, { stock: level.stock, is_available: level.is_available, price_cents: level.price_cents });
      if (!this.editing.has(p.id)) this.renderRow(p);
      else this.rows.get(p.id)?.querySelector('[data-testid="product-stock-now"]')?.replaceChildren(count(p.stock));
    }
  }

  renderAll() {
    const sorted = [...this.products.values()].sort((a, b) => a.name.localeCompare(b.name));
    for (const p of sorted) if (!this.rows.has(p.id)) this.rows.set(p.id, h("tr", { dataset: { testid: "product-row", productId: p.id } }));
    $("product-rows").replaceChildren(...sorted.map((p) => this.rows.get(p.id)));
    for (const p of sorted) if (!this.editing.has(p.id)) this.renderRow(p);
    show($("products-empty"), sorted.length === 0);
  }

  cell(cls, label, ...content) {
    return h("td", { class: cls, "data-label": label }, h("div", { class: "cell" }, ...content));
  }

  renderRow(p) {
    const row = this.rows.get(p.id);
    if (!row) return;
    row.dataset.available = String(p.is_available);
    const cur = p.currency || this.market.currency;
    row.replaceChildren(
      this.cell("p-name", t("products.name"), h("span", { class: "product-name" }, p.name),
        p.category ? h("span", { class: "muted" }, p.category) : null),
      this.cell("p-price", t("products.price", { currency: cur }), h("span", { dataset: { testid: "product-price" } }, money(p.price_cents, cur)),
        h("span", { class: "muted" }, ` / ${p.unit || "piece"}`)),
      this.cell("p-stock", t("products.stock"), h("span", { dataset: { testid: "product-stock" } }, count(p.stock))),
      this.cell("p-available", t("products.available"), p.is_available ? t("products.yes") : t("products.no")),
      this.cell("p-actions", t("products.col.actions"), h("div", { class: "actions" },
        h("button", { type: "button", class: "btn btn-small", dataset: { testid: "product-edit" },
          "aria-label": t("products.edit.label", { name: p.name }), onclick: () => this.edit(p.id) }, t("products.edit")),
        h("button", { type: "button", class: "btn btn-small btn-danger", dataset: { testid: "product-remove" },
          "aria-label": t("products.remove.label", { name: p.name }), onclick: (ev) => this.remove(p.id, ev.currentTarget) }, t("products.remove"))),
        h("p", { class: "row-error", role: "alert", dataset: { testid: "product-error" }, hidden: true })),
    );
  }

  edit(id) {
    const p = this.products.get(id);
    const row = this.rows.get(id);
    if (!p || !row) return;
    this.editing.add(id);
    const ids = { price: `pe-price-${id}`, stock: `pe-stock-${id}`, avail: `pe-avail-${id}` };
    const cur = p.currency || this.market.currency;
    const form = h("form", { class: "product-edit", novalidate: true, dataset: { testid: "product-edit-form" } },
      h("div", { class: "field" }, h("label", { for: ids.price }, t("products.price", { currency: cur })),
        h("input", { id: ids.price, name: "price", type: "text", inputmode: "decimal", required: true, maxlength: "12",
          value: fromCents(p.price_cents), dataset: { testid: "edit-price" } })),
      h("div", { class: "field" }, h("label", { for: ids.stock }, t("products.stock"),
        h("span", { class: "muted" }, " (", h("span", { dataset: { testid: "product-stock-now" } }, count(p.stock)), ")")),
        h("input", { id: ids.stock, name: "stock", type: "number", min: "0", max: "1000000000", step: "1", required: true,
          value: String(p.stock), dataset: { testid: "edit-stock" } })),
      h("label", { class: "check", for: ids.avail },
        h("input", { id: ids.avail, name: "available", type: "checkbox", checked: p.is_available, dataset: { testid: "edit-available" } }),
        t("products.available")),
      h("div", { class: "actions" },
        h("button", { type: "submit", class: "btn btn-small btn-primary", dataset: { testid: "product-save" } }, t("products.save")),
        h("button", { type: "button", class: "btn btn-small", dataset: { testid: "product-cancel" },
          onclick: () => { this.editing.delete(id); this.renderRow(p); row.querySelector('[data-testid="product-edit"]')?.focus(); } },
          t("products.cancel"))),
      h("p", { class: "row-error", role: "alert", dataset: { testid: "product-error" }, hidden: true }));
    form.addEventListener("submit", (ev) => { ev.preventDefault(); this.save(id, form); });
    row.replaceChildren(h("td", { colspan: "5" }, h("p", { class: "product-name" }, p.name), form));
    form.querySelector("input").focus();
  }

  rowError(id, text) {
    const el = this.rows.get(id)?.querySelector('[data-testid="product-error"]');
    if (!el) return;
    el.textContent = text;
    el.hidden = !text;
  }

  async save(id, form) {
    const price = toCents(form.elements.price.value);
    if (price === null || price <= 0) { this.rowError(id, t("products.price.invalid")); form.elements.price.focus(); return; }
    if (!form.reportValidity()) return;
    const body = { price_cents: price, stock: Number(form.elements.stock.value), is_available: form.elements.available.checked };
    const button = form.querySelector('[type="submit"]');
    button.disabled = true;
    try {
      const updated = await api(`/products/${id}`, { method: "PATCH", body });
      this.products.set(id, updated);
      this.editing.delete(id);
      this.renderRow(updated);
      announce(t("products.saved", { name: updated.name }));
      this.rows.get(id)?.querySelector('[data-testid="product-edit"]')?.focus();
    } catch (err) {
      this.rowError(id, errorText(err));
      button.disabled = false;
    }
  }

  async remove(id, button) {
    const p = this.products.get(id);
    if (!p) return;
    if (button.dataset.confirming !== "true") {
      button.dataset.confirming = "true";
      button.textContent = t("products.remove.confirm");
      return;
    }
    button.disabled = true;
    try {
      await api(`/products/${id}`, { method: "DELETE" });
      this.forget(id);
      announce(t("products.removed", { name: p.name }));
      $("products-title").focus();
    } catch (err) {
      this.rowError(id, errorText(err));
      button.disabled = false;
    }
  }

  forget(id) {
    this.products.delete(id);
    this.editing.delete(id);
    this.rows.get(id)?.remove();
    this.rows.delete(id);
    show($("products-empty"), this.products.size === 0);
  }

  async create() {
    const form = $("product-form");
    const price = toCents($("pf-price").value);
    $("pf-price").setCustomValidity(price === null || price <= 0 ? t("products.price.invalid") : "");
    if (!form.reportValidity()) return;
    const body = { market_id: this.market.id, name: $("pf-name").value.trim(), price_cents: price,
      stock: Number($("pf-stock").value), is_available: $("pf-available").checked };
    const category = $("pf-category").value.trim();
    if (category) body.category = category;
    const unit = $("pf-unit").value.trim();
    if (unit) body.unit = unit;
    const button = form.querySelector('[type="submit"]');
    button.disabled = true;
    this.error("");
    try {
      const p = await api("/products", { method: "POST", body });
      this.products.set(p.id, p);
      this.renderAll();
      form.reset();
      announce(t("products.added", { name: p.name }));
      $("pf-name").focus();
    } catch (err) {
      this.error(errorText(err));
    } finally {
      button.disabled = false;
    }
  }

  rerender() {
    this.renderFormLabels();
    for (const p of this.products.values()) if (!this.editing.has(p.id)) this.renderRow(p);
  }

  close() {
    this.ac.abort();
    this.live.close();
    $("product-rows").replaceChildren();
  }
}
