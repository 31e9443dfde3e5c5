// The open room's members: presence (unknown while the connection is down: what the
// page last heard may be stale), roles and mutes; a direct conversation with any of
// them; blocking any of them; for owners and admins, moderation (kick, ban, mute, roles)
// and invitations.
import { byId, el, describe } from './dom.js';
import { avatar } from './message.js';
import { icon } from './icons.js';
import { profiles } from './profiles.js';
import { UserPicker } from './directory.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const RANK = { owner: 3, admin: 2, member: 1 };
const PROFILED = 100; // members whose profiles the list reads (GET /users/:id each)

/** The member panel of the open room. */
export class Members {
  constructor(client, { onDirect, onMe, blocks }) {
    this.client = client;
    this.blocks = blocks; // the user's blocks (Blocks)
    blocks.listen(() => { if (this.room) this.render(); });
    this.onDirect = onDirect; // (userId) => open the direct room with them
    this.onMe = onMe; // (member) => our own membership (role, muted) changed
    this.list = byId('member-list');
    this.error = byId('members-error');
    this.onlineCount = byId('online-count');
    this.inviteForm = byId('invite-form');
    this.inviteInput = byId('invite-user');
    this.inviteStatus = byId('invite-status');
    this.people = new Map(); // username (lower case) -> { id, username }: whom the user has met
    this.room = null;
    this.members = new Map(); // user id -> { username, online, role, muted }
    this.managing = null; // the user id whose Manage disclosure is open (kept across renders)
    this.reloadTimer = null;
    this.connected = client.state === 'open';
    this.inviteForm.addEventListener('submit', (e) => {
      e.preventDefault();
      this.#invite();
    });
    // The directory: choosing a result invites that user.
    this.picker = new UserPicker(client, this.inviteInput, byId('invite-results'), this.inviteStatus, {
      onChoose: (p) => this.#invite(p),
    });
  }

  /** Show `room`'s members (null: nothing). */
  show(room) {
    this.room = room;
    this.managing = null;
    this.members = new Map();
    this.list.replaceChildren();
    this.error.textContent = '';
    this.picker.reset();
    this.onlineCount.textContent = '';
    this.inviteForm.hidden = true;
    if (room) this.load();
  }

  /** Fetch the member list again (after a reconnect, or a membership change). */
  async load() {
    const room = this.room;
    if (!room) return;
    try {
      const list = await this.client.api.members(room.id);
      if (this.room !== room) return;
      this.members = new Map(list.map((m) => [m.id, { username: m.username, displayName: m.display_name, online: m.online, role: m.role || 'member', muted: !!m.muted }]));
      for (const m of list) this.people.set(m.username.toLowerCase(), { id: m.id, username: m.username });
      // We are in the room right now, whatever the server's presence has caught up to.
      const me = this.client.user;
      const mine = me && this.members.get(me.id);
      if (mine && this.client.state === 'open') mine.online = true;
      this.error.textContent = '';
      this.render();
      this.onMe(mine || null);
    } catch (e) {
      if (this.room === room) this.error.textContent = `Could not load the members: ${describe(e)}`;
    }
  }

  /** Reload shortly (several changes in a row make one request). */
  loadSoon() {
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => this.load(), 200);
  }

  /** The connection went down (presence unknown) or came back (reloaded on rejoin). */
  setConnected(on) {
    if (this.connected === on) return;
    this.connected = on;
    if (this.room) this.render();
  }

  /** Presence news. */
  setOnline(userId, username, online) {
    const m = this.members.get(userId);
    if (m && m.online === online) return;
    if (!m) {
      // Someone new: their role and mute state come with the next load.
      this.members.set(userId, { username, online, role: 'member', muted: false });
      this.loadSoon();
    } else {
      m.online = online;
    }
    this.render();
  }

  get myRole() {
    return this.members.get(this.client.user?.id)?.role || 'member';
  }

  render() {
    // Presence news re-renders the list: keep the keyboard focus where it was.
    const focus = document.activeElement;
    const focusKey = this.list.contains(focus)
      ? { user: focus.closest('li[data-user-id]')?.dataset.userId, action: focus.dataset.action, summary: focus.tagName === 'SUMMARY', dm: focus.classList.contains('dm-button') }
      : null;
    const me = this.client.user?.id;
    const myRank = RANK[this.myRole] || 1;
    const direct = this.room?.visibility === 'direct';
    // Names as people see them: display names (kept live by user_updated), else usernames.
    // Statuses and pictures need each member's profile: read for rooms of up to
    // PROFILED members; in bigger ones, those the page knows from elsewhere show.
    const read = this.members.size <= PROFILED;
    for (const [id, m] of this.members) {
      m.name = profiles.name(id, m.username, m.displayName, read);
      m.status = profiles.status(id, read);
    }
    const sorted = [...this.members.entries()].sort(([, a], [, b]) =>
      (RANK[b.role] - RANK[a.role]) || a.name.localeCompare(b.name));
    const item = ([id, m]) => {
      const self = id === me;
      const canModerate = !direct && !self && myRank >= 2 && RANK[m.role] < myRank;
      const canBlock = !self && this.blocks.supported === true;
      const blocked = this.blocks.has(id);
      const presence = !this.connected ? 'presence unknown' : m.online ? 'online' : 'offline';
      return el('li', {
        'data-testid': 'member',
        dataset: { userId: id, username: m.username, online: this.connected ? String(m.online) : 'unknown', role: m.role, muted: String(m.muted), blocked: String(blocked) },
      },
      el('div', { class: 'member-line' },
        el('span', { class: 'member-avatar', title: presence }, avatar(id, m.username, 'small', read), el('span', { class: 'dot', 'aria-hidden': 'true' })),
        el('span', { class: 'member-text' },
          el('span', { class: 'name', 'data-testid': 'member-name', title: `@${m.username}` }, m.name, self ? el('span', { class: 'you', text: ' (you)' }) : null,
            el('span', { class: 'presence visually-hidden', text: `, ${presence}` })),
          m.status ? el('span', { class: 'member-status', 'data-testid': 'member-status', text: m.status }) : null),
        m.role !== 'member' ? el('span', { class: 'tag role-tag', 'data-testid': 'member-role', text: m.role }) : null,
        m.muted ? el('span', { class: 'tag muted-tag', text: 'muted' }) : null,
        blocked ? el('span', { class: 'tag blocked-tag', text: 'blocked' }) : null,
        self || direct ? null : el('button', {
          type: 'button',
          class: 'icon-button member-tool dm-button',
          'aria-label': `Message ${m.name}`,
          title: `Send ${m.name} a direct message`,
          onclick: () => this.onDirect(id),
        }, icon('thread')),
        canModerate || canBlock ? this.#manage(id, m, { canModerate, canBlock, blocked }) : null));
    };
    // Grouped by presence, as far as it is known: who can answer now comes first.
    const groups = this.connected
      ? [['Online', sorted.filter(([, m]) => m.online)], ['Offline', sorted.filter(([, m]) => !m.online)]]
      : [['Presence unknown while disconnected', sorted]];
    this.list.replaceChildren(...groups.filter(([, list]) => list.length).map(([title, list]) =>
      el('li', { class: 'member-group', dataset: { group: title.split(' ')[0].toLowerCase() } },
        el('h4', { class: 'member-group-title', text: `${title} — ${list.length}` }),
        el('ul', { class: 'member-group-list' }, ...list.map(item)))));
    const online = sorted.filter(([, m]) => m.online).length;
    this.onlineCount.textContent = this.connected ? `(${online} online)` : '(presence unknown)';
    byId('toggle-members').setAttribute('aria-label', this.connected ? `Members, ${online} online` : 'Members, presence unknown');
    this.inviteForm.hidden = direct || myRank < 2;
    if (focusKey?.user) {
      const li = this.list.querySelector(`li[data-user-id="${CSS.escape(focusKey.user)}"]`);
      const target = focusKey.summary ? li?.querySelector('summary')
        : focusKey.dm ? li?.querySelector('.dm-button')
          : focusKey.action ? li?.querySelector(`button[data-action="${CSS.escape(focusKey.action)}"]`) : null;
      target?.focus();
    }
  }

  // The moderation buttons of one member (and Block), behind a disclosure so that a
  // stray click does not kick anyone.
  #manage(id, m, { canModerate, canBlock, blocked }) {
    const name = m.name;
    const act = (label, why, run) => el('button', {
      type: 'button',
      class: 'small',
      title: why,
      dataset: { action: label.toLowerCase().replace(/\s+/g, '-') },
      onclick: (e) => this.#act(e.currentTarget, run),
    }, label, el('span', { class: 'visually-hidden', text: ` ${name}` }));
    const api = this.client.api;
    const room = this.room.id;
    const label = canModerate ? `Manage ${name}` : `Options for ${name}`;
    return el('details', {
      class: 'manage',
      open: this.managing === id,
      ontoggle: (e) => {
        if (e.currentTarget.open) this.managing = id;
        else if (this.managing === id) this.managing = null;
      },
    },
    el('summary', { class: 'member-tool', 'aria-label': label, title: label }, el('span', { 'aria-hidden': 'true', text: '⋯' })),
    el('div', { class: 'manage-buttons' },
      canBlock
        ? (blocked
          ? act('Unblock', `Show ${name}'s messages again`, () => this.blocks.set(id, false))
          : act('Block', `Hide ${name}'s messages; neither of you can write to the other directly`, () => this.blocks.set(id, true)))
        : null,
      !canModerate ? null : m.muted
        ? act('Unmute', `Let ${name} send again`, () => api.unmute(room, id))
        : act('Mute', `Mute ${name}: they can read but not send`, () => api.mute(room, id)),
      canModerate && this.myRole === 'owner'
        ? (m.role === 'admin'
          ? act('Remove admin', `Make ${name} a plain member`, () => api.setRole(room, id, 'member'))
          : act('Make admin', `Make ${name} an admin`, () => api.setRole(room, id, 'admin')))
        : null,
      canModerate ? act('Kick', `Remove ${name} from the room`, () => api.kick(room, id)) : null,
      canModerate ? act('Ban', `Ban ${name} from the room`, () => api.ban(room, id)) : null));
  }

  async #act(button, run) {
    const room = this.room;
    button.disabled = true;
    this.error.textContent = '';
    try {
      await run();
    } catch (e) {
      if (this.room === room) this.error.textContent = e.code === 'forbidden' ? 'You are not allowed to do that.' : describe(e);
    } finally {
      button.disabled = false;
    }
    if (this.room === room) await this.load();
  }

  // Invite a user chosen in the directory, or typed: a user id, the name of someone met
  // in one of the user's rooms, or a username or display name the directory has exactly.
  async #invite(chosen) {
    const room = this.room;
    const raw = this.inviteInput.value.trim();
    if (!room || (!raw && !chosen)) return;
    let known = chosen || this.people.get(raw.toLowerCase());
    if (!known && !UUID.test(raw)) {
      const exact = (p) => [p.username, p.display_name].some((n) => n && n.toLowerCase() === raw.toLowerCase());
      known = (await this.client.api.searchUsers(raw, { limit: 10 }).catch(() => [])).find(exact);
      if (this.room !== room) return;
    }
    const id = known?.id || (UUID.test(raw) ? raw.toLowerCase() : null);
    if (!id) {
      this.inviteStatus.textContent = `No one called ${raw} was found: pick someone from the list, or ask for their user id.`;
      return;
    }
    const who = known ? profiles.name(known.id, known.username, known.display_name) : raw;
    const button = byId('invite-submit');
    button.disabled = true;
    try {
      await this.client.api.invite(room.id, id);
      if (this.room === room) {
        this.picker.reset();
        this.inviteStatus.textContent = this.members.has(id) ? `${who} is a member already.` : `Invited ${who}.`;
      }
    } catch (e) {
      const why = {
        banned: `${who} is banned from this room: unban them first.`,
        user_not_found: 'There is no user with that id.',
        forbidden: 'Only owners and admins can invite.',
      }[e.code];
      if (this.room === room) this.inviteStatus.textContent = why || `Could not invite: ${describe(e)}`;
    } finally {
      button.disabled = false;
    }
  }
}
