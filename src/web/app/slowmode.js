// Slow mode in the composer: in a room with `slow_mode_secs`, a plain member waits that
// long between two messages (owners and admins do not). After each send the field stays
// usable but sending waits, with a countdown; a send the server refused anyway
// (`slow_mode`, with `retry_after_ms`) comes back into the field and the countdown shows
// what is left. The countdown is drawn every second; screen readers hear its start and end.
import { byId } from './dom.js';

// The server counts from when it stored the message, a moment after the send left: a
// countdown a little longer spares a refusal at its last instant.
const MARGIN_MS = 300;

/** The countdown of the room's composers (`composers`: the room's and the thread's). */
export class SlowMode {
  constructor(composers) {
    this.composers = composers;
    this.line = byId('slow-mode');
    this.text = byId('slow-mode-text');
    this.count = byId('slow-mode-count');
    this.secs = 0;
    this.exempt = true;
    this.until = 0;
    this.timer = null;
  }

  /** The room's setting and whether the user is exempt (owner or admin). */
  configure(secs, exempt) {
    this.secs = Number(secs) || 0;
    this.exempt = exempt;
    if (!this.secs && !this.until) this.#set(null);
    else this.#draw();
  }

  /** Another room: no countdown. */
  reset() {
    this.secs = 0;
    this.exempt = true;
    this.#stop();
    this.#set(null);
  }

  /** The user just sent a message. */
  sent() {
    if (this.secs > 0 && !this.exempt) this.#start(this.secs * 1000 + MARGIN_MS);
  }

  /** The server refused a send: wait `ms` (the whole period when it did not say). */
  refused(ms) {
    this.#start(Number.isFinite(ms) && ms > 0 ? ms : Math.max(1, this.secs) * 1000);
  }

  /** Whether sending has to wait now. */
  get waiting() { return this.until > Date.now(); }

  #start(ms) {
    this.until = Date.now() + ms;
    for (const c of this.composers) c.setWaiting(true);
    this.text.textContent = `Slow mode is on: you can send again in ${Math.ceil(ms / 1000)} s.`;
    clearInterval(this.timer);
    this.timer = setInterval(() => this.#draw(), 250);
    this.#draw();
  }

  #stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.until = 0;
    for (const c of this.composers) c.setWaiting(false);
  }

  #draw() {
    const left = Math.ceil((this.until - Date.now()) / 1000);
    if (left > 0) {
      this.#set(`${left} s`);
      return;
    }
    if (this.until) {
      this.#stop();
      this.text.textContent = 'You can send again.';
    }
    this.#set(null);
  }

  // The visible line: a countdown, or the room's rule while slow mode is on.
  #set(countdown) {
    this.line.dataset.waiting = countdown ? 'true' : 'false';
    this.count.textContent = countdown ? `Slow mode: wait ${countdown}` : '';
    if (!countdown) {
      this.count.textContent = this.secs > 0
        ? `Slow mode: one message every ${this.secs} s${this.exempt ? ' (not for owners and admins)' : ''}`
        : '';
      if (!this.secs) this.text.textContent = '';
    }
    this.line.hidden = !this.count.textContent;
  }
}
