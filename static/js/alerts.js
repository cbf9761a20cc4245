// New-order alerts on the dashboard: a short tone (only once the user switched sound on: browsers
// allow audio only after a user gesture), a browser notification when permitted, and a count in
// the tab title until the page is seen again (focused, or any key or pointer press in it).
// The tone is synthesised with Web Audio: no audio file, nothing loaded.

import { t } from "./i18n.js";

const SOUND_KEY = "markethub.sound";

export class NewOrderAlerts {
  constructor({ soundButton, notifyButton, onMessage }) {
    this.soundButton = soundButton;
    this.notifyButton = notifyButton;
    this.onMessage = onMessage;
    this.audio = null;
    this.unseen = 0;
    this.baseTitle = null;
    let saved = false;
    try { saved = localStorage.getItem(SOUND_KEY) === "on"; } catch { /* off */ }
    this.sound = false;
    this.wantSound = saved; // switched on in an earlier visit: takes effect at the first gesture
    soundButton.addEventListener("click", () => this.setSound(!this.sound));
    notifyButton.addEventListener("click", () => this.askNotify());
    this.render();
    const seen = () => {
      if (this.wantSound && !this.sound) this.setSound(true); // remembered: the first gesture turns it on
      this.seen();
    };
    window.addEventListener("focus", seen);
    document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible" && document.hasFocus()) seen(); });
    document.addEventListener("pointerdown", seen, true);
    document.addEventListener("keydown", seen, true);
  }

  setSound(on) {
    this.sound = on;
    this.wantSound = on;
    try { localStorage.setItem(SOUND_KEY, on ? "on" : "off"); } catch { /* this visit only */ }
    if (on) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (Ctx && !this.audio) this.audio = new Ctx();
      this.audio?.resume?.();
    }
    this.render();
  }

  async askNotify() {
    if (!("Notification" in window)) return;
    const result = await Notification.requestPermission();
    if (result === "denied") this.onMessage(t("alerts.notify.denied"));
    this.render();
  }

  render() {
    this.soundButton.setAttribute("aria-pressed", String(this.sound));
    this.soundButton.textContent = t("alerts.sound");
    const can = "Notification" in window;
    this.notifyButton.hidden = !can || Notification.permission === "granted";
    this.notifyButton.textContent = t("alerts.notify");
  }

  /** A new order arrived live (not replayed): tone, notification, title count. */
  newOrder({ id, text }) {
    this.unseen += 1;
    this.updateTitle();
    if (this.sound) this.beep();
    if ("Notification" in window && Notification.permission === "granted" && document.visibilityState !== "visible") {
      try { new Notification(t("app.name"), { body: text, tag: `order-${id}` }); } catch { /* not allowed here */ }
    }
  }

  beep() {
    const ctx = this.audio;
    if (!ctx) return;
    const start = ctx.currentTime;
    for (const [offset, freq] of [[0, 880], [0.18, 1175]]) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = "sine";
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, start + offset);
      gain.gain.exponentialRampToValueAtTime(0.25, start + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.16);
      osc.connect(gain).connect(ctx.destination);
      osc.start(start + offset);
      osc.stop(start + offset + 0.18);
    }
    this.beeps = (this.beeps || 0) + 1;
    document.body.dataset.beeps = String(this.beeps); // for tests: how many tones were played
  }

  seen() {
    if (!this.unseen) return;
    this.unseen = 0;
    this.updateTitle();
  }

  /** i18n sets document.title on every locale change: keep the count on top of it. */
  updateTitle() {
    const plain = document.title.replace(/^\(\d+\) /, "");
    document.title = this.unseen ? t("alerts.title_new", { n: this.unseen, title: plain }) : plain;
  }
}
