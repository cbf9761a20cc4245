// Landing page: only the language. A signed-in tab follows the user's
// locale (GET /api/v1/users/me); otherwise the browser language decides.

import { setLocale, getLocale } from "./i18n.js";
import { api } from "./api.js";
import { getToken } from "./session.js";

setLocale(getLocale());

if (getToken()) {
  api("/users/me").then((me) => setLocale(me.locale), () => { /* signed out or offline: keep the guess */ });
}
