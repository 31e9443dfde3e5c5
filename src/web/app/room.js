// The open room: its stream (messages and system entries in seq order: the newest page
// at once, older pages on scroll-up, live ones as they come, our own pending and
// acknowledged sends), marking it read as the user sees it, who is typing, and the
// member panel.
import { byId, el, clear, timeOf, describe } from './dom.js';
import { Members } from './members.js';
import { roomLabel } from './rooms.js';

const TYPING_SAFETY_MS = 8000; // the server ends a typing after 6 s; never show one longer
const PAGE = 50;
// System entries that change who is in the room: the member list follows them.
const MEMBERSHIP = new Set(['joined', 'left', 'kicked', 'banned']);
// Entries that are shown as such; the others (edits, deletions, reactions: PROTOCOL.md
// section 10) change a message already shown and are not shown themselves.
const SHOWN = new Set(['message', 'system']);
const shown = (m) => !m.kind || SHOWN.has(m.kind);

/** One open room at a time. The client stays subscribed to the user's rooms (the room list's doing). */
export class RoomView {
  constructor(client, rooms, { onLeft, onBack, onDirect }) {
    this.client = client;
    this.rooms = rooms;
    this.onLeft = onLeft;
    this.onBack = onBack;
    this.room = null;
    this.pane = byId('room-pane');
    this.empty = byId('room-empty');
    this.title = byId('room-title');
    this.scroller = byId('scroller');
    this.list = byId('messages');
    this.olderButton = byId('load-older');
    this.historyStart = byId('history-start');
    this.typingLine = byId('typing');
    this.input = byId('message-input');
    this.error = byId('room-error');
    this.kind = byId('room-kind');
    this.chat = byId('chat-view');
    this.members = new Members(client, {
      onDirect,
      onMe: (me) => this.#setMuted(!!me?.muted),
    });
    this.#reset();

    byId('composer').addEventListener('submit', (e) => {
      e.preventDefault();
      this.#send();
    });
    this.input.addEventListener('keydown', (e) => {
      // Enter sends, Shift+Enter starts a new line (and IME composition is left alone).
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.#send();
      }
    });
    this.input.addEventListener('input', () => {
      this.#autosize();
      if (!this.room) return;
      if (this.input.value.trim()) this.client.typing(this.room.id);
      else this.client.stopTyping(this.room.id);
    });
    this.input.addEventListener('blur', () => this.room && this.client.stopTyping(this.room.id));
    this.olderButton.addEventListener('click', () => this.#loadOlder());
    this.scroller.addEventListener('scroll', () => {
      if (this.scroller.scrollTop < 80) this.#loadOlder();
      this.#markSeenSoon();
    });
    document.addEventListener('visibilitychange', () => this.#markSeenSoon());
    window.addEventListener('focus', () => this.#markSeenSoon());
    byId('leave-room').addEventListener('click', () => this.#leave());
    byId('back-to-rooms').addEventListener('click', () => this.onBack());
    const toggle = byId('toggle-members');
    toggle.setAttribute('aria-expanded', String(!window.matchMedia('(max-width: 720px)').matches));
    toggle.addEventListener('click', () => this.#toggleMembers());
    byId('close-members').addEventListener('click', () => this.#toggleMembers(false));

    client.on('messages', ({ room_id, messages }) => {
      if (room_id !== this.room?.id) return;
      // Until the first page is in, live entries wait: an edit must find its message.
      if (this.waiting) {
        this.waiting.push(...messages);
        return;
      }
      this.#insert(messages, { live: true });
      if (messages.some((m) => m.kind === 'system' && MEMBERSHIP.has(m.data?.type))) this.members.loadSoon();
    });
    client.on('joined', ({ room_id, resumed }) => {
      // After a reconnect, presence events may have been missed: ask again.
      if (room_id === this.room?.id && resumed) this.members.load();
    });
    client.on('typing', (t) => {
      if (t.room_id === this.room?.id) this.#setTyping(t.user_id, t.username, t.typing);
    });
    client.on('presence', (p) => {
      if (p.room_id === this.room?.id) this.members.setOnline(p.user_id, p.username, p.status === 'online');
    });
    client.on('user_joined', (u) => {
      if (u.room_id === this.room?.id) this.members.setOnline(u.user_id, u.username, true);
    });
    client.on('user_left', (u) => {
      if (u.room_id === this.room?.id) {
        this.members.setOnline(u.user_id, u.username, false);
        this.#setTyping(u.user_id, u.username, false);
      }
    });
    client.on('state', () => this.#refreshPendingLabels());
  }

  #reset() {
    this.pending = new Map(); // client_msg_id -> li of a send not yet seen in the room
    this.seqs = new Set();
    this.oldestSeq = null;
    this.newestSeq = null;
    this.hasOlder = false;
    this.loadingOlder = false;
    for (const t of this.typers?.values() || []) clearTimeout(t.timer);
    this.typers = new Map(); // user id -> { username, timer }
    this.leaving = false;
    this.markQueued = false;
    this.waiting = null; // live entries held while the first page loads
    clear(this.list);
    this.typingLine.textContent = '';
    this.error.textContent = '';
    this.olderButton.hidden = true;
    this.historyStart.hidden = true;
    this.kind.textContent = '';
    this.#setMuted(false);
  }

  /** Open one of the user's rooms: its newest page, then live entries; its members. */
  async open(room) {
    if (this.room?.id === room.id) {
      this.input.focus();
      return;
    }
    this.#release();
    this.#reset();
    this.room = room;
    this.title.textContent = roomLabel(room);
    this.kind.textContent = room.visibility === 'private' || room.visibility === 'direct' ? room.visibility : '';
    this.empty.hidden = true;
    this.pane.hidden = false;
    this.chat.classList.add('room-open');
    this.members.show(room);
    for (const p of this.client.pending(room.id)) this.#addPending(p.client_msg_id, p.content, this.#track(p.client_msg_id));
    // Live entries from the subscription's position on (the room list keeps the user's
    // rooms subscribed); the page below covers what came before. Both go through
    // #insert, which keeps seq order and drops repeats.
    const known = this.rooms.rooms.get(room.id);
    this.waiting = [];
    this.client.subscribe(room.id, known ? { since: known.lastSeq } : undefined);
    try {
      const page = await this.client.api.messages(room.id, { limit: PAGE });
      if (this.room !== room) return;
      // A page shows its messages as they are now, and its change entries, applied in
      // order, end in that same state; then what came live meanwhile.
      this.#insert([...page.messages].reverse(), { live: true });
      const held = this.waiting;
      this.waiting = null;
      this.#insert(held, { live: true });
      this.hasOlder = page.next_cursor != null;
      this.#updateOlder();
      this.#scrollToBottom();
      this.#markSeen();
    } catch (e) {
      if (this.room !== room) return;
      const held = this.waiting || [];
      this.waiting = null;
      this.#insert(held, { live: true });
      if (e.code === 'not_member' || e.code === 'room_not_found') {
        this.close();
        this.onLeft(room.id, `You are no longer a member of ${roomLabel(room)}.`);
        return;
      }
      this.error.textContent = `Could not open the room: ${describe(e)}`;
    }
    this.input.focus();
  }

  /** Close the room view (the membership stays). */
  close() {
    this.#release();
    this.room = null;
    this.#reset();
    this.members.show(null);
    this.pane.hidden = true;
    this.empty.hidden = false;
    this.chat.classList.remove('room-open', 'members-open');
  }

  // Rooms the list keeps stay subscribed (for their unread counts); others are let go.
  #release() {
    if (this.room && !this.rooms.find(this.room.id)) this.client.unsubscribe(this.room.id);
  }

  // --- messages ------------------------------------------------------------

  #entryEl(m) {
    if (m.kind === 'system') {
      // "ann joined", "bob was removed by ann": a notice, as text.
      return el('li', {
        class: 'entry system-entry',
        'data-testid': 'system-entry',
        dataset: { seq: m.seq, type: m.data?.type || '' },
      },
      el('span', { class: 'system-text', text: m.content }),
      el('time', { datetime: m.created_at, text: timeOf(m.created_at) }));
    }
    const mine = m.user_id === this.client.user?.id;
    return this.#messageEl(m, mine ? 'acked' : null);
  }

  #messageEl(m, state) {
    const mine = m.user_id === this.client.user?.id;
    const li = el('li', {
      class: `entry message${mine ? ' mine' : ''}`,
      'data-testid': 'message',
      dataset: { seq: m.seq, userId: m.user_id, state: state || 'stored' },
    },
    el('div', { class: 'meta' },
      el('span', { class: 'author', 'data-testid': 'message-author', text: m.username }),
      el('time', { datetime: m.created_at, text: timeOf(m.created_at) }),
      mine ? el('span', { class: 'status', 'data-testid': 'message-status', text: 'Sent ✓' }) : null),
    el('p', { class: 'content', 'data-testid': 'message-content', text: m.content }));
    if (m.client_msg_id) li.dataset.clientMsgId = m.client_msg_id;
    if (m.id != null) li.dataset.messageId = m.id;
    if (m.deleted_at) this.#markDeleted(li);
    else if (m.edited_at) this.#markEdited(li);
    return li;
  }

  // Entries from the first page and live ones, each once, in seq order, before our own
  // unconfirmed sends. Change entries (edits, deletions, reactions) update the message
  // they name when `live` (older pages show rows as they are now: nothing to apply).
  #insert(entries, { live = false } = {}) {
    const stick = this.#nearBottom();
    let mineArrived = false;
    for (const m of entries) {
      if (this.seqs.has(m.seq)) continue;
      this.seqs.add(m.seq);
      if (!shown(m)) {
        if (live) this.#apply(m);
        if (this.newestSeq == null || m.seq > this.newestSeq) this.newestSeq = m.seq;
        if (this.oldestSeq == null || m.seq < this.oldestSeq) this.oldestSeq = m.seq;
        continue;
      }
      if (m.client_msg_id && this.pending.has(m.client_msg_id)) {
        this.pending.get(m.client_msg_id).remove();
        this.pending.delete(m.client_msg_id);
        mineArrived = true;
      }
      const node = this.#entryEl(m);
      if (this.newestSeq == null || m.seq > this.newestSeq) {
        const firstUnconfirmed = this.list.querySelector(':scope > li.unconfirmed');
        this.list.insertBefore(node, firstUnconfirmed);
      } else {
        // Older than the newest shown: before the first entry with a higher seq.
        const after = [...this.list.querySelectorAll(':scope > li.entry')].find((li) => Number(li.dataset.seq) > m.seq);
        this.list.insertBefore(node, after || this.list.querySelector(':scope > li.unconfirmed'));
      }
      if (this.oldestSeq == null || m.seq < this.oldestSeq) this.oldestSeq = m.seq;
      if (this.newestSeq == null || m.seq > this.newestSeq) this.newestSeq = m.seq;
      if (m.kind !== 'system') this.#setTyping(m.user_id, m.username, false);
    }
    if (stick || mineArrived) this.#scrollToBottom();
    this.#markSeen();
  }

  // An edit or a deletion of a message on screen; reactions are not shown (yet).
  #apply(m) {
    const li = m.message_id != null && this.list.querySelector(`:scope > li.message[data-message-id="${CSS.escape(String(m.message_id))}"]`);
    if (!li) return;
    if (m.kind === 'message_edited') {
      li.querySelector('.content').textContent = m.content;
      this.#markEdited(li);
    } else if (m.kind === 'message_deleted') {
      this.#markDeleted(li);
    }
  }

  #markEdited(li) {
    if (li.querySelector('.edited')) return;
    li.querySelector('.meta time')?.after(el('span', { class: 'edited', text: '(edited)' }));
  }

  #markDeleted(li) {
    li.classList.add('deleted');
    li.querySelector('.content').textContent = 'This message was deleted.';
    li.querySelector('.edited')?.remove();
  }

  // --- read state ------------------------------------------------------------------

  // The user sees the newest entry (page visible, scrolled to the bottom): mark the room
  // read up to it, which clears its unread count here and on the user's other devices.
  #markSeen() {
    const room = this.room;
    if (!room || this.newestSeq == null || document.visibilityState !== 'visible' || !this.#nearBottom()) return;
    this.rooms.setRead(room.id, this.newestSeq);
    this.client.markRead(room.id, this.newestSeq).catch(() => {
      // best effort: the next entry or scroll marks again
    });
  }

  #markSeenSoon() {
    if (this.markQueued) return;
    this.markQueued = true;
    requestAnimationFrame(() => {
      this.markQueued = false;
      this.#markSeen();
    });
  }

  #setMuted(muted) {
    this.input.disabled = muted;
    byId('send-button').disabled = muted;
    this.input.placeholder = muted ? 'You are muted in this room' : 'Write a message';
  }

  async #loadOlder() {
    if (!this.room || !this.hasOlder || this.loadingOlder) return;
    const room = this.room;
    this.loadingOlder = true;
    this.olderButton.disabled = true;
    try {
      const page = await this.client.api.messages(room.id, { cursor: this.oldestSeq, limit: PAGE });
      if (this.room !== room) return;
      const messages = [...page.messages].reverse();
      const before = this.scroller.scrollHeight - this.scroller.scrollTop;
      const frag = document.createDocumentFragment();
      for (const m of messages) {
        if (this.seqs.has(m.seq) || m.seq >= this.oldestSeq) continue;
        this.seqs.add(m.seq);
        if (shown(m)) frag.append(this.#entryEl(m));
      }
      if (messages.length) this.oldestSeq = Math.min(this.oldestSeq, messages[0].seq);
      this.hasOlder = page.next_cursor != null;
      this.list.prepend(frag);
      // Keep what the reader was looking at in place.
      this.scroller.scrollTop = this.scroller.scrollHeight - before;
    } catch (e) {
      this.error.textContent = `Could not load older messages: ${describe(e)}`;
    } finally {
      this.loadingOlder = false;
      this.olderButton.disabled = false;
      if (this.room === room) this.#updateOlder();
    }
  }

  #updateOlder() {
    this.hasOlder = this.hasOlder && this.oldestSeq != null && this.oldestSeq > 1;
    this.olderButton.hidden = !this.hasOlder;
    this.historyStart.hidden = this.hasOlder;
  }

  // --- sending -------------------------------------------------------------

  #send() {
    if (!this.room) return;
    const content = this.input.value.trim();
    if (!content) return;
    const promise = this.client.send(this.room.id, content);
    this.input.value = '';
    this.#autosize();
    this.#addPending(promise.clientMsgId, content, promise);
    this.#scrollToBottom();
    this.input.focus();
  }

  #track(clientMsgId) {
    // A send queued before the room was (re)opened: follow it through the ack event.
    return new Promise((resolve, reject) => {
      const offAck = this.client.on('ack', (a) => {
        if (a.client_msg_id === clientMsgId) { offAck(); offFail(); resolve(a); }
      });
      const offFail = this.client.on('send_failed', (f) => {
        if (f.client_msg_id === clientMsgId) { offAck(); offFail(); reject(Object.assign(new Error(f.message), { code: f.code })); }
      });
    });
  }

  #addPending(clientMsgId, content, promise) {
    const status = el('span', { class: 'status', 'data-testid': 'message-status' });
    const li = el('li', {
      class: 'message mine unconfirmed',
      'data-testid': 'message',
      dataset: { state: 'pending', clientMsgId, userId: this.client.user?.id },
    },
    el('div', { class: 'meta' },
      el('span', { class: 'author', 'data-testid': 'message-author', text: this.client.user?.username || 'me' }),
      status),
    el('p', { class: 'content', 'data-testid': 'message-content', text: content }));
    this.pending.set(clientMsgId, li);
    this.list.append(li);
    this.#pendingLabel(li);
    promise.then((ack) => {
      if (!li.isConnected) return;
      li.dataset.state = 'acked';
      li.dataset.seq = ack.seq;
      status.textContent = 'Sent ✓';
    }, (err) => {
      // Muted meanwhile (no event says so): the member panel learns it, and the composer.
      if (err.code === 'muted') this.members.load();
      if (!li.isConnected) return;
      li.dataset.state = 'failed';
      status.replaceChildren(`Not sent (${err.code || 'error'}) `,
        el('button', {
          type: 'button',
          class: 'retry',
          text: 'Retry',
          onclick: () => {
            li.remove();
            this.pending.delete(clientMsgId);
            if (!this.room) return;
            const again = this.client.send(this.room.id, content);
            this.#addPending(again.clientMsgId, content, again);
          },
        }));
    });
  }

  #pendingLabel(li) {
    if (li.dataset.state !== 'pending') return;
    const status = li.querySelector('.status');
    status.textContent = this.client.state === 'open' ? 'Sending…' : 'Waiting for the connection…';
  }

  #refreshPendingLabels() {
    for (const li of this.pending.values()) this.#pendingLabel(li);
  }

  // --- typing ----------------------------------------------------------------

  #setTyping(userId, username, on) {
    const current = this.typers.get(userId);
    if (current) clearTimeout(current.timer);
    if (on) {
      const timer = setTimeout(() => this.#setTyping(userId, username, false), TYPING_SAFETY_MS);
      this.typers.set(userId, { username, timer });
    } else if (!current) {
      return;
    } else {
      this.typers.delete(userId);
    }
    const names = [...this.typers.values()].map((t) => t.username);
    this.typingLine.textContent =
      names.length === 0 ? '' :
      names.length === 1 ? `${names[0]} is typing…` :
      names.length === 2 ? `${names[0]} and ${names[1]} are typing…` :
      `${names.length} people are typing…`;
  }

  // --- the member panel ---------------------------------------------------------

  #toggleMembers(force) {
    const toggle = byId('toggle-members');
    const narrow = window.matchMedia('(max-width: 720px)').matches;
    if (narrow) {
      const open = force ?? !this.chat.classList.contains('members-open');
      this.chat.classList.toggle('members-open', open);
      toggle.setAttribute('aria-expanded', String(open));
      if (open) byId('close-members').focus();
      else toggle.focus();
    } else {
      const hidden = force === undefined ? !this.chat.classList.contains('members-hidden') : !force;
      this.chat.classList.toggle('members-hidden', hidden);
      toggle.setAttribute('aria-expanded', String(!hidden));
    }
  }

  // --- leaving -----------------------------------------------------------------

  async #leave() {
    if (!this.room) return;
    const room = this.room;
    this.leaving = true;
    try {
      await this.client.leave(room.id);
      this.rooms.remove(room.id);
      this.close();
      this.onLeft(room.id, `You left ${roomLabel(room)}.`);
    } catch (e) {
      this.error.textContent = `Could not leave the room: ${describe(e)}`;
    } finally {
      this.leaving = false;
    }
  }

  // --- helpers -------------------------------------------------------------------

  #nearBottom() {
    return this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight < 120;
  }

  #scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  #autosize() {
    this.input.classList.toggle('multiline', this.input.value.includes('\n'));
    this.input.rows = Math.min(6, Math.max(1, this.input.value.split('\n').length));
  }
}
