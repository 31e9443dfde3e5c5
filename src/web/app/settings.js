// The open room's settings for its owner and admins, in a dialog: whether any member may
// pin messages, and slow mode (shown when the server has it: the Room names
// `slow_mode_secs`). Saving sends only what changed (PATCH /rooms/:id).
import { byId, el, describe } from './dom.js';

const SLOW = [[0, 'Off'], [5, '5 seconds'], [10, '10 seconds'], [30, '30 seconds'], [60, '1 minute'],
  [300, '5 minutes'], [900, '15 minutes'], [3600, '1 hour']];

/** The room settings dialog. `view`: the RoomView (room, roomUpdated(room)). */
export class RoomSettings {
  constructor(client, view) {
    this.client = client;
    this.view = view;
    this.dialog = byId('room-settings-dialog');
    this.pin = byId('setting-members-pin');
    this.slow = byId('setting-slow-mode');
    this.slowField = byId('slow-mode-field');
    this.error = byId('room-settings-error');
    this.save = byId('room-settings-save');
    byId('room-settings-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.#save();
    });
    byId('room-settings-cancel').addEventListener('click', () => this.dialog.close());
    this.dialog.addEventListener('close', () => {
      if (this.opener?.isConnected) this.opener.focus();
    });
  }

  /** Show the dialog for the open room. */
  open(opener) {
    const room = this.view.room;
    if (!room) return;
    this.opener = opener || document.activeElement;
    this.error.textContent = '';
    this.pin.checked = !!room.members_can_pin;
    const has = typeof room.slow_mode_secs === 'number';
    this.slowField.hidden = !has;
    const secs = has ? room.slow_mode_secs : 0;
    const options = SLOW.some(([s]) => s === secs) ? SLOW : [...SLOW, [secs, `${secs} seconds`]].sort((a, b) => a[0] - b[0]);
    this.slow.replaceChildren(...options.map(([s, label]) => el('option', { value: String(s), text: label })));
    this.slow.value = String(secs);
    this.dialog.showModal();
    this.pin.focus();
  }

  async #save() {
    const room = this.view.room;
    if (!room) return;
    const patch = {};
    if (this.pin.checked !== !!room.members_can_pin) patch.members_can_pin = this.pin.checked;
    const secs = Number(this.slow.value);
    if (!this.slowField.hidden && secs !== room.slow_mode_secs) patch.slow_mode_secs = secs;
    if (!Object.keys(patch).length) {
      this.dialog.close();
      return;
    }
    this.save.disabled = true;
    try {
      const updated = await this.client.api.updateRoom(room.id, patch);
      this.view.roomUpdated(room.id, updated || patch);
      this.dialog.close();
    } catch (e) {
      this.error.textContent = `Could not save: ${describe(e)}`;
    } finally {
      this.save.disabled = false;
    }
  }
}
