// "alice is typing…": who is typing in the open room, from the server's typing events,
// never shown longer than the server would keep one.

import { profiles } from './profiles.js';

const SAFETY_MS = 8000; // the server ends a typing after 6 s

/** The typing line under the conversation. */
export class TypingLine {
  constructor(node) {
    this.node = node;
    this.typers = new Map(); // user id -> { username, timer }
  }

  /** `username` started (on) or stopped typing. */
  set(userId, username, on) {
    const current = this.typers.get(userId);
    if (current) clearTimeout(current.timer);
    if (on) {
      const timer = setTimeout(() => this.set(userId, username, false), SAFETY_MS);
      this.typers.set(userId, { username, timer });
    } else if (!current) {
      return;
    } else {
      this.typers.delete(userId);
    }
    this.#render();
  }

  /** Nobody is typing (another room, a reconnect). */
  clear() {
    for (const t of this.typers.values()) clearTimeout(t.timer);
    this.typers.clear();
    this.#render();
  }

  #render() {
    const names = [...this.typers.entries()].map(([id, t]) => profiles.name(id, t.username));
    this.node.textContent =
      names.length === 0 ? '' :
      names.length === 1 ? `${names[0]} is typing…` :
      names.length === 2 ? `${names[0]} and ${names[1]} are typing…` :
      `${names.length} people are typing…`;
  }
}
