// The open room's header: its name and kind, whether its notifications are off, and its
// options menu (search the room, mute or unmute notifications, leave). The menu closes
// on Escape (focus back on its button) and on a click elsewhere.
import { byId, describe } from './dom.js';
import { roomLabel } from './rooms.js';

/** The header of the open room. Callbacks: onSearch(), onLeave(), onError(text). */
export class RoomHead {
  constructor(client, rooms, { onSearch, onLeave, onError }) {
    this.client = client;
    this.rooms = rooms; // the RoomList: notification settings
    this.onError = onError;
    this.room = null;
    this.title = byId('room-title');
    this.kind = byId('room-kind');
    this.menu = byId('room-menu');
    this.mute = byId('mute-room');
    byId('search-room').addEventListener('click', () => {
      this.closeMenu(false);
      onSearch();
    });
    byId('leave-room').addEventListener('click', () => {
      this.closeMenu(false);
      onLeave();
    });
    this.mute.addEventListener('click', () => this.#toggleNotifications());
    this.menu.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && this.menu.open) {
        e.preventDefault();
        this.closeMenu(true);
      }
    });
    document.addEventListener('click', (e) => {
      if (this.menu.open && !this.menu.contains(e.target)) this.closeMenu(false);
    });
  }

  /** Show `room` (null: nothing). */
  show(room) {
    this.room = room;
    this.closeMenu(false);
    this.title.textContent = room ? roomLabel(room) : '';
    this.kind.textContent = room && (room.visibility === 'private' || room.visibility === 'direct') ? room.visibility : '';
    this.#showNotifications();
  }

  /** Close the options menu (focus back on its button when `refocus`). */
  closeMenu(refocus) {
    if (!this.menu.open) return;
    this.menu.open = false;
    if (refocus) this.menu.querySelector('summary').focus();
  }

  #showNotifications() {
    const muted = !!(this.room && this.rooms.notificationsMuted(this.room.id));
    this.mute.setAttribute('aria-pressed', String(muted));
    this.mute.textContent = muted ? 'Unmute notifications' : 'Mute notifications';
    byId('room-muted').hidden = !muted;
  }

  async #toggleNotifications() {
    const room = this.room;
    if (!room) return;
    const muted = !this.rooms.notificationsMuted(room.id);
    this.mute.disabled = true;
    try {
      const res = await this.client.api.setNotifications(room.id, muted);
      this.rooms.setNotificationsMuted(room.id, !!res?.notifications_muted);
      if (this.room === room) this.#showNotifications();
      this.closeMenu(true);
    } catch (e) {
      this.onError(`Could not change the notifications: ${describe(e)}`);
    } finally {
      this.mute.disabled = false;
    }
  }
}
