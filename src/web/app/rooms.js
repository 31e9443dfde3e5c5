// The user's rooms (GET /me/rooms), most recent activity first, each with its unread
// count: the server's at load, then kept live from the messages the client delivers
// (it stays subscribed to every listed room) and from read_state events.
import { byId, el, describe } from './dom.js';
import { avatar } from './message.js';
import { icon } from './icons.js';
import { plain } from './markdown.js';
import { profiles } from './profiles.js';

/** Most rooms kept subscribed for live unread counts (the server allows 256 per socket). */
const MAX_SUBSCRIBED = 200;

/** How a room is named to people: direct rooms by the other user (display name, else username). */
export function roomLabel(room) {
  if (room.visibility === 'direct') {
    const other = room.other_user;
    return `@${other ? profiles.name(other.id, other.username, other.display_name) : 'someone'}`;
  }
  return `# ${room.name}`;
}

/** The sidebar's list of the user's rooms. */
export class RoomList {
  constructor(client, { onOpen }) {
    this.client = client;
    this.onOpen = onOpen;
    this.list = byId('room-list');
    this.error = byId('rooms-error');
    this.rooms = new Map(); // id -> { room, lastSeq, lastRead, activity, last }
    this.activeId = null;
    this.loading = null;
    this.reloadTimer = null;
    this.renderQueued = false;

    client.on('messages', ({ room_id, messages }) => {
      const r = this.rooms.get(room_id);
      if (!r) {
        this.reloadSoon(); // a room we do not list yet (created or joined elsewhere)
        return;
      }
      r.lastSeq = Math.max(r.lastSeq, messages[messages.length - 1].seq);
      // Mentions of the user after the read mark count live (the server's count at load).
      const me = this.client.user?.id;
      for (const m of messages) {
        if (m.seq > r.lastRead && m.user_id !== me && !m.deleted_at && (!m.kind || m.kind === 'message')
          && (m.mentions_room || (Array.isArray(m.mentions) && m.mentions.includes(me)))) r.liveMentions.add(m.seq);
      }
      // The preview and the order follow messages and system entries, as the server's
      // last_message does; edits and reactions only count as unread.
      const last = messages.filter((m) => !m.kind || m.kind === 'message' || m.kind === 'system').pop();
      if (last) {
        r.activity = last.created_at || r.activity;
        r.last = last;
      }
      this.renderSoon();
    });
    client.on('read_state', ({ room_id, last_read_seq }) => this.setRead(room_id, last_read_seq));
    // After a reconnect, read marks made elsewhere meanwhile were missed: ask again.
    client.on('joined', ({ resumed }) => { if (resumed) this.reloadSoon(); });
  }

  /** Fetch every room of the user, keep them subscribed, and render. */
  load() {
    if (!this.loading) {
      this.loading = this.#load().finally(() => { this.loading = null; });
    }
    return this.loading;
  }

  async #load() {
    try {
      const mine = await this.client.api.allMyRooms();
      const next = new Map();
      for (const room of mine) {
        const had = this.rooms.get(room.id);
        // Positions only move forward; live news may be ahead of this answer.
        next.set(room.id, {
          room,
          lastSeq: Math.max(room.last_seq, had?.lastSeq ?? 0, this.client.position(room.id) ?? 0),
          lastRead: Math.max(room.last_read_seq, had?.lastRead ?? 0),
          activity: had && had.activity > room.last_activity_at ? had.activity : room.last_activity_at,
          last: had && had.activity > room.last_activity_at ? had.last : room.last_message,
          // The server's count covers what it had stored; live ones beyond that add to it.
          mentions: room.mentions ?? 0,
          liveMentions: new Set([...(had?.liveMentions ?? [])].filter((seq) => seq > room.last_seq)),
        });
      }
      this.rooms = next;
      this.error.textContent = '';
      this.#subscribe();
      this.render();
    } catch (e) {
      this.error.textContent = `Could not load your rooms: ${describe(e)}`;
    }
    return this.sorted().map((r) => r.room);
  }

  // Stay subscribed to the most recent rooms: their messages arrive live, so that the
  // unread counts move without polling. Rooms no longer listed are let go.
  #subscribe() {
    const wanted = new Set(this.sorted().slice(0, MAX_SUBSCRIBED).map((r) => r.room.id));
    if (this.activeId) wanted.add(this.activeId);
    for (const id of this.client.rooms) if (!wanted.has(id)) this.client.unsubscribe(id);
    const subscribed = new Set(this.client.rooms);
    for (const id of wanted) {
      const r = this.rooms.get(id);
      if (r && !subscribed.has(id)) this.client.subscribe(id, { since: r.lastSeq });
    }
  }

  /** Reload shortly (several reasons in a row make one request). */
  reloadSoon(ms = 300) {
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => this.load(), ms);
  }

  /** The listed room with this id, if any. */
  find(id) { return this.rooms.get(id)?.room; }

  /** The user's rooms, most recent activity first. */
  sorted() {
    return [...this.rooms.values()].sort((a, b) =>
      String(b.activity).localeCompare(String(a.activity)) || b.room.id.localeCompare(a.room.id));
  }

  /** Unread entries of a room (messages and system entries, as the server counts them). */
  unread(id) {
    const r = this.rooms.get(id);
    return r ? Math.max(0, r.lastSeq - r.lastRead) : 0;
  }

  /** The user's read position in a room (null when the room is not listed). */
  readPosition(id) { return this.rooms.get(id)?.lastRead ?? null; }

  /** Unread mentions of the user in a room (by name or @room). */
  mentions(id) {
    const r = this.rooms.get(id);
    return r ? r.mentions + r.liveMentions.size : 0;
  }

  /** True when the user silenced the room's notifications. */
  notificationsMuted(id) { return this.notificationLevel(id) === 'none'; }

  /** What the user is notified of in a room: 'all', 'mentions' or 'none' (older servers: all or none). */
  notificationLevel(id) {
    const room = this.rooms.get(id)?.room;
    if (!room) return 'all';
    return room.notification_level || (room.notifications_muted ? 'none' : 'all');
  }

  /** The server's answer to a change of level (`{notification_level, notifications_muted}`). */
  setNotificationLevel(id, answer) {
    const r = this.rooms.get(id);
    if (!r) return;
    const muted = !!answer.notifications_muted;
    r.room = { ...r.room, notifications_muted: muted, notification_level: answer.notification_level || (muted ? 'none' : 'all') };
    this.renderSoon();
  }

  /** A read position (our own mark, or read_state from any of the user's devices). */
  setRead(id, seq) {
    const r = this.rooms.get(id);
    if (!r || !(seq > r.lastRead)) return;
    r.lastRead = seq;
    // Read to the end: no mention is left. Short of it, the live ones read are gone.
    if (seq >= r.lastSeq) r.mentions = 0;
    for (const m of r.liveMentions) if (m <= seq) r.liveMentions.delete(m);
    this.renderSoon();
  }

  /** Forget a room (left, kicked, banned, deleted). */
  remove(id) {
    this.rooms.delete(id);
    if (this.activeId === id) this.activeId = null;
    this.render();
  }

  setActive(id) {
    this.activeId = id;
    this.render();
  }

  clear() {
    clearTimeout(this.reloadTimer);
    this.rooms.clear();
    this.activeId = null;
    this.list.replaceChildren();
  }

  renderSoon() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      this.render();
    });
  }

  render() {
    const focused = document.activeElement?.dataset?.roomId;
    const me = this.client.user?.id;
    const items = this.sorted().map(({ room, last }) => {
      const unread = this.unread(room.id);
      const label = roomLabel(room);
      let preview = '';
      if (last) {
        const text = last.deleted_at ? '(deleted)' : last.kind === 'system' ? last.content : plain(last.content);
        preview = last.kind === 'system' ? text : `${last.user_id === me ? 'You' : profiles.name(last.user_id, last.username)}: ${text}`;
      }
      const quiet = this.notificationsMuted(room.id);
      const mentioned = this.mentions(room.id);
      const direct = room.visibility === 'direct';
      const button = el('button', {
        type: 'button',
        class: 'room-item',
        'data-testid': 'room-item',
        dataset: { roomId: room.id, roomName: room.name, visibility: room.visibility || 'public', peer: room.other_user?.username },
        'aria-current': room.id === this.activeId ? 'true' : null,
        title: room.description || null,
        onclick: () => this.onOpen(room),
      },
      direct && room.other_user
        ? avatar(room.other_user.id, room.other_user.username, 'small')
        : el('span', { class: 'room-icon', 'aria-hidden': 'true' }, icon(room.visibility === 'private' ? 'lock' : 'hash')),
      el('span', { class: 'room-text' },
        el('span', { class: 'room-line' },
          el('span', { class: `room-name${unread > 0 ? ' has-unread' : ''}`, text: direct ? label : room.name }),
          room.visibility === 'private' ? el('span', { class: 'visually-hidden', text: ' (private)' }) : null,
          quiet ? el('span', { class: 'quiet', title: 'Notifications off' }, icon('bellOff'),
            el('span', { class: 'visually-hidden', text: ' (notifications off)' })) : null,
          mentioned > 0 ? el('span', { class: 'badge mention-badge', title: 'Mentions of you' },
            el('span', { 'aria-hidden': 'true', text: '@' }),
            el('span', { 'data-testid': 'mentions', text: mentioned > 99 ? '99+' : String(mentioned) }),
            el('span', { class: 'visually-hidden', text: mentioned === 1 ? ' mention' : ' mentions' })) : null,
          unread > 0 ? el('span', { class: `badge${quiet ? ' quiet-badge' : ''}` },
            el('span', { 'data-testid': 'unread', text: unread > 99 ? '99+' : String(unread) }),
            el('span', { class: 'visually-hidden', text: ' unread' })) : null),
        preview ? el('span', { class: 'room-preview', text: preview.replace(/\s+/g, ' ').slice(0, 80) }) : null));
      return el('li', {}, button);
    });
    if (!items.length) items.push(el('li', { class: 'empty-rooms', text: 'No rooms yet: browse the public ones or create one.' }));
    this.list.replaceChildren(...items);
    if (focused) this.list.querySelector(`[data-room-id="${CSS.escape(focused)}"]`)?.focus();
  }
}
