// The open room's pinned messages (PROTOCOL.md section 15): which messages are pinned
// (their rows carry a marker), Pin and Unpin for those allowed, and the side panel
// listing them, newest pin first, each a jump to its message. GET /rooms/:id/pins is
// the truth; message_pinned / message_unpinned entries of the stream (and deletions,
// which unpin) update the marks at once and fetch the list again.
import { byId, el, describe } from './dom.js';
import { clip, timeOf, fullTime } from './format.js';
import { plain } from './markdown.js';

const CHANGES = new Set(['message_pinned', 'message_unpinned', 'message_deleted']);

/** Pins of the open room. `view`: the RoomView (room, standing, jumps, rows, panels). */
export class Pins {
  constructor(client, view) {
    this.client = client;
    this.view = view;
    this.panel = byId('pins-panel');
    this.list = byId('pins-list');
    this.status = byId('pins-status');
    this.button = byId('open-pins');
    this.count = byId('pin-count');
    this.room = null;
    this.pins = []; // [{message, pinned_by, pinned_at}], newest pin first
    this.ids = new Set();
    this.timer = null;
    this.button.addEventListener('click', () => this.toggle());
    byId('close-pins').addEventListener('click', () => {
      this.view.closePanel();
      this.button.focus();
    });
  }

  /** Follow `room` (null: none). */
  show(room) {
    this.room = room;
    this.pins = [];
    this.ids = new Set();
    this.list.replaceChildren();
    this.status.textContent = '';
    this.#renderCount();
    if (room) this.load();
  }

  /** Whether message `id` is pinned. */
  has(id) { return this.ids.has(id); }

  /** Whether the user may pin and unpin here (owners, admins; anyone when the room says so; both in a DM). */
  allowed() {
    const room = this.view.room;
    const { role, muted } = this.view.standing;
    if (!room || muted) return false;
    return role === 'owner' || role === 'admin' || room.visibility === 'direct' || !!room.members_can_pin;
  }

  /** Fetch the list again. */
  async load() {
    const room = this.room;
    if (!room) return;
    try {
      const res = await this.client.api.pins(room.id);
      if (this.room !== room) return;
      this.pins = res?.pins || [];
      this.ids = new Set(this.pins.map((p) => p.message.id));
      this.status.textContent = this.pins.length ? '' : 'Nothing is pinned in this room.';
      this.#render();
      this.view.refreshRows();
    } catch (e) {
      if (this.room === room) this.status.textContent = `Could not load the pinned messages: ${describe(e)}`;
    }
  }

  /** Live entries of the open room: pins, unpins and deletions move the marks. */
  onEntries(entries) {
    let any = false;
    for (const m of entries) {
      if (!CHANGES.has(m.kind)) continue;
      if (m.kind === 'message_pinned') this.ids.add(m.message_id);
      else if (!this.ids.delete(m.message_id)) continue;
      any = true;
    }
    if (!any) return;
    this.view.refreshRows();
    this.#renderCount();
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load(), 150);
  }

  /** Pin or unpin message `m`. */
  async set(m, pinned) {
    const room = this.room;
    if (!room) return;
    if (pinned) await this.client.api.pin(room.id, m.id);
    else await this.client.api.unpin(room.id, m.id);
    if (this.room !== room) return;
    if (pinned) this.ids.add(m.id);
    else this.ids.delete(m.id);
    this.view.refreshRows();
    this.load();
  }

  /** Open or close the panel. */
  toggle() {
    if (this.view.panels.current === 'pins') {
      this.view.closePanel();
      return;
    }
    this.view.showPanel('pins');
    this.load();
    (this.list.querySelector('button') || byId('close-pins')).focus();
  }

  #renderCount() {
    const n = this.ids.size;
    this.count.textContent = n ? String(n) : '';
  }

  #render() {
    this.#renderCount();
    const may = this.allowed();
    this.list.replaceChildren(...this.pins.map((p) => {
      const m = p.message;
      return el('li', { class: 'pin-item', 'data-testid': 'pin', dataset: { messageId: m.id } },
        el('button', {
          type: 'button',
          class: 'pin-jump',
          title: 'Show the message in the conversation',
          onclick: () => this.#jump(m),
        },
        el('span', { class: 'result-meta' },
          el('span', { class: 'author', text: m.username }),
          el('time', { datetime: p.pinned_at, title: `Pinned ${fullTime(p.pinned_at)}`, text: `pinned ${timeOf(p.pinned_at)}` })),
        el('span', { class: 'result-text', text: clip(plain(m.content), 160) })),
        may ? el('button', {
          type: 'button',
          class: 'small link-button',
          dataset: { action: 'unpin' },
          'aria-label': `Unpin ${m.username}'s message`,
          text: 'Unpin',
          onclick: (e) => this.#unpin(e.currentTarget, m),
        }) : null);
    }));
  }

  async #jump(m) {
    if (this.view.panels.narrow) this.view.showPanel(null);
    await this.view.jumpToSeq(m.seq);
  }

  async #unpin(button, m) {
    button.disabled = true;
    try {
      await this.set(m, false);
    } catch (e) {
      this.status.textContent = `Could not unpin: ${describe(e)}`;
      button.disabled = false;
    }
  }
}
