// The account dialog (the user's name in the top bar opens it): the profile editor,
// the user id others invite with, and desktop notifications (push included when subscribed).
import { byId } from './dom.js';
import { ProfileForm } from './profileform.js';
import { profiles } from './profiles.js';

/** The account dialog. */
export class AccountDialog {
  constructor(client, notifier, push) {
    this.client = client;
    this.notifier = notifier;
    this.push = push;
    this.dialog = byId('account-dialog');
    this.profile = new ProfileForm(client, { onSaved: () => this.showName() });
    byId('current-user').addEventListener('click', () => this.open());
    byId('close-account').addEventListener('click', () => this.dialog.close());
    byId('copy-user-id').addEventListener('click', async () => {
      const input = byId('my-user-id');
      input.select();
      try {
        await navigator.clipboard.writeText(input.value);
        byId('copy-user-id').textContent = 'Copied';
      } catch {
        byId('copy-user-id').textContent = 'Select and copy';
      }
    });
    byId('account-notify').addEventListener('click', async () => {
      await this.notifier.enable();
      this.#showNotify();
    });
    this.dialog.addEventListener('close', () => byId('current-user').focus());
  }

  /** The top bar's account button: the user's display name, else username. */
  showName() {
    const user = this.client.user;
    if (!user) return;
    const name = profiles.name(user.id, user.username);
    byId('current-user').textContent = name;
    byId('current-user').setAttribute('aria-label', `Your account: ${name}`);
  }

  open() {
    const user = this.client.user;
    if (!user) return;
    byId('account-name').textContent = `Signed in as ${user.username}`;
    this.profile.load();
    byId('my-user-id').value = user.id || '';
    byId('copy-user-id').textContent = 'Copy';
    this.#showNotify();
    this.dialog.showModal();
    byId('my-user-id').focus();
    byId('my-user-id').select();
  }

  #showNotify() {
    const p = this.notifier.permission;
    byId('notify-state').textContent = {
      granted: this.push?.state === 'on'
        ? 'Desktop notifications are on for direct messages and mentions, also while no tab of chatd is open.'
        : 'Desktop notifications are on for direct messages and mentions while this tab is in the background.',
      denied: 'Desktop notifications are blocked in this browser\'s site settings.',
      default: 'Desktop notifications are off.',
      unsupported: 'This browser shows no desktop notifications.',
    }[p];
    byId('account-notify').hidden = p !== 'default';
  }
}
