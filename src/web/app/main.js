// The chatd web app: wires the client library to the views. No framework, no build step.
import { ChatdClient } from '../chatd.js';
import { byId } from './dom.js';
import { AuthView } from './auth.js';
import { RoomList } from './rooms.js';
import { RoomView } from './room.js';
import { ConnectionStatus } from './status.js';

const LAST_ROOM = 'chatd.lastRoom';

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
const status = new ConnectionStatus(client);

const rooms = new RoomList(client, { onOpen: (room) => openRoom(room) });
const roomView = new RoomView(client, {
  onJoined: (id) => rooms.markJoined(id),
  onLeft: (id, note) => {
    rooms.markLeft(id);
    sessionStorage.removeItem(LAST_ROOM);
    byId('rooms-error').textContent = note || '';
    byId('room-list').querySelector('button')?.focus();
  },
  onBack: () => {
    roomView.close();
    rooms.setActive(null);
    sessionStorage.removeItem(LAST_ROOM);
    byId('room-list').querySelector('button')?.focus();
  },
});
const auth = new AuthView(client, (user) => signedIn(user));

function openRoom(room) {
  rooms.setActive(room.id);
  sessionStorage.setItem(LAST_ROOM, room.id);
  roomView.open(room);
}

async function signedIn(user) {
  currentUser.textContent = user.username;
  signOut.hidden = false;
  chatView.hidden = false;
  status.setSignedIn(true);
  client.connect();
  await rooms.load();
  const last = sessionStorage.getItem(LAST_ROOM);
  const room = last && rooms.find(last);
  if (room) openRoom(room);
}

function signedOut(note) {
  roomView.close();
  rooms.clear();
  chatView.hidden = true;
  signOut.hidden = true;
  currentUser.textContent = '';
  status.setSignedIn(false);
  auth.show(note);
}

// Unread counts, once the server sends them (read_state is not in today's protocol).
client.on('read_state', (r) => {
  if (r && typeof r.unread === 'number' && r.room_id !== rooms.activeId) rooms.setUnread(r.room_id, r.unread);
});

client.on('session_ended', ({ reason }) => {
  signedOut(reason === 'logout' ? '' : 'Your session has ended. Please sign in again.');
});

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

// The room list refreshes when the page comes back into view.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && client.user) rooms.load();
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
