// The connection banner: visible while connecting or reconnecting, gone once open.
import { byId } from './dom.js';

const TEXT = {
  connecting: 'Connecting…',
  reconnecting: 'Reconnecting…',
  closed: 'Offline',
  open: 'Connected',
};

/** Shows the client's connection state; "Retry now" skips the backoff. */
export class ConnectionStatus {
  constructor(client) {
    this.client = client;
    this.root = byId('connection-status');
    this.text = byId('connection-text');
    this.retry = byId('retry-now');
    this.signedIn = false;
    this.retry.addEventListener('click', () => this.client.reconnect());
    client.on('state', ({ state }) => this.render(state));
  }

  setSignedIn(on) {
    this.signedIn = on;
    this.render(this.client.state);
  }

  render(state) {
    const shown = this.signedIn ? state : 'signed-out';
    this.root.dataset.state = shown;
    this.text.textContent = this.signedIn ? TEXT[state] || state : '';
    this.retry.hidden = !(this.signedIn && (state === 'reconnecting' || state === 'closed'));
  }
}
