// The side panel beside the conversation: the member list, a thread, search, the pinned
// messages or the reports, one at a
// time. Wide screens keep the member list unless the user hid it; on a phone a panel
// covers the screen and Escape closes it. The panels themselves are their modules'.
import { byId } from './dom.js';

const NARROW = window.matchMedia('(max-width: 720px)');
const PANELS = {
  members: 'members-panel', thread: 'thread-panel', search: 'search-panel', pins: 'pins-panel', reports: 'reports-panel',
};

/** Which side panel shows. `onClosed(which)` hears of a panel going away. */
export class SidePanels {
  constructor({ onClosed, escapable }) {
    this.chat = byId('chat-view');
    this.toggle = byId('toggle-members');
    this.onClosed = onClosed;
    this.membersWanted = true; // on wide screens, until the user hides the list
    this.toggle.addEventListener('click', () => this.#toggleMembers());
    byId('close-members').addEventListener('click', () => {
      this.show(null);
      this.toggle.focus();
    });
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && !e.defaultPrevented && this.current && NARROW.matches && escapable()) this.close();
    });
    NARROW.addEventListener('change', () => {
      if (this.chat.hidden) return;
      if (NARROW.matches) this.show(null);
      else if (!this.current) this.show(this.membersWanted ? 'members' : null);
    });
  }

  /** The panel shown: 'members', 'thread', 'search', 'pins', 'reports' or null. */
  get current() { return this.chat.dataset.panel || null; }

  /** True on a phone-sized screen. */
  get narrow() { return NARROW.matches; }

  /** Show one panel (null: none). */
  show(which) {
    const before = this.current;
    this.chat.dataset.panel = which || '';
    for (const [name, id] of Object.entries(PANELS)) byId(id).hidden = which !== name;
    this.toggle.setAttribute('aria-expanded', String(which === 'members'));
    byId('open-pins').setAttribute('aria-expanded', String(which === 'pins'));
    if (before && before !== which) this.onClosed?.(before);
  }

  /** Close a thread or search: back to the member list where there is room for it. */
  close() {
    this.show(!NARROW.matches && this.membersWanted ? 'members' : null);
  }

  /** The panels a screen of this size starts with (signed in, or a room closed). */
  reset() {
    this.show(NARROW.matches || !this.membersWanted ? null : 'members');
  }

  #toggleMembers() {
    const open = this.current !== 'members';
    if (!NARROW.matches) this.membersWanted = open;
    this.show(open ? 'members' : null);
    if (open && NARROW.matches) byId('close-members').focus();
  }
}
