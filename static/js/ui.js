// Small DOM helpers shared by the pages: element builder, the aria-live
// announcer, the connection indicator and localized error text.

import { t, has } from "./i18n.js";

/**
 * h("button", {class: "x", dataset: {testid: "a"}, onclick: fn}, "text", child)
 * Attributes: class, dataset, on* (listeners), hidden/disabled (booleans), others via setAttribute.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Status badge: <span class="badge status-X">Localized</span> */
export function statusBadge(status, extra = {}) {
  return h("span", { class: `badge status-${status}`, ...extra }, t(`status.${status}`));
}

let announceTimer = null;
/** Say `msg` through the page's polite aria-live region (#announcer). */
export function announce(msg) {
  const region = document.getElementById("announcer");
  if (!region) return;
  // clear then set, so the same text twice is announced twice
  region.textContent = "";
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => { region.textContent = msg; }, 50);
}

/** Update the connection indicator (data-testid="conn-status"). */
export function setConnState(state) {
  const el = document.querySelector('[data-testid="conn-status"]');
  if (!el) return;
  el.dataset.state = state;
  el.textContent = t(`conn.${state}`);
}

/** Localized text for an ApiError (or any error), with the server's message when it adds something. */
export function errorText(err) {
  const code = err && err.code;
  if (code && has(`error.${code}`)) {
    const local = t(`error.${code}`);
    const server = err.message && err.message !== code ? err.message : "";
    if (code === "VALIDATION_ERROR" && Array.isArray(err.details) && err.details.length) {
      return `${local} ${err.details.map((d) => d.msg).filter(Boolean).join("; ")}`;
    }
    return server && code !== "UNAUTHORIZED" && code !== "NETWORK" && code !== "TIMEOUT" ? `${local} (${server})` : local;
  }
  return (err && err.message) || t("error.generic");
}

/** Show or hide an element with the `hidden` attribute. */
export function show(el, visible = true) {
  if (el) el.hidden = !visible;
}
