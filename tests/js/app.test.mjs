// The web app's pure modules (no DOM, no server): the Markdown subset, the room's
// message store (changes applied once whatever the order they are seen in), the rows
// of a conversation (grouping, days, the unread divider) and the formatting helpers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse, plain, safeUrl, inline } from '../../src/web/app/markdown.js';
import { RoomStore } from '../../src/web/app/store.js';
import { buildRows, estimateHeight } from '../../src/web/app/rows.js';
import { isImage, displaySize, filesText, filesOnlyText } from '../../src/web/app/files.js';
import { initials, fileSize, nameList, clip, dayKey } from '../../src/web/app/format.js';

const text = (s) => ({ type: 'text', text: s });

test('markdown: emphasis, code, quotes, code blocks, links', () => {
  assert.deepEqual(parse('**bold** _it_ *it* ~~no~~ `a*b*`')[0].children, [
    { type: 'strong', children: [text('bold')] }, text(' '),
    { type: 'em', children: [text('it')] }, text(' '),
    { type: 'em', children: [text('it')] }, text(' '),
    { type: 'del', children: [text('no')] }, text(' '),
    { type: 'code', text: 'a*b*' },
  ]);
  assert.deepEqual(parse('snake_case_name and 2 * 3 * 4')[0].children, [text('snake_case_name and 2 * 3 * 4')],
    'no emphasis inside words or around spaces');
  assert.deepEqual(parse('> said\n> twice\nthen'), [
    { type: 'quote', children: [{ type: 'para', children: [text('said'), { type: 'br' }, text('twice')] }] },
    { type: 'para', children: [text('then')] },
  ]);
  assert.deepEqual(parse('```\n**not bold**\n```'), [{ type: 'code', text: '**not bold**' }]);
  assert.deepEqual(parse('a\n\nb').map((b) => b.type), ['para', 'para']);
  assert.deepEqual(inline('see https://example.org/a_(b). ok'), [
    text('see '), { type: 'link', href: 'https://example.org/a_(b)', children: [text('https://example.org/a_(b)')] }, text('. ok'),
  ], 'trailing punctuation is prose, balanced brackets are the URL\'s');
  assert.deepEqual(inline('[docs](https://example.org/d?x=1)'), [
    { type: 'link', href: 'https://example.org/d?x=1', children: [text('docs')] },
  ]);
  assert.deepEqual(inline('[mail](mailto:a@example.org)')[0].href, 'mailto:a@example.org');
});

test('markdown: only http, https and mailto links; markup stays text', () => {
  for (const bad of ['[x](javascript:alert(1))', '[x](data:text/html,hi)', '[x](/relative)', '[x](vbscript:x)']) {
    assert.ok(inline(bad).every((n) => n.type === 'text'), `${bad} is text`);
  }
  assert.equal(safeUrl('JAVASCRIPT:alert(1)'), null);
  assert.equal(safeUrl('https://example.org'), 'https://example.org/');
  assert.deepEqual(parse('<img src=x onerror=alert(1)>')[0].children, [text('<img src=x onerror=alert(1)>')]);
  assert.equal(plain('**hi** _there_\n> `code`'), 'hi there code');
});

test('markdown: hostile input stays fast', () => {
  const started = Date.now();
  for (const s of ['*a '.repeat(20000), '['.repeat(60000), '**'.repeat(30000), '`'.repeat(60000), '_x'.repeat(30000)]) parse(s);
  assert.ok(Date.now() - started < 1500, `took ${Date.now() - started} ms`);
});

const msg = (seq, fields = {}) => ({ id: seq * 10, seq, kind: 'message', user_id: 'u1', username: 'ann', content: `m${seq}`, created_at: '2026-03-18T10:00:00.000Z', ...fields });
const change = (seq, kind, target, fields = {}) => ({ id: seq * 10, seq, kind, message_id: target, user_id: 'u2', username: 'bob', content: '', created_at: '2026-03-18T10:01:00.000Z', ...fields });

test('store: a change counts once whether seen in a page, live, or both', () => {
  const s = new RoomStore('r', 'me');
  // The page's rows are as of seq 3: the reaction at seq 3 is in the row already.
  s.addPage([msg(1, { reactions: { '👍': 1 } }), msg(2), change(3, 'reaction_added', 10, { data: { emoji: '👍' } })], { asOf: 3 });
  s.addLive([change(3, 'reaction_added', 10, { data: { emoji: '👍' } })]);
  assert.deepEqual(s.get(10).reactions, { '👍': 1 }, 'the live copy of a change in the page is not applied again');
  s.addLive([change(4, 'reaction_added', 10, { data: { emoji: '👍' }, user_id: 'me', username: 'me' })]);
  assert.deepEqual(s.get(10).reactions, { '👍': 2 });
  assert.ok(s.myReactions(10).has('👍'));
  assert.deepEqual(s.whoReacted(10, '👍'), { names: ['you', 'bob'], others: 0 });
  s.addLive([change(5, 'message_edited', 20, { content: 'm2, edited', edited_at: '2026-03-18T10:02:00.000Z' })]);
  assert.equal(s.get(20).content, 'm2, edited');
  s.addLive([change(6, 'message_deleted', 10, { deleted_at: '2026-03-18T10:03:00.000Z' })]);
  assert.deepEqual([s.get(10).content, s.get(10).reactions, !!s.get(10).deleted_at], ['', {}, true]);
  assert.deepEqual(s.entries.map((e) => e.seq), [1, 2], 'change entries are not shown');
});

test('store: older pages go first; who reacted follows the newest news', () => {
  const s = new RoomStore('r', 'me');
  // bob's reaction (seq 4) is in the row; he takes it back at seq 8 (seen live), and the
  // older page with his add comes in last.
  s.addPage([msg(5, { reactions: { '🎉': 1 } }), msg(6)], { asOf: 6 });
  s.addLive([change(7, 'reaction_added', 50, { data: { emoji: '🎉' }, user_id: 'u3', username: 'cy' }),
    change(8, 'reaction_removed', 50, { data: { emoji: '🎉' } })]);
  s.addPage([msg(3), change(4, 'reaction_added', 50, { data: { emoji: '🎉' } })], { asOf: 8, older: true });
  assert.deepEqual(s.entries.map((e) => e.seq), [3, 5, 6]);
  assert.deepEqual([s.low, s.high], [3, 8]);
  assert.deepEqual(s.whoReacted(50, '🎉'), { names: ['cy'], others: 0 }, 'the older add does not undo the newer removal');
});

test('store: a live reply moves its root\'s count; a reply already counted does not', () => {
  const s = new RoomStore('r', 'me');
  s.addPage([msg(1, { reply_count: 1 }), msg(2, { reply_to: 10 })], { asOf: 2 });
  assert.equal(s.get(10).reply_count, 1);
  s.addLive([msg(3, { reply_to: 10, created_at: '2026-03-18T11:00:00.000Z' })]);
  assert.equal(s.get(10).reply_count, 2);
  assert.equal(s.get(10).last_reply_at, '2026-03-18T11:00:00.000Z');
  const events = [];
  s.listen((e) => events.push(e.type));
  const v = s.get(20).v;
  s.addDetached([msg(2, { reply_to: 10, content: 'newer copy' })], { asOf: 9 });
  assert.equal(s.get(20).content, 'newer copy', 'a newer copy of a row replaces the older');
  assert.equal(s.get(20).v, v + 1, 'and gets a new version, so that it is drawn again');
  assert.deepEqual(events, ['update']);
  s.addLive([change(10, 'message_edited', 20, { content: 'edited after' })]);
  assert.deepEqual([s.get(20).content, s.get(20).v], ['edited after', v + 2], 'later changes still apply and redraw');
});

test('rows: grouping, days, the unread divider, reuse', () => {
  const at = (min, day = 18) => `2026-03-${day}T10:${String(min).padStart(2, '0')}:00.000Z`;
  const entries = [
    msg(1, { created_at: at(0) }),
    msg(2, { created_at: at(1) }), // same author, a minute later: grouped
    msg(3, { created_at: at(9) }), // eight minutes later: a header again
    { ...msg(4, { created_at: at(10) }), kind: 'system' },
    msg(5, { created_at: at(11) }), // after a system entry: a header
    msg(6, { created_at: at(12), user_id: 'u2', username: 'bob' }),
    msg(7, { created_at: at(0, 19) }), // next day
  ];
  const rows = buildRows(entries, [], { dividerAfter: 5, heldFrom: 1, me: 'u1', ctxVersion: 0 });
  assert.deepEqual(rows.map((r) => r.grouped), [false, true, false, false, false, false, false]);
  assert.deepEqual(rows.map((r) => !!r.day), [true, false, false, false, false, false, true]);
  assert.deepEqual(rows.map((r) => r.divider), [false, false, false, false, false, true, false],
    "the divider goes before the first newer entry of someone else");
  const again = buildRows(entries, [], { dividerAfter: 5, heldFrom: 1, me: 'u1', ctxVersion: 0 }, new Map(rows.map((r) => [r.key, r])));
  assert.ok(again.every((r, i) => r === rows[i]), 'unchanged rows are the same objects');
  entries[2].v = 1;
  const changed = buildRows(entries, [], { dividerAfter: 5, heldFrom: 1, me: 'u1', ctxVersion: 0 }, new Map(rows.map((r) => [r.key, r])));
  assert.deepEqual(changed.map((r, i) => r === rows[i]), [true, true, false, true, true, true, true], 'only the changed row is new');
  assert.ok(buildRows(entries.slice(4), [], { dividerAfter: 2, heldFrom: 5, me: 'u1', ctxVersion: 0 }).every((r) => !r.divider),
    'no divider while the first unread entry is not loaded');
});

test('format helpers', () => {
  assert.equal(initials('Maya Chen'), 'MC');
  assert.equal(initials('bob_92'), 'B9');
  assert.equal(initials('émile'), 'É');
  assert.equal(fileSize(840), '840 B');
  assert.equal(fileSize(123456), '123 KB');
  assert.equal(fileSize(3_400_000), '3.4 MB');
  assert.equal(nameList(['you', 'bob'], 2), 'you, bob and 2 others');
  assert.equal(clip('alpha beta gamma', 12), 'alpha beta…');
  assert.notEqual(dayKey('2026-03-18T10:00:00Z'), dayKey('2026-03-20T10:00:00Z'));
});

test('files: which show inline, at what size; a message of files only', () => {
  assert.ok(isImage({ mime: 'image/png' }) && isImage({ mime: 'image/webp' }));
  assert.ok(!isImage({ mime: 'image/svg+xml' }) && !isImage({ mime: 'application/pdf' }) && !isImage(null));
  assert.deepEqual(displaySize({ width: 4000, height: 1000 }), { width: 320, height: 80, known: true });
  assert.deepEqual(displaySize({ width: 100, height: 480 }), { width: 50, height: 240, known: true });
  assert.deepEqual(displaySize({ width: 40, height: 30 }), { width: 40, height: 30, known: true });
  assert.equal(displaySize({}).known, false);
  const a = { id: 'f1', name: 'cat.png', mime: 'image/png' };
  const b = { id: 'f2', name: 'notes.pdf', mime: 'application/pdf' };
  assert.equal(filesText([a, b]), 'cat.png, notes.pdf');
  const m = { content: 'cat.png, notes.pdf', attachments: [{ file_id: 'f1', file: a }, { file_id: 'f2', file: b }] };
  assert.ok(filesOnlyText(m));
  assert.ok(!filesOnlyText({ ...m, content: 'look at these' }));
  assert.ok(!filesOnlyText({ content: 'x', attachments: [{ url: 'https://example.com/x', name: 'x' }] }));
  // Rows of images are estimated at their drawn height (the timeline measures once).
  const row = buildRows([{ id: 1, seq: 1, user_id: 'u', username: 'u', content: 'cat.png', created_at: '2026-03-18T10:00:00Z',
    attachments: [{ file_id: 'f1', file: { ...a, width: 640, height: 480 } }] }], [], { me: 'u', ctxVersion: 0 });
  assert.ok(estimateHeight(row[0]) >= 240, `estimate ${estimateHeight(row[0])}`);
});
