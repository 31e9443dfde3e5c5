// What people do to messages, by mouse or keyboard, in the room's list and in the
// thread panel: react (the picker, or a reaction's own button), reply, open the
// thread, edit, delete (asked first), pin or unpin, report, see an edit's earlier
// versions, follow a reply's quote, show a blocked user's message, retry or discard an
// unsent message.
//
// A list has one tab stop (roving tabindex): the current row. Arrow keys move between
// rows; once on a row, Tab walks its controls (they are out of the tab order otherwise);
// on a row, R replies, T opens the thread, E edits, Delete deletes, + reacts, Enter goes
// to its actions, Escape back to the field.
import { el, describe } from './dom.js';
import { EmojiPicker } from './emoji.js';
import { ask } from './dialogs.js';
import { clip } from './format.js';
import { plain } from './markdown.js';

const CONTROLS = 'a[href], button, summary';

/** Make a row the list's tab stop (on) or not; its controls stay out of the tab order. */
export function setTabbable(li, on) {
  li.tabIndex = on ? 0 : -1;
  setControls(li, false);
}

// A row's controls join the tab order while the focus is in the row.
function setControls(li, on) {
  for (const c of li.querySelectorAll(CONTROLS)) c.tabIndex = on ? 0 : -1;
}

/** Where the focus is in a list: its row's key and the control, to find it again after a redraw. */
export function focusMark(container) {
  const active = document.activeElement;
  if (!active || !container.contains(active)) return null;
  const li = active.closest('li[data-key]');
  if (!li) return null;
  return { key: li.dataset.key, action: active === li ? null : active.dataset.action, emoji: active.dataset.emoji };
}

/** Focus again what `mark` named inside `li` (a row built anew). */
export function refocus(li, mark) {
  if (!li || !mark) return;
  let target = li;
  if (mark.action) {
    const sel = `[data-action="${CSS.escape(mark.action)}"]${mark.emoji ? `[data-emoji="${CSS.escape(mark.emoji)}"]` : ''}`;
    target = li.querySelector(sel) || li;
  }
  if (target !== li) setControls(li, true);
  target.focus({ preventScroll: true });
}

/**
 * The actions of one room view. `view` answers: `store`, `room`, `canReact()`,
 * `openThread(m)`, `jumpToMessage(id)`, `retry(clientMsgId)`, `discard(clientMsgId)`,
 * `showError(text)`.
 */
export class MessageActions {
  constructor(client, view) {
    this.client = client;
    this.view = view;
    this.picker = new EmojiPicker();
    this.active = new Map(); // list -> key of its tab-stop row
  }

  /**
   * Handle a list: `composer` edits and replies go to; `rows()` the list's row keys in
   * order and `reveal(key)` mounts and scrolls to one (virtualized lists), returning its node.
   */
  attach(list, { composer, rows, reveal }) {
    list.addEventListener('click', (e) => {
      const control = e.target.closest('[data-action]');
      if (!control || !list.contains(control)) return;
      const li = control.closest('li[data-key], li.entry, li.message');
      this.#run(control.dataset.action, li, control, composer);
    });
    list.addEventListener('focusin', (e) => {
      const li = e.target.closest('li[data-key]');
      if (!li || !list.contains(li)) return;
      this.#activate(list, li);
      setControls(li, true);
    });
    list.addEventListener('focusout', (e) => {
      const li = e.target.closest('li[data-key]');
      if (li && !li.contains(e.relatedTarget)) setControls(li, false);
    });
    list.addEventListener('keydown', (e) => this.#key(e, list, { composer, rows, reveal }));
  }

  /** The key of a list's tab-stop row (rows built later check it). */
  activeKey(list) { return this.active.get(list) ?? null; }

  /**
   * Keep one tab stop in the list: while the keyboard is in the list, the row it is on;
   * otherwise the newest row (Shift+Tab from the field lands on the latest message).
   */
  ensureTabStop(list) {
    const held = this.active.get(list);
    const current = held && list.querySelector(`li[data-key="${CSS.escape(held)}"]`);
    if (current && list.contains(document.activeElement)) {
      if (current.tabIndex !== 0) setTabbable(current, true);
      return;
    }
    const rows = list.querySelectorAll(':scope > li[data-key]');
    const li = rows[rows.length - 1];
    if (li) this.#activate(list, li);
  }

  #activate(list, li) {
    const before = this.active.get(list);
    if (before === li.dataset.key && li.tabIndex === 0) return;
    for (const other of list.querySelectorAll('li[tabindex="0"]')) if (other !== li) setTabbable(other, false);
    setTabbable(li, true);
    this.active.set(list, li.dataset.key);
  }

  #message(li) {
    const id = li?.dataset.messageId;
    return id ? this.view.store.get(id) : null;
  }

  async #run(action, li, control, composer) {
    const m = this.#message(li);
    const room = this.view.room;
    if (!room) return;
    const fail = (e) => this.view.showError(describe(e));
    switch (action) {
      case 'react':
        if (m) this.picker.open(control, (emoji) => this.#toggle(m, emoji, true).catch(fail));
        break;
      case 'toggle-reaction':
        if (m) this.#toggle(m, control.dataset.emoji).catch(fail);
        break;
      case 'reply':
        if (m) composer.replyTo(m);
        break;
      case 'thread':
        if (m) this.view.openThread(m);
        break;
      case 'edit':
        if (m) composer.edit(m);
        break;
      case 'delete':
        if (m) this.#delete(m, li).catch(fail);
        break;
      case 'pin':
      case 'unpin':
        if (m) this.view.tools.pins.set(m, action === 'pin').catch(fail);
        break;
      case 'report':
        if (m) this.view.tools.reports.open(m);
        break;
      case 'reveal':
        if (m) this.view.tools.reveal(m.id);
        break;
      case 'goto':
        this.view.jumpToMessage(Number(control.dataset.target));
        break;
      case 'history':
        if (m) this.#history(m).catch(fail);
        break;
      case 'retry':
        this.view.retry(li.dataset.clientMsgId);
        break;
      case 'discard':
        this.view.discard(li.dataset.clientMsgId);
        break;
      default:
    }
  }

  // Add or take back one's reaction (`add` forces adding: the picker).
  #toggle(m, emoji, add = false) {
    const mine = this.view.store.myReactions(m.id).has(emoji);
    if (mine && add) return Promise.resolve();
    const room = this.view.room.id;
    const done = mine ? this.client.unreact(room, m.id, emoji) : this.client.react(room, m.id, emoji);
    return done.catch((e) => {
      // Already so on the server (another tab was quicker): nothing to tell.
      if (e.code !== 'already_reacted' && e.code !== 'not_reacted') throw e;
    });
  }

  async #delete(m, li) {
    const theirs = m.user_id !== this.client.user?.id;
    const yes = await ask({
      title: theirs ? `Delete ${m.username}'s message?` : 'Delete this message?',
      body: [
        el('blockquote', { class: 'confirm-quote', text: clip(plain(m.content), 200) }),
        el('p', { text: 'It is removed for everyone, with its reactions. This cannot be undone.' }),
      ],
      confirm: 'Delete',
      danger: true,
    });
    if (!yes) return;
    await this.client.deleteMessage(this.view.room.id, m.id);
    if (li?.isConnected) li.focus();
  }

  async #history(m) {
    const versions = await this.client.api.edits(this.view.room.id, m.id);
    await ask({
      title: 'Earlier versions',
      body: el('ol', { class: 'edit-history' },
        ...versions.map((v) => el('li', {}, el('span', { class: 'hint', text: `until ${new Date(v.replaced_at).toLocaleString()}` }),
          el('p', { text: v.content }))),
        el('li', {}, el('span', { class: 'hint', text: 'now' }), el('p', { text: m.content }))),
      confirm: 'Close',
      cancel: null,
    });
  }

  #key(e, list, { composer, rows, reveal }) {
    const li = e.target.closest('li[data-key]');
    if (!li || !list.contains(li)) return;
    const onRow = e.target === li;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      const keys = rows();
      const i = keys.indexOf(li.dataset.key);
      const next = keys[i + (e.key === 'ArrowDown' ? 1 : -1)];
      if (i < 0 || next == null) return;
      e.preventDefault();
      const node = reveal(next);
      node?.focus({ preventScroll: true });
      return;
    }
    if (e.key === 'Escape') {
      e.preventDefault();
      composer.focus();
      return;
    }
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const action = { r: 'reply', t: 'thread', e: 'edit', Delete: 'delete', '+': 'react', Enter: 'first' }[e.key];
    if (!action || (action === 'first' && !onRow)) return;
    if (action === 'first') {
      const first = li.querySelector('.actions button');
      if (first) {
        e.preventDefault();
        first.focus();
      }
      return;
    }
    const control = li.querySelector(`.actions [data-action="${action}"]`);
    if (control) {
      e.preventDefault();
      this.#run(action, li, control, composer);
    }
  }
}
