// Sign-in / sign-out flow shared by the dashboard and the tracking page.
// Expects in the page: #login-section (with form#login-form, #login-email,
// #login-password, #login-error), #app-section, #loading, #session-box,
// #user-name, #signout.
//
// POST /api/v1/users/login {email, password} -> {access_token, user};
// the token goes to sessionStorage; the UI language follows user.locale
// (re-read from GET /api/v1/users/me).

import { api, onUnauthorized } from "./api.js";
import { getToken, setToken, clearToken } from "./session.js";
import { setLocale, getLocale, t } from "./i18n.js";
import { show, errorText } from "./ui.js";

export function initAuth({ onSignedIn, onSignedOut }) {
  const loginSection = document.getElementById("login-section");
  const appSection = document.getElementById("app-section");
  const loading = document.getElementById("loading");
  const form = document.getElementById("login-form");
  const email = document.getElementById("login-email");
  const password = document.getElementById("login-password");
  const submit = form.querySelector('[type="submit"]');
  const loginError = document.getElementById("login-error");
  const sessionBox = document.getElementById("session-box");
  const userName = document.getElementById("user-name");
  const signoutBtn = document.getElementById("signout");

  let user = null;
  setLocale(getLocale()); // browser language until a user is known

  function showLogin(message) {
    user = null;
    show(loading, false);
    show(appSection, false);
    show(sessionBox, false);
    show(loginSection, true);
    loginError.textContent = message || "";
    show(loginError, Boolean(message));
    password.value = "";
    email.focus();
  }

  function signedIn(u) {
    user = u;
    setLocale(u.locale);
    userName.textContent = t("signed_in_as", { name: u.name || u.email });
    show(loading, false);
    show(loginSection, false);
    show(sessionBox, true);
    show(appSection, true);
    onSignedIn(u);
  }

  function signOut(message) {
    const wasIn = user !== null;
    clearToken();
    if (wasIn) onSignedOut();
    showLogin(message);
  }

  onUnauthorized(() => { if (user) signOut(t("error.UNAUTHORIZED")); });

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!form.reportValidity()) return;
    submit.disabled = true;
    submit.textContent = t("login.busy");
    show(loginError, false);
    try {
      const res = await api("/users/login", {
        method: "POST",
        body: { email: email.value.trim(), password: password.value },
        auth: false,
      });
      setToken(res.access_token);
      let me = res.user;
      try { me = await api("/users/me"); } catch { /* keep the login's user */ }
      password.value = "";
      signedIn(me);
    } catch (err) {
      loginError.textContent = err.status === 401 ? t("login.failed") : errorText(err);
      show(loginError, true);
      password.select();
    } finally {
      submit.disabled = false;
      submit.textContent = t("login.submit");
    }
  });

  signoutBtn.addEventListener("click", () => signOut());

  // Restore a session of this tab.
  (async () => {
    if (!getToken()) { showLogin(); return; }
    try {
      signedIn(await api("/users/me"));
    } catch (err) {
      if (err.status === 401) { clearToken(); showLogin(); }
      else showLogin(errorText(err));
    }
  })();

  return { signOut, get user() { return user; } };
}
