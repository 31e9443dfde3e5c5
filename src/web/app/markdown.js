// A safe Markdown subset for messages: **bold**, *italic* / _italic_, ~~struck~~,
// `code`, ``` code blocks ```, > quotes, [text](url) and bare http(s) links. parse()
// turns text into a small tree (pure: no DOM, tested under Node); render() builds DOM
// nodes from it, text always as text nodes. Links are http, https or mailto only and
// open in a new tab without a referrer or an opener; anything else stays text.

const MAX_DEPTH = 4; // nested emphasis deeper than this is left as text
const MAX_EMPHASIS_CHARS = 4000; // longer paragraphs keep their * and _ as typed (bounded work)
const MAX_CLOSERS = 20; // closing delimiters tried per opening one
const LINK_PROTOCOLS = new Set(['http:', 'https:', 'mailto:']);

/** The URL if it is absolute and http, https or mailto; else null. */
export function safeUrl(href) {
  let url;
  try {
    url = new URL(String(href).trim());
  } catch {
    return null;
  }
  return LINK_PROTOCOLS.has(url.protocol) ? url.href : null;
}

/**
 * Blocks of `text`: `{type: 'para', children}` (lines joined by `{type: 'br'}`),
 * `{type: 'code', text}`, `{type: 'quote', children: blocks}`.
 */
export function parse(text, depth = 0) {
  const lines = String(text).replace(/\r\n?/g, '\n').split('\n');
  const blocks = [];
  let para = [];
  const endPara = () => {
    if (para.length) blocks.push({ type: 'para', children: inline(para.join('\n'), depth) });
    para = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (/^\s*```/.test(line)) {
      endPara();
      const body = [];
      i++;
      while (i < lines.length && !/^\s*```\s*$/.test(lines[i])) body.push(lines[i++]);
      blocks.push({ type: 'code', text: body.join('\n') });
      continue;
    }
    if (/^>/.test(line) && depth < MAX_DEPTH) {
      endPara();
      const body = [];
      while (i < lines.length && /^>/.test(lines[i])) body.push(lines[i++].replace(/^> ?/, ''));
      i--;
      blocks.push({ type: 'quote', children: parse(body.join('\n'), depth + 1) });
      continue;
    }
    if (line.trim() === '') endPara();
    else para.push(line);
  }
  endPara();
  return blocks;
}

// Delimiters of inline spans: [opening, closing, node type].
const SPANS = [
  ['**', '**', 'strong'],
  ['__', '__', 'strong'],
  ['~~', '~~', 'del'],
  ['*', '*', 'em'],
  ['_', '_', 'em'],
];

const isWordChar = (c) => !!c && /[\p{L}\p{N}]/u.test(c);

/**
 * Inline nodes of one paragraph: `{type: 'text', text}`, `{type: 'br'}`,
 * `{type: 'code', text}`, `{type: 'strong'|'em'|'del', children}`,
 * `{type: 'link', href, children}`.
 */
export function inline(s, depth = 0) {
  const out = [];
  let text = '';
  const flush = () => {
    if (text) out.push({ type: 'text', text });
    text = '';
  };
  // Closers known to be absent after a position: a delimiter that found no closer once
  // finds none later either, which keeps long hostile inputs linear.
  const none = new Map();
  const find = (closer, from) => {
    if ((none.get(closer) ?? Infinity) <= from) return -1;
    const at = s.indexOf(closer, from);
    if (at < 0) none.set(closer, from);
    return at;
  };
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === '\n') {
      flush();
      out.push({ type: 'br' });
      i++;
      continue;
    }
    if (c === '\\' && i + 1 < s.length && /[\\`*_~[\]()>#]/.test(s[i + 1])) {
      text += s[i + 1];
      i += 2;
      continue;
    }
    if (c === '`') {
      const end = find('`', i + 1);
      if (end > i + 1) {
        flush();
        out.push({ type: 'code', text: s.slice(i + 1, end) });
        i = end + 1;
        continue;
      }
    }
    if (c === '[') {
      const link = linkAt(s, i, depth, find);
      if (link) {
        flush();
        out.push(link.node);
        i = link.end;
        continue;
      }
    }
    if ((c === 'h' || c === 'H') && !isWordChar(s[i - 1])) {
      const auto = autolinkAt(s, i);
      if (auto) {
        flush();
        out.push(auto.node);
        i = auto.end;
        continue;
      }
    }
    const span = depth < MAX_DEPTH && s.length <= MAX_EMPHASIS_CHARS && spanAt(s, i, find);
    if (span) {
      flush();
      out.push({ type: span.type, children: inline(s.slice(span.from, span.to), depth + 1) });
      i = span.end;
      continue;
    }
    text += c;
    i++;
  }
  flush();
  return out;
}

// An emphasis span opening at i: its type, inner range and end; or null.
function spanAt(s, i, find) {
  for (const [open, close, type] of SPANS) {
    if (!s.startsWith(open, i)) continue;
    const from = i + open.length;
    // "* item" and "2 * 3" are not emphasis; neither is snake_case.
    if (from >= s.length || /\s/.test(s[from])) continue;
    if (open[0] === '_' && isWordChar(s[i - 1])) continue;
    let at = find(close, from);
    for (let tries = 0; at >= 0 && tries < MAX_CLOSERS; tries++) {
      const inner = s.slice(from, at);
      const ok = inner.length > 0 && !/\s$/.test(inner) && !inner.includes('\n\n')
        && !(open[0] === '_' && isWordChar(s[at + close.length]))
        // A single * or _ must not close on the first half of a double one.
        && !(open.length === 1 && s[at + 1] === open && s[at - 1] !== open);
      if (ok) return { type, from, to: at, end: at + close.length };
      at = find(close, at + 1);
    }
  }
  return null;
}

// [text](url) at i, with a safe URL; or null (then it is text).
function linkAt(s, i, depth, find) {
  const close = find('](', i + 1);
  if (close < 0 || close - i > 1000 || s.slice(i + 1, close).includes('\n')) return null;
  const end = find(')', close + 2);
  if (end - close > 2100) return null;
  if (end < 0) return null;
  const href = safeUrl(s.slice(close + 2, end));
  const label = s.slice(i + 1, close);
  if (!href || !label) return null;
  return { node: { type: 'link', href, children: inline(label, depth + 1) }, end: end + 1 };
}

// A bare http(s) URL at i (trailing punctuation left out); or null.
function autolinkAt(s, i) {
  const m = /^https?:\/\/[^\s<>"]+/i.exec(s.slice(i, i + 2100));
  if (!m) return null;
  let url = m[0];
  // "see https://x.org/a." and "(https://x.org/b)": the dot and the bracket are prose.
  for (;;) {
    const last = url[url.length - 1];
    if (/[.,;:!?'*_~]/.test(last)) url = url.slice(0, -1);
    else if (last === ')' && (url.match(/\(/g) || []).length < (url.match(/\)/g) || []).length) url = url.slice(0, -1);
    else break;
  }
  const href = safeUrl(url);
  if (!href || url.length <= 'https://'.length) return null;
  return { node: { type: 'link', href, children: [{ type: 'text', text: url }] }, end: i + url.length };
}

/** DOM nodes for `text` (a fragment): every character of the message is text. */
export function render(text, doc = document) {
  const frag = doc.createDocumentFragment();
  for (const block of parse(text)) frag.append(renderBlock(block, doc));
  return frag;
}

function renderBlock(block, doc) {
  if (block.type === 'code') {
    const pre = doc.createElement('pre');
    const code = doc.createElement('code');
    code.textContent = block.text;
    pre.append(code);
    return pre;
  }
  if (block.type === 'quote') {
    const q = doc.createElement('blockquote');
    for (const b of block.children) q.append(renderBlock(b, doc));
    return q;
  }
  const p = doc.createElement('p');
  for (const n of block.children) p.append(renderInline(n, doc));
  return p;
}

const TAGS = { strong: 'strong', em: 'em', del: 'del', code: 'code' };

function renderInline(node, doc) {
  if (node.type === 'text') return doc.createTextNode(node.text);
  if (node.type === 'br') return doc.createElement('br');
  if (node.type === 'code') {
    const code = doc.createElement('code');
    code.textContent = node.text;
    return code;
  }
  if (node.type === 'link') {
    const a = doc.createElement('a');
    a.href = node.href;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    for (const n of node.children) a.append(renderInline(n, doc));
    return a;
  }
  const tag = doc.createElement(TAGS[node.type] || 'span');
  for (const n of node.children || []) tag.append(renderInline(n, doc));
  return tag;
}

/** The text of `content` without Markdown marks (previews, notifications, quotes). */
export function plain(content) {
  const parts = [];
  const walk = (nodes) => {
    for (const n of nodes) {
      if (n.type === 'text' || n.type === 'code') parts.push(n.text);
      else if (n.type === 'br') parts.push(' ');
      else if (n.type === 'para' || n.type === 'quote') {
        walk(n.children);
        parts.push(' ');
      } else if (n.children) walk(n.children);
    }
  };
  for (const b of parse(content)) {
    if (b.type === 'code') parts.push(b.text, ' ');
    else walk([b]);
  }
  return parts.join('').replace(/\s+/g, ' ').trim();
}
