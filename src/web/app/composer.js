// A message field: Enter sends, Shift+Enter starts a new line; it can answer a message
// (a bar above it quotes the message) or edit one (the text comes back into the field).
// Escape leaves reply or edit mode; Arrow-Up in an empty field edits the user's last
// message. The room's composer and the thread panel's are two of these.
import { el } from './dom.js';
import { plain } from './markdown.js';
import { clip } from './format.js';

/** One composer. Callbacks: onSend(text, {replyTo}), onEdit(message, text), onTyping(on), onEditLast(). */
export class Composer {
  constructor({ form, input, button, bar, placeholder, onSend, onEdit, onTyping, onEditLast, files }) {
    this.files = files || null; // attached files ({ready(), busy(), failed()}): a send may carry only them
    this.form = form;
    this.input = input;
    this.button = button;
    this.bar = bar;
    this.placeholder = placeholder;
    this.onSend = onSend;
    this.onEdit = onEdit;
    this.onTyping = onTyping;
    this.onEditLast = onEditLast;
    this.mode = null; // null | { kind: 'reply'|'edit', message }
    this.muted = false;
    this.waiting = false; // slow mode: sending waits (the text stays)
    this.draft = '';
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      } else if (e.key === 'Escape' && this.mode) {
        e.preventDefault();
        e.stopPropagation();
        this.cancel();
      } else if (e.key === 'ArrowUp' && !input.value && !this.mode && this.onEditLast) {
        if (this.onEditLast()) e.preventDefault();
      }
    });
    input.addEventListener('input', () => {
      this.autosize();
      if (this.mode?.kind !== 'edit') this.onTyping?.(!!input.value.trim());
    });
    input.addEventListener('blur', () => this.onTyping?.(false));
  }

  /** Send (or save the edit); the field empties and keeps the focus. */
  submit() {
    const text = this.input.value.trim();
    if (this.muted) return;
    if (this.mode?.kind === 'edit') {
      const { message } = this.mode;
      if (text && text !== message.content) this.onEdit(message, text);
      this.input.value = this.draft;
      this.#setMode(null);
    } else {
      if (this.waiting) return;
      if (this.files?.busy() || this.files?.failed()) {
        this.onBlocked?.(this.files.busy() ? 'Wait for the upload to finish, then send.' : 'An upload failed: retry it or remove it.');
        return;
      }
      if (!text && !this.files?.ready()) return;
      const replyTo = this.mode?.kind === 'reply' ? this.mode.message.id : undefined;
      this.onSend(text, { replyTo });
      this.input.value = '';
      this.#setMode(null);
    }
    this.autosize();
    this.input.focus();
  }

  /** Answer `message`: the next send replies to it. */
  replyTo(message) {
    if (this.mode?.kind === 'edit') this.input.value = this.draft;
    this.#setMode({ kind: 'reply', message });
    this.input.focus();
  }

  /** Edit `message` here (its text comes into the field; what was typed is kept aside). */
  edit(message) {
    if (this.mode?.kind !== 'edit') this.draft = this.input.value;
    this.#setMode({ kind: 'edit', message });
    this.input.value = message.content;
    this.autosize();
    this.input.focus();
    this.input.setSelectionRange(this.input.value.length, this.input.value.length);
  }

  /** Leave reply or edit mode. */
  cancel() {
    if (this.mode?.kind === 'edit') this.input.value = this.draft;
    this.#setMode(null);
    this.autosize();
    this.input.focus();
  }

  /** Forget everything (another room opened). */
  reset() {
    this.input.value = '';
    this.draft = '';
    this.#setMode(null);
    this.autosize();
  }

  /** A muted member reads but cannot send. */
  setMuted(muted) {
    this.muted = muted;
    this.input.disabled = muted;
    this.button.disabled = muted || this.waiting;
    this.input.placeholder = muted ? 'You are muted in this room' : this.placeholder;
    if (muted) this.#setMode(null);
  }

  /** Slow mode: sending waits (typing goes on; edits are not sends). */
  setWaiting(on) {
    this.waiting = on;
    this.button.disabled = this.muted || (on && this.mode?.kind !== 'edit');
  }

  /** Put back the text of a send the server refused, before whatever was typed since. */
  restore(text) {
    const now = this.input.value;
    if (now.includes(text)) return;
    this.input.value = now.trim() ? `${text}\n${now}` : text;
    this.autosize();
  }

  focus() { this.input.focus(); }

  #setMode(mode) {
    this.mode = mode;
    this.form.dataset.mode = mode?.kind || '';
    this.button.disabled = this.muted || (this.waiting && mode?.kind !== 'edit');
    this.button.textContent = mode?.kind === 'edit' ? 'Save' : 'Send';
    if (!mode) {
      this.bar.hidden = true;
      this.bar.replaceChildren();
      return;
    }
    const m = mode.message;
    const label = mode.kind === 'edit' ? 'Editing your message' : `Replying to ${m.username}`;
    this.bar.replaceChildren(
      el('span', { class: 'composer-bar-text' },
        el('strong', { text: label }),
        mode.kind === 'reply' ? el('span', { class: 'quote-text', text: ` ${clip(plain(m.content), 80)}` }) : null),
      el('button', {
        type: 'button',
        class: 'icon-button small',
        'aria-label': mode.kind === 'edit' ? 'Cancel the edit (Escape)' : 'Cancel the reply (Escape)',
        text: '✕',
        onclick: () => this.cancel(),
      }));
    this.bar.hidden = false;
  }

  autosize() {
    const lines = this.input.value.split('\n').length;
    this.input.rows = Math.min(6, Math.max(1, lines));
  }
}
