// One row of a conversation, built as DOM: a message (avatar, author and time unless it
// continues the previous one, reply quote, Markdown content, attachments, reactions,
// thread summary, action toolbar), a system entry, or one of the user's own sends that
// the server has not confirmed yet. Rows may open with a day separator and the unread
// divider. Buttons carry `data-action`; the conversation handles them in one place.
import { el } from './dom.js';
import { render as markdown, plain } from './markdown.js';
import { clock, fullTime, initials, hueOf, nameList, clip } from './format.js';
import { icon } from './icons.js';
import { attachmentList, filesOnlyText } from './files.js';
import { profiles, avatarPicture } from './profiles.js';

/** The avatar of a user: their picture when their profile has one that loads, else the
 * initials of their display name (or username) on a colour of their own. */
export function avatar(userId, username, size = '', read = true) {
  const node = el('span', { class: `avatar ${size}`.trim(), 'aria-hidden': 'true', text: initials(profiles.name(userId, username, null, read)) });
  node.style.setProperty('--hue', String(hueOf(userId)));
  avatarPicture(node, userId, read);
  return node;
}

/** The name a message shows for its author (display name, else username). */
const author = (m) => profiles.name(m.user_id, m.username);

function separators(row) {
  return [
    row.day ? el('div', { class: 'day-sep', role: 'separator', 'aria-label': row.day, dataset: { testid: 'day-separator' } },
      el('span', { text: row.day })) : null,
    row.divider ? el('div', { class: 'unread-divider', id: 'unread-divider', role: 'separator', 'aria-label': 'New messages' },
      el('span', { text: 'New' })) : null,
  ];
}

/** A system entry row ("ann joined"), as text. */
export function systemRow(row) {
  const m = row.entry;
  return el('li', {
    class: 'entry system-entry',
    'data-testid': 'system-entry',
    tabindex: '-1',
    dataset: { seq: m.seq, type: m.data?.type || '' },
  },
  ...separators(row),
  el('div', { class: 'system-line' },
    el('span', { class: 'system-text', text: m.content }),
    el('time', { datetime: m.created_at, title: fullTime(m.created_at), text: clock(m.created_at) })));
}

/**
 * A message row. `ctx`: `me` (user id), `store` (reactions known), `canEdit(m)`,
 * `canDelete(m)`, `canReact`, `inThread` (a reply in the thread panel: no reply or
 * thread actions), `quoteOf(id)` (the message a reply answers, if known).
 */
export function messageRow(row, ctx) {
  const m = row.entry;
  if (ctx.folded?.(m)) return foldedRow(row, m);
  const mine = m.user_id === ctx.me;
  const deleted = !!m.deleted_at;
  const li = el('li', {
    class: `entry message${mine ? ' mine' : ''}${row.grouped ? ' grouped' : ''}${deleted ? ' deleted' : ''}`,
    'data-testid': 'message',
    tabindex: '-1',
    'aria-labelledby': null,
    dataset: { seq: m.seq, messageId: m.id, userId: m.user_id, state: mine ? 'acked' : 'stored', clientMsgId: m.client_msg_id },
  });
  const time = el('time', { datetime: m.created_at, title: fullTime(m.created_at), text: clock(m.created_at) });
  const edited = m.edited_at && !deleted ? el('button', {
    type: 'button', class: 'edited link-button', text: '(edited)', dataset: { action: 'history' },
    'aria-label': 'Edited: show earlier versions',
  }) : null;
  const meta = el('div', { class: `meta${row.grouped ? ' visually-hidden' : ''}` },
    el('span', { class: 'author', 'data-testid': 'message-author', text: author(m), title: `@${m.username}` }),
    time,
    row.grouped ? null : edited,
    mine ? el('span', { class: 'status', 'data-testid': 'message-status', text: 'Sent ✓' }) : null);
  const body = el('div', { class: 'body' }, meta);
  if (!deleted && ctx.isPinned?.(m)) {
    body.append(el('span', { class: 'pin-marker', 'data-testid': 'pin-marker', title: 'Pinned in this room' },
      icon('pin', 'icon pin-icon'), 'Pinned'));
  }
  if (m.reply_to != null && !ctx.inThread && row.quote !== false) body.append(quote(m.reply_to, ctx));
  const text = content(m);
  // A message of files only carries their names as its text (the server wants some):
  // the files show them.
  if (filesOnlyText(m)) text.classList.add('visually-hidden');
  body.append(text);
  // A message without a header says it was edited after its text.
  if (row.grouped && edited) {
    const last = text.lastElementChild;
    (last?.tagName === 'P' ? last : text).append(' ', edited);
  }
  if (!deleted && Array.isArray(m.attachments) && m.attachments.length) body.append(attachmentList(m.attachments));
  const reactions = !deleted && reactionBar(m, ctx);
  if (reactions) body.append(reactions);
  if (!ctx.inThread && m.reply_count > 0) {
    body.append(el('button', {
      type: 'button',
      class: 'thread-summary',
      'data-testid': 'thread-summary',
      dataset: { action: 'thread' },
      title: 'Open the thread',
      text: `${m.reply_count} ${m.reply_count === 1 ? 'reply' : 'replies'}${m.last_reply_at ? ` · last ${clock(m.last_reply_at)}` : ''}`,
    }));
  }
  const gutter = el('div', { class: 'gutter', 'aria-hidden': 'true' },
    row.grouped ? el('span', { class: 'gutter-time', text: clock(m.created_at) }) : avatar(m.user_id, m.username));
  li.append(...separators(row).filter(Boolean), el('div', { class: 'msg' }, gutter, body, deleted ? null : toolbar(m, ctx)));
  return li;
}

function content(m) {
  if (m.deleted_at) return el('div', { class: 'content', 'data-testid': 'message-content', text: 'This message was deleted.' });
  const node = el('div', { class: 'content', 'data-testid': 'message-content' });
  node.append(markdown(m.content));
  return node;
}

function quote(id, ctx) {
  const target = ctx.quoteOf(id);
  const who = target ? author(target) : 'a message';
  const text = !target ? 'not loaded' : target.deleted_at ? 'deleted message' : clip(plain(target.content), 90);
  return el('button', {
    type: 'button',
    class: 'reply-quote',
    'data-testid': 'reply-quote',
    dataset: { action: 'goto', target: id },
    title: `Show ${who}'s message`,
  },
  el('span', { class: 'visually-hidden', text: 'In reply to ' }),
  el('span', { class: 'quote-author', text: target ? who : '↩' }),
  el('span', { class: 'quote-text', text }));
}

function reactionBar(m, ctx) {
  const entries = Object.entries(m.reactions || {}).filter(([, n]) => n > 0);
  if (!entries.length) return null;
  const mineSet = ctx.store.myReactions(m.id);
  return el('div', { class: 'reactions', role: 'group', 'aria-label': 'Reactions' },
    ...entries.map(([emoji, n]) => {
      const mine = mineSet.has(emoji);
      const { names, others } = ctx.store.whoReacted(m.id, emoji);
      const who = names.length ? nameList(names, others) : `${n} ${n === 1 ? 'person' : 'people'}`;
      return el('button', {
        type: 'button',
        class: `reaction${mine ? ' mine' : ''}`,
        'data-testid': 'reaction',
        'aria-pressed': String(mine),
        'aria-label': `${emoji} ${n}: ${who}${mine ? ' (you reacted; press to take it back)' : ''}`,
        title: `${who} reacted with ${emoji}`,
        disabled: !ctx.canReact,
        dataset: { action: 'toggle-reaction', emoji, count: n },
      }, el('span', { class: 'emoji', text: emoji }), el('span', { class: 'count', text: String(n) }));
    }),
    ctx.canReact ? el('button', {
      type: 'button', class: 'add-reaction', 'aria-label': 'Add a reaction', title: 'Add a reaction',
      dataset: { action: 'react' }, text: '+',
    }) : null);
}

function toolbar(m, ctx) {
  const b = (action, name, label, shortcut) => el('button', {
    type: 'button',
    class: 'action',
    'aria-label': label,
    title: shortcut ? `${label} (${shortcut})` : label,
    'aria-keyshortcuts': shortcut || null,
    dataset: { action },
  }, icon(name));
  return el('div', { class: 'actions', role: 'toolbar', 'aria-label': `Message by ${author(m)}` },
    ctx.canReact ? b('react', 'smile', 'Add a reaction', '+') : null,
    !ctx.inThread && ctx.canSend ? b('reply', 'reply', 'Reply', 'R') : null,
    !ctx.inThread ? b('thread', 'thread', 'Open the thread', 'T') : null,
    ctx.canEdit(m) ? b('edit', 'edit', 'Edit', 'E') : null,
    ctx.canDelete(m) ? b('delete', 'trash', 'Delete', 'Delete') : null,
    ctx.canPin?.(m) ? (ctx.isPinned(m) ? b('unpin', 'pin', 'Unpin') : b('pin', 'pin', 'Pin')) : null,
    ctx.canReport?.(m) ? b('report', 'flag', 'Report') : null);
}

// A message of a blocked user, folded: who and what only on request.
function foldedRow(row, m) {
  return el('li', {
    class: 'entry message folded',
    'data-testid': 'message',
    tabindex: '-1',
    dataset: { seq: m.seq, messageId: m.id, userId: m.user_id, state: 'stored', folded: 'true' },
  },
  ...separators(row).filter(Boolean),
  el('div', { class: 'msg' },
    el('div', { class: 'gutter', 'aria-hidden': 'true' }),
    el('div', { class: 'body' },
      el('span', { class: 'author visually-hidden', 'data-testid': 'message-author', text: '' }),
      el('button', {
        type: 'button',
        class: 'content folded-toggle link-button',
        'data-testid': 'message-content',
        'aria-expanded': 'false',
        title: 'Show this message',
        dataset: { action: 'reveal' },
        text: 'Message from a blocked user',
      }))));
}

/** One of the user's own sends, not confirmed yet (`row.pending`: {content, state, error}). */
export function pendingRow(row, ctx) {
  const p = row.pending;
  const status = el('span', { class: 'status', 'data-testid': 'message-status' });
  if (p.state === 'failed') {
    status.append(`Not sent (${p.error || 'error'}) `,
      el('button', { type: 'button', class: 'retry link-button', text: 'Retry', dataset: { action: 'retry' } }),
      el('button', { type: 'button', class: 'retry link-button', text: 'Discard', dataset: { action: 'discard' } }));
  } else {
    status.textContent = p.state === 'acked' ? 'Sent ✓' : ctx.online ? 'Sending…' : 'Waiting for the connection…';
  }
  const body = el('div', { class: 'body' },
    el('div', { class: `meta${row.grouped ? ' grouped-meta' : ''}` },
      el('span', { class: `author${row.grouped ? ' visually-hidden' : ''}`, 'data-testid': 'message-author', text: profiles.name(ctx.me, ctx.username) }),
      status));
  if (p.reply_to != null) body.append(quote(p.reply_to, ctx));
  const text = el('div', { class: 'content', 'data-testid': 'message-content' });
  text.append(markdown(p.content));
  body.append(text);
  return el('li', {
    class: `entry message mine unconfirmed${row.grouped ? ' grouped' : ''}`,
    'data-testid': 'message',
    tabindex: '-1',
    dataset: { state: p.state, clientMsgId: p.client_msg_id, userId: ctx.me, seq: p.seq },
  },
  el('div', { class: 'msg' },
    el('div', { class: 'gutter', 'aria-hidden': 'true' }, row.grouped ? null : avatar(ctx.me, ctx.username)),
    body));
}
