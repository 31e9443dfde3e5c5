// The open room's header: its name and kind, whether its notifications are off, and its
// options menu (search the room, the notification level: all messages, mentions only or
// nothing, leave). The menu closes on Escape (focus back on its button) and on a click
// elsewhere.
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
    this.level = byId('notify-level');
    byId('search-room').addEventListener('click', () => {
      this.closeMenu(false);
      onSearch();
    });
    byId('leave-room').addEventListener('click', () => {
      this.closeMenu(false);
      onLeave();
    });
    this.level.addEventListener('change', (e) => {
      if (e.target.name === 'notify-level' && e.target.checked) this.#setLevel(e.target.value);
    });
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
    const level = this.room ? this.rooms.notificationLevel(this.room.id) : 'all';
    for (const input of this.level.querySelectorAll('input')) input.checked = input.value === level;
    this.level.dataset.level = level;
    byId('room-muted').hidden = level !== 'none';
  }

  async #setLevel(level) {
    const room = this.room;
    if (!room) return;
    try {
      const res = await this.client.api.setNotificationLevel(room.id, level);
      this.rooms.setNotificationLevel(room.id, res || { notification_level: level, notifications_muted: level === 'none' });
    } catch (e) {
      this.onError(`Could not change the notifications: ${describe(e)}`);
    } finally {
      if (this.room === room) this.#showNotifications();
    }
  }
}
