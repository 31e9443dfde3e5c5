// The user directory (GET /users?q=: usernames and display names starting with what is
// typed) as a combobox on a text field: results while typing (debounced, at most 10),
// a listbox that the arrow keys walk, Enter or a click chooses. Used by the invite form
// (members.js) and the new direct message dialog (below).
import { byId, el, describe } from './dom.js';
import { avatar } from './message.js';
import { profiles } from './profiles.js';

const DEBOUNCE_MS = 250;
const LIMIT = 10;
let pickers = 0;

/** A directory search on `input`: `list` is the listbox, `status` a polite line;
 * `onChoose(profile)` when a result is chosen. */
export class UserPicker {
  constructor(client, input, list, status, { onChoose }) {
    this.client = client;
    this.input = input;
    this.list = list;
    this.status = status;
    this.onChoose = onChoose;
    this.results = [];
    this.active = -1;
    this.timer = null;
    this.asked = 0; // answers to older questions are dropped
    this.prefix = `user-option-${++pickers}`;
    input.setAttribute('role', 'combobox');
    input.setAttribute('aria-autocomplete', 'list');
    input.setAttribute('aria-expanded', 'false');
    input.setAttribute('aria-controls', list.id);
    input.setAttribute('autocomplete', 'off');
    list.setAttribute('role', 'listbox');
    list.hidden = true;
    input.addEventListener('input', () => this.#soon());
    input.addEventListener('keydown', (e) => this.#key(e));
    input.addEventListener('blur', () => setTimeout(() => this.close(), 150));
  }

  /** Empty the field and the results. */
  reset() {
    this.input.value = '';
    this.status.textContent = '';
    this.close();
  }

  close() {
    clearTimeout(this.timer);
    this.asked++;
    this.results = [];
    this.active = -1;
    this.list.replaceChildren();
    this.list.hidden = true;
    this.input.setAttribute('aria-expanded', 'false');
    this.input.removeAttribute('aria-activedescendant');
  }

  /** Whether a result is highlighted (Enter chooses it rather than submitting). */
  get open() { return !this.list.hidden && this.results.length > 0; }

  #soon() {
    clearTimeout(this.timer);
    const q = this.input.value.trim();
    if (!q || q.length > 50) {
      this.close();
      this.status.textContent = '';
      return;
    }
    this.timer = setTimeout(() => this.#search(q), DEBOUNCE_MS);
  }

  async #search(q) {
    const n = ++this.asked;
    try {
      // One more than shown: the user is left out of their own results.
      const found = await this.client.api.searchUsers(q, { limit: LIMIT + 1 });
      if (n !== this.asked) return;
      const me = this.client.user?.id;
      for (const p of found) profiles.set(p);
      this.#show(found.filter((p) => p.id !== me).slice(0, LIMIT));
    } catch (e) {
      if (n !== this.asked) return;
      this.#show([]);
      this.status.textContent = `Could not search the directory: ${describe(e)}`;
    }
  }

  #show(results) {
    this.results = results;
    this.active = results.length ? 0 : -1;
    this.list.replaceChildren(...results.map((p, i) => {
      const name = p.display_name || p.username;
      const status = [p.status_emoji, p.status_text].filter(Boolean).join(' ');
      return el('li', {
        id: `${this.prefix}-${i}`,
        role: 'option',
        class: 'user-option',
        'data-testid': 'user-option',
        'aria-selected': 'false',
        dataset: { userId: p.id, username: p.username },
        onmousedown: (e) => e.preventDefault(), // the field keeps the focus
        onclick: () => this.#choose(i),
      },
      avatar(p.id, p.username, 'small'),
      el('span', { class: 'user-option-text' },
        el('span', { class: 'user-option-name', text: name }),
        el('span', { class: 'hint', text: ` @${p.username}` }),
        status ? el('span', { class: 'user-option-status hint', text: status }) : null));
    }));
    this.list.hidden = !results.length;
    this.input.setAttribute('aria-expanded', String(results.length > 0));
    this.status.textContent = results.length
      ? `${results.length} ${results.length === 1 ? 'person' : 'people'} found: arrow keys to pick, Enter to choose.`
      : 'No one found.';
    this.#highlight();
  }

  #highlight() {
    [...this.list.children].forEach((li, i) => li.setAttribute('aria-selected', String(i === this.active)));
    const li = this.list.children[this.active];
    if (li) {
      this.input.setAttribute('aria-activedescendant', li.id);
      li.scrollIntoView({ block: 'nearest' });
    } else {
      this.input.removeAttribute('aria-activedescendant');
    }
  }

  #key(e) {
    const n = this.results.length;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      if (!n) return;
      e.preventDefault();
      this.active = (this.active + (e.key === 'ArrowDown' ? 1 : n - 1)) % n;
      this.#highlight();
    } else if (e.key === 'Enter' && this.open && this.active >= 0) {
      e.preventDefault();
      this.#choose(this.active);
    } else if (e.key === 'Escape' && this.open) {
      e.preventDefault();
      e.stopPropagation(); // the listbox closes, not the dialog
      this.close();
    }
  }

  #choose(i) {
    const p = this.results[i];
    if (!p) return;
    this.input.value = p.display_name || p.username;
    this.close();
    this.status.textContent = '';
    this.onChoose(p);
  }
}

/** The new direct message dialog (the sidebar's button): a person found in the
 * directory, then their direct room. */
export class DirectDialog {
  constructor(client, { onDirect }) {
    this.dialog = byId('direct-dialog');
    this.error = byId('direct-error');
    this.picker = new UserPicker(client, byId('direct-user'), byId('direct-results'), byId('direct-status'), {
      onChoose: async (p) => {
        this.error.textContent = '';
        const failed = await onDirect(p.id);
        if (failed) this.error.textContent = failed;
        else this.dialog.close();
      },
    });
    byId('new-direct').addEventListener('click', () => this.open());
    byId('cancel-direct').addEventListener('click', () => this.dialog.close());
    byId('direct-form').addEventListener('submit', (e) => e.preventDefault());
  }

  open() {
    this.picker.reset();
    this.error.textContent = '';
    this.dialog.showModal();
    byId('direct-user').focus();
  }
}
