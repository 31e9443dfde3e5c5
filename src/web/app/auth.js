// Sign in and sign up; after a session that ended, why, and which of the user's
// messages were not sent yet (kept for their next sign-in on this browser).
import { byId, el, describe } from './dom.js';
import { clip } from './format.js';

/** The two account forms; calls `onSignedIn(user)` after a success. */
export class AuthView {
  constructor(client, onSignedIn) {
    this.client = client;
    this.onSignedIn = onSignedIn;
    this.root = byId('auth-view');
    this.error = byId('auth-error');
    this.tabs = { signin: byId('tab-signin'), signup: byId('tab-signup') };
    this.forms = { signin: byId('signin-form'), signup: byId('signup-form') };
    this.tabs.signin.addEventListener('click', () => this.showTab('signin'));
    this.tabs.signup.addEventListener('click', () => this.showTab('signup'));
    for (const tab of Object.values(this.tabs)) {
      tab.addEventListener('keydown', (e) => {
        if (e.key === 'ArrowLeft' || e.key === 'ArrowRight') {
          this.showTab(tab === this.tabs.signin ? 'signup' : 'signin');
          this.tabs[tab === this.tabs.signin ? 'signup' : 'signin'].focus();
        }
      });
    }
    this.forms.signin.addEventListener('submit', (e) => {
      e.preventDefault();
      this.#submit('signin', () => this.client.login({
        email: byId('signin-email').value.trim(),
        password: byId('signin-password').value,
        deviceInfo: navigator.userAgent,
      }));
    });
    this.forms.signup.addEventListener('submit', (e) => {
      e.preventDefault();
      this.#submit('signup', () => this.client.register({
        username: byId('signup-username').value.trim(),
        email: byId('signup-email').value.trim(),
        password: byId('signup-password').value,
      }));
    });
  }

  /**
   * Show the forms (sign in first), with an optional note (why the session ended) and
   * the changes `user` left unsent (`unsent`: the outbox's pending entries).
   */
  show(note = '', { unsent = [], user = null, onDiscard } = {}) {
    this.root.hidden = false;
    this.showTab('signin');
    this.error.textContent = note;
    this.#showUnsent(unsent, user, onDiscard);
    byId('signin-email').focus();
  }

  #showUnsent(unsent, user, onDiscard) {
    const box = byId('unsent-note');
    const messages = unsent.filter((p) => p.event === 'send_message');
    box.hidden = !(unsent.length && user);
    if (box.hidden) return;
    const n = unsent.length;
    const m = messages.length;
    const what = m === n ? `${n === 1 ? 'One message was' : `${n} messages were`} not sent yet`
      : `${n} changes were not sent yet (${m} ${m === 1 ? 'message' : 'messages'}, and edits or reactions)`;
    byId('unsent-text').textContent = `${what}. ${n === 1 ? 'It is' : 'They are'} kept on this browser and sent when`
      + ` ${user.username} signs in again.`;
    const items = messages.slice(0, 5).map((p) => el('li', { text: clip(p.content, 100) }));
    if (messages.length > 5) items.push(el('li', { text: `and ${messages.length - 5} more` }));
    byId('unsent-list').replaceChildren(...items);
    const discard = byId('discard-unsent');
    discard.onclick = async () => {
      discard.disabled = true;
      try {
        await onDiscard?.();
        box.hidden = true;
      } finally {
        discard.disabled = false;
      }
    };
  }

  hide() {
    this.root.hidden = true;
    this.error.textContent = '';
    byId('unsent-note').hidden = true;
    for (const f of Object.values(this.forms)) f.reset();
    this.showTab('signin');
  }

  showTab(which) {
    for (const [name, tab] of Object.entries(this.tabs)) {
      const on = name === which;
      tab.setAttribute('aria-selected', String(on));
      tab.tabIndex = on ? 0 : -1;
      this.forms[name].hidden = !on;
    }
    this.error.textContent = '';
  }

  async #submit(which, action) {
    const form = this.forms[which];
    const button = form.querySelector('button[type=submit]');
    if (!form.checkValidity()) {
      const bad = form.querySelector(':invalid');
      const label = bad && form.querySelector(`label[for="${bad.id}"]`);
      this.error.textContent = `${label ? label.firstChild.textContent.trim() : 'A field'}: ${bad ? bad.validationMessage : 'invalid'}`;
      bad?.focus();
      return;
    }
    button.disabled = true;
    this.error.textContent = '';
    try {
      const user = await action();
      this.hide();
      this.onSignedIn(user);
    } catch (e) {
      this.error.textContent = describe(e);
    } finally {
      button.disabled = false;
    }
  }
}
