// The open room: its stream in the timeline (the newest page at once, older pages on
// scroll-up or when a jump needs them, live entries as they come, the user's own sends
// pending then confirmed), the unread divider and the jumps to it and to the end,
// marking the room read as the user sees it, who is typing, the composer; its header,
// members, thread and tools (pins, reports, settings, slow mode) are modules of their
// own, wired here.
import { byId, el, describe } from './dom.js';
import { Members } from './members.js';
import { roomLabel } from './rooms.js';
import { RoomHead } from './roomhead.js';
import { SidePanels } from './panels.js';
import { PendingSends } from './sends.js';
import { RoomStore, isMessage } from './store.js';
import { Timeline } from './timeline.js';
import { buildRows, estimateHeight } from './rows.js';
import { messageRow, pendingRow, systemRow } from './message.js';
import { Composer } from './composer.js';
import { MessageActions, setTabbable } from './actions.js';
import { ThreadPanel } from './thread.js';
import { TypingLine } from './typing.js';
import { RoomTools } from './tools.js';
import { plain } from './markdown.js';
import { clip } from './format.js';
import { Uploads } from './uploads.js';
import { filesText } from './files.js';

const PAGE = 50;
const OLDER_PAGE = 100;
// System entries that change who is in the room: the member list follows them.
const MEMBERSHIP = new Set(['joined', 'left', 'kicked', 'banned']);

/** One open room at a time. The client stays subscribed to the user's rooms (the room list's doing). */
export class RoomView {
  constructor(client, rooms, { onLeft, onBack, onDirect, onSearch, blocks }) {
    this.client = client;
    this.rooms = rooms;
    this.onLeft = onLeft;
    this.onBack = onBack;
    this.onSearch = onSearch;
    this.room = null;
    this.store = new RoomStore(null, null);
    this.chat = byId('chat-view');
    this.pane = byId('room-pane');
    this.empty = byId('room-empty');
    this.list = byId('messages');
    this.olderButton = byId('load-older');
    this.historyStart = byId('history-start');
    this.errorLine = byId('room-error');
    this.announcer = byId('announcer');
    this.jumpUnread = byId('jump-unread');
    this.jumpLatest = byId('jump-latest');
    this.head = new RoomHead(client, rooms, {
      onSearch: () => this.onSearch?.('room'),
      onLeave: () => this.#leave(),
      onError: (text) => this.showError(text),
    });
    this.panels = new SidePanels({
      onClosed: (which) => { if (which === 'thread') this.thread.close(); },
      escapable: () => !document.querySelector('dialog[open]') && !this.actions.picker.isOpen,
    });
    this.sends = new PendingSends(client, { onChange: () => this.#pendingChanged() });
    this.typingLine = new TypingLine(byId('typing'));
    this.members = new Members(client, {
      blocks,
      onDirect,
      onMe: (me) => this.#setStanding(me),
    });
    this.timeline = new Timeline({
      scroller: byId('scroller'),
      list: this.list,
      build: (row) => this.#build(row),
      estimate: estimateHeight,
      onScroll: () => this.#scrolled(),
    });
    this.uploads = new Uploads(client, {
      roomId: () => this.room?.id ?? null,
      // "Wait for the upload" goes once the files are ready (or removed).
      onChange: () => {
        if (this.blockedByUpload && !this.uploads.busy() && !this.uploads.failed()) {
          this.blockedByUpload = false;
          this.showError('');
        }
      },
    });
    this.composer = new Composer({
      files: this.uploads,
      form: byId('composer'),
      input: byId('message-input'),
      button: byId('send-button'),
      bar: byId('composer-bar'),
      placeholder: 'Write a message',
      onSend: (text, { replyTo }) => this.send(text, { replyTo }),
      onEdit: (m, text) => this.edit(m, text),
      onTyping: (on) => this.typing(on),
      onEditLast: () => this.#editLast(),
    });
    this.composer.onBlocked = (text) => {
      this.blockedByUpload = true;
      this.showError(text);
    };
    this.actions = new MessageActions(client, this);
    this.actions.attach(this.list, {
      composer: this.composer,
      rows: () => this.rows.map((r) => r.key),
      reveal: (key) => this.#reveal(key),
    });
    this.thread = new ThreadPanel(client, this, this.actions);
    this.tools = new RoomTools(client, this, blocks);
    this.#reset();

    this.olderButton.addEventListener('click', () => this.loadOlder());
    this.jumpUnread.addEventListener('click', () => this.#jumpToUnread());
    this.jumpLatest.addEventListener('click', () => {
      this.timeline.scrollToBottom();
      this.#afterScroll();
      this.composer.focus();
    });
    document.addEventListener('visibilitychange', () => this.#markSeenSoon());
    window.addEventListener('focus', () => this.#markSeenSoon());
    byId('back-to-rooms').addEventListener('click', () => this.onBack());

    client.on('messages', ({ room_id, messages }) => {
      if (room_id !== this.room?.id) return;
      // Until the first page is in, live entries wait: a change must find its message.
      if (this.waiting) {
        this.waiting.push(...messages);
        return;
      }
      this.#live(messages);
    });
    client.on('joined', ({ room_id, resumed }) => {
      // After a reconnect, presence events may have been missed: ask again.
      if (room_id === this.room?.id && resumed) this.members.load();
    });
    client.on('typing', (t) => {
      if (t.room_id === this.room?.id) this.typingLine.set(t.user_id, t.username, t.typing);
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
        this.typingLine.set(u.user_id, u.username, false);
      }
    });
    client.on('state', ({ state }) => {
      if (state !== 'open') this.typingLine.clear();
      this.members.setConnected(state === 'open');
      this.#contextChanged();
    });
    // Our role or mute changed in the open room: what we may do follows at once.
    client.on('membership', ({ room_id, change }) => {
      if (room_id === this.room?.id && (change === 'muted' || change === 'role')) this.members.load();
    });
    client.on('send_failed', (f) => {
      if (f.room_id !== this.room?.id || f.code === 'session_ended' || f.code === 'cancelled') return;
      // Muted meanwhile (no event says so): the member panel learns it, and the composer.
      if (f.code === 'muted') this.members.load();
      if (this.tools.failed(f)) return;
      if (f.event && f.event !== 'send_message') this.showError(`Not done (${f.code}): ${f.message}`);
    });
  }

  #reset() {
    this.store = new RoomStore(this.room?.id ?? null, this.client.user?.id ?? null);
    this.offStore?.();
    this.offStore = this.store.listen((e) => this.#onStore(e));
    this.sends.reset(this.room?.id ?? null);
    this.sends.setSeen((seq) => this.store.seen.has(seq));
    this.rows = [];
    this.rowMap = new Map();
    this.ctxVersion = 0;
    this.hasOlder = false;
    this.loadingOlder = null;
    this.dividerAfter = null;
    this.highlight = null;
    this.lastTop = null; // the scroller's last position (which way the reader scrolls)
    this.markQueued = false;
    this.rebuildQueued = false;
    this.bulk = false; // loading many older pages: drawn once at the end
    this.waiting = null; // live entries held while the first page loads
    this.standing = { role: 'member', muted: false };
    this.timeline.clear();
    this.typingLine.clear();
    this.composer.reset();
    this.uploads.clear();
    this.thread.close();
    this.errorLine.textContent = '';
    this.olderButton.hidden = true;
    this.historyStart.hidden = true;
    this.jumpUnread.hidden = true;
    this.jumpLatest.hidden = true;
    this.head.show(this.room);
    this.announcer.replaceChildren();
    this.composer.setMuted(false);
    this.tools.open(this.room);
  }

  /** Open one of the user's rooms: its newest page, then live entries; its members. */
  async open(room) {
    if (this.room?.id === room.id) {
      this.composer.focus();
      return;
    }
    this.#release();
    this.room = room;
    this.#reset();
    this.empty.hidden = true;
    this.pane.hidden = false;
    this.chat.classList.add('room-open');
    if (this.panels.current === 'thread') this.panels.close();
    this.members.show(room);
    // The unread divider goes after what the user had read when the room opened.
    this.dividerAfter = this.rooms.readPosition(room.id);
    this.sends.take();
    // Live entries from the subscription's position on (the room list keeps the user's
    // rooms subscribed); the page below covers what came before.
    const known = this.rooms.rooms.get(room.id);
    this.waiting = [];
    this.client.subscribe(room.id, known ? { since: known.lastSeq } : undefined);
    try {
      const page = await this.client.api.messages(room.id, { limit: PAGE });
      if (this.room !== room) return;
      const messages = [...page.messages].reverse();
      const top = messages.length ? messages[messages.length - 1].seq : 0;
      this.store.addPage(messages, { asOf: top, myReactions: page.my_reactions });
      this.hasOlder = page.next_cursor != null && page.first_seq == null;
      const held = this.waiting;
      this.waiting = null;
      this.#live(held);
      this.#rebuild();
      this.#initialScroll();
    } catch (e) {
      if (this.room !== room) return;
      const held = this.waiting || [];
      this.waiting = null;
      this.#live(held);
      if (e.code === 'not_member' || e.code === 'room_not_found') {
        this.close();
        this.onLeft(room.id, `You are no longer a member of ${roomLabel(room)}.`);
        return;
      }
      this.errorLine.textContent = `Could not open the room: ${describe(e)}`;
    }
    this.#updateOlder();
    this.#markSeen();
    if (this.room === room && !this.chat.querySelector('dialog[open]')) this.composer.focus();
  }

  /** Close the room view (the membership stays). */
  close() {
    this.#release();
    this.room = null;
    this.#reset();
    this.members.show(null);
    this.pane.hidden = true;
    this.empty.hidden = false;
    this.chat.classList.remove('room-open');
    if (this.panels.current === 'thread') this.panels.close();
  }

  // Rooms the list keeps stay subscribed (for their unread counts); others are let go.
  #release() {
    if (this.room && !this.rooms.find(this.room.id)) this.client.unsubscribe(this.room.id);
  }

  // --- the stream ---------------------------------------------------------------

  #live(messages) {
    if (!messages.length) return;
    // Our own sends that arrive stop being pending before anything is drawn again.
    const confirmed = this.sends.arrived(messages);
    const fresh = this.store.addLive(messages);
    this.tools.live(messages);
    for (const m of fresh) if (isMessage(m)) this.typingLine.set(m.user_id, m.username, false);
    if (confirmed) this.#pendingChanged();
    if (messages.some((m) => m.kind === 'system' && MEMBERSHIP.has(m.data?.type))) this.members.loadSoon();
    this.#announce(fresh);
  }

  // New messages of others, read out by screen readers (politely).
  #announce(entries) {
    const me = this.client.user?.id;
    for (const m of entries) {
      if (m.user_id === me && m.kind !== 'system') continue;
      const text = m.kind === 'system' ? m.content
        : this.tools.blocked(m) ? 'Message from a blocked user' : `${m.username}: ${clip(plain(m.content), 200)}`;
      this.announcer.append(el('p', { text }));
    }
    while (this.announcer.childElementCount > 5) this.announcer.firstElementChild.remove();
  }

  #onStore(event) {
    this.thread.onStore(event);
    this.#rebuildSoon();
  }

  #rebuildSoon() {
    if (this.rebuildQueued || this.bulk) return;
    this.rebuildQueued = true;
    queueMicrotask(() => {
      this.rebuildQueued = false;
      if (this.room) this.#rebuild();
    });
  }

  #rebuild() {
    this.rebuildQueued = false;
    const pending = this.pendingList();
    this.rows = buildRows(this.store.entries, pending, {
      dividerAfter: this.dividerAfter,
      heldFrom: this.hasOlder ? this.store.low : 1,
      me: this.client.user?.id,
      ctxVersion: this.ctxVersion,
      highlight: this.highlight,
    }, this.rowMap);
    this.rowMap = new Map(this.rows.map((r) => [r.key, r]));
    // What is loaded (not only drawn), for tests and tools.
    this.list.dataset.loadedFrom = this.store.low ?? '';
    this.list.dataset.loadedTo = this.store.high ?? '';
    this.timeline.setRows(this.rows);
    this.actions.ensureTabStop(this.list);
    this.#afterScroll();
  }

  // Something every row shows changed (role, mute, connection): rows are built again.
  #contextChanged() {
    this.ctxVersion++;
    if (this.room) this.#rebuildSoon();
    this.thread.render();
  }

  /** What rows need to know to be built (the same object until something it holds changes). */
  rowContext() {
    const held = this.ctxHeld;
    if (held && held.version === this.ctxVersion && held.store === this.store) return held.ctx;
    const ctx = this.#makeContext();
    this.ctxHeld = { version: this.ctxVersion, store: this.store, ctx };
    return ctx;
  }

  #makeContext() {
    const me = this.client.user?.id;
    const mod = this.standing.role === 'owner' || this.standing.role === 'admin';
    const canSend = !this.standing.muted;
    return {
      me,
      username: this.client.user?.username || 'me',
      store: this.store,
      online: this.client.state === 'open',
      canReact: canSend,
      canSend,
      canEdit: (m) => m.user_id === me && !m.deleted_at && canSend,
      canDelete: (m) => !m.deleted_at && (m.user_id === me || (mod && this.room?.visibility !== 'direct')),
      quoteOf: (id) => this.store.get(id),
      ...this.tools.rowContext(),
    };
  }

  /** Something rows show changed outside the store (pins, blocks): they are built again. */
  refreshRows() { this.#contextChanged(); }

  /** The server's copy of room `id` (settings): merged into the open room. */
  roomUpdated(id, fields) {
    if (this.room?.id !== id) return;
    Object.assign(this.room, fields);
    this.tools.configure();
    this.#contextChanged();
  }

  #build(row) {
    const ctx = this.rowContext();
    let node;
    if (row.pending) node = pendingRow(row, ctx);
    else if (row.entry.kind === 'system') node = systemRow(row);
    else node = messageRow(row, ctx);
    if (row.highlight) node.classList.add('highlight');
    setTabbable(node, this.actions.activeKey(this.list) === row.key);
    return node;
  }

  // --- older history, jumps ---------------------------------------------------------

  /** Load the page before the oldest entry held; resolves when it is in. */
  loadOlder() {
    if (!this.room || !this.hasOlder) return Promise.resolve(false);
    if (this.loadingOlder) return this.loadingOlder;
    const room = this.room;
    this.olderButton.disabled = true;
    this.loadingOlder = (async () => {
      try {
        const page = await this.client.api.messages(room.id, { cursor: this.store.low, limit: OLDER_PAGE });
        if (this.room !== room) return false;
        const messages = [...page.messages].reverse();
        const asOf = Math.max(this.client.position(room.id) ?? 0, this.store.high ?? 0);
        this.store.addPage(messages, { asOf, myReactions: page.my_reactions, older: true });
        this.hasOlder = page.next_cursor != null && page.first_seq == null && (this.store.low ?? 1) > 1;
        if (!this.bulk) this.#rebuild();
        return true;
      } catch (e) {
        if (this.room === room) this.errorLine.textContent = `Could not load older messages: ${describe(e)}`;
        return false;
      } finally {
        this.loadingOlder = null;
        this.olderButton.disabled = false;
        if (this.room === room) this.#updateOlder();
      }
    })();
    return this.loadingOlder;
  }

  #updateOlder() {
    this.olderButton.hidden = !this.hasOlder;
    this.historyStart.hidden = this.hasOlder || !this.room || this.store.entries.length === 0;
  }

  // Older pages until `done()` holds (or the start of the room), drawn once at the end:
  // a jump thousands of messages back costs the requests, not a redraw per page.
  async #loadUntil(done) {
    const room = this.room;
    this.bulk = true;
    const button = this.jumpUnread;
    const label = button.textContent;
    try {
      while (this.room === room && !done() && this.hasOlder) {
        button.textContent = `Loading older messages… (${this.store.entries.length})`;
        if (!(await this.loadOlder())) break;
      }
    } finally {
      this.bulk = false;
      button.textContent = label;
      if (this.room === room) this.#rebuild();
    }
    return this.room === room;
  }

  /** Show the entry with this seq in context (older pages loaded as needed), highlighted. */
  async jumpToSeq(seq) {
    if (!(await this.#loadUntil(() => this.store.low == null || this.store.low <= seq))) return false;
    const key = `s${seq}`;
    if (!this.rowMap.has(key)) return false;
    this.highlight = key;
    this.#rebuild();
    const node = this.timeline.scrollToKey(key, 'center');
    node?.focus({ preventScroll: true });
    this.#afterScroll();
    clearTimeout(this.highlightTimer);
    this.highlightTimer = setTimeout(() => {
      if (this.highlight === key) {
        this.highlight = null;
        this.#rebuildSoon();
      }
    }, 2500);
    return true;
  }

  /** Show the message with this id (a reply's quote): older pages until it is found. */
  async jumpToMessage(id) {
    if (!(await this.#loadUntil(() => this.store.indexOfSeq(this.store.get(id)?.seq) >= 0))) return false;
    const m = this.store.get(id);
    if (!m || this.store.indexOfSeq(m.seq) < 0) {
      this.errorLine.textContent = 'That message is no longer in the room.';
      return false;
    }
    return this.jumpToSeq(m.seq);
  }

  async #jumpToUnread() {
    const after = this.dividerAfter ?? 0;
    if (!(await this.#loadUntil(() => this.store.low == null || this.store.low <= after + 1))) return;
    const row = this.rows.find((r) => r.divider);
    if (!row) return;
    const node = this.timeline.scrollToKey(row.key, 'start');
    node?.focus({ preventScroll: true });
    this.#afterScroll();
  }

  #reveal(key) {
    const node = this.timeline.nodeOf(key);
    if (node) {
      node.scrollIntoView({ block: 'nearest' });
      return node;
    }
    return this.timeline.scrollToKey(key, 'center');
  }

  // Where the room opens: at the first unread when it is more than a screen up, else at the end.
  #initialScroll() {
    const row = this.rows.find((r) => r.divider);
    const unreadRows = row ? this.rows.length - this.rows.indexOf(row) : 0;
    if (row && unreadRows > 12) this.timeline.scrollToKey(row.key, 'start');
    else this.timeline.scrollToBottom();
    this.#afterScroll();
  }

  // Near the top while scrolling up (the reader's doing, not the room being drawn): the
  // page before comes in above, and what is on screen stays in place.
  #scrolled() {
    const top = byId('scroller').scrollTop;
    const up = this.lastTop != null && top < this.lastTop;
    this.lastTop = top;
    if (up && top < 300 && this.hasOlder && !this.waiting) this.loadOlder();
    this.#afterScroll();
  }

  // The jump buttons: to the first unread when it is above the screen (or not loaded
  // yet), to the end when the reader is not there.
  #afterScroll() {
    this.#markSeenSoon();
    const i = this.rows.findIndex((r) => r.divider);
    const after = this.dividerAfter;
    let above;
    if (i >= 0) above = i < this.timeline.visibleRange()[0];
    else above = after != null && this.store.low != null && this.store.low > after + 1 && (this.store.high ?? 0) > after;
    this.jumpUnread.hidden = !above;
    this.jumpLatest.hidden = this.timeline.atBottom() || this.rows.length === 0;
  }

  // --- read state ------------------------------------------------------------------

  // The user sees the newest entry (page visible, scrolled to the bottom): mark the room
  // read up to it, which clears its unread count here and on the user's other devices.
  #markSeen() {
    const room = this.room;
    const newest = this.store.high;
    if (!room || newest == null || document.visibilityState !== 'visible' || !this.timeline.atBottom()) return;
    this.rooms.setRead(room.id, newest);
    this.client.markRead(room.id, newest).catch(() => {
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

  // --- sending and changing ------------------------------------------------------------

  /** The user's unconfirmed sends in this room, in send order. */
  pendingList() { return this.sends.list(); }

  /** Send a message (a reply when `replyTo` is set). */
  send(text, { replyTo, attachments } = {}) {
    if (!this.room) return;
    // The composer's uploaded files go with its send (a retry brings its own).
    if (!attachments) {
      const files = this.uploads.ready() ? this.uploads.take() : [];
      if (files.length) attachments = files.map((f) => ({ file_id: f.id }));
      if (files.length && !text) text = filesText(files);
    }
    const options = replyTo != null ? { replyTo } : {};
    if (attachments?.length) options.attachments = attachments;
    const promise = this.client.send(this.room.id, text, options);
    this.sends.add({ client_msg_id: promise.clientMsgId, content: text, reply_to: replyTo, attachments, state: 'pending' });
    this.tools.sent();
    this.timeline.scrollToBottom();
  }

  /** Replace the content of one's message. */
  edit(message, text) {
    if (!this.room) return;
    this.client.edit(this.room.id, message.id, text).catch((e) => {
      this.errorLine.textContent = `Could not save the edit: ${describe(e)}`;
    });
  }

  /** Typing started or stopped in one of the room's fields. */
  typing(on) {
    if (!this.room) return;
    if (on) this.client.typing(this.room.id);
    else this.client.stopTyping(this.room.id);
  }

  /** Send again a message the server refused (it gets a new id). */
  retry(clientMsgId) {
    const p = this.sends.remove(clientMsgId);
    if (p) this.send(p.content, { replyTo: p.reply_to, attachments: p.attachments || [] });
  }

  /** Give up a message that was not sent. */
  discard(clientMsgId) {
    this.client.cancel(clientMsgId);
    this.sends.remove(clientMsgId);
  }

  /** Show a problem under the conversation. */
  showError(text) {
    this.errorLine.textContent = text;
  }

  #pendingChanged() {
    this.#rebuildSoon();
    this.thread.onStore({ type: 'insert', entries: [], pending: true });
  }

  #editLast() {
    const me = this.client.user?.id;
    for (let i = this.store.entries.length - 1; i >= 0; i--) {
      const m = this.store.entries[i];
      if (m.user_id === me && isMessage(m) && !m.deleted_at) {
        this.composer.edit(m);
        return true;
      }
    }
    return false;
  }

  // Our role and mute in the room (from the member list).
  #setStanding(me) {
    const next = { role: me?.role || 'member', muted: !!me?.muted };
    if (next.role === this.standing.role && next.muted === this.standing.muted) return;
    this.standing = next;
    this.composer.setMuted(next.muted);
    this.uploads.setEnabled(!next.muted);
    this.thread.composer.setMuted(next.muted);
    this.tools.standing();
    this.#contextChanged();
  }

  // --- panels ---------------------------------------------------------------------

  /** Open the thread of `m` in the side panel. */
  openThread(m) {
    this.thread.open(m);
  }

  /** Close the thread or search panel (the field gets the focus back). */
  closePanel() {
    this.panels.close();
    if (this.room) this.composer.focus();
  }

  /** Which side panel shows: 'members', 'thread', 'search', 'pins', 'reports' or none. */
  showPanel(which) {
    this.panels.show(which);
  }

  // --- leaving ----------------------------------------------------------------------

  async #leave() {
    if (!this.room) return;
    const room = this.room;
    try {
      await this.client.leave(room.id);
      this.rooms.remove(room.id);
      this.close();
      this.onLeft(room.id, `You left ${roomLabel(room)}.`);
    } catch (e) {
      this.errorLine.textContent = `Could not leave the room: ${describe(e)}`;
    }
  }
}
