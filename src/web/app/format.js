// How values read to people: times, days, names' initials and colours, sizes. Pure
// functions (tested under Node); the locale is the browser's.

/** A short local time of day: "14:05" / "2:05 PM". */
export function clock(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** A short local time, with the date when it is not today. */
export function timeOf(iso, now = new Date()) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return sameDay(d, now)
    ? clock(iso)
    : d.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

/** The full local date and time (tooltips). */
export function fullTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleString([], { dateStyle: 'full', timeStyle: 'short' });
}

/** A key that is equal for two times on the same local day. */
export function dayKey(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/** "Today", "Yesterday", or the date ("Monday, March 16" / with the year when not this one). */
export function dayLabel(iso, now = new Date()) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  if (sameDay(d, now)) return 'Today';
  const y = new Date(now);
  y.setDate(now.getDate() - 1);
  if (sameDay(d, y)) return 'Yesterday';
  const opts = { weekday: 'long', month: 'long', day: 'numeric' };
  if (d.getFullYear() !== now.getFullYear()) opts.year = 'numeric';
  return d.toLocaleDateString([], opts);
}

/** One or two letters for an avatar: "Maya Chen" -> "MC", "bob_92" -> "B". */
export function initials(name) {
  const words = String(name || '?').trim().split(/[\s._-]+/u).filter((w) => /[\p{L}\p{N}]/u.test(w));
  const first = (w) => [...w.replace(/^[^\p{L}\p{N}]+/u, '')][0] || '';
  if (!words.length) return '?';
  const letters = words.length > 1 ? first(words[0]) + first(words[words.length - 1]) : first(words[0]);
  return letters.toUpperCase();
}

/** A stable hue (0..359) for a user id: each person keeps their avatar colour. */
export function hueOf(id) {
  let h = 2166136261;
  for (const c of String(id)) h = Math.imul(h ^ c.codePointAt(0), 16777619) >>> 0;
  return h % 360;
}

/** A byte count for people: "840 B", "12 KB", "3.4 MB". */
export function fileSize(bytes) {
  const n = Number(bytes);
  if (!Number.isFinite(n) || n < 0) return '';
  if (n < 1000) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = -1;
  do {
    v /= 1000;
    u++;
  } while (v >= 1000 && u < units.length - 1);
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** "alice", "alice and bob", "alice, bob and 3 others". */
export function nameList(names, others = 0) {
  const list = [...names];
  if (others > 0) list.push(others === 1 ? '1 other' : `${others} others`);
  if (list.length <= 1) return list[0] || '';
  return `${list.slice(0, -1).join(', ')} and ${list[list.length - 1]}`;
}

/** Text cut to `max` characters on a word boundary where one is near, with "…". */
export function clip(text, max = 120) {
  const s = String(text).replace(/\s+/g, ' ').trim();
  if (s.length <= max) return s;
  const cut = s.slice(0, max);
  const space = cut.lastIndexOf(' ');
  return `${(space > max * 0.6 ? cut.slice(0, space) : cut).trimEnd()}…`;
}
