// Search: in the open room (GET /rooms/:id/search) or in all the user's rooms
// (GET /me/search), best matches first, more on demand. A result opens its room at the
// message, in context (older history is loaded as far as needed).
import { byId, el, describe } from './dom.js';
import { plain } from './markdown.js';
import { timeOf } from './format.js';
import { roomLabel } from './rooms.js';

const PAGE = 20;
const DEBOUNCE_MS = 300;

/** The search panel. `jump(roomId, seq)` opens a room at a message. */
export class SearchPanel {
  constructor(client, rooms, { show, currentRoom, jump }) {
    this.client = client;
    this.rooms = rooms;
    this.show = show; // (open) => show or hide the panel
    this.currentRoom = currentRoom; // () => the open room or null
    this.jump = jump;
    this.input = byId('search-input');
    this.scope = byId('search-scope');
    this.status = byId('search-status');
    this.list = byId('search-results');
    this.more = byId('search-more');
    this.cursor = null;
    this.query = null; // { q, scope, roomId } of the results shown
    this.timer = null;
    this.seq = 0;
    byId('search-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.#search();
    });
    this.input.addEventListener('input', () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.#search(), DEBOUNCE_MS);
    });
    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowDown') {
        const first = this.list.querySelector('button');
        if (first) {
          e.preventDefault();
          first.focus();
        }
      }
    });
    this.scope.addEventListener('change', () => this.#search());
    this.more.addEventListener('click', () => this.#search(true));
    byId('close-search').addEventListener('click', () => this.show(false));
    this.list.addEventListener('keydown', (e) => {
      const buttons = [...this.list.querySelectorAll('button')];
      const i = buttons.indexOf(document.activeElement);
      if (i < 0) return;
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        const next = buttons[i + (e.key === 'ArrowDown' ? 1 : -1)];
        if (next) next.focus();
        else if (e.key === 'ArrowUp') this.input.focus();
      }
    });
  }

  /** Open the panel (`scope`: 'room' or 'all'), the field focused. */
  open(scope) {
    const room = this.currentRoom();
    const want = scope || (room ? 'room' : 'all');
    this.scope.querySelector('option[value="room"]').disabled = !room;
    this.scope.value = room ? want : 'all';
    this.show(true);
    this.input.focus();
    this.input.select();
    if (this.input.value.trim()) this.#search();
  }

  /** Forget the results (signed out). */
  reset() {
    this.input.value = '';
    this.list.replaceChildren();
    this.status.textContent = '';
    this.more.hidden = true;
    this.query = null;
  }

  async #search(more = false) {
    clearTimeout(this.timer);
    const q = this.input.value.trim();
    const room = this.currentRoom();
    const scope = this.scope.value === 'room' && room ? 'room' : 'all';
    if (!q) {
      this.reset();
      return;
    }
    const query = more && this.query ? this.query : { q, scope, roomId: scope === 'room' ? room.id : null };
    const seq = ++this.seq;
    this.status.textContent = 'Searching…';
    try {
      const opts = { cursor: more ? this.cursor : undefined, limit: PAGE };
      const page = query.scope === 'room'
        ? await this.client.api.search(query.roomId, query.q, opts)
        : await this.client.api.searchAll(query.q, opts);
      if (seq !== this.seq) return;
      this.query = query;
      this.cursor = page.next_cursor ?? null;
      const items = page.messages.map((m) => this.#result(m, query));
      if (more) this.list.append(...items);
      else this.list.replaceChildren(...items);
      const n = this.list.childElementCount;
      const where = query.scope === 'room' ? `in ${roomLabel(room)}` : 'in your rooms';
      this.status.textContent = n ? `${n}${this.cursor ? '+' : ''} ${n === 1 ? 'result' : 'results'} for “${query.q}” ${where}` : `Nothing found for “${query.q}” ${where}.`;
      this.more.hidden = this.cursor == null;
    } catch (e) {
      if (seq === this.seq) this.status.textContent = `Search failed: ${describe(e)}`;
    }
  }

  #result(m, query) {
    const room = this.rooms.find(m.room_id);
    const text = plain(m.content);
    return el('li', { 'data-testid': 'search-result', dataset: { roomId: m.room_id, seq: m.seq, messageId: m.id } },
      el('button', {
        type: 'button',
        class: 'search-result',
        onclick: () => this.jump(m.room_id, m.seq),
      },
      el('span', { class: 'result-meta' },
        query.scope === 'all' ? el('span', { class: 'result-room', text: room ? roomLabel(room) : 'a room' }) : null,
        el('span', { class: 'author', text: m.username }),
        el('time', { datetime: m.created_at, text: timeOf(m.created_at) })),
      el('span', { class: 'result-text' }, ...highlight(snippet(text, query.q), query.q))));
  }
}

// The part of `text` around the first word of `q` it holds.
function snippet(text, q, max = 160) {
  if (text.length <= max) return text;
  const words = terms(q);
  const lower = text.toLowerCase();
  const at = Math.min(...words.map((w) => lower.indexOf(w)).filter((i) => i >= 0), Infinity);
  const start = Number.isFinite(at) ? Math.max(0, at - 40) : 0;
  return `${start > 0 ? '…' : ''}${text.slice(start, start + max)}${start + max < text.length ? '…' : ''}`;
}

function terms(q) {
  return String(q).toLowerCase().split(/[^\p{L}\p{N}]+/u).filter(Boolean);
}

/** Text nodes and <mark>s: the words of `q` picked out in `text`. */
export function highlight(text, q) {
  const words = terms(q);
  if (!words.length) return [text];
  const escaped = words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const re = new RegExp(`(${escaped.join('|')})`, 'giu');
  return text.split(re).filter((s) => s !== '').map((part, i) =>
    (i % 2 === 1 || words.includes(part.toLowerCase()) ? el('mark', { text: part }) : document.createTextNode(part)));
}
