// Web Push (PROTOCOL.md section 21), when the server offers it (GET
// /push/vapid-public-key answers a key): once the user turned notifications on (the
// permission is asked from the offer that says what for, notify.js), the service worker
// /sw.js is registered and the browser subscribed (PushManager), and the subscription is
// given to the server, which pushes the messages the user would be notified of while
// no tab of theirs is connected. Signing out removes it from the server and the browser.
// The worker learns the names of the user's rooms from a Cache Storage entry (a push
// carries only the room's id).
import { roomLabel } from './rooms.js';

const NAMES_CACHE = 'chatd-push';
const NAMES_KEY = '/__chatd/room-names';

const supported = () => typeof navigator !== 'undefined' && 'serviceWorker' in navigator
  && typeof window.PushManager === 'function' && window.isSecureContext;

// base64url -> bytes (the applicationServerKey).
function keyBytes(b64) {
  const s = atob(b64.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/** The push subscription of the signed-in user on this browser. */
export class PushSetup {
  constructor(client, rooms, { onOpenRoom }) {
    this.client = client;
    this.rooms = rooms;
    this.key = undefined; // undefined: not asked; null: the server has no push
    this.state = 'off'; // off | on | unavailable | failed
    this.error = '';
    if (supported()) {
      // A click on a notification in a tab that is already open (sw.js posts it).
      navigator.serviceWorker.addEventListener('message', (e) => {
        if (e.data?.type === 'chatd.open-room' && typeof e.data.room_id === 'string') onOpenRoom(e.data.room_id);
      });
    }
  }

  /** Whether this browser and the server can push (asks the server once). */
  async available() {
    if (!supported()) return false;
    if (this.key === undefined) {
      try {
        this.key = (await this.client.api.vapidPublicKey())?.key || null;
      } catch {
        this.key = null; // 404 push_disabled, or an older server
      }
    }
    return !!this.key;
  }

  /** Subscribe (notification permission already granted); safe to call again. */
  async enable() {
    if (typeof Notification === 'undefined' || Notification.permission !== 'granted') return false;
    if (!(await this.available())) {
      this.state = 'unavailable';
      return false;
    }
    try {
      const reg = await navigator.serviceWorker.register('/sw.js', { scope: '/' });
      await navigator.serviceWorker.ready;
      let sub = await reg.pushManager.getSubscription();
      // A subscription made with another server key cannot be used: make a new one.
      const wanted = keyBytes(this.key);
      const held = sub?.options?.applicationServerKey;
      if (sub && held && !sameBytes(new Uint8Array(held), wanted)) {
        await sub.unsubscribe();
        sub = null;
      }
      if (!sub) sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: wanted });
      await this.client.api.subscribePush(sub);
      this.state = 'on';
      this.error = '';
      await this.saveNames();
      return true;
    } catch (e) {
      this.state = 'failed';
      this.error = e?.message || String(e);
      return false;
    }
  }

  /** Before signing out: the server forgets this browser, and the browser the subscription. */
  async disable() {
    if (!supported()) return;
    try {
      const reg = await navigator.serviceWorker.getRegistration('/');
      const sub = await reg?.pushManager.getSubscription();
      if (sub) {
        await this.client.api.unsubscribePush(sub.endpoint).catch(() => {});
        await sub.unsubscribe().catch(() => {});
      }
      await caches.delete(NAMES_CACHE);
    } catch {
      // nothing registered here
    }
    this.state = 'off';
  }

  /** Leave the names of the user's rooms where the worker finds them (after each load). */
  async saveNames() {
    if (this.state !== 'on' || typeof caches === 'undefined') return;
    const names = {};
    for (const { room } of this.rooms.sorted()) names[room.id] = roomLabel(room);
    try {
      const cache = await caches.open(NAMES_CACHE);
      await cache.put(NAMES_KEY, new Response(JSON.stringify(names), { headers: { 'content-type': 'application/json' } }));
    } catch {
      // no Cache Storage: titles stay generic
    }
  }
}

function sameBytes(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
