// The users the signed-in user blocked (servers with the extension; GET /me/blocks
// answering 404 means the server has none, and the app offers no blocking). A block is
// the user's own: messages of blocked users fold behind "Message from a blocked user"
// (one click shows one), and the server refuses direct messages either way.
import { describe } from './dom.js';

/** The user's blocks, shared by the views. `onChange()` hears of every change. */
export class Blocks {
  constructor(client) {
    this.client = client;
    this.ids = new Set();
    this.names = new Map(); // user id -> username, as the server named them
    this.supported = null; // null: not asked yet; false: the server has no blocking
    this.listeners = new Set();
  }

  /** Call `fn` on every change; returns a function that stops it. */
  listen(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  #changed() {
    for (const fn of [...this.listeners]) fn();
  }

  /** Ask the server (after signing in). */
  async load() {
    try {
      const list = [];
      let cursor = null;
      do {
        const page = await this.client.api.blocks({ cursor, limit: 100 });
        list.push(...(page.blocks || []));
        cursor = page.next_cursor;
      } while (cursor);
      this.supported = true;
      this.ids = new Set(list.map((b) => b.user_id));
      this.names = new Map(list.filter((b) => b.username).map((b) => [b.user_id, b.username]));
    } catch (e) {
      if (e.status === 404 || e.status === 405) this.supported = false;
      // otherwise: unknown for now, asked again at the next sign-in
    }
    this.#changed();
  }

  /** Forget everything (signed out). */
  reset() {
    this.ids = new Set();
    this.names = new Map();
    this.supported = null;
    this.#changed();
  }

  /** Whether the user blocked `userId`. */
  has(userId) { return this.ids.has(userId); }

  /** Block or unblock `userId`; throws a readable Error when the server refuses. */
  async set(userId, blocked) {
    try {
      if (blocked) await this.client.api.block(userId);
      else await this.client.api.unblock(userId);
    } catch (e) {
      // Already so (another tab was quicker): the list below says what is true.
      if (e.code !== 'already_blocked' && e.code !== 'not_blocked') throw new Error(describe(e));
    }
    if (blocked) this.ids.add(userId);
    else this.ids.delete(userId);
    this.#changed();
  }
}
