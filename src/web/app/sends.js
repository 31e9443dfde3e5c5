// The user's messages in the open room that the server has not confirmed yet, from the
// library's outbox (those taken up from storage after a reload or a new sign-in too):
// "Sending…" or "Waiting for the connection…", then "Sent ✓" at the ack, gone once the
// message itself is in the stream; refused ones say why, with Retry and Discard.

/** Unconfirmed sends of one room. `onChange()` is called whenever the list changes. */
export class PendingSends {
  constructor(client, { onChange }) {
    this.client = client;
    this.onChange = onChange;
    this.roomId = null;
    this.map = new Map(); // client_msg_id -> { client_msg_id, content, reply_to, state, error, seq }
    client.on('ack', (a) => this.#acked(a));
    client.on('send_failed', (f) => this.#failed(f));
    client.on('outbox_restored', () => this.take());
  }

  /** Follow another room (null: none). */
  reset(roomId) {
    this.roomId = roomId;
    this.map = new Map();
    this.seen = () => false;
  }

  /** In send order. */
  list() { return [...this.map.values()]; }

  /** Whether an entry of that seq was delivered already (so an ack needs no row). */
  setSeen(fn) { this.seen = fn; }

  /** A send just made. */
  add(p) {
    if (!p.client_msg_id) return;
    this.map.set(p.client_msg_id, p);
    this.onChange();
  }

  /** The outbox's sends of this room, those restored from storage included. */
  take() {
    if (!this.roomId) return;
    let added = false;
    for (const p of this.client.pending(this.roomId)) {
      if (p.event !== 'send_message' || this.map.has(p.client_msg_id)) continue;
      this.map.set(p.client_msg_id, { client_msg_id: p.client_msg_id, content: p.content, reply_to: p.reply_to, attachments: p.attachments, state: 'pending' });
      added = true;
    }
    if (added) this.onChange();
  }

  /** Messages of the stream: ours among them stop being pending. True when one did. */
  arrived(messages) {
    let any = false;
    for (const m of messages) if (m.client_msg_id && this.map.delete(m.client_msg_id)) any = true;
    return any;
  }

  /** Drop one (retried under a new id, or discarded); returns it. */
  remove(clientMsgId) {
    const p = this.map.get(clientMsgId);
    if (p && this.map.delete(clientMsgId)) this.onChange();
    return p;
  }

  #acked(a) {
    const p = this.map.get(a.client_msg_id);
    if (!p) return;
    if (this.seen(a.seq)) {
      this.map.delete(a.client_msg_id);
    } else {
      p.state = 'acked';
      p.seq = a.seq;
    }
    this.onChange();
  }

  #failed(f) {
    if (f.event && f.event !== 'send_message') return;
    const p = this.map.get(f.client_msg_id);
    // A session that ended keeps its sends for the next sign-in; a cancel is ours.
    if (!p || f.code === 'session_ended' || f.code === 'cancelled') return;
    p.state = 'failed';
    p.error = f.code;
    this.onChange();
  }
}
