// The printable order ticket for the packing table: filled into #ticket (shown only in print, see
// dashboard.css @media print), then the browser's print dialog.

import { t } from "./i18n.js";
import { money, dateTime, shortId } from "./format.js";
import { h } from "./ui.js";

export function printTicket(order, market) {
  const el = document.getElementById("ticket");
  const cur = order.currency || market.currency;
  const c = order.customer || {};
  el.replaceChildren(...[ // (null children would become the text "null")
    h("h1", {}, market.name),
    h("h2", {}, t("ticket.title", { id: shortId(order.id) })),
    h("p", {}, t("ticket.placed", { time: dateTime(order.created_at) }), " · ", t(`status.${order.status}`)),
    h("p", { class: "ticket-customer" }, [c.name, c.phone].filter(Boolean).join(" · ") || t("order.no_contact")),
    h("p", {}, t(`delivery.${order.delivery_option}`), order.delivery_address ? `: ${order.delivery_address}` : ""),
    order.notes ? h("p", { class: "ticket-notes" }, `${t("order.notes")}: ${order.notes}`) : null,
    h("table", { class: "ticket-items" },
      h("tbody", {}, (order.items || []).map((it) => h("tr", {},
        h("td", {}, `${it.quantity} ×`), h("td", {}, it.name), h("td", { class: "num" }, money(it.line_total_cents, cur)))))),
    h("p", { class: "ticket-total" }, `${t("track.total")}: ${money(order.total_cents, cur)}`),
    h("p", {}, t("ticket.payment", { method: t(`payment.${order.payment_method}`) })),
  ].filter(Boolean));
  document.body.classList.add("printing-ticket");
  const done = () => { document.body.classList.remove("printing-ticket"); window.removeEventListener("afterprint", done); };
  window.addEventListener("afterprint", done);
  window.print();
}
