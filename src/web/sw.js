// The web app's service worker (served at /sw.js, scope /): Web Push only (PROTOCOL.md
// section 21). A push carries `{room_id, count, message_ids, preview}` and no room name:
// the app leaves the names of the user's rooms in the Cache Storage entry below, so the
// notification can say where; without it the title is generic. A click focuses an open
// tab of the app (which opens the room) or opens one at `/?room=<id>`. Nothing is cached
// for offline use: the app always loads from the server.
/* eslint-env serviceworker */

const NAMES_CACHE = 'chatd-push';
const NAMES_KEY = '/__chatd/room-names';

// The names the app left: `{"<room id>": "# general" | "@alice"}`.
async function roomNames() {
  try {
    const cache = await caches.open(NAMES_CACHE);
    const hit = await cache.match(NAMES_KEY);
    return hit ? await hit.json() : {};
  } catch {
    return {};
  }
}

// The payload as sent, or null when it is not chatd's (a push without data, not JSON).
function payloadOf(data) {
  if (!data) return null;
  try {
    const p = typeof data.json === 'function' ? data.json() : JSON.parse(String(data));
    return p && typeof p === 'object' && typeof p.room_id === 'string' ? p : null;
  } catch {
    return null;
  }
}

/** The notification of a push payload: `{title, options}` (pure; names: room id -> label). */
function notificationOf(p, names) {
  const count = Number.isFinite(p.count) && p.count > 0 ? Math.floor(p.count) : 1;
  const where = names[p.room_id];
  const what = count === 1 ? 'New message' : `${count} new messages`;
  const preview = typeof p.preview === 'string' ? p.preview : '';
  return {
    title: where ? `${what} in ${where}` : what,
    options: {
      body: count > 1 && preview ? `${preview} (+${count - 1} more)` : preview,
      tag: `chatd-${p.room_id}`, // one notification per room: a newer push replaces it
      renotify: true,
      icon: '/favicon.svg',
      data: { room_id: p.room_id, message_ids: Array.isArray(p.message_ids) ? p.message_ids : [] },
    },
  };
}

async function onPush(event) {
  const p = payloadOf(event.data);
  if (!p) return;
  const { title, options } = notificationOf(p, await roomNames());
  await self.registration.showNotification(title, options);
}

async function onClick(event) {
  event.notification.close();
  const roomId = event.notification.data?.room_id;
  const url = new URL(roomId ? `/?room=${encodeURIComponent(roomId)}` : '/', self.registration.scope).href;
  const tabs = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const tab = tabs.find((c) => new URL(c.url).origin === self.location.origin);
  if (tab) {
    tab.postMessage({ type: 'chatd.open-room', room_id: roomId });
    if (typeof tab.focus === 'function') await tab.focus();
    return;
  }
  if (self.clients.openWindow) await self.clients.openWindow(url);
}

self.addEventListener('push', (event) => event.waitUntil(onPush(event)));
self.addEventListener('notificationclick', (event) => event.waitUntil(onClick(event)));
// A new version takes over at once: it holds no state worth waiting for.
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

// Tests load this file into a page to call the handlers directly.
self.chatdServiceWorker = { notificationOf, payloadOf, onPush, onClick, NAMES_CACHE, NAMES_KEY };
