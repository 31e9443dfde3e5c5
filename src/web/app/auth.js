// Sign in and sign up.
import { byId, describe } from './dom.js';

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

  /** Show the forms, with an optional note (e.g. why the session ended). */
  show(note = '') {
    this.root.hidden = false;
    this.error.textContent = note;
    const first = this.forms.signin.hidden ? byId('signup-username') : byId('signin-email');
    first.focus();
  }

  hide() {
    this.root.hidden = true;
    this.error.textContent = '';
    for (const f of Object.values(this.forms)) f.reset();
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
