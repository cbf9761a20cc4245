// The storefront's sign-in and registration, in a dialog over the page: a customer signs in or
// creates an account without leaving the shop (and the cart). The token goes to sessionStorage
// (session.js), as on the other pages; the language follows the user's `locale`.

import { api, onUnauthorized } from "./api.js";
import { getToken, setToken, clearToken } from "./session.js";
import { setLocale, getLocale, t } from "./i18n.js";
import { show, errorText } from "./ui.js";

const $ = (id) => document.getElementById(id);

export function initAccount({ onUser }) {
  const dialog = $("account");
  const signinForm = $("signin-form");
  const registerForm = $("register-form");
  const tabs = [$("tab-signin"), $("tab-register")];
  let user = null;
  let waiting = null; // resolves with the user when the dialog was opened to sign in first

  function setUser(u) {
    user = u;
    if (u) setLocale(u.locale);
    $("user-name").textContent = u ? t("signed_in_as", { name: u.name || u.email }) : "";
    show($("signin"), !u);
    show($("signout"), Boolean(u));
    onUser(u);
  }

  function selectTab(which) {
    for (const tab of tabs) {
      const on = tab.id === `tab-${which}`;
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
    }
    show(signinForm, which === "signin");
    show(registerForm, which === "register");
  }

  function open(reason = "") {
    $("account-reason").textContent = reason;
    show($("account-reason"), Boolean(reason));
    if (!dialog.open) dialog.showModal();
    const form = signinForm.hidden ? registerForm : signinForm;
    form.querySelector("input").focus();
    return new Promise((resolve) => { waiting = resolve; });
  }

  function close(result = null) {
    if (dialog.open) dialog.close();
    if (waiting) { const done = waiting; waiting = null; done(result); }
  }

  async function finish(token) {
    setToken(token);
    const me = await api("/users/me");
    setUser(me);
    close(me);
  }

  function formError(form, text) {
    const el = form.querySelector(".form-error");
    el.textContent = text;
    show(el, Boolean(text));
  }

  async function busy(form, fn) {
    const submit = form.querySelector('[type="submit"]');
    submit.disabled = true;
    formError(form, "");
    try { await fn(); } finally { submit.disabled = false; }
  }

  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => selectTab(i === 0 ? "signin" : "register"));
    tab.addEventListener("keydown", (ev) => {
      if (ev.key !== "ArrowLeft" && ev.key !== "ArrowRight") return;
      const next = tabs[(i + 1) % 2];
      next.click();
      next.focus();
    });
  });

  signinForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!signinForm.reportValidity()) return;
    busy(signinForm, async () => {
      try {
        const res = await api("/users/login", {
          method: "POST", auth: false,
          body: { email: $("si-email").value.trim(), password: $("si-password").value },
        });
        $("si-password").value = "";
        await finish(res.access_token);
      } catch (err) {
        formError(signinForm, err.status === 401 ? t("login.failed") : errorText(err));
      }
    });
  });

  registerForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const confirm = $("rg-confirm");
    confirm.setCustomValidity(confirm.value === $("rg-password").value ? "" : t("account.mismatch"));
    if (!registerForm.reportValidity()) return;
    busy(registerForm, async () => {
      const email = $("rg-email").value.trim();
      const password = $("rg-password").value;
      const body = { email, name: $("rg-name").value.trim(), password, confirm_password: confirm.value, locale: getLocale() };
      const phone = $("rg-phone").value.trim();
      if (phone) body.phone = phone;
      try {
        await api("/users/register", { method: "POST", auth: false, body });
        const res = await api("/users/login", { method: "POST", auth: false, body: { email, password } });
        $("rg-password").value = "";
        confirm.value = "";
        await finish(res.access_token);
      } catch (err) {
        formError(registerForm, err.code === "EMAIL_TAKEN" ? t("account.taken") : errorText(err));
      }
    });
  });

  $("account-close").addEventListener("click", () => close(null));
  dialog.addEventListener("cancel", () => { if (waiting) { const done = waiting; waiting = null; done(null); } });
  $("signin").addEventListener("click", () => { selectTab("signin"); open(); });
  $("signout").addEventListener("click", () => { clearToken(); setUser(null); $("signin").focus(); });
  onUnauthorized(() => { clearToken(); setUser(null); });

  setLocale(getLocale());
  (async () => {
    if (!getToken()) { setUser(null); return; }
    try { setUser(await api("/users/me")); } catch { clearToken(); setUser(null); }
  })();

  return {
    get user() { return user; },
    /** The signed-in user, asking the customer to sign in or register first if needed (null: they closed it). */
    async require(reason) {
      if (user) return user;
      selectTab("signin");
      return open(reason);
    },
  };
}
