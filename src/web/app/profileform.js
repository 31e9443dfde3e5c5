// The profile editor in the account dialog: display name, status (an emoji and a line)
// and, where the server has them, an avatar picture URL; saved with PATCH /me. An
// emptied field clears that part of the profile (null); the server's validation errors
// are shown as it lists them.
import { byId, describe } from './dom.js';
import { profiles } from './profiles.js';

const FIELDS = {
  display_name: 'profile-display-name',
  status_emoji: 'profile-status-emoji',
  status_text: 'profile-status-text',
  avatar_url: 'profile-avatar-url',
};

/** The profile form. `onSaved(me)` after the server took a change. */
export class ProfileForm {
  constructor(client, { onSaved }) {
    this.client = client;
    this.onSaved = onSaved;
    this.form = byId('profile-form');
    this.error = byId('profile-error');
    this.saved = byId('profile-saved');
    this.me = null;
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.#save();
    });
    this.form.addEventListener('input', () => { this.saved.textContent = ''; });
  }

  /** Read the user's profile (GET /me) into the form. */
  async load() {
    this.error.textContent = '';
    this.saved.textContent = '';
    try {
      this.#fill(await this.client.api.me());
      this.form.hidden = false;
    } catch (e) {
      // A server without profiles (404) offers no editor.
      this.form.hidden = e.status === 404 || e.code === 'not_found';
      if (!this.form.hidden) this.error.textContent = `Could not load your profile: ${describe(e)}`;
    }
  }

  #fill(me) {
    this.me = me;
    for (const [field, id] of Object.entries(FIELDS)) byId(id).value = me[field] ?? '';
    // The avatar field only where the server's profiles have one.
    byId('profile-avatar-field').hidden = !('avatar_url' in me);
  }

  async #save() {
    const me = this.me;
    if (!me) return;
    // Only what changed: an untouched field stays as the server has it.
    const change = {};
    for (const [field, id] of Object.entries(FIELDS)) {
      if (!(field in me)) continue;
      const value = byId(id).value.trim() || null;
      if (value !== (me[field] ?? null)) change[field] = value;
    }
    this.error.textContent = '';
    if (!Object.keys(change).length) {
      this.saved.textContent = 'Nothing to save: your profile is as shown.';
      return;
    }
    const button = byId('profile-save');
    button.disabled = true;
    try {
      const updated = await this.client.api.updateMe(change);
      this.#fill(updated);
      profiles.set(updated);
      this.saved.textContent = 'Profile saved.';
      this.onSaved(updated);
    } catch (e) {
      this.error.textContent = `Your profile was not saved: ${describe(e)}`;
      const bad = Object.keys(change).find((f) => (e.details || []).some((d) => String(d).includes(f)));
      byId(FIELDS[bad] || FIELDS.display_name).focus();
    } finally {
      button.disabled = false;
    }
  }
}
