// Users' profiles (GET /users/:id), shared by every view: the display name (else the
// username), the avatar URL and the status line. Each user is read once and then kept
// live by `user_updated` (PROTOCOL.md 12.3); the views redraw when `listen` tells them.

/** The profiles the page knows, one instance for the app (`profiles`). */
export class Profiles {
  constructor() {
    this.client = null;
    this.known = new Map(); // user id -> Profile (or { id, missing: true } when it could not be read)
    this.asked = new Set(); // user ids being read
    this.listeners = new Set();
    this.queued = false;
  }

  /** Start with a client: `user_updated` replaces what is shown of that user. */
  attach(client) {
    this.client = client;
    client.on('user_updated', ({ user }) => { if (user?.id) this.set(user); });
  }

  /** `fn()` after profiles changed (batched to a frame). Returns the way to stop. */
  listen(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** The profile of `id` if known; else it is read (once, unless `read` is false) and
   * listeners hear of it. */
  get(id, read = true) {
    if (!id) return null;
    const p = this.known.get(id);
    if (!p && read) this.#read(id);
    return p && !p.missing ? p : null;
  }

  /** How a user is named to people: the display name, else `hint` (a display name
   * the caller already holds), else the username. */
  name(id, username, hint, read = true) {
    return this.get(id, read)?.display_name || hint || username || 'someone';
  }

  /** "🌴 On holiday", or '' when the user has no status (or it is not known). */
  status(id, read = true) {
    const p = this.get(id, read);
    return p ? [p.status_emoji, p.status_text].filter(Boolean).join(' ') : '';
  }

  /** A profile the server gave (an update, a search result, our own after a save). */
  set(profile) {
    const had = this.known.get(profile.id);
    this.known.set(profile.id, profile);
    if (!had || had.missing || FIELDS.some((f) => (had[f] ?? null) !== (profile[f] ?? null))) this.#changed();
  }

  /** Forget everything (signing out). */
  reset() {
    this.known.clear();
    this.asked.clear();
  }

  #read(id) {
    if (this.asked.has(id) || !this.client?.user) return;
    this.asked.add(id);
    const client = this.client;
    client.api.getUser(id).then(
      (p) => { if (this.client === client) this.set(p); },
      // Unknown, or a server without profiles: the username it came with stays. A
      // refusal for the rate is not an answer: asked again when shown again.
      (e) => { if (e?.status !== 429) this.known.set(id, { id, missing: true }); },
    ).finally(() => this.asked.delete(id));
  }

  #changed() {
    if (this.queued) return;
    this.queued = true;
    requestAnimationFrame(() => {
      this.queued = false;
      for (const fn of [...this.listeners]) fn();
    });
  }
}

const FIELDS = ['username', 'display_name', 'avatar_url', 'status_text', 'status_emoji'];

/** The app's profiles. */
export const profiles = new Profiles();

// Avatar pictures that failed (an unreachable host, or one the page's
// Content-Security-Policy does not allow): initials at once the next time.
const broken = new Set();

/** The picture of a user's avatar inside `node` (initials stay underneath), when the
 * profile has an avatar URL that loads. */
export function avatarPicture(node, userId, read = true) {
  const url = profiles.get(userId, read)?.avatar_url;
  if (!url || broken.has(url) || !/^https?:\/\//i.test(url)) return;
  const img = document.createElement('img');
  img.alt = '';
  img.decoding = 'async';
  img.referrerPolicy = 'no-referrer';
  img.addEventListener('error', () => {
    broken.add(url);
    img.remove();
  });
  img.addEventListener('load', () => node.classList.add('has-picture'));
  img.src = url;
  node.append(img);
}
