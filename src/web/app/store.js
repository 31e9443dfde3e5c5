// The open room's messages as the app knows them: the entries shown in the timeline
// (messages and system entries, in seq order, one contiguous range of seqs), every
// message known by id (thread replies loaded on their own too), and the changes of
// PROTOCOL.md section 10 applied to them. Pure: no DOM (tested under Node).
//
// A message row read over REST shows its state as of the room's head at that moment
// (`asOf`); a change entry is applied only when it is newer, so a change seen both in
// a page and in the live stream counts once. Reactions are counts per emoji on the row;
// who reacted is only known from the reaction entries this page has seen, tracked per
// (message, emoji, user) by seq so that older pages never undo newer news.

const CHANGES = new Set(['message_edited', 'message_deleted', 'reaction_added', 'reaction_removed']);

/** True for entries the timeline shows (messages and system entries). */
export const shown = (m) => !m.kind || m.kind === 'message' || m.kind === 'system';

/** True for a message someone wrote (not a system or change entry). */
export const isMessage = (m) => !m.kind || m.kind === 'message';

/** One room's messages. Listeners get `{type: 'insert'|'prepend', entries}` and `{type: 'update', id}`. */
export class RoomStore {
  constructor(roomId, meId) {
    this.roomId = roomId;
    this.meId = meId;
    /** Shown entries, ascending seq. */
    this.entries = [];
    /** Message id -> message object (timeline and thread replies). */
    this.byId = new Map();
    this.seen = new Set(); // every seq taken in (shown or not)
    this.mine = new Map(); // message id -> Set of our emoji
    this.reactors = new Map(); // message id -> Map(`${emoji}\u0000${user id}` -> { seq, on, username })
    this.listeners = new Set();
    /** Lowest and highest seq of the contiguous range held (null while empty). */
    this.low = null;
    this.high = null;
  }

  /** Call `fn` on every change; returns a function that stops it. */
  listen(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  #emit(event) {
    for (const fn of [...this.listeners]) fn(event);
  }

  /**
   * A page of history (ascending) whose rows are as of seq `asOf`, with the caller's
   * own reactions (`my_reactions` of the page). `older` pages go before what is held.
   */
  addPage(messages, { asOf, myReactions, older = false } = {}) {
    this.#mine(myReactions);
    const fresh = [];
    for (const m of messages) {
      if (isMessage(m) && this.#row(m, asOf ?? m.seq).changed) this.#emit({ type: 'update', id: m.id });
      if (this.seen.has(m.seq)) continue;
      this.seen.add(m.seq);
      this.#track(m);
      if (shown(m)) fresh.push(this.byId.get(m.id) || { ...m, v: 0 });
    }
    this.#extend(messages);
    if (!fresh.length) return [];
    if (older) {
      this.entries = mergeSorted(fresh, this.entries);
      this.#emit({ type: 'prepend', entries: fresh });
    } else {
      this.entries = mergeSorted(this.entries, fresh);
      this.#emit({ type: 'insert', entries: fresh });
    }
    return fresh;
  }

  /** Entries from the live stream (ascending, each once): new messages and changes. */
  addLive(messages) {
    const fresh = [];
    for (const m of messages) {
      if (this.seen.has(m.seq)) continue;
      this.seen.add(m.seq);
      this.#track(m);
      if (CHANGES.has(m.kind)) {
        this.#apply(m);
        continue;
      }
      if (!shown(m)) continue;
      if (isMessage(m)) {
        this.#row(m, m.seq);
        this.#replied(m);
      }
      fresh.push(this.byId.get(m.id) || { ...m, v: 0 });
    }
    this.#extend(messages);
    if (fresh.length) {
      this.entries = mergeSorted(this.entries, fresh);
      this.#emit({ type: 'insert', entries: fresh });
    }
    return fresh;
  }

  /** Messages read on their own (thread replies), rows as of seq `asOf`; not in the timeline. */
  addDetached(messages, { asOf, myReactions } = {}) {
    this.#mine(myReactions);
    return messages.filter(isMessage).map((m) => {
      const { row, changed } = this.#row(m, asOf ?? m.seq);
      if (changed) this.#emit({ type: 'update', id: row.id });
      return row;
    });
  }

  /** The message with this id, if known. */
  get(id) { return this.byId.get(Number(id)); }

  /** The emoji the user reacted with on a message. */
  myReactions(id) { return this.mine.get(Number(id)) || new Set(); }

  /**
   * Who is known to have reacted with `emoji` to message `id`: `{names, others}`, where
   * `others` counts reactions whose author this page never saw.
   */
  whoReacted(id, emoji) {
    const m = this.get(id);
    const count = m?.reactions?.[emoji] || 0;
    const names = this.myReactions(id).has(emoji) ? ['you'] : [];
    const prefix = `${emoji}\u0000`;
    for (const [key, r] of this.reactors.get(Number(id)) || []) {
      if (key.startsWith(prefix) && r.on && key !== `${prefix}${this.meId}`) names.push(r.username);
    }
    const known = names.slice(0, count);
    return { names: known, others: Math.max(0, count - known.length) };
  }

  /** Index of the shown entry with this seq, or -1. */
  indexOfSeq(seq) {
    let lo = 0;
    let hi = this.entries.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.entries[mid].seq;
      if (s === seq) return mid;
      if (s < seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  // Keep the newest copy of a message row (by the seq it is as of): `{row, changed}`,
  // changed when a copy already held was replaced by a newer one.
  #row(m, asOf) {
    const had = this.byId.get(m.id);
    if (had) {
      if (asOf <= had.asOf) return { row: had, changed: false };
      const v = had.v + 1;
      for (const k of Object.keys(had)) if (!(k in m)) delete had[k];
      Object.assign(had, m, { asOf, reactions: { ...(m.reactions || {}) }, v });
      return { row: had, changed: true };
    }
    const row = { ...m, asOf, reactions: { ...(m.reactions || {}) }, v: 0 };
    this.byId.set(m.id, row);
    return { row, changed: false };
  }

  #mine(myReactions) {
    if (!myReactions) return;
    for (const [id, list] of Object.entries(myReactions)) {
      if (Array.isArray(list)) this.mine.set(Number(id), new Set(list));
    }
  }

  #extend(messages) {
    for (const m of messages) {
      if (this.low == null || m.seq < this.low) this.low = m.seq;
      if (this.high == null || m.seq > this.high) this.high = m.seq;
    }
  }

  // Remember who reacted, whatever the order in which entries are seen.
  #track(m) {
    if (m.kind !== 'reaction_added' && m.kind !== 'reaction_removed') return;
    const emoji = m.data?.emoji;
    if (!emoji) return;
    let known = this.reactors.get(m.message_id);
    if (!known) this.reactors.set(m.message_id, (known = new Map()));
    const key = `${emoji}\u0000${m.user_id}`;
    const had = known.get(key);
    if (had && had.seq >= m.seq) return;
    known.set(key, { seq: m.seq, on: m.kind === 'reaction_added', username: m.username });
    // Names shown on the reaction change even when the count does not.
    const target = this.byId.get(m.message_id);
    if (target && m.seq <= target.asOf) {
      target.v++;
      this.#emit({ type: 'update', id: target.id });
    }
  }

  // A change entry: applied to its message when newer than the row.
  #apply(m) {
    const target = this.byId.get(m.message_id);
    if (!target || m.seq <= target.asOf) return;
    if (m.kind === 'message_edited') {
      target.content = m.content;
      target.edited_at = m.edited_at || m.created_at;
    } else if (m.kind === 'message_deleted') {
      target.content = '';
      target.deleted_at = m.deleted_at || m.created_at;
      target.reactions = {};
      delete target.attachments;
      delete target.edited_at;
      this.mine.delete(target.id);
    } else {
      const emoji = m.data?.emoji;
      if (!emoji) return;
      const delta = m.kind === 'reaction_added' ? 1 : -1;
      const n = (target.reactions[emoji] || 0) + delta;
      if (n > 0) target.reactions[emoji] = n;
      else delete target.reactions[emoji];
      if (m.user_id === this.meId) {
        const set = new Set(this.myReactions(target.id));
        if (delta > 0) set.add(emoji);
        else set.delete(emoji);
        this.mine.set(target.id, set);
      }
    }
    target.v++;
    this.#emit({ type: 'update', id: target.id });
  }

  // A live reply moves its root's reply count.
  #replied(m) {
    const root = m.reply_to != null && this.byId.get(m.reply_to);
    if (!root || m.seq <= root.asOf) return;
    root.reply_count = (root.reply_count || 0) + 1;
    root.last_reply_at = m.created_at;
    root.v++;
    this.#emit({ type: 'update', id: root.id });
  }
}

// Two ascending lists of entries as one (each list already ascending by seq).
function mergeSorted(a, b) {
  if (!a.length) return b.slice();
  if (!b.length) return a.slice();
  if (a[a.length - 1].seq < b[0].seq) return a.concat(b);
  if (b[b.length - 1].seq < a[0].seq) return b.concat(a);
  const out = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i].seq < b[j].seq)) out.push(a[i++]);
    else out.push(b[j++]);
  }
  return out;
}
