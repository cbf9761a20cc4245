// The storefront: active markets (search, verified badge) → a market's products (category filter,
// search, prices in the market's currency) with live stock from `/catalog` → a cart bounded by that
// stock → checkout (checkout.js) → /track for the new order. Signing in or registering happens in
// a dialog on this page (shop-account.js), so the cart is never lost.

import "./i18n-shop.js";
import { api, apiList } from "./api.js";
import { t, has, onLocaleChange } from "./i18n.js";
import { money, count } from "./format.js";
import { h, show, announce, setConnState, errorText } from "./ui.js";
import { Cart, available } from "./cart.js";
import { Checkout } from "./checkout.js";
import { connectCatalog } from "./catalog-live.js";
import { initAccount } from "./shop-account.js";

const $ = (id) => document.getElementById(id);
const FEW_LEFT = 5; // at or below this, the card says how many are left
const MAX_PRODUCTS = 500;

let markets = [];
let current = null; // {market, products: Map(id -> product), cart, live}
let generation = 0; // bumps on every market opened or closed: late answers are ignored
let listGeneration = 0; // the same for the market list (search as you type)

const account = initAccount({ onUser: (u) => { if (current) checkout.prefill(u); } });
const checkout = new Checkout({
  account,
  onPlaced: (order) => {
    current?.cart.clear();
    window.location.assign(`/track?order=${encodeURIComponent(order.id)}`);
  },
  onShort: (details) => {
    // The hub knows better than our last push: take its figures until the next push.
    for (const d of details) {
      const p = current?.products.get(d.product_id);
      if (p) { p.stock = d.available; renderStock(p); }
    }
    renderCart();
  },
});

function message(text) {
  $("shop-message").textContent = text;
  show($("shop-message"), Boolean(text));
}

// ---------------------------------------------------------------- markets

let searchTimer = null;
$("market-search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(loadMarkets, 250);
});

async function loadMarkets() {
  const gen = ++listGeneration;
  try {
    const { items } = await apiList("/markets", { limit: 100, search: $("market-search").value.trim() || undefined });
    if (gen !== listGeneration) return;
    markets = items;
    renderMarkets();
  } catch (err) {
    if (gen === listGeneration) message(errorText(err));
  }
}

function renderMarkets() {
  $("market-list").replaceChildren(...markets.map((m) => h("li", { class: "card market-card", dataset: { testid: "market-card", marketId: m.id } },
    h("h3", {}, m.name, " ", m.verified ? h("span", { class: "badge verified", dataset: { testid: "verified" } }, t("shop.verified")) : null),
    m.description ? h("p", { class: "muted" }, m.description) : null,
    h("p", { class: "market-meta" }, [...(m.delivery_options || [])].map((o) => t(`delivery.${o}`)).join(" · ")),
    h("a", { class: "btn btn-primary", href: `/shop?market=${m.id}`, "aria-label": t("shop.open", { name: m.name }),
      dataset: { testid: "open-market" }, onclick: (ev) => { ev.preventDefault(); go(m.id); } }, t("home.open")))));
  show($("markets-empty"), markets.length === 0);
}

// ---------------------------------------------------------------- navigation (?market=<id>)

function go(marketId) {
  history.pushState({}, "", marketId ? `/shop?market=${marketId}` : "/shop");
  route();
}

window.addEventListener("popstate", route);
$("back").addEventListener("click", () => go(null));

function route() {
  const id = new URLSearchParams(window.location.search).get("market");
  if (id && /^[0-9a-fA-F]{24}$/.test(id)) openMarket(id);
  else showMarkets();
}

function showMarkets() {
  closeMarket();
  show($("market-view"), false);
  show($("markets-view"), true);
  if (!markets.length) loadMarkets();
}

function closeMarket() {
  generation++;
  if (!current) return;
  current.live?.close();
  current = null;
  setConnState("offline");
  show($("conn-wrap"), false);
}

// ---------------------------------------------------------------- one market

async function openMarket(id) {
  closeMarket();
  const gen = ++generation;
  message("");
  let market;
  let products;
  try {
    market = await api(`/markets/${id}`, { auth: false });
    products = await loadProducts(id);
  } catch (err) {
    if (gen === generation) { message(errorText(err)); showMarketsOnly(); }
    return;
  }
  if (gen !== generation) return;
  const cart = new Cart(market.id);
  current = { market, products: new Map(products.map((p) => [p.id, p])), cart, cards: new Map(), live: null };
  show($("markets-view"), false);
  show($("market-view"), true);
  $("market-title-name").textContent = market.name;
  show($("market-verified"), Boolean(market.verified));
  $("market-desc").textContent = market.description || "";
  fillCategories();
  renderProducts();
  cart.onChange(renderCart);
  checkout.open(market, cart);
  renderCart();
  $("market-title").focus();

  show($("conn-wrap"), true);
  current.live = connectCatalog({
    marketId: market.id, // public: no token, so an expired sign-in never cuts the live stock
    onLevels: (levels, { full }) => applyLevels(levels, full),
    onState: (s) => setConnState(s),
    onRefused: (err) => { if (err && err.message === "forbidden") message(t("error.NOT_FOUND")); },
  });
}

function showMarketsOnly() {
  show($("market-view"), false);
  show($("markets-view"), true);
}

async function loadProducts(marketId) {
  const all = [];
  for (let skip = 0; skip < MAX_PRODUCTS; skip += 100) {
    const { items, total } = await apiList("/products", { market_id: marketId, limit: 100, skip });
    all.push(...items);
    if (items.length < 100 || all.length >= total) break;
  }
  return all.sort((a, b) => a.name.localeCompare(b.name));
}

function fillCategories() {
  const sel = $("category");
  const keep = sel.value;
  const cats = [...new Set([...current.products.values()].map((p) => p.category).filter(Boolean))].sort();
  sel.replaceChildren(h("option", { value: "" }, t("shop.products.all")), ...cats.map((c) => h("option", { value: c }, c)));
  sel.value = cats.includes(keep) ? keep : "";
}

$("category").addEventListener("change", applyFilter);
$("product-search").addEventListener("input", applyFilter);

function applyFilter() {
  if (!current) return;
  const text = $("product-search").value.trim().toLocaleLowerCase();
  const cat = $("category").value;
  let visible = 0;
  for (const [id, card] of current.cards) {
    const p = current.products.get(id);
    const match = (!cat || p.category === cat) &&
      (!text || `${p.name} ${p.description || ""}`.toLocaleLowerCase().includes(text));
    card.hidden = !match;
    if (match) visible++;
  }
  show($("products-empty"), visible === 0);
}

function renderProducts() {
  current.cards = new Map();
  const cards = [...current.products.values()].map((p) => {
    const card = h("li", { class: "card product", dataset: { testid: "product-card", productId: p.id } });
    current.cards.set(p.id, card);
    renderCard(p);
    return card;
  });
  $("product-list").replaceChildren(...cards);
  applyFilter();
}

function renderCard(p) {
  const card = current.cards.get(p.id);
  if (!card) return;
  const cur = current.market.currency;
  card.replaceChildren(...[ // (null children would become the text "null")
    h("h3", { class: "product-name" }, p.name),
    p.category ? h("p", { class: "product-cat muted" }, p.category) : null,
    p.description ? h("p", { class: "product-desc" }, p.description) : null,
    h("p", { class: "product-price" },
      h("strong", { dataset: { testid: "product-price" } }, money(p.price_cents, cur)), " ",
      h("span", { class: "muted" }, t("shop.per", { unit: unitName(p.unit) }))),
    h("p", { class: "stock", dataset: { testid: "product-stock" } }),
    h("button", { type: "button", class: "btn add", dataset: { testid: "add-to-cart" },
      "aria-label": t("shop.add.label", { name: p.name }), onclick: () => addToCart(p.id) }, t("shop.add")),
  ].filter(Boolean));
  renderStock(p);
}

function unitName(unit) {
  const key = `unit.${unit || "piece"}`;
  return has(key) ? t(key) : unit;
}

function stockText(p) {
  if (p.is_available === false) return t("shop.stock.unavailable");
  if (p.stock <= 0) return t("shop.stock.sold_out");
  if (p.stock <= FEW_LEFT) return t("shop.stock.left", { n: count(p.stock) });
  return t("shop.stock.in");
}

function renderStock(p) {
  const card = current?.cards.get(p.id);
  if (!card) return;
  const left = available(p);
  const el = card.querySelector('[data-testid="product-stock"]');
  el.textContent = stockText(p);
  el.dataset.stock = String(left);
  card.dataset.soldOut = String(left === 0);
  card.querySelector('[data-testid="product-price"]').textContent = money(p.price_cents, current.market.currency);
  // nothing more to add once the cart holds all that is left
  card.querySelector('[data-testid="add-to-cart"]').disabled = current.cart.quantity(p.id) >= left;
}

function addToCart(id) {
  const p = current?.products.get(id);
  if (!p) return;
  current.cart.add(p, 1);
  renderStock(p);
  announce(t("shop.added", { name: p.name }));
}

// ---------------------------------------------------------------- live stock

async function applyLevels(levels, full) {
  if (!current) return;
  const seen = new Set();
  for (const level of levels) {
    seen.add(level.product_id);
    const p = current.products.get(level.product_id);
    if (!p) {
      if (level.is_available) addProduct(level.product_id);
      continue;
    }
    const wasLeft = available(p);
    const priceBefore = p.price_cents;
    p.stock = level.stock;
    p.is_available = level.is_available;
    if (level.is_available) p.price_cents = level.price_cents;
    renderStock(p);
    current.cart.follow(p);
    if (wasLeft > 0 && available(p) === 0) announce(t("shop.sold_out_now", { name: p.name }));
    else if (priceBefore !== p.price_cents) announce(t("shop.price_changed", { name: p.name, price: money(p.price_cents, current.market.currency) }));
  }
  if (full) {
    // a full snapshot lists every product: those missing were removed meanwhile
    for (const p of current.products.values()) {
      if (!seen.has(p.id) && p.is_available !== false) { p.is_available = false; renderStock(p); current.cart.follow(p); }
    }
  }
}

async function addProduct(id) {
  const market = current?.market;
  try {
    const p = await api(`/products/${id}`, { auth: false });
    if (!current || current.market !== market || current.products.has(id)) return;
    current.products.set(id, p);
    fillCategories();
    renderProducts();
  } catch { /* gone again: nothing to show */ }
}

// ---------------------------------------------------------------- cart

function lineNote(line) {
  const n = line.note;
  if (!n) return null;
  let text = "";
  if (n.kind === "short") text = t("shop.line.short", { n: count(n.n), requested: count(n.requested) });
  else if (n.kind === "clamped") text = t("shop.cart.clamped", { n: count(n.n) });
  else if (n.kind === "gone") text = t("shop.cart.gone");
  else if (n.kind === "invalid") text = n.msg;
  return h("p", { class: "line-error", role: "alert", dataset: { testid: "line-error" } }, text);
}

function renderCart() {
  if (!current) return;
  const { cart, market } = current;
  const lines = [...cart.lines.values()];
  $("cart-lines").replaceChildren(...lines.map((line) => {
    const p = current.products.get(line.product_id);
    const max = p ? available(p) : line.quantity;
    const qtyId = `qty-${line.product_id}`;
    return h("li", { class: "cart-line", dataset: { testid: "cart-line", productId: line.product_id } },
      h("div", { class: "cart-line-main" },
        h("label", { for: qtyId, class: "cart-name" }, line.name,
          h("span", { class: "visually-hidden" }, ` — ${t("shop.cart.qty", { name: line.name })}`)),
        h("input", { id: qtyId, type: "number", min: "1", max: String(Math.max(1, max)), step: "1", inputmode: "numeric",
          value: String(line.quantity), class: "qty", dataset: { testid: "cart-qty" },
          onchange: (ev) => cart.set(line.product_id, ev.target.value, p) }),
        h("span", { class: "cart-sum" }, money(line.price_cents * line.quantity, market.currency)),
        h("button", { type: "button", class: "btn btn-quiet btn-small", dataset: { testid: "cart-remove" },
          "aria-label": t("shop.cart.remove", { name: line.name }), onclick: () => cart.remove(line.product_id) }, "×")),
      lineNote(line));
  }));
  show($("cart-empty"), lines.length === 0);
  show($("checkout"), lines.length > 0);
  $("cart-total").textContent = money(cart.total(), market.currency);
  // On a phone the cart is below the products: a button at the bottom of the screen leads to it.
  const pieces = lines.reduce((n, line) => n + line.quantity, 0);
  $("cart-jump").textContent = t("shop.cart.jump", { n: count(pieces), total: money(cart.total(), market.currency) });
  show($("cart-jump"), lines.length > 0);
  for (const p of current.products.values()) renderStock(p);
}

// ---------------------------------------------------------------- locale

onLocaleChange(() => {
  if (markets.length) renderMarkets();
  if (current) {
    fillCategories();
    for (const p of current.products.values()) renderCard(p);
    renderCart();
    checkout.renderChoices();
  }
});

route();
