// The thread panel: one message and its replies (GET /rooms/:id/messages?thread=),
// kept live from the room's stream (a reply is a message whose reply_to is the root),
// with a composer of its own whose sends reply to the root.
import { byId, describe } from './dom.js';
import { Composer } from './composer.js';
import { messageRow, pendingRow } from './message.js';
import { setTabbable, focusMark, refocus } from './actions.js';

const PAGE = 50;

/** The thread panel of the open room. */
export class ThreadPanel {
  constructor(client, view, actions) {
    this.client = client;
    this.view = view; // the RoomView: store, room, pending, row context, panels
    this.actions = actions;
    this.panel = byId('thread-panel');
    this.rootList = byId('thread-root');
    this.list = byId('thread-list');
    this.count = byId('thread-count');
    this.older = byId('thread-older');
    this.error = byId('thread-error');
    this.root = null;
    this.replies = new Map(); // id -> message (store objects)
    this.cursor = null;
    this.composer = new Composer({
      form: byId('thread-composer'),
      input: byId('thread-input'),
      button: byId('thread-send'),
      bar: byId('thread-composer-bar'),
      placeholder: 'Reply in the thread',
      onSend: (text) => this.root && this.view.send(text, { replyTo: this.root.id, attachments: [] }),
      onEdit: (m, text) => this.view.edit(m, text),
      onTyping: (on) => this.view.typing(on),
      onEditLast: () => this.#editLast(),
    });
    byId('close-thread').addEventListener('click', () => this.view.closePanel());
    this.older.addEventListener('click', () => this.#loadOlder());
    actions.attach(this.list, {
      composer: this.composer,
      rows: () => [...this.list.children].map((li) => li.dataset.key),
      reveal: (key) => {
        const node = this.list.querySelector(`li[data-key="${CSS.escape(key)}"]`);
        node?.scrollIntoView({ block: 'nearest' });
        return node;
      },
    });
    actions.attach(this.rootList, {
      composer: this.composer,
      rows: () => [...this.rootList.children].map((li) => li.dataset.key),
      reveal: (key) => this.rootList.querySelector(`li[data-key="${CSS.escape(key)}"]`),
    });
  }

  /** The id of the open thread's root, or null. */
  get rootId() { return this.root?.id ?? null; }

  /** Show `root` and its replies. */
  async open(root) {
    const same = this.root?.id === root.id;
    this.root = root;
    this.view.showPanel('thread');
    if (same) {
      this.composer.focus();
      return;
    }
    this.replies = new Map();
    this.cursor = null;
    this.error.textContent = '';
    this.composer.reset();
    this.render();
    this.composer.focus();
    await this.#load();
  }

  /** Forget the thread (panel closed, room closed). */
  close() {
    this.root = null;
    this.replies = new Map();
    this.rootList.replaceChildren();
    this.list.replaceChildren();
  }

  async #load(cursor) {
    const room = this.view.room;
    const root = this.root;
    if (!room || !root) return;
    try {
      const page = await this.client.api.thread(room.id, root.id, { cursor, limit: PAGE });
      if (this.root !== root) return;
      const asOf = this.client.position(room.id) ?? 0;
      const rows = this.view.store.addDetached([...page.messages].reverse(), { asOf });
      for (const m of rows) this.replies.set(m.id, m);
      this.cursor = page.next_cursor ?? null;
      this.render();
      if (!cursor) this.#scrollToEnd();
    } catch (e) {
      if (this.root === root) this.error.textContent = `Could not load the thread: ${describe(e)}`;
    }
  }

  #loadOlder() {
    if (this.cursor != null) this.#load(this.cursor);
  }

  /** The room's store changed: new replies, or a change to the root or a reply. */
  onStore(event) {
    if (!this.root) return;
    if (event.type === 'update') {
      if (event.id === this.root.id || this.replies.has(event.id)) this.render();
      return;
    }
    let added = false;
    for (const m of event.entries) {
      if (m.reply_to === this.root.id && !this.replies.has(m.id)) {
        this.replies.set(m.id, m);
        added = true;
      }
    }
    if (added || event.pending) {
      const atEnd = this.#atEnd();
      this.render();
      if (atEnd) this.#scrollToEnd();
    }
  }

  /** Draw the root, the replies and the user's unsent replies. */
  render() {
    const root = this.root;
    if (!root) return;
    const ctx = { ...this.view.rowContext(), inThread: true };
    const activeRoot = this.actions.activeKey(this.rootList);
    const rootNode = messageRow({ key: 'root', entry: root, grouped: false }, ctx);
    rootNode.dataset.key = 'root';
    setTabbable(rootNode, activeRoot === 'root');
    const rootMark = focusMark(this.rootList);
    this.rootList.replaceChildren(rootNode);
    if (rootMark) refocus(rootNode, rootMark);
    const sorted = [...this.replies.values()].sort((a, b) => a.seq - b.seq);
    const pending = this.view.pendingList().filter((p) => p.reply_to === root.id);
    const n = sorted.length;
    this.count.textContent = n ? `${n} ${n === 1 ? 'reply' : 'replies'}${this.cursor != null ? ' (more above)' : ''}` : 'No replies yet: start the thread below.';
    this.older.hidden = this.cursor == null;
    const active = this.actions.activeKey(this.list);
    let prev = null;
    const nodes = sorted.map((m) => {
      const grouped = prev && prev.user_id === m.user_id && Date.parse(m.created_at) - Date.parse(prev.created_at) < 300_000;
      prev = m;
      const li = messageRow({ key: `t${m.id}`, entry: m, grouped }, ctx);
      li.dataset.key = `t${m.id}`;
      setTabbable(li, active === li.dataset.key);
      return li;
    });
    for (const p of pending) {
      const li = pendingRow({ key: `p${p.client_msg_id}`, pending: p, grouped: false }, ctx);
      li.dataset.key = `p${p.client_msg_id}`;
      nodes.push(li);
    }
    const mark = focusMark(this.list);
    this.list.replaceChildren(...nodes);
    if (mark) refocus(this.list.querySelector(`li[data-key="${CSS.escape(mark.key)}"]`), mark);
    this.actions.ensureTabStop(this.list);
  }

  #editLast() {
    const me = this.client.user?.id;
    const mine = [...this.replies.values()].filter((m) => m.user_id === me && !m.deleted_at).sort((a, b) => b.seq - a.seq)[0];
    if (!mine) return false;
    this.composer.edit(mine);
    return true;
  }

  #atEnd() {
    const s = byId('thread-scroller');
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  #scrollToEnd() {
    const s = byId('thread-scroller');
    s.scrollTop = s.scrollHeight;
  }
}
