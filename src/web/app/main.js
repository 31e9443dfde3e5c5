// The chatd web app: wires the client library to the views. No framework, no build step.
import { ChatdClient } from '../chatd.js';
import { byId, describe } from './dom.js';
import { AuthView } from './auth.js';
import { RoomList, roomLabel } from './rooms.js';
import { Discover } from './discover.js';
import { RoomView } from './room.js';
import { ConnectionStatus } from './status.js';
import { SearchPanel } from './search.js';
import { Notifier } from './notify.js';
import { AccountDialog } from './account.js';
import { followPageLifecycle } from './lifecycle.js';
import { fillIcons } from './icons.js';
import { Blocks } from './blocks.js';
import { fileLinks } from './files.js';
import { PushSetup } from './push.js';
import { profiles } from './profiles.js';
import { DirectDialog } from './directory.js';

const LAST_ROOM = 'chatd.lastRoom';
const POLL_MS = 30_000; // what happened while the page was closed; live events cover the rest

// Only the unsent changes are kept here: the session itself lives in the server's
// HttpOnly refresh cookie (refreshCookie), out of reach of any script of the page.
function storage() {
  try {
    localStorage.setItem('chatd.probe', '1');
    localStorage.removeItem('chatd.probe');
    return localStorage;
  } catch {
    return undefined; // private mode without storage: unsent changes last as long as the page
  }
}

fillIcons();
const client = new ChatdClient({ storage: storage(), refreshCookie: true });
fileLinks.client = client;
profiles.attach(client);
const chatView = byId('chat-view');
const currentUser = byId('current-user');
const signOut = byId('sign-out');
const searchButton = byId('open-search');
const notice = byId('notice');
const status = new ConnectionStatus(client);
let poller = null;

/** A line for the user in the sidebar (why a room went away, what failed). */
function say(text) {
  notice.textContent = text || '';
  notice.hidden = !text;
}

const rooms = new RoomList(client, { onOpen: (room) => openRoom(room) });
const blocks = new Blocks(client);
const discover = new Discover(client, rooms, { onJoined: (room) => openRoom(room) });
const roomView = new RoomView(client, rooms, {
  onLeft: (id, note) => {
    rooms.remove(id);
    sessionStorage.removeItem(LAST_ROOM);
    say(note);
    byId('room-list').querySelector('button')?.focus();
  },
  onBack: () => {
    roomView.close();
    rooms.setActive(null);
    sessionStorage.removeItem(LAST_ROOM);
    byId('room-list').querySelector('button')?.focus();
  },
  onDirect: (userId) => openDirect(userId),
  onSearch: (scope) => search.open(scope),
  blocks,
});
const search = new SearchPanel(client, rooms, {
  show: (open) => (open ? roomView.showPanel('search') : roomView.closePanel()),
  currentRoom: () => roomView.room,
  jump: async (roomId, seq) => {
    const room = rooms.find(roomId);
    if (!room) return;
    if (roomView.panels.narrow) roomView.showPanel(null);
    await openRoom(room);
    await roomView.jumpToSeq(seq);
  },
});
const openRoomById = (roomId) => {
  const room = rooms.find(roomId);
  if (room) openRoom(room);
};
const push = new PushSetup(client, rooms, { onOpenRoom: openRoomById });
const notifier = new Notifier(client, rooms, { onOpen: openRoomById, onGranted: () => push.enable() });
const account = new AccountDialog(client, notifier, push);
new DirectDialog(client, { onDirect: (userId) => openDirect(userId) });
// A profile read or changed (user_updated): every name and avatar on screen follows.
profiles.listen(() => {
  roomView.refreshRows();
  if (roomView.members.room) roomView.members.render();
  if (roomView.room) byId('room-title').textContent = roomLabel(roomView.room);
  rooms.renderSoon();
  account.showName();
});
const auth = new AuthView(client, (user) => signedIn(user));

function openRoom(room) {
  say('');
  rooms.setActive(room.id);
  sessionStorage.setItem(LAST_ROOM, room.id);
  if (room.visibility === 'direct') notifier.consider();
  return roomView.open(room);
}

// Open (or create) the direct room with a user; answers why it failed, if it did.
async function openDirect(userId) {
  try {
    const dm = await client.api.openDirect(userId);
    await rooms.load();
    openRoom(rooms.find(dm.id) || dm);
    return null;
  } catch (e) {
    const why = `Could not open the conversation: ${describe(e)}`;
    say(why);
    return why;
  }
}

function refresh() {
  rooms.load().then(() => push.saveNames());
  discover.loadInvites();
}

// `/?room=<id>`: a push notification opened the app for that room.
function roomFromUrl() {
  const params = new URLSearchParams(location.search);
  const id = params.get('room');
  if (!id) return null;
  params.delete('room');
  history.replaceState(null, '', `${location.pathname}${params.toString() ? `?${params}` : ''}${location.hash}`);
  return id;
}

async function signedIn(user) {
  currentUser.textContent = user.username;
  currentUser.setAttribute('aria-label', `Your account: ${user.username}`);
  currentUser.hidden = false;
  account.showName();
  signOut.hidden = false;
  searchButton.hidden = false;
  chatView.hidden = false;
  status.setSignedIn(true);
  roomView.panels.reset();
  client.connect();
  blocks.load();
  discover.loadInvites();
  await rooms.load();
  notifier.consider();
  // Notifications were allowed before: this user's pushes come to this browser too.
  if (notifier.permission === 'granted') push.enable();
  clearInterval(poller);
  poller = setInterval(() => {
    if (document.visibilityState === 'visible' && client.user) refresh();
  }, POLL_MS);
  const last = roomFromUrl() || sessionStorage.getItem(LAST_ROOM);
  const room = last && rooms.find(last);
  if (room) openRoom(room);
}

function signedOut(note, ended = {}) {
  clearInterval(poller);
  roomView.close();
  roomView.showPanel(null);
  rooms.clear();
  search.reset();
  notifier.reset();
  blocks.reset();
  profiles.reset();
  say('');
  discover.toggleBrowse(false);
  chatView.hidden = true;
  signOut.hidden = true;
  currentUser.hidden = true;
  searchButton.hidden = true;
  currentUser.textContent = '';
  status.setSignedIn(false);
  auth.show(note, {
    unsent: ended.unsent || [],
    user: ended.user,
    onDiscard: () => ended.user && client.discardUnsent(ended.user.id),
  });
}

// The server ended a membership (kicked, banned, the room deleted, or left in another
// tab): the room leaves the list, and the view if it is open, with a word why.
const WHY = {
  kicked: (name) => `You were removed from ${name}.`,
  banned: (name) => `You were banned from ${name}.`,
  deleted: (name) => `${name} was deleted.`,
  left: (name) => `You left ${name} (in another tab or device).`,
};
client.on('left_room', ({ room_id, reason }) => {
  const room = rooms.find(room_id) || (roomView.room?.id === room_id ? roomView.room : null);
  const name = room ? roomLabel(room) : 'a room';
  const open = roomView.room?.id === room_id;
  rooms.remove(room_id);
  if (open) {
    roomView.close();
    sessionStorage.removeItem(LAST_ROOM);
  }
  if (open || reason !== 'left') say((WHY[reason] || ((n) => `You are no longer a member of ${n}.`))(name));
});

// The server tells the user of changes to their standing at once: a new invitation
// shows in the sidebar, a direct room opened by someone else appears in the list.
client.on('membership', ({ room_id, change, by, room, role, muted }) => {
  const known = room || rooms.find(room_id);
  const name = known ? roomLabel(known) : 'a room';
  if (change === 'invited') {
    discover.loadInvites();
    say(`${by.username} invited you to ${name}.`);
  } else if (change === 'direct') {
    rooms.load().then(() => notifier.consider());
  } else if (change === 'role') {
    say(`${by.username} made you ${role === 'admin' ? 'an admin' : 'a member'} of ${name}.`);
  } else if (change === 'muted') {
    say(`${by.username} ${muted ? 'muted' : 'unmuted'} you in ${name}.`);
  }
});

client.on('session_ended', ({ reason, unsent, user }) => {
  const note = reason === 'logout' ? '' : 'Your session has ended. Please sign in again.';
  signedOut(note, { unsent, user });
});

byId('refresh-rooms').addEventListener('click', () => refresh());
searchButton.addEventListener('click', () => search.open());
document.addEventListener('keydown', (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'k' && client.user) {
    e.preventDefault();
    search.open();
  }
});

signOut.addEventListener('click', async () => {
  signOut.disabled = true;
  try {
    await push.disable(); // while the token still works
    await client.logout();
  } catch {
    // signed out locally either way
  } finally {
    signOut.disabled = false;
  }
});

// The lists refresh when the page comes back into view.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && client.user) refresh();
});
followPageLifecycle(client, () => !!client.user);

async function boot() {
  let user = null;
  try {
    user = await client.restore();
  } catch {
    // server unreachable: show the sign-in form; the session's cookie stays for a reload
  }
  if (user) signedIn(user);
  else signedOut('');
}

boot();
