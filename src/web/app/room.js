// The open room: its messages (history on scroll-up, live ones, our own pending and
// acknowledged sends), who is typing, and who is online.
import { byId, el, clear, timeOf, describe } from './dom.js';

const TYPING_SAFETY_MS = 8000; // the server ends a typing after 6 s; never show one longer

/** One open room at a time; the client stays subscribed to it while it is open. */
export class RoomView {
  constructor(client, { onLeft, onBack, onJoined }) {
    this.client = client;
    this.onLeft = onLeft;
    this.onBack = onBack;
    this.onJoined = onJoined;
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
    this.memberList = byId('member-list');
    this.onlineCount = byId('online-count');
    this.chat = byId('chat-view');
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
    });
    byId('leave-room').addEventListener('click', () => this.#leave());
    byId('back-to-rooms').addEventListener('click', () => this.onBack());
    const toggle = byId('toggle-members');
    toggle.setAttribute('aria-expanded', String(!window.matchMedia('(max-width: 720px)').matches));
    toggle.addEventListener('click', () => this.#toggleMembers());
    byId('close-members').addEventListener('click', () => this.#toggleMembers(false));

    client.on('messages', ({ room_id, messages }) => {
      if (room_id === this.room?.id) this.#appendLive(messages);
    });
    client.on('joined', ({ room_id, resumed }) => {
      // After a reconnect, presence events may have been missed: ask again.
      if (room_id === this.room?.id && resumed) this.#loadMembers();
    });
    client.on('typing', (t) => {
      if (t.room_id === this.room?.id) this.#setTyping(t.user_id, t.username, t.typing);
    });
    client.on('presence', (p) => {
      if (p.room_id === this.room?.id) this.#setOnline(p.user_id, p.username, p.status === 'online');
    });
    client.on('user_joined', (u) => {
      if (u.room_id === this.room?.id) this.#setOnline(u.user_id, u.username, true);
    });
    client.on('user_left', (u) => {
      if (u.room_id === this.room?.id) {
        this.#setOnline(u.user_id, u.username, false);
        this.#setTyping(u.user_id, u.username, false);
      }
    });
    client.on('left_room', ({ room_id }) => {
      if (room_id === this.room?.id && !this.leaving) {
        // Our membership ended elsewhere (another tab or device left the room).
        const name = this.room.name;
        this.close();
        this.onLeft(room_id, `You are no longer a member of #${name}.`);
      }
    });
    client.on('state', () => this.#refreshPendingLabels());
  }

  #reset() {
    this.pending = new Map(); // client_msg_id -> li of a send not yet seen in the room
    this.seqs = new Set();
    this.oldestSeq = null;
    this.hasOlder = false;
    this.loadingOlder = false;
    this.members = new Map(); // user id -> { username, online }
    for (const t of this.typers?.values() || []) clearTimeout(t.timer);
    this.typers = new Map(); // user id -> { username, timer }
    this.leaving = false;
    clear(this.list);
    clear(this.memberList);
    this.typingLine.textContent = '';
    this.error.textContent = '';
    this.olderButton.hidden = true;
    this.historyStart.hidden = true;
    this.onlineCount.textContent = '';
  }

  /** Open `room`: become a member, subscribe, show recent history and the members. */
  async open(room) {
    if (this.room?.id === room.id) {
      this.input.focus();
      return;
    }
    if (this.room) this.client.unsubscribe(this.room.id);
    this.#reset();
    this.room = room;
    this.title.textContent = `# ${room.name}`;
    this.empty.hidden = true;
    this.pane.hidden = false;
    this.chat.classList.add('room-open');
    for (const p of this.client.pending(room.id)) this.#addPending(p.client_msg_id, p.content, this.#track(p.client_msg_id));
    try {
      await this.client.join(room.id);
      if (this.room !== room) return;
      this.onJoined(room.id);
      this.#loadMembers();
      this.#updateOlder();
      this.#scrollToBottom();
    } catch (e) {
      if (this.room !== room) return;
      if (e.code === 'unsubscribed' || e.code === 'session_ended') return;
      this.error.textContent = `Could not open the room: ${describe(e)}`;
    }
    this.input.focus();
  }

  /** Close the room view (the membership stays). */
  close() {
    if (this.room) this.client.unsubscribe(this.room.id);
    this.room = null;
    this.#reset();
    this.pane.hidden = true;
    this.empty.hidden = false;
    this.chat.classList.remove('room-open', 'members-open');
  }

  // --- messages ------------------------------------------------------------

  #messageEl(m, state) {
    const mine = m.user_id === this.client.user?.id;
    const li = el('li', {
      class: `message${mine ? ' mine' : ''}${m.kind ? ` kind-${m.kind}` : ''}`,
      'data-testid': 'message',
      dataset: { seq: m.seq, userId: m.user_id, state: state || 'stored' },
    },
    el('div', { class: 'meta' },
      el('span', { class: 'author', 'data-testid': 'message-author', text: m.username }),
      el('time', { datetime: m.created_at, text: timeOf(m.created_at) }),
      mine ? el('span', { class: 'status', 'data-testid': 'message-status', text: 'Sent ✓' }) : null),
    el('p', { class: 'content', 'data-testid': 'message-content', text: m.content }));
    if (m.client_msg_id) li.dataset.clientMsgId = m.client_msg_id;
    return li;
  }

  // Live and first-page messages, in seq order: before our own unconfirmed sends.
  #appendLive(messages) {
    const stick = this.#nearBottom();
    const firstUnconfirmed = this.list.querySelector('li.unconfirmed');
    let mineArrived = false;
    for (const m of messages) {
      if (this.seqs.has(m.seq)) continue;
      this.seqs.add(m.seq);
      if (this.oldestSeq == null || m.seq < this.oldestSeq) this.oldestSeq = m.seq;
      const mine = m.user_id === this.client.user?.id;
      if (m.client_msg_id && this.pending.has(m.client_msg_id)) {
        this.pending.get(m.client_msg_id).remove();
        this.pending.delete(m.client_msg_id);
        mineArrived = true;
      }
      this.list.insertBefore(this.#messageEl(m, mine ? 'acked' : null), firstUnconfirmed?.isConnected ? firstUnconfirmed : null);
      this.#setTyping(m.user_id, m.username, false);
    }
    if (stick || mineArrived) this.#scrollToBottom();
  }

  async #loadOlder() {
    if (!this.room || !this.hasOlder || this.loadingOlder) return;
    const room = this.room;
    this.loadingOlder = true;
    this.olderButton.disabled = true;
    try {
      const { messages } = await this.client.loadOlder(room.id);
      if (this.room !== room) return;
      const before = this.scroller.scrollHeight - this.scroller.scrollTop;
      const frag = document.createDocumentFragment();
      for (const m of messages) {
        if (this.seqs.has(m.seq)) continue;
        this.seqs.add(m.seq);
        frag.append(this.#messageEl(m, m.user_id === this.client.user?.id ? 'acked' : null));
      }
      if (messages.length) this.oldestSeq = messages[0].seq;
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
    this.hasOlder = this.oldestSeq != null && this.oldestSeq > 1;
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

  // --- members and presence --------------------------------------------------

  async #loadMembers() {
    const room = this.room;
    try {
      const list = await this.client.api.members(room.id);
      if (this.room !== room) return;
      this.members = new Map(list.map((m) => [m.id, { username: m.username, online: m.online }]));
      // We are in the room right now, whatever the server's presence has caught up to.
      const me = this.client.user;
      if (me && this.client.state === 'open') this.members.set(me.id, { username: me.username, online: true });
      this.#renderMembers();
    } catch (e) {
      if (this.room === room) this.error.textContent = `Could not load the members: ${describe(e)}`;
    }
  }

  #setOnline(userId, username, online) {
    const m = this.members.get(userId);
    if (m && m.online === online) return;
    this.members.set(userId, { username: m?.username || username, online });
    this.#renderMembers();
  }

  #renderMembers() {
    const sorted = [...this.members.entries()].sort(([, a], [, b]) =>
      (b.online - a.online) || a.username.localeCompare(b.username));
    const me = this.client.user?.id;
    this.memberList.replaceChildren(...sorted.map(([id, m]) => el('li', {
      'data-testid': 'member',
      dataset: { userId: id, username: m.username, online: String(m.online) },
    },
    el('span', { class: 'dot', 'aria-hidden': 'true' }),
    el('span', { class: 'name', text: id === me ? `${m.username} (you)` : m.username }),
    el('span', { class: 'presence', text: m.online ? 'online' : 'offline' }))));
    const online = sorted.filter(([, m]) => m.online).length;
    this.onlineCount.textContent = `(${online} online)`;
    byId('toggle-members').setAttribute('aria-label', `Members, ${online} online`);
  }

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
      this.close();
      this.onLeft(room.id, `You left #${room.name}.`);
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
