// A cart per market, kept for the tab (sessionStorage), whose quantities never exceed the
// product's live stock: a quantity above what is left is lowered, and the line remembers why.

const PREFIX = "markethub.cart.";

export class Cart {
  constructor(marketId) {
    this.marketId = marketId;
    /** product id -> {product_id, name, unit, price_cents, quantity, note} */
    this.lines = new Map();
    this.listeners = new Set();
    this.load();
  }

  load() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(PREFIX + this.marketId) || "[]");
      for (const line of Array.isArray(saved) ? saved : []) {
        if (line && typeof line.product_id === "string" && Number.isInteger(line.quantity) && line.quantity > 0) {
          this.lines.set(line.product_id, { ...line, note: null });
        }
      }
    } catch { /* a broken or disabled storage: an empty cart */ }
  }

  save() {
    try {
      const lines = [...this.lines.values()].map(({ note, ...line }) => line);
      sessionStorage.setItem(PREFIX + this.marketId, JSON.stringify(lines));
    } catch { /* memory only */ }
    for (const fn of this.listeners) fn();
  }

  onChange(fn) { this.listeners.add(fn); }

  quantity(productId) { return this.lines.get(productId)?.quantity || 0; }

  get size() { return this.lines.size; }

  /** Add `n` of a product, up to its stock. Returns the quantity now in the cart. */
  add(product, n = 1) {
    const line = this.lines.get(product.id) || {
      product_id: product.id, name: product.name, unit: product.unit, price_cents: product.price_cents, quantity: 0, note: null,
    };
    line.quantity = Math.min(line.quantity + n, Math.max(0, available(product)));
    line.price_cents = product.price_cents;
    line.note = null;
    if (line.quantity > 0) this.lines.set(product.id, line);
    this.save();
    return line.quantity;
  }

  /** Set a line's quantity (0 removes it), bounded by the product's stock when known. */
  set(productId, quantity, product = null) {
    const line = this.lines.get(productId);
    if (!line) return;
    let q = Math.max(0, Math.floor(Number(quantity) || 0));
    if (product) q = Math.min(q, Math.max(0, available(product)));
    line.note = null;
    if (q === 0) this.lines.delete(productId);
    else line.quantity = q;
    this.save();
  }

  remove(productId) {
    this.lines.delete(productId);
    this.save();
  }

  clear() {
    this.lines.clear();
    this.save();
  }

  /**
   * A product's live level changed: follow its price, lower the quantity to what is left.
   * Returns true when a line changed.
   */
  follow(product) {
    const line = this.lines.get(product.id);
    if (!line) return false;
    let changed = false;
    if (line.price_cents !== product.price_cents) { line.price_cents = product.price_cents; changed = true; }
    const left = Math.max(0, available(product));
    if (line.quantity > left) {
      // the hub's own answer (409, "only n left") says it already, and says what was asked
      const told = line.note && line.note.kind === "short" && line.note.n === left;
      if (!told) line.note = left > 0 ? { kind: "clamped", n: left } : { kind: "gone" };
      if (left > 0) line.quantity = left;
      changed = true;
    }
    if (changed) this.save();
    return changed;
  }

  /** Mark a line with the server's answer (409 INSUFFICIENT_STOCK: {requested, available}). */
  mark(productId, note) {
    const line = this.lines.get(productId);
    if (!line) return;
    line.note = note;
    for (const fn of this.listeners) fn();
  }

  total() {
    let sum = 0;
    for (const line of this.lines.values()) sum += line.price_cents * line.quantity;
    return sum;
  }

  /** The order's lines, in a stable order (the idempotency key follows the body). */
  items() {
    return [...this.lines.values()]
      .filter((line) => line.quantity > 0)
      .map((line) => ({ product_id: line.product_id, quantity: line.quantity }))
      .sort((a, b) => (a.product_id < b.product_id ? -1 : 1));
  }
}

/** What can still be bought of a product (0 when it is not available). */
export function available(product) {
  if (!product || product.is_available === false) return 0;
  return Math.max(0, Number(product.stock) || 0);
}
