// The rows of a conversation from its entries: which messages continue the previous
// one (same author, same day, within five minutes: no header), where a new day starts,
// where the unread divider goes. Row objects are reused while nothing about them
// changed, so that the list rebuilds only what did. Pure (tested under Node).
import { dayKey, dayLabel } from './format.js';
import { isImage, displaySize } from './files.js';

const GROUP_MS = 5 * 60 * 1000;

const isMsg = (e) => !!e && e.kind !== 'system';
const time = (e) => {
  if (e._t === undefined) e._t = Date.parse(e.created_at) || 0;
  return e._t;
};
const day = (e) => {
  if (e._day === undefined) e._day = dayKey(e.created_at);
  return e._day;
};

/**
 * Rows for `entries` (ascending seq) then `pending` (the user's unconfirmed sends).
 * `opts`: `dividerAfter` (the read position when the room was opened: the divider
 * goes before the first later entry of someone else, when `heldFrom`, the lowest seq
 * held, shows that entry is loaded), `me`, `ctxVersion` (bumped when
 * something every row shows changed: role, mute, connection), `highlight` (the key of
 * a row to pick out: a search result, a quoted message).
 */
export function buildRows(entries, pending, opts, previous = new Map()) {
  const rows = [];
  const now = new Date();
  let prev = null;
  // The divider marks the first unread entry, so only when it is held: when older entries
  // are still to load, the first unread is among them (the room offers a jump instead).
  let dividerDone = opts.dividerAfter == null || opts.heldFrom == null || opts.heldFrom > opts.dividerAfter + 1;
  for (const e of entries) {
    let divider = false;
    if (!dividerDone && e.seq > opts.dividerAfter && e.user_id !== opts.me) {
      divider = true;
      dividerDone = true;
    }
    const newDay = prev ? day(prev) !== day(e) : true;
    const grouped = !divider && !newDay && isMsg(e) && isMsg(prev) && prev.user_id === e.user_id
      && time(e) - time(prev) < GROUP_MS;
    const dayText = newDay ? dayLabel(e.created_at, now) : null;
    const key = `s${e.seq}`;
    // Replies in a row (one author, one group) to the same message quote it once.
    const quote = e.reply_to != null && !(grouped && prev.reply_to === e.reply_to);
    rows.push(reuse(previous, key, { entry: e, grouped, day: dayText, divider, quote, highlight: opts.highlight === key },
      `${e.v ?? 0}`, opts.ctxVersion));
    prev = e;
  }
  let prevMine = isMsg(prev) && prev.user_id === opts.me;
  for (const p of pending) {
    rows.push(reuse(previous, `p${p.client_msg_id}`, { pending: p, grouped: prevMine, day: null, divider: false },
      `${p.state}|${p.error || ''}`, opts.ctxVersion));
    prevMine = true;
  }
  return rows;
}

// The same row object when nothing it shows changed; else a new one with a new version.
function reuse(previous, key, fields, sig, ctxVersion) {
  const full = `${sig}|${fields.grouped}|${fields.day}|${fields.divider}|${fields.quote}|${fields.highlight}|${ctxVersion}`;
  const had = previous.get(key);
  if (had && had.sig === full && had.entry === fields.entry) return had;
  return { key, ...fields, sig: full, v: (had?.v ?? 0) + 1 };
}

/** A guess of a row's height in px before it is measured. */
export function estimateHeight(row) {
  let h = 0;
  if (row.day) h += 40;
  if (row.divider) h += 28;
  const m = row.entry || row.pending;
  if (row.entry?.kind === 'system') return h + 30;
  h += row.grouped ? 26 : 50;
  const text = m.content || '';
  const lines = text.split('\n').length + Math.floor(text.length / 90);
  h += Math.max(0, lines - 1) * 22;
  if (m.reply_to != null) h += 30;
  if (m.reactions && Object.keys(m.reactions).length) h += 34;
  if (m.reply_count > 0) h += 30;
  if (Array.isArray(m.attachments)) {
    for (const a of m.attachments) h += a.file && isImage(a.file) ? displaySize(a.file).height + 34 : 30;
  }
  return h;
}
