// The reaction picker: the user's recent emoji, then common ones, in a small dialog by
// the button that opened it. Arrow keys move, Enter or Space picks, Escape closes;
// focus goes back where it came from.
import { el } from './dom.js';

const RECENT_KEY = 'chatd.recentEmoji';
const RECENT_MAX = 8;

/** Emoji offered to everyone, with the names screen readers announce. */
export const COMMON = [
  ['👍', 'thumbs up'], ['❤️', 'red heart'], ['😂', 'tears of joy'], ['🎉', 'party popper'],
  ['🙏', 'folded hands'], ['👀', 'eyes'], ['✅', 'check mark'], ['🔥', 'fire'],
  ['😊', 'smiling face'], ['😮', 'surprised face'], ['😢', 'crying face'], ['🤔', 'thinking face'],
  ['👏', 'clapping hands'], ['🚀', 'rocket'], ['💯', 'hundred points'], ['👎', 'thumbs down'],
  ['😅', 'sweat smile'], ['🙌', 'raised hands'], ['💡', 'light bulb'], ['⚠️', 'warning'],
  ['❓', 'question mark'], ['➕', 'plus'], ['☕', 'hot beverage'], ['🍕', 'pizza'],
];
const NAMES = new Map(COMMON);

/** The emoji the user picked last, most recent first. */
export function recentEmoji() {
  try {
    const list = JSON.parse(localStorage.getItem(RECENT_KEY) || '[]');
    return Array.isArray(list) ? list.filter((e) => typeof e === 'string').slice(0, RECENT_MAX) : [];
  } catch {
    return [];
  }
}

function remember(emoji) {
  try {
    const list = [emoji, ...recentEmoji().filter((e) => e !== emoji)].slice(0, RECENT_MAX);
    localStorage.setItem(RECENT_KEY, JSON.stringify(list));
  } catch {
    // no storage: no recent list
  }
}

/** One picker for the page; `open(anchor, onPick)` shows it by `anchor`. */
export class EmojiPicker {
  constructor() {
    this.root = el('div', {
      id: 'emoji-picker', class: 'emoji-picker', role: 'dialog', 'aria-label': 'Add a reaction', hidden: true,
    });
    document.body.append(this.root);
    this.onPick = null;
    this.returnTo = null;
    this.root.addEventListener('keydown', (e) => this.#key(e));
    this.root.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-emoji]');
      if (b) this.#pick(b.dataset.emoji);
    });
    document.addEventListener('pointerdown', (e) => {
      if (!this.root.hidden && !this.root.contains(e.target)) this.close(false);
    });
  }

  get isOpen() { return !this.root.hidden; }

  /** Show the picker next to `anchor`; `onPick(emoji)` gets the choice. */
  open(anchor, onPick) {
    this.onPick = onPick;
    this.returnTo = anchor;
    const recent = recentEmoji();
    const grid = (label, list) => el('div', { class: 'emoji-section' },
      el('p', { class: 'emoji-label', id: `emoji-${label.toLowerCase()}`, text: label }),
      el('div', { class: 'emoji-grid', role: 'group', 'aria-labelledby': `emoji-${label.toLowerCase()}` },
        ...list.map((emoji) => el('button', {
          type: 'button', class: 'emoji-choice', tabindex: '-1', text: emoji,
          'aria-label': NAMES.get(emoji) || emoji, title: NAMES.get(emoji) || emoji, dataset: { emoji },
        }))));
    this.root.replaceChildren(...[
      recent.length ? grid('Recent', recent) : null,
      grid('Common', COMMON.map(([e]) => e)),
    ].filter(Boolean));
    this.root.hidden = false;
    this.#place(anchor);
    const first = this.root.querySelector('button');
    if (first) {
      first.tabIndex = 0;
      first.focus();
    }
  }

  /** Hide it; focus returns to the button that opened it unless `refocus` is false. */
  close(refocus = true) {
    if (this.root.hidden) return;
    this.root.hidden = true;
    this.root.replaceChildren();
    const back = this.returnTo;
    if (refocus && back?.isConnected) {
      back.focus();
      // A toolbar button shows only while its message has the focus: then the message.
      if (document.activeElement !== back) back.closest('li[data-key]')?.focus();
    }
    this.returnTo = null;
  }

  #pick(emoji) {
    remember(emoji);
    const fn = this.onPick;
    this.close();
    fn?.(emoji);
  }

  // Next to the anchor, inside the viewport.
  #place(anchor) {
    const r = anchor.getBoundingClientRect();
    const w = this.root.offsetWidth;
    const h = this.root.offsetHeight;
    const left = Math.max(8, Math.min(window.innerWidth - w - 8, r.right - w));
    const below = r.bottom + 6 + h <= window.innerHeight - 8;
    const top = below ? r.bottom + 6 : Math.max(8, r.top - h - 6);
    this.root.style.left = `${left}px`;
    this.root.style.top = `${top}px`;
  }

  #key(e) {
    const buttons = [...this.root.querySelectorAll('button[data-emoji]')];
    const i = buttons.indexOf(document.activeElement);
    const cols = 8;
    const move = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols, Home: -Infinity, End: Infinity }[e.key];
    if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      this.close();
    } else if (e.key === 'Tab') {
      e.preventDefault(); // one tab stop: arrows move inside
    } else if (move !== undefined && i >= 0) {
      e.preventDefault();
      const next = Math.max(0, Math.min(buttons.length - 1, i + (Number.isFinite(move) ? move : move > 0 ? buttons.length : -buttons.length)));
      buttons[i].tabIndex = -1;
      buttons[next].tabIndex = 0;
      buttons[next].focus();
    }
  }
}
