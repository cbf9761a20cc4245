// Session: the access token lives in sessionStorage only (never in the URL,
// never in localStorage), so it ends with the tab. If storage is disabled the
// token is kept in memory for the life of the page.

const KEY = "markethub.token";
let memoryToken = null;

export function getToken() {
  try { return sessionStorage.getItem(KEY) || memoryToken; } catch { return memoryToken; }
}

export function setToken(token) {
  memoryToken = token;
  try { sessionStorage.setItem(KEY, token); } catch { /* memory only */ }
}

export function clearToken() {
  memoryToken = null;
  try { sessionStorage.removeItem(KEY); } catch { /* ignore */ }
}
