// The chatd web app: wires the client library to the views. No framework, no build step.
import { ChatdClient } from '../chatd.js';
import { byId, describe } from './dom.js';
import { AuthView } from './auth.js';
import { RoomList, roomLabel } from './rooms.js';
import { Discover } from './discover.js';
import { RoomView } from './room.js';
import { ConnectionStatus } from './status.js';

const LAST_ROOM = 'chatd.lastRoom';
const POLL_MS = 30_000; // invitations and rooms others add us to have no live event

function storage() {
  try {
    localStorage.setItem('chatd.probe', '1');
    localStorage.removeItem('chatd.probe');
    return localStorage;
  } catch {
    return undefined; // private mode without storage: the session lasts as long as the page
  }
}

const client = new ChatdClient({ storage: storage() });
const chatView = byId('chat-view');
const currentUser = byId('current-user');
const signOut = byId('sign-out');
const notice = byId('notice');
const status = new ConnectionStatus(client);
let poller = null;

/** A line for the user in the sidebar (why a room went away, what failed). */
function say(text) {
  notice.textContent = text || '';
  notice.hidden = !text;
}

const rooms = new RoomList(client, { onOpen: (room) => openRoom(room) });
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
});
const auth = new AuthView(client, (user) => signedIn(user));

function openRoom(room) {
  say('');
  rooms.setActive(room.id);
  sessionStorage.setItem(LAST_ROOM, room.id);
  roomView.open(room);
}

async function openDirect(userId) {
  try {
    const dm = await client.api.openDirect(userId);
    await rooms.load();
    openRoom(rooms.find(dm.id) || dm);
  } catch (e) {
    say(`Could not open the conversation: ${describe(e)}`);
  }
}

function refresh() {
  rooms.load();
  discover.loadInvites();
}

async function signedIn(user) {
  currentUser.textContent = user.username;
  byId('my-user-id').value = user.id || '';
  signOut.hidden = false;
  chatView.hidden = false;
  status.setSignedIn(true);
  client.connect();
  discover.loadInvites();
  await rooms.load();
  clearInterval(poller);
  poller = setInterval(() => {
    if (document.visibilityState === 'visible' && client.user) refresh();
  }, POLL_MS);
  const last = sessionStorage.getItem(LAST_ROOM);
  const room = last && rooms.find(last);
  if (room) openRoom(room);
}

function signedOut(note) {
  clearInterval(poller);
  roomView.close();
  rooms.clear();
  say('');
  discover.toggleBrowse(false);
  chatView.hidden = true;
  signOut.hidden = true;
  currentUser.textContent = '';
  status.setSignedIn(false);
  auth.show(note);
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
    rooms.reloadSoon();
  } else if (change === 'role') {
    say(`${by.username} made you ${role === 'admin' ? 'an admin' : 'a member'} of ${name}.`);
  } else if (change === 'muted') {
    say(`${by.username} ${muted ? 'muted' : 'unmuted'} you in ${name}.`);
  }
});

client.on('session_ended', ({ reason }) => {
  signedOut(reason === 'logout' ? '' : 'Your session has ended. Please sign in again.');
});

byId('refresh-rooms').addEventListener('click', () => refresh());

signOut.addEventListener('click', async () => {
  signOut.disabled = true;
  try {
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

async function boot() {
  let user = null;
  try {
    user = await client.restore();
  } catch {
    // server unreachable: show the sign-in form; the stored session stays for a reload
  }
  if (user) signedIn(user);
  else signedOut('');
}

boot();
