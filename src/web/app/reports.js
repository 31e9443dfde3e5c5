// Reports (PROTOCOL.md section 16): any member reports someone else's message once (a
// dialog: reason and an optional note; a second report is told kindly, not as an
// error); owners and admins see the room's open reports in a side panel, with the
// message, and resolve each one: dismiss, delete the message, or mute, kick or ban its
// author (the destructive ones asked first).
import { byId, el, describe } from './dom.js';
import { ask } from './dialogs.js';
import { clip, timeOf, fullTime } from './format.js';
import { plain } from './markdown.js';

const REASONS = { spam: 'Spam', abuse: 'Abuse or harassment', other: 'Something else' };
const ACTIONS = [
  ['dismiss', 'Dismiss', 'Close the report, doing nothing'],
  ['delete_message', 'Delete message', 'Delete the message for everyone'],
  ['mute', 'Mute author', 'Mute the author: they can read but not send'],
  ['kick', 'Kick author', 'Remove the author from the room'],
  ['ban', 'Ban author', 'Ban the author from the room'],
];
const DONE = {
  dismiss: 'dismissed', delete_message: 'message deleted', mute: 'author muted', kick: 'author kicked', ban: 'author banned',
};

/** The report dialog and the reports panel of the open room. `view`: the RoomView. */
export class Reports {
  constructor(client, view) {
    this.client = client;
    this.view = view;
    this.dialog = byId('report-dialog');
    this.form = byId('report-form');
    this.submit = byId('report-submit');
    this.cancel = byId('report-cancel');
    this.note = byId('report-note');
    this.reason = byId('report-reason');
    this.dialogStatus = byId('report-status');
    this.dialogError = byId('report-error');
    this.list = byId('reports-list');
    this.status = byId('reports-status');
    this.target = null; // the message being reported
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.#send();
    });
    this.cancel.addEventListener('click', () => this.dialog.close());
    this.dialog.addEventListener('close', () => {
      if (this.opener?.isConnected) this.opener.focus();
    });
    byId('close-reports').addEventListener('click', () => this.view.closePanel());
  }

  // --- reporting ------------------------------------------------------------------

  /** Ask why and report `m`. */
  open(m) {
    this.target = m;
    this.opener = document.activeElement;
    byId('report-quote').textContent = `${m.username}: ${clip(plain(m.content), 200)}`;
    this.reason.value = 'spam';
    this.note.value = '';
    this.#answered('');
    this.dialog.showModal();
    this.reason.focus();
  }

  // Sent, or already reported: the dialog says so and offers only Close.
  #answered(text) {
    this.dialogStatus.textContent = text;
    this.dialogError.textContent = '';
    const done = !!text;
    this.submit.hidden = done;
    this.reason.disabled = done;
    this.note.disabled = done;
    this.cancel.textContent = done ? 'Close' : 'Cancel';
    if (done) this.cancel.focus();
  }

  async #send() {
    const m = this.target;
    const room = this.view.room;
    if (!m || !room) return;
    const note = this.note.value.trim();
    this.submit.disabled = true;
    this.dialogError.textContent = '';
    try {
      await this.client.api.report(room.id, m.id, this.reason.value, note || undefined);
      this.#answered('Thank you. The room\'s owner and admins will look at it.');
    } catch (e) {
      if (e.code === 'already_reported') this.#answered('You have already reported this message. The room\'s owner and admins have it.');
      else this.dialogError.textContent = `Could not report the message: ${describe(e)}`;
    } finally {
      this.submit.disabled = false;
    }
  }

  // --- the moderators' panel -------------------------------------------------------------

  /** Open the panel with the room's open reports. */
  async show() {
    this.view.showPanel('reports');
    byId('close-reports').focus();
    await this.load();
  }

  /** Fetch the open reports again. */
  async load() {
    const room = this.view.room;
    if (!room) return;
    this.status.textContent = 'Loading…';
    try {
      const res = await this.client.api.reports(room.id, { status: 'open' });
      if (this.view.room !== room) return;
      this.#render(res?.reports || []);
    } catch (e) {
      if (this.view.room === room) this.status.textContent = `Could not load the reports: ${describe(e)}`;
    }
  }

  /** Forget the list (another room). */
  reset() {
    this.list.replaceChildren();
    this.status.textContent = '';
  }

  #name(userId) {
    return this.view.members.members.get(userId)?.username || null;
  }

  #render(reports) {
    this.status.textContent = reports.length ? `${reports.length} open` : 'No open reports.';
    this.list.replaceChildren(...reports.map((r) => {
      const author = this.#name(r.author_id) || this.view.store.get(r.message_id)?.username || 'someone';
      const reporter = this.#name(r.reporter) || 'a member';
      const text = r.content ? clip(plain(r.content), 200) : 'This message was deleted.';
      return el('li', { class: 'report-item', 'data-testid': 'report', dataset: { reportId: r.id, messageId: r.message_id } },
        el('p', { class: 'result-meta' },
          el('span', { class: 'author', text: author }),
          el('time', { datetime: r.created_at, title: fullTime(r.created_at), text: timeOf(r.created_at) })),
        el('blockquote', { class: 'confirm-quote report-text', text }),
        el('p', { class: 'report-why' },
          el('strong', { text: REASONS[r.reason] || r.reason }), ` — reported by ${reporter}`,
          r.note ? el('span', { class: 'report-note', text: `: “${r.note}”` }) : null),
        el('div', { class: 'report-actions', role: 'group', 'aria-label': `Resolve the report on ${author}'s message` },
          el('button', {
            type: 'button', class: 'small', text: 'Show', title: 'Show the message in the conversation',
            'aria-label': `Show ${author}'s message`,
            onclick: () => this.#jump(r),
          }),
          ...ACTIONS.map(([action, label, why]) => el('button', {
            type: 'button',
            class: `small${action === 'dismiss' ? '' : ' danger-text'}`,
            title: why,
            dataset: { action },
            onclick: (e) => this.#resolve(e.currentTarget, r, action, author),
          }, label))));
    }));
  }

  async #jump(r) {
    if (this.view.panels.narrow) this.view.showPanel(null);
    await this.view.jumpToMessage(r.message_id);
  }

  async #resolve(button, r, action, author) {
    const room = this.view.room;
    if (!room) return;
    if (action !== 'dismiss') {
      const label = ACTIONS.find(([a]) => a === action)[1];
      const yes = await ask({
        title: `${label}?`,
        body: action === 'delete_message' ? `${author}'s message is removed for everyone.` : `This acts on ${author} in this room.`,
        confirm: label,
        danger: true,
      });
      if (!yes) return;
    }
    button.disabled = true;
    try {
      await this.client.api.resolveReport(room.id, r.id, action);
      if (this.view.room !== room) return;
      await this.load();
      this.status.textContent = `Report resolved: ${DONE[action]}. ${this.status.textContent}`;
    } catch (e) {
      if (this.view.room !== room) return;
      if (e.code === 'already_resolved') {
        await this.load();
        this.status.textContent = 'Someone else resolved that report already.';
      } else {
        this.status.textContent = `Could not resolve the report: ${e.code === 'forbidden' ? 'you are not allowed to do that' : describe(e)}`;
        button.disabled = false;
      }
    }
    (this.list.querySelector('button') || byId('close-reports')).focus();
  }
}
