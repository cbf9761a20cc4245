// i18n: English and Ukrainian dictionaries; the active one follows the
// signed-in user's `locale` ("en" | "ua") from GET /api/v1/users/me.
// Before sign-in the browser language decides (uk* -> "ua", else "en").
//
// Static markup is translated through attributes:
//   data-i18n="key"                  -> textContent
//   data-i18n-attr="attr:key;attr2:key2" -> attributes (placeholder, aria-label, title)

const en = {
  "app.name": "Market Hub",
  "nav.home": "Home",
  "nav.shop": "Shop",
  "nav.dashboard": "Market dashboard",
  "nav.track": "Track my orders",
  "skip": "Skip to main content",

  "home.title": "Market Hub",
  "home.lead": "Local food markets, live.",
  "home.dashboard.title": "Market dashboard",
  "home.dashboard.text": "For market staff: a live order feed, today's figures and an hourly chart. Move orders from pending to delivered with one click.",
  "home.track.title": "Track my orders",
  "home.track.text": "For customers: see each of your orders move from pending to delivered as it happens, and cancel an order while it is still pending.",
  "home.note": "Both pages update live; they need you to sign in with your Market Hub account.",
  "home.open": "Open",

  "login.title": "Sign in",
  "login.email": "Email",
  "login.password": "Password",
  "login.submit": "Sign in",
  "login.busy": "Signing in…",
  "login.failed": "Email or password is wrong.",
  "signout": "Sign out",
  "signed_in_as": "Signed in as {name}",

  "conn.label": "Live updates",
  "conn.connected": "Connected",
  "conn.reconnecting": "Reconnecting…",
  "conn.offline": "Offline",

  "dash.title": "Market dashboard",
  "dash.market": "Market",
  "dash.market.choose": "Choose a market",
  "dash.market.id": "or market id",
  "dash.market.open": "Open",
  "dash.market.none": "No market is registered for this account yet.",
  "dash.forbidden": "This page is for market staff. Customers can follow their orders on the tracking page.",
  "dash.stats": "Statistics",
  "stat.orders_total": "Orders",
  "stat.revenue": "Revenue",
  "stat.aov": "Average order",
  "stat.by_status": "Orders by status",
  "stat.updated": "Updated {time}",
  "chart.title": "Last 24 hours",
  "chart.orders": "Orders",
  "chart.revenue": "Revenue",
  "chart.summary": "Last 24 hours by hour: {orders} orders, revenue {revenue}. Busiest hour {hour} with {max} orders.",
  "chart.empty": "No orders in the last 24 hours.",
  "feed.title": "Live orders",
  "feed.filter": "Status",
  "feed.filter.all": "All statuses",
  "feed.empty": "No orders yet.",
  "feed.col.order": "Order",
  "feed.col.time": "Time",
  "feed.col.items": "Items",
  "feed.col.total": "Total",
  "feed.col.status": "Status",
  "feed.col.actions": "Actions",
  "feed.more": "+{n} more",
  "announce.new_order": "New order {id}: {total}",
  "announce.updated": "Order {id} is now {status}",

  "track.title": "My orders",
  "track.list": "Orders",
  "track.empty": "You have no orders yet.",
  "track.pick": "Choose an order to see its progress.",
  "track.detail": "Order {id}",
  "track.current": "Current status",
  "track.timeline": "Progress",
  "track.cancel": "Cancel order",
  "track.cancel.confirm": "Cancel this order?",
  "track.by.system": "automatically",
  "track.reason": "Reason: {reason}",
  "track.placed": "Placed {time}",
  "track.items": "Items",
  "track.total": "Total",
  "track.delivery": "Handover",

  "delivery.pickup": "Pickup",
  "delivery.delivery": "Delivery",

  "status.pending": "Pending",
  "status.confirmed": "Confirmed",
  "status.preparing": "Preparing",
  "status.ready": "Ready",
  "status.picked_up": "Picked up",
  "status.out_for_delivery": "Out for delivery",
  "status.delivered": "Delivered",
  "status.cancelled": "Cancelled",

  "action.confirmed": "Confirm",
  "action.preparing": "Start preparing",
  "action.ready": "Mark ready",
  "action.picked_up": "Picked up",
  "action.out_for_delivery": "Send out",
  "action.delivered": "Delivered",
  "action.cancelled": "Cancel",

  "error.INVALID_TRANSITION": "This move is not allowed any more.",
  "error.VERSION_CONFLICT": "Someone changed this order meanwhile; it has been refreshed.",
  "error.UNAUTHORIZED": "Your session has ended. Please sign in again.",
  "error.FORBIDDEN": "You are not allowed to do this.",
  "error.NOT_FOUND": "Not found.",
  "error.RATE_LIMITED": "Too many requests. Please wait a moment.",
  "error.UNAVAILABLE": "The service is temporarily unavailable. Try again.",
  "error.VALIDATION_ERROR": "Some fields are not valid.",
  "error.NETWORK": "No connection to the server.",
  "error.TIMEOUT": "The server did not answer in time.",
  "error.generic": "Something went wrong.",
  "loading": "Loading…",
};

const ua = {
  "app.name": "Market Hub",
  "nav.home": "Головна",
  "nav.shop": "Крамниця",
  "nav.dashboard": "Панель ринку",
  "nav.track": "Мої замовлення",
  "skip": "Перейти до основного вмісту",

  "home.title": "Market Hub",
  "home.lead": "Місцеві продуктові ринки в реальному часі.",
  "home.dashboard.title": "Панель ринку",
  "home.dashboard.text": "Для працівників ринку: замовлення в реальному часі, показники дня та погодинний графік. Переводьте замовлення від «очікує» до «доставлено» одним натиском.",
  "home.track.title": "Мої замовлення",
  "home.track.text": "Для покупців: стежте, як кожне замовлення проходить шлях від «очікує» до «доставлено», і скасуйте його, поки воно ще очікує.",
  "home.note": "Обидві сторінки оновлюються наживо; потрібно увійти з обліковим записом Market Hub.",
  "home.open": "Відкрити",

  "login.title": "Вхід",
  "login.email": "Електронна пошта",
  "login.password": "Пароль",
  "login.submit": "Увійти",
  "login.busy": "Вхід…",
  "login.failed": "Неправильна пошта або пароль.",
  "signout": "Вийти",
  "signed_in_as": "Ви увійшли як {name}",

  "conn.label": "Оновлення наживо",
  "conn.connected": "Підключено",
  "conn.reconnecting": "Перепідключення…",
  "conn.offline": "Немає зв’язку",

  "dash.title": "Панель ринку",
  "dash.market": "Ринок",
  "dash.market.choose": "Оберіть ринок",
  "dash.market.id": "або id ринку",
  "dash.market.open": "Відкрити",
  "dash.market.none": "Для цього облікового запису ще не зареєстровано ринок.",
  "dash.forbidden": "Ця сторінка для працівників ринку. Покупці можуть стежити за замовленнями на сторінці відстеження.",
  "dash.stats": "Статистика",
  "stat.orders_total": "Замовлення",
  "stat.revenue": "Виручка",
  "stat.aov": "Середнє замовлення",
  "stat.by_status": "Замовлення за статусом",
  "stat.updated": "Оновлено {time}",
  "chart.title": "Останні 24 години",
  "chart.orders": "Замовлення",
  "chart.revenue": "Виручка",
  "chart.summary": "Останні 24 години погодинно: замовлень {orders}, виручка {revenue}. Найактивніша година {hour}: {max} замовл.",
  "chart.empty": "За останні 24 години замовлень немає.",
  "feed.title": "Замовлення наживо",
  "feed.filter": "Статус",
  "feed.filter.all": "Усі статуси",
  "feed.empty": "Замовлень ще немає.",
  "feed.col.order": "Замовлення",
  "feed.col.time": "Час",
  "feed.col.items": "Товари",
  "feed.col.total": "Сума",
  "feed.col.status": "Статус",
  "feed.col.actions": "Дії",
  "feed.more": "+ще {n}",
  "announce.new_order": "Нове замовлення {id}: {total}",
  "announce.updated": "Замовлення {id}: {status}",

  "track.title": "Мої замовлення",
  "track.list": "Замовлення",
  "track.empty": "У вас ще немає замовлень.",
  "track.pick": "Оберіть замовлення, щоб побачити його стан.",
  "track.detail": "Замовлення {id}",
  "track.current": "Поточний статус",
  "track.timeline": "Хід виконання",
  "track.cancel": "Скасувати замовлення",
  "track.cancel.confirm": "Скасувати це замовлення?",
  "track.by.system": "автоматично",
  "track.reason": "Причина: {reason}",
  "track.placed": "Оформлено {time}",
  "track.items": "Товари",
  "track.total": "Сума",
  "track.delivery": "Отримання",

  "delivery.pickup": "Самовивіз",
  "delivery.delivery": "Доставка",

  "status.pending": "Очікує",
  "status.confirmed": "Підтверджено",
  "status.preparing": "Готується",
  "status.ready": "Готово",
  "status.picked_up": "Отримано",
  "status.out_for_delivery": "У дорозі",
  "status.delivered": "Доставлено",
  "status.cancelled": "Скасовано",

  "action.confirmed": "Підтвердити",
  "action.preparing": "Готувати",
  "action.ready": "Готово",
  "action.picked_up": "Видано",
  "action.out_for_delivery": "Відправити",
  "action.delivered": "Доставлено",
  "action.cancelled": "Скасувати",

  "error.INVALID_TRANSITION": "Цей перехід уже неможливий.",
  "error.VERSION_CONFLICT": "Замовлення тим часом змінили; дані оновлено.",
  "error.UNAUTHORIZED": "Сеанс завершився. Увійдіть знову.",
  "error.FORBIDDEN": "У вас немає прав на цю дію.",
  "error.NOT_FOUND": "Не знайдено.",
  "error.RATE_LIMITED": "Забагато запитів. Зачекайте трохи.",
  "error.UNAVAILABLE": "Сервіс тимчасово недоступний. Спробуйте ще раз.",
  "error.VALIDATION_ERROR": "Деякі поля заповнено неправильно.",
  "error.NETWORK": "Немає з’єднання з сервером.",
  "error.TIMEOUT": "Сервер не відповів вчасно.",
  "error.generic": "Щось пішло не так.",
  "loading": "Завантаження…",
};

const DICTS = { en, ua };
// user.locale -> BCP 47 tag for Intl and <html lang>
const TAGS = { en: "en", ua: "uk" };
const INTL = { en: "en-GB", ua: "uk-UA" };

let current = guessLocale();
const listeners = new Set();

function guessLocale() {
  const langs = (navigator.languages && navigator.languages.length)
    ? navigator.languages : [navigator.language || "en"];
  return langs.some((l) => /^(uk|ua)\b/i.test(l)) ? "ua" : "en";
}

/** "en" | "ua" */
export function getLocale() { return current; }

/** BCP 47 tag for Intl formatting ("en-GB" | "uk-UA"). */
export function intlLocale() { return INTL[current] || "en-GB"; }

/** Switch dictionary; unknown values fall back to English. Re-translates the document. */
export function setLocale(locale) {
  const next = DICTS[locale] ? locale : "en";
  current = next;
  document.documentElement.lang = TAGS[next];
  translate(document);
  for (const fn of listeners) fn(next);
}

/** Called after every setLocale (pages re-render dynamic parts). */
export function onLocaleChange(fn) { listeners.add(fn); }

/** Look up `key`, substituting {name} placeholders from `vars`. */
export function t(key, vars) {
  let s = DICTS[current][key];
  if (s === undefined) s = en[key];
  if (s === undefined) return key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

/**
 * Add a page's own messages ({en: {...}, ua: {...}}), e.g. from i18n-shop.js; call before the
 * first setLocale. Existing keys are kept: a page cannot change another page's wording.
 */
export function addMessages(dicts) {
  for (const [locale, dict] of Object.entries(dicts)) {
    const target = DICTS[locale];
    if (!target) continue;
    for (const [key, text] of Object.entries(dict)) if (!(key in target)) target[key] = text;
  }
}

/** True when the key exists (used to prefer a localized error text). */
export function has(key) { return key in en; }

/** Translate data-i18n / data-i18n-attr elements under `root`. */
export function translate(root) {
  for (const el of root.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":").map((s) => s.trim());
      if (attr && key) el.setAttribute(attr, t(key));
    }
  }
  if (root === document && document.body && document.body.dataset.i18nTitle) {
    document.title = `${t(document.body.dataset.i18nTitle)} · ${t("app.name")}`;
  }
}
