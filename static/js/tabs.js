// Accessible tabs (WAI-ARIA tabs pattern): buttons with role=tab in a role=tablist, each
// controlling a role=tabpanel (aria-controls). Arrow keys, Home and End move between tabs.
// Tabs added to the list in the HTML (e.g. by another panel's module) are wired the same way.

export function initTabs(tablist, { onSelect = () => {} } = {}) {
  const tabs = () => [...tablist.querySelectorAll('[role="tab"]')];

  function select(tab, focus = false) {
    for (const other of tabs()) {
      const on = other === tab;
      other.setAttribute("aria-selected", String(on));
      other.tabIndex = on ? 0 : -1;
      const panel = document.getElementById(other.getAttribute("aria-controls"));
      if (panel) panel.hidden = !on;
    }
    if (focus) tab.focus();
    onSelect(tab.id);
  }

  tablist.addEventListener("click", (ev) => {
    const tab = ev.target.closest('[role="tab"]');
    if (tab) select(tab);
  });
  tablist.addEventListener("keydown", (ev) => {
    const all = tabs();
    const i = all.indexOf(document.activeElement);
    if (i < 0) return;
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: all.length - 1 }[ev.key];
    if (next === undefined) return;
    ev.preventDefault();
    select(all[(next + all.length) % all.length], true);
  });
  return { select: (id) => { const tab = document.getElementById(id); if (tab) select(tab); } };
}
