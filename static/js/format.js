// Formatting that follows the active locale: money from integer minor units,
// dates and times in the viewer's time zone, short order ids.

import { intlLocale } from "./i18n.js";

const moneyCache = new Map();

/** Integer minor units (cents) -> localized currency string, e.g. 12345,"UAH" -> "123,45 ₴". */
export function money(cents, currency = "UAH") {
  if (cents === null || cents === undefined || Number.isNaN(Number(cents))) return "—";
  const loc = intlLocale();
  const key = `${loc}|${currency}`;
  let fmt = moneyCache.get(key);
  if (!fmt) {
    try {
      fmt = new Intl.NumberFormat(loc, { style: "currency", currency });
    } catch {
      fmt = new Intl.NumberFormat(loc, { style: "currency", currency: "UAH" });
    }
    moneyCache.set(key, fmt);
  }
  return fmt.format(Number(cents) / 100);
}

/** Plain integer with grouping. */
export function count(n) {
  if (n === null || n === undefined) return "—";
  return new Intl.NumberFormat(intlLocale()).format(n);
}

function toDate(iso) {
  const d = iso instanceof Date ? iso : new Date(iso);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** "26 Nov, 14:05" style date + time. */
export function dateTime(iso) {
  const d = toDate(iso);
  if (!d) return "—";
  return new Intl.DateTimeFormat(intlLocale(), {
    day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
  }).format(d);
}

/** "14:05:09" */
export function time(iso, seconds = false) {
  const d = toDate(iso);
  if (!d) return "—";
  const opts = { hour: "2-digit", minute: "2-digit" };
  if (seconds) opts.second = "2-digit";
  return new Intl.DateTimeFormat(intlLocale(), opts).format(d);
}

/** "14:00" label for an hour bucket. */
export function hour(iso) {
  return time(iso);
}

/** Short human id: last 6 hex chars of the ObjectId, prefixed with #. */
export function shortId(id) {
  return `#${String(id || "").slice(-6)}`;
}
