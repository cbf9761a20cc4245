// REST client for /api/v1: JSON in and out, Bearer token from the session,
// and the hub's error envelope {"error": {"code", "message", "details"}}
// turned into an ApiError. Network failures and timeouts become ApiError too
// (codes NETWORK / TIMEOUT, status 0), so callers handle one error type.

import { getToken } from "./session.js";

const PREFIX = "/api/v1";
const TIMEOUT_MS = 15000;

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message || code);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details ?? null;
  }
}

let unauthorizedHandler = null;
/** Called once per 401 on an authenticated request (e.g. expired token). */
export function onUnauthorized(fn) { unauthorizedHandler = fn; }

function buildUrl(path, query) {
  const url = new URL(PREFIX + path, window.location.origin);
  if (query) {
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
    }
  }
  return url.pathname + url.search;
}

/**
 * Low-level request. Resolves to {data, status, headers}; rejects with ApiError.
 * options: method, body (JSON-serialised), query (object), headers, auth (default true).
 */
export async function request(path, { method = "GET", body, query, headers = {}, auth = true } = {}) {
  const h = { Accept: "application/json", ...headers };
  const token = auth ? getToken() : null;
  if (token) h.Authorization = `Bearer ${token}`;
  if (body !== undefined) h["Content-Type"] = "application/json";

  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), TIMEOUT_MS);
  let res;
  try {
    res = await fetch(buildUrl(path, query), {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: ctrl.signal,
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (err) {
    const code = err && err.name === "AbortError" ? "TIMEOUT" : "NETWORK";
    throw new ApiError(0, code, err && err.message ? err.message : code);
  } finally {
    clearTimeout(timer);
  }

  let data = null;
  const text = res.status === 204 ? "" : await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const e = data && typeof data === "object" && data.error ? data.error : {};
    const err = new ApiError(res.status, e.code || `HTTP_${res.status}`, e.message || res.statusText, e.details);
    if (res.status === 429) err.retryAfter = Number(res.headers.get("Retry-After")) || null;
    if (res.status === 401 && token && unauthorizedHandler) unauthorizedHandler(err);
    throw err;
  }
  return { data, status: res.status, headers: res.headers };
}

/** Request returning only the JSON body. */
export async function api(path, options) {
  return (await request(path, options)).data;
}

/** GET a list endpoint: {items, total} (total from X-Total-Count, or items.length). */
export async function apiList(path, query) {
  const { data, headers } = await request(path, { query });
  const items = Array.isArray(data) ? data : [];
  const total = Number(headers.get("X-Total-Count"));
  return { items, total: Number.isFinite(total) && headers.has("X-Total-Count") ? total : items.length };
}
