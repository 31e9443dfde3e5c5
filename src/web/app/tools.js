// What the open room offers beyond the conversation itself, wired in one place: pins,
// reports, the room's settings, slow mode in the composers, and messages of blocked
// users folded away. The room view calls in at its moments (open, live entries, a send,
// a refused send, the user's standing) and asks what rows need to know.
import { byId } from './dom.js';
import { Pins } from './pins.js';
import { Reports } from './reports.js';
import { RoomSettings } from './settings.js';
import { SlowMode } from './slowmode.js';

/** The open room's tools. `view`: the RoomView; `blocks`: the user's Blocks. */
export class RoomTools {
  constructor(client, view, blocks) {
    this.client = client;
    this.view = view;
    this.blocks = blocks;
    this.pins = new Pins(client, view);
    this.reports = new Reports(client, view);
    this.settings = new RoomSettings(client, view);
    this.slow = new SlowMode([view.composer, view.thread.composer]);
    this.revealed = new Set(); // messages of blocked users the user chose to see
    this.reportsButton = byId('open-reports');
    this.settingsButton = byId('room-settings');
    this.reportsButton.addEventListener('click', () => {
      this.view.head.closeMenu(false);
      this.reports.show();
    });
    this.settingsButton.addEventListener('click', () => {
      this.view.head.closeMenu(false);
      this.settings.open(this.view.head.menu.querySelector('summary'));
    });
    blocks.listen(() => this.view.refreshRows());
  }

  /** Another room (or none). */
  open(room) {
    this.revealed = new Set();
    this.reports.reset();
    this.slow.reset();
    this.pins.show(room);
    this.#menu();
    if (room) this.#fetchRoom(room);
  }

  // The room as the server has it now: settings the room list does not carry.
  async #fetchRoom(room) {
    try {
      const fresh = await this.client.api.getRoom(room.id);
      if (fresh) this.view.roomUpdated(room.id, fresh);
    } catch {
      // the list's copy will do
    }
  }

  /** The room's settings changed (the view's room object holds them). */
  configure() {
    const { role } = this.view.standing;
    this.slow.configure(this.view.room?.slow_mode_secs || 0, role === 'owner' || role === 'admin');
  }

  /** The user's role or mute changed. */
  standing() {
    this.#menu();
    this.configure();
  }

  #menu() {
    const room = this.view.room;
    const { role } = this.view.standing;
    const mod = !!room && room.visibility !== 'direct' && (role === 'owner' || role === 'admin');
    this.reportsButton.hidden = !mod;
    this.settingsButton.hidden = !mod;
  }

  /** Live entries of the open room. */
  live(entries) { this.pins.onEntries(entries); }

  /** The user sent a message in the open room. */
  sent() { this.slow.sent(); }

  /** A send or change of the open room failed; true when handled here. */
  failed(f) {
    if (f.code === 'slow_mode') {
      // Not lost: the text goes back to the field it came from, and the wait shows.
      const p = this.view.sends.remove(f.client_msg_id);
      if (p) {
        const thread = this.view.thread;
        const into = p.reply_to != null && thread.rootId === p.reply_to ? thread.composer : this.view.composer;
        into.restore(p.content);
      }
      this.slow.refused(f.retry_after_ms);
      if (this.view.room) this.#fetchRoom(this.view.room);
      return true;
    }
    if (f.code === 'blocked') {
      this.view.showError('Not sent: one of you has blocked the other.');
      return false; // the message stays as not sent, with Retry and Discard
    }
    return false;
  }

  /** Show one message of a blocked user. */
  reveal(id) {
    this.revealed.add(id);
    this.view.refreshRows();
  }

  /** What rows need to know from here. */
  rowContext() {
    const me = this.client.user?.id;
    const canPin = this.pins.allowed();
    return {
      isPinned: (m) => this.pins.has(m.id),
      canPin: (m) => canPin && !m.deleted_at,
      canReport: (m) => m.user_id !== me && !m.deleted_at,
      folded: (m) => m.user_id !== me && !m.deleted_at && this.blocks.has(m.user_id) && !this.revealed.has(m.id),
    };
  }

  /** Whether a message's author is blocked (nothing of it is read out). */
  blocked(m) { return this.blocks.has(m.user_id); }
}
