// Desktop notifications: while the tab is hidden, a direct message or a mention of the
// user (by name or @room) shows a browser notification, unless the room's notification
// level is "none". Permission is asked from a short offer in the sidebar that says what
// it is for, shown once the user has a direct conversation; "Not now" is remembered.
// Once granted, `onGranted` subscribes the browser to Web Push (push.js), for the
// times no tab is open.
import { byId } from './dom.js';
import { plain } from './markdown.js';
import { clip } from './format.js';
import { roomLabel } from './rooms.js';

const LATER_KEY = 'chatd.notifyLater';

const supported = () => typeof window.Notification === 'function';

/** Notifications of the signed-in user. */
export class Notifier {
  constructor(client, rooms, { onOpen, onGranted }) {
    this.client = client;
    this.onGranted = onGranted;
    this.rooms = rooms; // the RoomList: which rooms are direct, which are silenced
    this.onOpen = onOpen; // (roomId) => open it
    this.offer = byId('notify-offer');
    byId('notify-enable').addEventListener('click', () => this.enable());
    byId('notify-later').addEventListener('click', () => {
      try {
        localStorage.setItem(LATER_KEY, '1');
      } catch {
        // no storage: asked again next time
      }
      this.offer.hidden = true;
    });
    client.on('messages', ({ room_id, messages }) => this.#messages(room_id, messages));
  }

  /** 'granted', 'denied', 'default' or 'unsupported'. */
  get permission() { return supported() ? Notification.permission : 'unsupported'; }

  /** Offer notifications if it makes sense now (a direct conversation exists, not asked yet). */
  consider() {
    let later = false;
    try {
      later = localStorage.getItem(LATER_KEY) === '1';
    } catch {
      later = false;
    }
    const hasDirect = this.rooms.sorted().some((r) => r.room.visibility === 'direct');
    this.offer.hidden = !(hasDirect && !later && this.permission === 'default');
  }

  /** Ask the browser (from a click: browsers only ask after one). */
  async enable() {
    if (!supported()) return this.permission;
    try {
      await Notification.requestPermission();
    } catch {
      // an old browser without the promise form: nothing asked
    }
    this.offer.hidden = true;
    // Push is set up in the background (a browser without a push service may take long to say no).
    if (this.permission === 'granted') this.onGranted?.();
    return this.permission;
  }

  /** Hide the offer (signed out). */
  reset() {
    this.offer.hidden = true;
  }

  #messages(roomId, messages) {
    if (document.visibilityState !== 'hidden' || this.permission !== 'granted') return;
    const room = this.rooms.find(roomId);
    if (!room || this.rooms.notificationLevel(roomId) === 'none') return;
    const me = this.client.user?.id;
    const direct = room.visibility === 'direct';
    const news = messages.filter((m) => (!m.kind || m.kind === 'message') && m.user_id !== me && !m.deleted_at
      && (direct || m.mentions_room || (Array.isArray(m.mentions) && m.mentions.includes(me))));
    const last = news[news.length - 1];
    if (!last) return;
    const more = news.length > 1 ? ` (+${news.length - 1} more)` : '';
    try {
      const n = new Notification(direct ? last.username : `${last.username} in ${roomLabel(room)}`, {
        body: clip(plain(last.content), 160) + more,
        tag: `chatd-${roomId}`,
        icon: '/favicon.svg',
      });
      n.onclick = () => {
        window.focus();
        this.onOpen(roomId);
        n.close();
      };
    } catch {
      // some browsers only notify from a service worker: nothing to show then
    }
  }
}
