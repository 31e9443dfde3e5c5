// Uploaded files on messages: images inline (by their thumbnail when the server made
// one, else the image itself), other files as download links with name and size.
// Downloads need the user's token, which an <img src> or <a href> cannot send: the
// URL is the server's signed URL where it offers them (GET /rooms/:id/files/:id/url),
// else the bytes fetched with the token and shown from a blob: URL. An image that
// fails to load becomes a download link. Names are user input: text only.
import { el, describe } from './dom.js';
import { fileSize } from './format.js';
import { icon } from './icons.js';

/** Largest image shown inline when the server has no thumbnail of it. */
const INLINE_MAX_BYTES = 8 * 1024 * 1024;
/** The box an inline image fits in (CSS px). */
const BOX_W = 320;
const BOX_H = 240;
/** Most URLs kept (blob: URLs hold their bytes until revoked). */
const KEEP = 120;

/** True for the image types the server detects (never SVG: it is served as a download). */
export function isImage(file) {
  return /^image\/(png|jpeg|gif|webp)$/.test(String(file?.mime || ''));
}

/** The size an image is drawn at: its own, fitted into the box; the box when unknown. */
export function displaySize(file) {
  const w = Number(file?.width);
  const h = Number(file?.height);
  if (!(w > 0 && h > 0)) return { width: BOX_W, height: Math.round(BOX_H * 0.75), known: false };
  const scale = Math.min(1, BOX_W / w, BOX_H / h);
  return { width: Math.max(1, Math.round(w * scale)), height: Math.max(1, Math.round(h * scale)), known: true };
}

/** URLs of files for the page: signed ones, else blob: URLs of bytes fetched with the token. */
class FileLinks {
  constructor() {
    this.client = null;
    this.signed = null; // null: not known yet; false: the server has no signed URLs
    this.cache = new Map(); // key -> { promise, url?, expires, blob }
  }

  /** A URL of the file (`thumb`: of its thumbnail) usable in src and href. */
  url(file, thumb = false) {
    const key = `${file.id}:${thumb ? 't' : 'f'}`;
    const hit = this.cache.get(key);
    if (hit && hit.expires > Date.now() + 30_000) return hit.promise;
    if (hit) this.#drop(key, hit);
    const entry = { expires: Infinity, blob: false };
    entry.promise = this.#resolve(file, thumb, entry).catch((e) => {
      this.cache.delete(key);
      throw e;
    });
    this.cache.set(key, entry);
    while (this.cache.size > KEEP) {
      const [oldKey, old] = this.cache.entries().next().value;
      this.#drop(oldKey, old);
    }
    return entry.promise;
  }

  async #resolve(file, thumb, entry) {
    const api = this.client.api;
    if (this.signed !== false && file.room_id) {
      try {
        const urls = await api.fileUrl(file.room_id, file.id);
        this.signed = true;
        entry.expires = Date.parse(urls.expires_at) || Date.now() + 60_000;
        const pick = thumb && urls.thumbnail_url ? urls.thumbnail_url : urls.url;
        return new URL(pick, location.href).href;
      } catch (e) {
        // An unknown route: this server has no signed URLs. Anything else is the file's own refusal.
        if (e.status === 404 && e.code === 'not_found') this.signed = false;
        else throw e;
      }
    }
    const blob = thumb && file.has_thumbnail ? await api.thumbnail(file.id) : await api.download(file.id);
    entry.blob = true;
    return URL.createObjectURL(blob);
  }

  #drop(key, entry) {
    this.cache.delete(key);
    if (entry.blob) entry.promise.then((u) => URL.revokeObjectURL(u), () => {});
  }
}

/** The page's file URLs (main.js sets `client`). */
export const fileLinks = new FileLinks();

/** The list of a message's attachments: uploaded files and links. */
export function attachmentList(list) {
  return el('ul', { class: 'attachments', 'aria-label': 'Attachments' }, ...list.map((item) => {
    if (item.file_id) return item.file ? fileItem(item.file) : el('li', { class: 'attachment', text: 'A file' });
    return linkItem(item);
  }));
}

function linkItem(a) {
  const href = /^https?:\/\//i.test(String(a.url || '')) ? a.url : null;
  const detail = [a.mime, fileSize(a.size)].filter(Boolean).join(' · ');
  return el('li', { class: 'attachment', 'data-testid': 'attachment' },
    icon('clip'),
    href
      ? el('a', { href, target: '_blank', rel: 'noopener noreferrer', text: a.name || href })
      : el('span', { text: a.name || 'attachment' }),
    detail ? el('span', { class: 'attachment-detail', text: detail }) : null);
}

function fileItem(file) {
  const inline = isImage(file) && (file.has_thumbnail || file.size <= INLINE_MAX_BYTES);
  const li = el('li', {
    class: `attachment file${inline ? ' image' : ''}`,
    'data-testid': 'attachment',
    dataset: { fileId: file.id, kind: inline ? 'image' : 'file' },
  });
  if (inline) li.append(imageBox(file, li));
  else li.append(downloadLink(file));
  return li;
}

// A link that saves the file under its name; its URL is resolved on first use.
function downloadLink(file) {
  const a = el('a', {
    href: '#',
    class: 'file-link',
    download: file.name || 'file',
    'data-testid': 'file-link',
    title: `Download ${file.name || 'the file'}`,
  },
  icon('clip'),
  el('span', { class: 'file-name', text: file.name || 'file' }),
  el('span', { class: 'attachment-detail', text: fileSize(file.size) }));
  a.addEventListener('click', async (e) => {
    if (a.dataset.ready) return; // the URL is there: the browser saves it
    e.preventDefault();
    try {
      a.href = await fileLinks.url(file, false);
      a.dataset.ready = '1';
      a.click();
    } catch (err) {
      a.title = `Cannot download: ${describe(err)}`;
      a.classList.add('failed');
    }
  });
  return a;
}

// An image drawn at a size known before it loads (the timeline measures rows once),
// linked to the whole file; a failure turns it into a download link.
function imageBox(file, li) {
  const size = displaySize(file);
  const img = el('img', {
    alt: file.name || 'image',
    width: size.width,
    height: size.height,
    decoding: 'async',
    'data-testid': 'attachment-image',
    class: size.known ? 'file-image' : 'file-image unknown-size',
  });
  const link = el('a', {
    href: '#',
    class: 'image-link',
    target: '_blank',
    rel: 'noopener',
    title: `${file.name || 'image'} (${fileSize(file.size)}): open`,
  }, img);
  const fail = () => {
    li.classList.remove('image');
    li.dataset.kind = 'file';
    li.dataset.failed = 'true';
    li.replaceChildren(downloadLink(file));
  };
  img.addEventListener('error', () => {
    // A thumbnail that fails: the image itself once, then a link.
    if (img.dataset.thumb === '1' && file.size <= INLINE_MAX_BYTES) {
      img.dataset.thumb = '0';
      fileLinks.url(file, false).then((u) => { img.src = u; }, fail);
    } else {
      fail();
    }
  });
  img.addEventListener('load', () => { li.dataset.loaded = 'true'; });
  const thumb = !!file.has_thumbnail;
  img.dataset.thumb = thumb ? '1' : '0';
  fileLinks.url(file, thumb).then((u) => { img.src = u; }, fail);
  link.addEventListener('click', async (e) => {
    if (link.dataset.ready) return;
    e.preventDefault();
    try {
      link.href = await fileLinks.url(file, false);
      link.dataset.ready = '1';
      window.open(link.href, '_blank', 'noopener');
    } catch {
      fail();
    }
  });
  return el('figure', { class: 'file-figure' }, link,
    el('figcaption', { class: 'attachment-detail' },
      el('span', { class: 'file-name', text: file.name || 'image' }), ` · ${fileSize(file.size)}`));
}

/** The text of a message that carries files only: their names (a message needs text). */
export function filesText(files) {
  return files.map((f) => f.name || 'file').join(', ');
}

/** True when `m`'s text is only the names of its files (it is not shown twice). */
export function filesOnlyText(m) {
  const files = Array.isArray(m.attachments) ? m.attachments.filter((a) => a.file_id && a.file).map((a) => a.file) : [];
  return files.length > 0 && !m.deleted_at && m.content === filesText(files);
}
