// Files attached in the composer: by the Attach button (a file picker), dropped onto
// the conversation, or pasted (a clipboard image). Each uploads at once into the open
// room (POST /rooms/:id/files) with a progress bar; the next send attaches the
// uploaded ones ({file_id}). A file can be removed before sending (an upload under
// way is cancelled). Names are user input: text only.
import { byId, el, describe } from './dom.js';
import { fileSize } from './format.js';

/** Most files attached to one message (the server's default `messages.max_attachments` is 10). */
const MAX_FILES = 10;

let nextKey = 1;

// Browsers call every pasted picture "image.png": give it a name of its own.
function pastedName(file, i) {
  if (file.name && file.name !== 'image.png') return file;
  const when = new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-');
  const ext = (file.type.split('/')[1] || 'png').replace('jpeg', 'jpg');
  return new File([file], `pasted-${when}${i ? `-${i}` : ''}.${ext}`, { type: file.type });
}

/** The open room's attachments. `roomId()` names the room; `onChange()` after every change. */
export class Uploads {
  constructor(client, { roomId, onChange }) {
    this.client = client;
    this.roomId = roomId;
    this.onChange = onChange;
    this.items = []; // { key, file, name, size, loaded, state: 'uploading'|'done'|'failed', stored, error, stop }
    this.enabled = true;
    this.tray = byId('upload-tray');
    this.status = byId('upload-status');
    this.picker = byId('file-input');
    this.button = byId('attach-button');
    this.button.addEventListener('click', () => this.picker.click());
    this.picker.addEventListener('change', () => {
      this.add([...this.picker.files]);
      this.picker.value = '';
    });
    const zone = byId('room-pane').querySelector('.conversation');
    const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes('Files');
    zone.addEventListener('dragover', (e) => {
      if (!hasFiles(e) || !this.enabled) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = 'copy';
      zone.classList.add('dropping');
    });
    zone.addEventListener('dragleave', (e) => {
      if (!zone.contains(e.relatedTarget)) zone.classList.remove('dropping');
    });
    zone.addEventListener('drop', (e) => {
      zone.classList.remove('dropping');
      if (!hasFiles(e) || !this.enabled) return;
      e.preventDefault();
      this.add([...e.dataTransfer.files]);
    });
    byId('message-input').addEventListener('paste', (e) => {
      const files = [...(e.clipboardData?.files || [])];
      if (!files.length || !this.enabled) return;
      // A pasted picture has no text: attach it. Text pastes as text.
      if (!e.clipboardData.getData('text/plain')) e.preventDefault();
      this.add(files.map((f, i) => pastedName(f, i)));
    });
  }

  /** Attach files: each starts uploading at once. */
  add(files) {
    const room = this.roomId();
    if (!room || !this.enabled) return;
    for (const file of files) {
      if (this.items.length >= MAX_FILES) {
        this.#say(`At most ${MAX_FILES} files per message.`);
        break;
      }
      const item = { key: nextKey++, file, name: file.name || 'file', size: file.size, loaded: 0, state: 'uploading', stored: null, error: '' };
      this.items.push(item);
      this.#upload(room, item);
    }
    this.render();
  }

  async #upload(room, item) {
    const stop = new AbortController();
    item.stop = stop;
    item.state = 'uploading';
    item.loaded = 0;
    item.error = '';
    try {
      item.stored = await this.client.api.upload(room, item.file, {
        name: item.name,
        signal: stop.signal,
        onProgress: ({ loaded }) => {
          item.loaded = loaded;
          this.#progress(item);
        },
      });
      item.state = 'done';
      this.#say(`${item.name} uploaded.`);
    } catch (e) {
      if (e.code === 'cancelled') return;
      item.state = 'failed';
      item.error = e.code === 'payload_too_large' ? 'too large for this server' : describe(e);
      this.#say(`${item.name} could not be uploaded: ${item.error}`);
    }
    if (this.items.includes(item)) this.render();
  }

  /** True when files are attached and every one is uploaded. */
  ready() { return this.items.length > 0 && this.items.every((i) => i.state === 'done'); }

  /** True while an upload is under way. */
  busy() { return this.items.some((i) => i.state === 'uploading'); }

  /** True when an attached file failed (it must be retried or removed first). */
  failed() { return this.items.some((i) => i.state === 'failed'); }

  /** The uploaded files, for a send: the tray empties. */
  take() {
    const files = this.items.filter((i) => i.state === 'done').map((i) => i.stored);
    this.items = [];
    this.render();
    return files;
  }

  /** Drop everything (another room opened): uploads under way are cancelled. */
  clear() {
    for (const i of this.items) i.stop?.abort();
    this.items = [];
    this.render();
  }

  /** A muted member cannot attach. */
  setEnabled(on) {
    this.enabled = on;
    this.button.disabled = !on;
    if (!on) this.clear();
  }

  #remove(item) {
    item.stop?.abort();
    this.items = this.items.filter((i) => i !== item);
    this.render();
    this.#say(`${item.name} removed.`);
    byId('message-input').focus();
  }

  #say(text) { this.status.textContent = text; }

  #progress(item) {
    const bar = this.tray.querySelector(`[data-key="${item.key}"] progress`);
    if (bar) bar.value = item.size ? Math.min(100, Math.round((100 * item.loaded) / item.size)) : 100;
  }

  render() {
    this.tray.hidden = this.items.length === 0;
    this.tray.replaceChildren(...this.items.map((item) => {
      const pct = item.size ? Math.min(100, Math.round((100 * item.loaded) / item.size)) : 0;
      return el('li', { class: 'upload', 'data-testid': 'upload', dataset: { key: item.key, state: item.state } },
        el('span', { class: 'upload-name', text: item.name }),
        el('span', { class: 'attachment-detail', text: fileSize(item.size) }),
        item.state === 'uploading'
          ? el('progress', { max: '100', value: String(pct), 'aria-label': `Uploading ${item.name}` })
          : el('span', { class: `upload-state ${item.state}`, text: item.state === 'done' ? 'Ready' : `Failed: ${item.error}` }),
        item.state === 'failed' ? el('button', {
          type: 'button', class: 'small', text: 'Retry', 'aria-label': `Retry ${item.name}`,
          onclick: () => { this.#upload(this.roomId(), item); this.render(); },
        }) : null,
        el('button', {
          type: 'button', class: 'icon-button small', text: '✕', 'aria-label': `Remove ${item.name}`,
          'data-testid': 'remove-upload', onclick: () => this.#remove(item),
        }));
    }));
    this.onChange?.();
  }
}
