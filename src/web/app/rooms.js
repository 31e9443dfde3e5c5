// The room list: every room for now (GET /rooms); the caller's rooms with unread counts
// once the server offers GET /me/rooms. Create and open rooms from here.
import { byId, el, clear, describe } from './dom.js';

/** The sidebar: rooms, which ones the user joined, unread counts, and room creation. */
export class RoomList {
  constructor(client, { onOpen }) {
    this.client = client;
    this.onOpen = onOpen;
    this.list = byId('room-list');
    this.error = byId('rooms-error');
    this.rooms = [];
    this.unread = new Map(); // room id -> count (from the server, or counted here)
    this.joined = new Set(); // rooms the user is known to be a member of
    this.serverMembership = false; // true when /me/rooms told us
    this.activeId = null;
    byId('refresh-rooms').addEventListener('click', () => this.load());
    byId('create-room-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.#create();
    });
  }

  // Local memory of joined rooms, per user, until the server lists them itself.
  get #storageKey() { return `chatd.joined.${this.client.user?.id}`; }

  #loadJoined() {
    try {
      this.joined = new Set(JSON.parse(localStorage.getItem(this.#storageKey) || '[]'));
    } catch {
      this.joined = new Set();
    }
  }

  #saveJoined() {
    if (this.serverMembership) return;
    try {
      localStorage.setItem(this.#storageKey, JSON.stringify([...this.joined]));
    } catch {
      // private mode: the marks last for this page only
    }
  }

  /** Fetch the rooms (GET /me/rooms when the server has it, else GET /rooms). */
  async load() {
    this.error.textContent = '';
    try {
      const mine = await this.client.api.myRooms();
      if (mine) {
        this.serverMembership = true;
        this.rooms = mine;
        this.joined = new Set(mine.map((r) => r.id));
        for (const r of mine) if (typeof r.unread === 'number') this.unread.set(r.id, r.unread);
      } else {
        this.serverMembership = false;
        this.#loadJoined();
        this.rooms = await this.client.api.listRooms();
      }
      this.render();
    } catch (e) {
      this.error.textContent = `Could not load the rooms: ${describe(e)}`;
    }
    return this.rooms;
  }

  /** The room with this id, if listed. */
  find(id) { return this.rooms.find((r) => r.id === id); }

  markJoined(id) {
    this.joined.add(id);
    this.#saveJoined();
    this.render();
  }

  markLeft(id) {
    this.joined.delete(id);
    this.unread.delete(id);
    this.#saveJoined();
    if (this.activeId === id) this.activeId = null;
    this.render();
  }

  setActive(id) {
    this.activeId = id;
    if (id) this.unread.set(id, 0);
    this.render();
  }

  /** Set a room's unread count (from /me/rooms, read_state events, or counted live). */
  setUnread(id, count) {
    this.unread.set(id, count);
    this.render();
  }

  clear() {
    this.rooms = [];
    this.unread.clear();
    this.activeId = null;
    clear(this.list);
  }

  render() {
    const focused = document.activeElement?.dataset?.roomId;
    const items = this.rooms.map((room) => {
      const unread = this.unread.get(room.id) || 0;
      const member = this.joined.has(room.id);
      const button = el('button', {
        type: 'button',
        class: 'room-item',
        'data-testid': 'room-item',
        dataset: { roomId: room.id, roomName: room.name },
        'aria-current': room.id === this.activeId ? 'true' : null,
        title: room.description || null,
        onclick: () => this.onOpen(room),
      },
      el('span', { class: 'room-name', text: `# ${room.name}` }),
      member ? el('span', { class: 'member-mark', 'aria-label': 'joined', title: 'joined', text: '●' }) : null,
      unread > 0 ? el('span', { class: 'badge', 'data-testid': 'unread', 'aria-label': `${unread} unread`, text: unread > 99 ? '99+' : String(unread) }) : null);
      return el('li', {}, button);
    });
    if (!items.length) items.push(el('li', { class: 'empty-rooms', text: 'No rooms yet: create the first one.' }));
    this.list.replaceChildren(...items);
    if (focused) this.list.querySelector(`[data-room-id="${CSS.escape(focused)}"]`)?.focus();
  }

  async #create() {
    const input = byId('new-room-name');
    const name = input.value.trim();
    if (!name) {
      this.error.textContent = 'Give the room a name.';
      input.focus();
      return;
    }
    const button = byId('create-room');
    button.disabled = true;
    this.error.textContent = '';
    try {
      const room = await this.client.api.createRoom({ name });
      input.value = '';
      this.joined.add(room.id);
      this.#saveJoined();
      await this.load();
      this.onOpen(this.find(room.id) || room);
    } catch (e) {
      this.error.textContent = e.code === 'room_name_taken' ? 'A room with that name exists already.' : describe(e);
    } finally {
      button.disabled = false;
    }
  }
}
