// Finding rooms: invitations waiting for the user (GET /me/invites, accepted by
// joining), public rooms to browse and join (GET /rooms), and creating a room (a
// dialog: a name and who may join).
import { byId, el, describe } from './dom.js';

/** The sidebar's invitations, public room browser and room creation form. */
export class Discover {
  constructor(client, rooms, { onJoined }) {
    this.client = client;
    this.rooms = rooms; // the RoomList: which rooms are the user's already
    this.onJoined = onJoined; // (room) => open it
    this.invites = byId('invites-section');
    this.inviteList = byId('invite-list');
    this.browseButton = byId('browse-rooms');
    this.browsePanel = byId('browse-panel');
    this.publicList = byId('public-list');
    this.browseError = byId('browse-error');
    this.error = byId('rooms-error');

    this.dialog = byId('new-room-dialog');
    this.browseButton.addEventListener('click', () => this.toggleBrowse());
    byId('new-room').addEventListener('click', () => this.openCreate());
    byId('cancel-room').addEventListener('click', () => this.dialog.close());
    byId('create-room-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.#create();
    });
  }

  /** Ask for a new room's name and visibility. */
  openCreate() {
    byId('create-room-error').textContent = '';
    byId('create-room-form').reset();
    this.dialog.showModal();
    byId('new-room-name').focus();
  }

  /** Fetch the invitations waiting for the user. */
  async loadInvites() {
    try {
      const invites = await this.client.api.myInvites();
      this.#renderInvites(invites);
    } catch (e) {
      this.error.textContent = `Could not load your invitations: ${describe(e)}`;
    }
  }

  #renderInvites(invites) {
    this.invites.hidden = invites.length === 0;
    this.inviteList.replaceChildren(...invites.map(({ room, invited_by: by }) => el('li', {
      'data-testid': 'invite',
      dataset: { roomId: room.id, roomName: room.name },
    },
    el('span', { class: 'invite-text' },
      el('span', { class: 'room-name', text: `# ${room.name}` }),
      by ? el('span', { class: 'invite-by hint', text: `invited by ${by.username}` }) : null),
    el('button', {
      type: 'button',
      class: 'accept-invite',
      text: 'Accept',
      'aria-label': `Accept the invitation to ${room.name}`,
      onclick: (e) => this.#join(room, e.currentTarget, this.error),
    }))));
  }

  /** Show or hide the public rooms the user is not in. */
  async toggleBrowse(force) {
    const open = force ?? this.browsePanel.hidden;
    this.browsePanel.hidden = !open;
    this.browseButton.setAttribute('aria-expanded', String(open));
    this.browseButton.textContent = open ? 'Hide public rooms' : 'Browse public rooms';
    if (open) await this.loadPublic();
  }

  async loadPublic() {
    this.browseError.textContent = '';
    this.publicList.replaceChildren(el('li', { class: 'hint', text: 'Loading…' }));
    try {
      const all = await this.client.api.listRooms();
      const rooms = all.filter((r) => (r.visibility ?? 'public') === 'public' && !this.rooms.find(r.id));
      this.publicList.replaceChildren(...rooms.map((room) => el('li', {
        'data-testid': 'public-room',
        dataset: { roomId: room.id, roomName: room.name },
      },
      el('span', { class: 'room-name', text: `# ${room.name}`, title: room.description || null }),
      el('button', {
        type: 'button',
        class: 'join-room',
        text: 'Join',
        dataset: { roomName: room.name },
        'aria-label': `Join ${room.name}`,
        onclick: (e) => this.#join(room, e.currentTarget, this.browseError),
      }))));
      if (!rooms.length) this.publicList.replaceChildren(el('li', { class: 'hint', text: 'You are in every public room.' }));
    } catch (e) {
      this.publicList.replaceChildren();
      this.browseError.textContent = `Could not load the public rooms: ${describe(e)}`;
    }
  }

  // Join (accepting an invitation is joining), then list and open the room.
  async #join(room, button, errorLine) {
    button.disabled = true;
    errorLine.textContent = '';
    try {
      await this.client.api.joinRoom(room.id);
      await this.rooms.load();
      this.onJoined(this.rooms.find(room.id) || room);
      this.loadInvites();
      if (!this.browsePanel.hidden) this.toggleBrowse(false);
    } catch (e) {
      errorLine.textContent = e.code === 'banned' ? `You are banned from ${room.name}.` : `Could not join: ${describe(e)}`;
      button.disabled = false;
    }
  }

  async #create() {
    const input = byId('new-room-name');
    const error = byId('create-room-error');
    const name = input.value.trim();
    if (!name) {
      error.textContent = 'Give the room a name.';
      input.focus();
      return;
    }
    const visibility = byId('new-room-visibility').value === 'private' ? 'private' : 'public';
    const button = byId('create-room');
    button.disabled = true;
    error.textContent = '';
    try {
      const room = await this.client.api.createRoom({ name, visibility });
      input.value = '';
      this.dialog.close();
      await this.rooms.load();
      this.onJoined(this.rooms.find(room.id) || room);
    } catch (e) {
      error.textContent = e.code === 'room_name_taken' ? 'A public room with that name exists already.' : describe(e);
      input.focus();
    } finally {
      button.disabled = false;
    }
  }
}
