// Type declarations for chatd.js, the JavaScript client of chatd (docs/PROTOCOL.md).

/** Version of this library. */
export const VERSION: string;

/** Most characters in one message (Unicode scalar values), as the server enforces. */
export const MAX_MESSAGE_CHARS: number;

// ---------------------------------------------------------------------------
// Wire shapes (PROTOCOL.md section 2). Fields the server adds later are allowed.

/** A user account. */
export interface User {
  id: string;
  username: string;
  email?: string;
  created_at?: string;
  [extra: string]: unknown;
}

/** Who may see a room: anyone (`public`), members and invited users (`private`), the two members (`direct`). */
export type Visibility = 'public' | 'private' | 'direct';

/** A member's role in a room. */
export type Role = 'owner' | 'admin' | 'member';

/** A room. */
export interface Room {
  id: string;
  name: string;
  description: string | null;
  created_by: string | null;
  created_at: string;
  /** Absent from servers without the conversations extension (every room is public there). */
  visibility?: Visibility;
  /** Days messages are kept: null follows the server's setting, 0 keeps them forever. */
  retention_days?: number | null;
  /** The oldest seq still stored: older messages were removed by retention. */
  first_seq?: number;
  /** Any member (not only the owner and admins) may pin and unpin messages. */
  members_can_pin?: boolean;
  /** Slow mode: seconds a plain member waits between two messages (0: off; servers with the extension). */
  slow_mode_secs?: number;
  [extra: string]: unknown;
}

/** A user the caller blocked (`GET /me/blocks`). */
export interface Block {
  user_id: string;
  username: string;
  display_name: string | null;
  created_at: string;
}

/** A user as rooms and invitations name them. */
export interface Peer {
  id: string;
  username: string;
  /** The user's display name (servers with profiles). */
  display_name?: string | null;
}

/** A user as anyone signed in sees them (`GET /users/:id`, `GET /users?q=`). */
export interface Profile {
  id: string;
  username: string;
  display_name: string | null;
  avatar_url: string | null;
  status_text: string | null;
  status_emoji: string | null;
  created_at: string;
  [extra: string]: unknown;
}

/** The caller's own account (`GET`/`PATCH /me`); `email` is null for an account of the product's identity provider. */
export interface Me extends Profile {
  email: string | null;
}

/** A change of profile: an absent field stays, null clears it. */
export interface ProfileChange {
  display_name?: string | null;
  avatar_url?: string | null;
  status_text?: string | null;
  status_emoji?: string | null;
}

/** The direct room of two users (`POST /dm`); its `name` is an internal key: show `other_user`. */
export interface DirectRoom extends Room {
  visibility: 'direct';
  other_user: Peer;
}

/** One of the caller's rooms with its read state (`GET /me/rooms`). */
export interface MyRoom extends Room {
  role: Role;
  /** Open reports of the room (at most 100): present for its owner and admins only. */
  reports?: number;
  /** The room's last seq (messages and system entries). */
  last_seq: number;
  /** The caller's read position. */
  last_read_seq: number;
  /** `last_seq - last_read_seq`: unread stream entries, system entries included. */
  unread: number;
  /** The caller may read but not send. */
  muted: boolean;
  /** The caller silenced the room's notifications (`notification_level` is `'none'`). */
  notifications_muted: boolean;
  /** What the caller is notified of here: its choice, else the server's default (servers with mentions). */
  notification_level?: NotificationLevel;
  /** Mentions of the caller after its read mark, at most 100 (servers with mentions). */
  mentions?: number;
  last_activity_at: string;
  /** The newest message or system entry. */
  last_message: Message | null;
  /** For a direct room, the other member. */
  other_user: Peer | null;
}

/** What a member is notified of in a room. */
export type NotificationLevel = 'all' | 'mentions' | 'none';

/** A mention of the caller (`GET /me/mentions`). */
/** A browser's Web Push subscription as `PushSubscription.toJSON()` gives it. */
export interface PushSubscriptionData {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

export interface Mention {
  /** The mentioning message, as history shows it now. */
  message: Message;
  room_name: string;
  /** After the caller's read mark in the room. */
  unread: boolean;
}

/** One page of `GET /me/rooms`; pass `next_cursor` back as `cursor` (null on the last page). */
export interface MyRoomsPage {
  rooms: MyRoom[];
  next_cursor: string | null;
}

/** An invitation waiting for the caller; accept it by joining the room. */
export interface Invite {
  room: Room;
  invited_by: Peer | null;
  created_at: string;
}

/** What every stream entry carries. */
interface EntryBase {
  id: number;
  seq: number;
  room_id: string;
  /** The author (for a system entry, the actor). */
  user_id: string;
  username: string;
  /** The text (for a system entry, a readable line such as "ann joined"). */
  content: string;
  created_at: string;
  /** The sender's id for it, when sent over the socket with one. */
  client_msg_id?: string;
  [extra: string]: unknown;
}

/** A link's metadata on a message (the server stores no file for it). */
export interface LinkAttachment {
  /** http or https, at most 2048 characters. */
  url: string;
  name: string;
  mime: string;
  /** Bytes. */
  size: number;
}

/** A file uploaded to the server (`Rest.upload`). */
export interface StoredFile {
  id: string;
  room_id: string;
  uploader_id: string;
  /** The client's name, without path or hidden characters. */
  name: string;
  /** Detected from the bytes. */
  mime: 'image/png' | 'image/jpeg' | 'image/gif' | 'image/webp' | 'application/pdf' | 'application/octet-stream';
  size: number;
  /** Hex SHA-256 of the bytes. */
  sha256: string;
  width?: number;
  height?: number;
  has_thumbnail: boolean;
  created_at: string;
}

/** How an upload goes (`Rest.upload`). */
export interface UploadOptions {
  /** The name to store (default: `file.name`, else `file`). */
  name?: string;
  /** Bytes sent so far, of `total`. */
  onProgress?: (progress: { loaded: number; total: number }) => void;
  /** Cancels the upload. */
  signal?: AbortSignal;
}

/** Signed URLs of a file (`Rest.fileUrl`). */
export interface FileUrls {
  url: string;
  /** Null when the file has no thumbnail. */
  thumbnail_url: string | null;
  expires_at: string;
}

/** An uploaded file on a message: sent as `{file_id}`, stored and shown with `file`. */
export interface FileAttachment {
  file_id: string;
  file?: StoredFile;
}

/** What a message may carry: links with their metadata, and uploaded files. */
export type Attachment = LinkAttachment | FileAttachment;

/** A message someone sent (`kind` is absent on servers without the conversations extension). */
export interface ChatMessage extends EntryBase {
  kind?: 'message';
  /** Set once edited or deleted (a deleted message keeps its seq, with empty content). */
  edited_at?: string;
  deleted_at?: string;
  /** The id of the message this one answers (a reply; its root's thread lists it). */
  reply_to?: number;
  /** Replies to this message, and when the last one came (rows read over REST). */
  reply_count?: number;
  last_reply_at?: string;
  attachments?: Attachment[];
  /** Reaction counts by emoji (rows read over REST; the stream carries the changes). */
  reactions?: Record<string, number>;
  /** Ids of the members it mentions by name (`@username`; servers with mentions). */
  mentions?: string[];
  /** It mentions the whole room (`@room`). */
  mentions_room?: true;
}

/** What a system entry records. */
export interface SystemData {
  type: 'joined' | 'left' | 'kicked' | 'banned' | 'renamed' | 'visibility' | (string & {});
  /** Whom it concerns. */
  user_id: string;
  username: string;
  /** The actor. */
  by: string;
  /** `renamed`: the new name. */
  name?: string;
  /** `visibility`: the new visibility. */
  visibility?: Visibility;
  [extra: string]: unknown;
}

/** A membership change or room setting recorded in the stream: it takes a seq like a message. */
export interface SystemEntry extends EntryBase {
  kind: 'system';
  data: SystemData;
}

/**
 * A change to a message, itself an entry of the stream (servers with the "messages after
 * send" extension): an edit (`content` is the new content), a deletion, a reaction added
 * or removed (`data.emoji`), a pin or an unpin. It names the changed message by `message_id`.
 */
export interface ChangeEntry extends EntryBase {
  kind:
    | 'message_edited'
    | 'message_deleted'
    | 'reaction_added'
    | 'reaction_removed'
    | 'message_pinned'
    | 'message_unpinned';
  message_id: number;
  edited_at?: string;
  deleted_at?: string;
  /** A reaction's `emoji`; an edit's `mentions` (the message's whole list after it) when it mentions anyone. */
  data?: { emoji?: string; mentions?: string[]; mentions_room?: boolean; [extra: string]: unknown };
}

/**
 * An entry of a room's stream: a message, a system entry or a change entry (tell them
 * apart with `kind`, or `isSystemEntry`). All take seqs and arrive in order.
 */
export type Message = ChatMessage | SystemEntry | ChangeEntry;

/** A pinned message (`GET /rooms/:id/pins`). */
export interface Pin {
  message: ChatMessage;
  pinned_by: string;
  pinned_at: string;
}

/** A member's report of a message, as owners and admins see it. */
export interface Report {
  id: string;
  /** The room of the reported message. */
  room_id?: string;
  message_id: number;
  author_id: string | null;
  content: string | null;
  reporter: string;
  reason: 'spam' | 'abuse' | 'other';
  note: string | null;
  created_at: string;
  status: 'open' | 'resolved';
  resolution: string | null;
  resolved_by: string | null;
  resolved_at: string | null;
}

/** True for a system entry. */
export function isSystemEntry(m: Message | null | undefined): m is SystemEntry;

/** A room member with its online flag, role and mute state. */
export interface Member {
  id: string;
  username: string;
  joined_at: string;
  online: boolean;
  role: Role;
  muted: boolean;
  /** The user's display name (servers with profiles). */
  display_name?: string | null;
  [extra: string]: unknown;
}

/** One page of history, newest first. */
export interface MessagePage {
  messages: Message[];
  next_cursor: number | null;
  /** The caller's own reactions to the page's messages, by message id. */
  my_reactions?: Record<string, string[]>;
  /** Present when the page reaches the room's retention horizon: the oldest seq still
   * stored (older messages were removed). */
  first_seq?: number;
}

/** The acknowledgement of a send: the message is durable. */
export interface Ack {
  id: number;
  seq: number;
  room_id: string;
  created_at: string;
}

/** The promise of a send; `clientMsgId` names the message until it is stored. */
export interface SendPromise extends Promise<Ack> {
  clientMsgId: string | null;
}

/** One page of search results or of a thread's replies (`next_cursor` opaque for search). */
export interface FoundPage {
  messages: ChatMessage[];
  next_cursor: string | number | null;
}

/** The client events the outbox sends (each acknowledged with `message_ack`). */
export type ChangeEvent = 'send_message' | 'edit_message' | 'delete_message' | 'react' | 'unreact';

/** A change waiting for its ack: a message, an edit, a deletion or a reaction. */
export interface PendingSend {
  client_msg_id: string;
  event: ChangeEvent;
  room_id: string;
  /** Messages and edits. */
  content?: string;
  reply_to?: number;
  attachments?: Attachment[];
  /** Edits, deletions and reactions: the message changed. */
  message_id?: number;
  emoji?: string;
  queuedAt: number;
  attempts: number;
  /** Taken up from storage (left by an earlier page or session of the same user). */
  restored?: boolean;
}

// ---------------------------------------------------------------------------
// Events.

/** Connection states. */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** `presence` from the server. */
export interface PresenceEvent {
  user_id: string;
  username: string;
  room_id: string;
  status: 'online' | 'offline';
  last_seen: string;
}

/** `typing` from the server (never about one's own sockets). */
export interface TypingEvent {
  user_id: string;
  username: string;
  room_id: string;
  typing: boolean;
  started_at: string;
}

/** `user_joined` / `user_left` from the server. */
export interface MembershipEvent {
  user_id: string;
  room_id: string;
  username: string;
}

/** An `error` from the server, or one the library reports (gap fill, bad frame). */
export interface ErrorEvent {
  code: string;
  message: string;
  client_msg_id?: string;
  /** `slow_mode`: milliseconds until the room lets this user send again. */
  retry_after_ms?: number;
  room_id?: string;
}

/** The user's read position in a room moved (sent to every socket of the user, the marking one included). */
export interface ReadStateEvent { room_id: string; last_read_seq: number; [extra: string]: unknown }
/** Another member read a room up to `seq` (at most one a second per member and room). */
export interface ReceiptEvent { room_id: string; user_id: string; seq: number; [extra: string]: unknown }
/**
 * The user's standing in a room changed (every socket of the user, joined to the room or
 * not): `invited` (an invitation waits; `room`), `direct` (a direct room was opened with
 * the user; `room`), `role` (the new `role`) or `muted` (`muted` true or false).
 */
export interface MembershipChangeEvent {
  room_id: string;
  change: 'invited' | 'direct' | 'role' | 'muted';
  by: { id: string; username: string };
  role?: 'admin' | 'member';
  muted?: boolean;
  room?: Room;
  [extra: string]: unknown;
}
/**
 * A user who shares a room with this user (or this user, on another tab) changed their
 * profile: `user` as `getUser` returns it now. At most one a second per user; the last
 * one carries the latest profile (PROTOCOL.md 12.3).
 */
export interface UserUpdatedEvent {
  user: Profile;
  [extra: string]: unknown;
}
/**
 * This client no longer receives a room; it will not rejoin it. `reason`: `left` (the
 * user left, elsewhere), `kicked`, `banned`, `deleted` (the room is gone), or `lost`
 * (the server refused a rejoin: `code` is `not_member` or `room_not_found`).
 */
export interface LeftRoomEvent {
  room_id: string;
  reason: 'left' | 'kicked' | 'banned' | 'deleted' | 'lost' | (string & {});
  code?: string;
}
/** Events a future server may send; declared so that handlers type-check today. */
export interface MessageDeletedEvent { room_id: string; id: number; seq: number; [extra: string]: unknown }
export interface ReactionEvent { room_id: string; message_id: number; user_id: string; emoji: string; [extra: string]: unknown }

/** Every event a client emits, by name. */
export interface ChatdEvents {
  /** The connection state changed. */
  state: { state: ConnectionState; previous: ConnectionState; code?: number };
  /** The socket closed (`willReconnect` false after a deliberate close or a revoked session). */
  disconnect: { code: number; reason: string; willReconnect: boolean };
  /** A reconnect attempt is due in `delay` ms. */
  reconnect_scheduled: { delay: number; attempt: number; code: number };
  /** One message, exactly once per room and in seq order. */
  message: Message;
  /** The same messages, grouped as they became deliverable (ascending, consecutive). */
  messages: { room_id: string; messages: Message[] };
  /** A room's join completed (`resumed` after a reconnect). */
  joined: { room_id: string; resumed: boolean; last_seq: number | null };
  /** The membership ended (left elsewhere, kicked, banned, room deleted, rejoin refused); not sent for `unsubscribe`/`leave`. */
  left_room: LeftRoomEvent;
  /** A change was acknowledged. */
  ack: Ack & { client_msg_id: string; event: ChangeEvent };
  /** A change was given up (server refusal, session ended, cancelled). */
  send_failed: { client_msg_id: string; room_id: string; event: ChangeEvent; code: string; message: string; retry_after_ms?: number };
  /** Changes an earlier page or session of this user left unsent were taken up from storage (they are being sent). */
  outbox_restored: { pending: PendingSend[] };
  /** Missing seqs that are being fetched over REST. */
  gap: { room_id: string; from: number; to: number };
  /** Seqs `from..to` were removed by the server's retention before this client saw them;
   * delivery continues at `first_seq`, the room's oldest stored message. */
  removed: { room_id: string; from: number; to: number; first_seq: number };
  /** New tokens (sign-in or refresh). */
  tokens: { user: User | null; accessToken: string };
  /**
   * The session is over (logout, revoked, expired): sign in again. `unsent` lists the
   * changes not sent yet: they stay in storage and go out when `user` signs in again.
   */
  session_ended: { reason: 'logout' | 'revoked' | 'expired'; unsent: PendingSend[]; user: User | null };
  presence: PresenceEvent;
  typing: TypingEvent;
  user_joined: MembershipEvent;
  user_left: MembershipEvent;
  pong: unknown;
  error: ErrorEvent;
  read_state: ReadStateEvent;
  receipt: ReceiptEvent;
  membership: MembershipChangeEvent;
  user_updated: UserUpdatedEvent;
  message_edited: Message;
  message_deleted: MessageDeletedEvent;
  reaction_added: ReactionEvent;
  reaction_removed: ReactionEvent;
  /** Every frame from the server, raw. */
  event: { event: string; data: unknown };
  /** A server event this version does not know (also emitted under its own name). */
  unknown_event: { event: string; data: unknown };
}

/** A minimal typed event emitter. */
export class Emitter {
  /** Call `fn` for every `type` event; returns a function that unsubscribes. */
  on<K extends keyof ChatdEvents>(type: K, fn: (data: ChatdEvents[K]) => void): () => void;
  on(type: string, fn: (data: any) => void): () => void;
  /** Stop calling `fn` for `type`. */
  off<K extends keyof ChatdEvents>(type: K, fn: (data: ChatdEvents[K]) => void): void;
  off(type: string, fn: (data: any) => void): void;
  /** Call `fn` for the next `type` event only. */
  once<K extends keyof ChatdEvents>(type: K, fn: (data: ChatdEvents[K]) => void): () => void;
  once(type: string, fn: (data: any) => void): () => void;
  /** Deliver `data` to the `type` handlers. */
  emit(type: string, data?: unknown): void;
}

// ---------------------------------------------------------------------------

/** An error from the server or the library; `code` is stable, branch on it. */
export class ChatdError extends Error {
  constructor(code: string, message?: string, extra?: { status?: number; clientMsgId?: string; details?: unknown; cause?: unknown; retryAfterMs?: number });
  /** A server code (PROTOCOL.md) or a library one: network_error, not_authenticated, session_ended, outbox_full, cancelled, disconnected, timeout, unsubscribed. */
  code: string;
  /** HTTP status when the error came from a REST answer. */
  status?: number;
  /** The send's client_msg_id when the error answers a send. */
  clientMsgId?: string;
  /** The server's `message` (an array of strings for validation errors). */
  details?: unknown;
  /** How long to wait before trying again (`slow_mode`: `retry_after_ms`, or a 429's Retry-After), when the server said. */
  retryAfterMs?: number;
}

/** Where the session is kept: window.localStorage, sessionStorage, or anything alike (sync or async). */
export interface SessionStorage {
  getItem(key: string): string | null | Promise<string | null>;
  setItem(key: string, value: string): void | Promise<void>;
  removeItem(key: string): void | Promise<void>;
}

/** A storage that keeps the session in memory only (the default). */
export class MemoryStorage implements SessionStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** The claims of a JWT (not verified), or null. */
export function decodeJwt(token: string): { sub?: string; username?: string; sid?: string; iat?: number; exp?: number; [claim: string]: unknown } | null;

/** The REST routes; a 401 invalid_token triggers one refresh and one retry. */
export class Rest {
  /** Any authenticated route, e.g. `request('GET', '/me/rooms')`. */
  request<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
  /** Every room the caller may see (public, and private ones it belongs to), newest first. */
  listRooms(): Promise<Room[]>;
  /** One page of the caller's rooms, most recent activity first, with unread counts (servers without the route answer 404 `not_found`). */
  myRooms(page?: { cursor?: string | null; limit?: number }): Promise<MyRoomsPage>;
  /** Every room of the caller (all pages, de-duplicated), most recent activity first. */
  allMyRooms(options?: { limit?: number; maxPages?: number }): Promise<MyRoom[]>;
  /** Create a room; the creator becomes its owner. */
  createRoom(room: { name: string; description?: string | null; visibility?: 'public' | 'private' }): Promise<Room>;
  /** Change a room's settings (owners and admins); absent fields stay, `description: null` clears it. */
  updateRoom(roomId: string, patch: { name?: string; description?: string | null; visibility?: 'public' | 'private'; receipts?: boolean; retention_days?: number | null; members_can_pin?: boolean; slow_mode_secs?: number }): Promise<Room>;
  /** Set a room's slow mode (owners and admins): members wait `seconds` (0..3600, 0: off) between two messages. */
  setSlowMode(roomId: string, seconds: number): Promise<Room>;
  /** Delete a room with its messages (owner only). */
  deleteRoom(roomId: string): Promise<{ success: true }>;
  /** Invite a user (owners and admins); accepted by joining. */
  invite(roomId: string, userId: string): Promise<{ success: true }>;
  /** Remove a member (owners and admins; an admin acts on members only). */
  kick(roomId: string, userId: string): Promise<{ success: true }>;
  /** Remove a user and keep them out until unbanned. */
  ban(roomId: string, userId: string): Promise<{ success: true }>;
  /** Lift a ban. */
  unban(roomId: string, userId: string): Promise<{ success: true }>;
  /** Stop a member from sending (sends then fail with `muted`). */
  mute(roomId: string, userId: string): Promise<{ success: true }>;
  /** Let a muted member send again. */
  unmute(roomId: string, userId: string): Promise<{ success: true }>;
  /** Promote a member to admin or demote an admin (owner only). */
  setRole(roomId: string, userId: string, role: 'admin' | 'member'): Promise<{ success: true }>;
  /** Silence (or not) a room's notifications for the caller. */
  setNotifications(roomId: string, muted: boolean): Promise<{ room_id: string; notifications_muted: boolean }>;
  /** The caller's notification level in a room. */
  setNotificationLevel(roomId: string, level: NotificationLevel): Promise<{ room_id: string; notification_level: NotificationLevel; notifications_muted: boolean }>;
  /** Mentions of the caller in its rooms, newest first, a page at a time. */
  mentions(page?: { cursor?: string; limit?: number }): Promise<{ mentions: Mention[]; next_cursor: string | null }>;
  /** The server's VAPID public key (base64url), the `applicationServerKey` for `pushManager.subscribe`. */
  vapidPublicKey(): Promise<{ key: string }>;
  /** Registers a Web Push subscription: the caller is pushed what it would be notified of while it has no socket open. */
  subscribePush(subscription: PushSubscriptionData | { toJSON(): PushSubscriptionData }): Promise<{ endpoint: string; created_at: string }>;
  /** Removes the caller's subscription with this endpoint (none is fine). */
  unsubscribePush(endpoint: string): Promise<null>;
  /** The direct room of the caller and `userId`, created on the first call. */
  openDirect(userId: string): Promise<DirectRoom>;
  /** Invitations waiting for the caller, newest first. */
  myInvites(): Promise<Invite[]>;
  declineInvite(roomId: string): Promise<{ success: boolean }>;
  /** Block a user, privately: neither side sends into (or opens) your direct room while it stands, and the user cannot invite you (`blocked`). */
  block(userId: string): Promise<Block>;
  /** Lift a block (`unblocked` false when there was none). */
  unblock(userId: string): Promise<{ success: true; unblocked: boolean }>;
  /** The users the caller blocked, newest first, a page at a time. */
  blocks(page?: { cursor?: string; limit?: number }): Promise<{ blocks: Block[]; next_cursor: string | null }>;
  /** The caller's own account. */
  me(): Promise<Me>;
  /** Change the caller's profile. */
  updateMe(fields: ProfileChange): Promise<Me>;
  /** A user's profile. */
  getUser(userId: string): Promise<Profile>;
  /** Users whose username or display name starts with `q`, whatever the case and accents (limit 1..50, default 20). */
  searchUsers(q: string, options?: { limit?: number }): Promise<Profile[]>;
  /** Mark a room read over REST (prefer `ChatdClient.markRead`). */
  markRead(roomId: string, seq: number): Promise<{ room_id: string; last_read_seq: number }>;
  /** One room. */
  getRoom(roomId: string): Promise<Room>;
  /** Become a member (idempotent). */
  joinRoom(roomId: string): Promise<{ success: true }>;
  /** Stop being a member. */
  leaveRoom(roomId: string): Promise<{ success: true }>;
  /** The room's members with their online flag. */
  members(roomId: string): Promise<Member[]>;
  /** One page of history, newest first: messages with seq < cursor. */
  messages(roomId: string, page?: { cursor?: number | null; limit?: number }): Promise<MessagePage>;
  /**
   * Upload a file into a room (its name from `file.name` unless given); attach it with
   * `{file_id}`. With `onProgress`, browsers upload by XMLHttpRequest and report as the
   * bytes go out; elsewhere (Node: fetch) it is called once, at the end. `signal` cancels
   * (rejects with code `cancelled`).
   */
  upload(roomId: string, file: Blob | ArrayBuffer | ArrayBufferView, options?: UploadOptions): Promise<StoredFile>;
  /** A file's bytes (members of its room). */
  download(fileId: string): Promise<Blob>;
  /** A file's thumbnail (servers with thumbnails; a 404 when it has none). */
  thumbnail(fileId: string): Promise<Blob>;
  /** Signed URLs of a file, usable without a token until `expires_at` (servers that have them). */
  fileUrl(roomId: string, fileId: string): Promise<FileUrls>;
  /** Post a message over REST (no client_msg_id; prefer ChatdClient.send). */
  postMessage(roomId: string, content: string, extra?: { reply_to?: number; attachments?: Attachment[] }): Promise<ChatMessage>;
  /** Replace one's message's content: the `message_edited` entry (prefer ChatdClient.edit). */
  editMessage(roomId: string, messageId: number, content: string): Promise<ChangeEntry>;
  /** Delete a message (one's own; admins and owners any): the `message_deleted` entry. */
  deleteMessage(roomId: string, messageId: number): Promise<ChangeEntry>;
  /** Add one's reaction: the `reaction_added` entry. */
  addReaction(roomId: string, messageId: number, emoji: string): Promise<ChangeEntry>;
  /** Take back one's reaction: the `reaction_removed` entry. */
  removeReaction(roomId: string, messageId: number, emoji: string): Promise<ChangeEntry>;
  /** Pin a message (owners and admins, or any member when the room's `members_can_pin`); pinning a pinned one changes nothing. */
  pin(roomId: string, messageId: number): Promise<Pin>;
  /** Unpin a message; `unpinned` is false when it was not pinned. */
  unpin(roomId: string, messageId: number): Promise<{ success: true; unpinned: boolean }>;
  /** The room's pins, most recently pinned first. */
  pins(roomId: string): Promise<{ pins: Pin[] }>;
  /** Report a message to the room's owner and admins, once per message. */
  report(roomId: string, messageId: number, reason: 'spam' | 'abuse' | 'other', note?: string): Promise<{ id: string; status: 'open' }>;
  /** The room's reports, oldest first (owners and admins); open ones by default. */
  reports(roomId: string, options?: { status?: 'open' | 'all' }): Promise<{ reports: Report[] }>;
  /** Resolve a report; the action is done as by its direct route. */
  resolveReport(roomId: string, reportId: string, action: 'dismiss' | 'delete_message' | 'mute' | 'kick' | 'ban', note?: string): Promise<Report>;
  /** Earlier versions of an edited message, oldest first. */
  edits(roomId: string, messageId: number): Promise<{ version: number; content: string; replaced_at: string }[]>;
  /** One page of the replies to `rootId`, newest first. */
  thread(roomId: string, rootId: number, page?: { cursor?: number | null; limit?: number }): Promise<FoundPage>;
  /** Full-text search in one room, newest first (q: 1 to 200 characters). */
  search(roomId: string, q: string, page?: { cursor?: string | null; limit?: number }): Promise<FoundPage>;
  /** Full-text search across every room of the caller, newest first. */
  searchAll(q: string, page?: { cursor?: string | null; limit?: number }): Promise<FoundPage>;
}

/** Options of a client; every one is optional. */
export interface ChatdOptions {
  /** The server's http(s) base URL; the page's origin by default. */
  url?: string;
  /**
   * Where the refresh token (unless `refreshCookie`), and the signed-in user's unsent
   * changes, are kept (memory by default).
   */
  storage?: SessionStorage;
  /** The key in `storage` (default "chatd.session"). */
  storageKey?: string;
  /**
   * Keep the refresh token out of reach of scripts (default false): the server sets it as
   * an HttpOnly, Secure, SameSite=Strict cookie scoped to `/auth` and leaves it out of
   * its answers (the header `X-Chatd-Refresh-Cookie: 1` on register, login, refresh and
   * logout). Nothing of the session is written to `storage` (an entry an earlier version
   * left is moved into the cookie at the next `restore()`, then removed); the access
   * token stays in memory, and `restore()` after a reload asks the server for a new one
   * with the cookie. For browser pages of the chatd server's own origin (the cookie is
   * neither sent nor kept across origins): the web app served by chatd uses it.
   */
  refreshCookie?: boolean;
  /** Refresh the access token before it expires (default true). */
  autoRefresh?: boolean;
  /**
   * Tokens from the product instead of a password: called for the first token, before
   * the held one expires (when its `exp` is readable) and when the server refuses it
   * (401 `invalid_token`). The server must be configured with `[auth.external]`. Then
   * call `signIn()`; `login()` and `restore()` do the same. The token is used on REST
   * and on the WebSocket upgrade alike.
   */
  getToken?: () => string | Promise<string>;
  /** Reconnect backoff: delay = min(maxMs, baseMs * factor^attempt), with jitter (defaults 500, 15000, 2). */
  reconnect?: { baseMs?: number; maxMs?: number; factor?: number };
  /** Application ping interval, 0 to disable (default 25000), and how long to wait for any frame after it (10000). */
  heartbeatMs?: number;
  heartbeatTimeoutMs?: number;
  /** Messages fetched over REST when a room is first joined without `since` (default 50). */
  historyLimit?: number;
  /** How long a gap may last before it is fetched over REST (default 1500 ms). */
  gapTimeoutMs?: number;
  /** Most unacknowledged sends kept (default 500); more are refused with `outbox_full`. */
  outboxLimit?: number;
  /** Most send_message frames put on the socket in any one second (default 50; the server drops what exceeds its limit, 100 by default). */
  maxSendsPerSecond?: number;
  /** Retries of a send refused as unavailable/rate_limited/internal (default 5), first after sendRetryMs (500). */
  sendRetries?: number;
  sendRetryMs?: number;
  /** typing_stop after this long without input (default 3000); typing_start repeated this often while typing (3000). */
  typingIdleMs?: number;
  typingRepeatMs?: number;
  /** WebSocket and fetch implementations (the globals by default). */
  WebSocket?: unknown;
  fetch?: typeof fetch;
}

/** Options of a join. */
export interface JoinOptions {
  /** The last seq already seen: delivery starts after it (0: from the first message). Without it, the newest `historyLimit` messages come first. */
  since?: number;
  /** Messages fetched when `since` is not given. */
  historyLimit?: number;
  /** `join` only: false to skip the REST membership call. */
  membership?: boolean;
}

/** The chatd client: sign in, connect, join rooms, send and receive. */
export class ChatdClient extends Emitter {
  /** Create a client. */
  constructor(options?: ChatdOptions);
  /** REST helpers (rooms, members, history pages). */
  readonly api: Rest;
  /** The signed-in user, or null. */
  readonly user: User | null;
  /** Connection state. */
  readonly state: ConnectionState;
  /** The rooms this client is subscribed to. */
  readonly rooms: string[];
  /** Number of sends waiting for their ack. */
  readonly pendingCount: number;

  /** Create an account and sign in. */
  register(fields: { username: string; email: string; password: string }): Promise<User>;
  /** Sign in with email and password (with `getToken`: the same as `signIn()`). */
  login(fields?: { email: string; password: string; deviceInfo?: string }): Promise<User>;
  /** With `getToken`: take the first token and learn the user it names (`GET /me`). */
  signIn(): Promise<Me>;
  /** Resume a stored session; resolves with the user, or null when there is none (with `getToken`: `signIn()`). */
  restore(): Promise<User | null>;
  /** Sign out (this session, or all of the user's with `everywhere`). */
  logout(options?: { everywhere?: boolean }): Promise<void>;
  /** A valid access token (refreshed first when about to expire). */
  getAccessToken(): Promise<string>;

  /** Open the WebSocket (and keep it open); resolves when it is open. */
  connect(): Promise<void>;
  /** Close the WebSocket deliberately (no reconnect); unacknowledged sends stay queued. */
  disconnect(): void;
  /** Disconnect and stop every timer. */
  close(): void;
  /** Drop the socket as a network failure would, and reconnect. */
  reconnect(): void;

  /** Become a member (REST) and subscribe; resolves when the server confirmed the join. */
  join(roomId: string, options?: JoinOptions): Promise<{ room_id: string; last_seq: number }>;
  /** Subscribe to a room the user is a member of (WebSocket only). */
  subscribe(roomId: string, options?: JoinOptions): Promise<{ room_id: string; last_seq: number }>;
  /** Stop receiving a room on this client (the membership stays). */
  unsubscribe(roomId: string): boolean;
  /** Unsubscribe and give up the membership. */
  leave(roomId: string): Promise<void>;
  /** The highest seq delivered for a room, or null. */
  position(roomId: string): number | null;
  /**
   * Mark a room read up to `seq` (`mark_read` on the socket when the room is joined
   * there, else REST); never moves backwards. Resolves with the read position known after it.
   */
  markRead(roomId: string, seq: number): Promise<number>;
  /** The furthest read mark known for a room (own marks, `read_state`, `myRooms`), or null. */
  readPosition(roomId: string): number | null;
  /** Messages older than the oldest delivered, ascending (not emitted as `message`). */
  loadOlder(roomId: string, options?: { limit?: number }): Promise<{ messages: Message[]; hasMore: boolean }>;

  /** Send a message (a reply with `replyTo`); resolves with the ack, rejects with a ChatdError carrying the server's code. */
  send(roomId: string, content: string, options?: { clientMsgId?: string; replyTo?: number; attachments?: Attachment[] }): SendPromise;
  /** Replace the content of one's own message (queued and retried like a send). */
  edit(roomId: string, messageId: number, content: string, options?: { clientMsgId?: string }): SendPromise;
  /** Delete a message (one's own; admins and owners any). */
  deleteMessage(roomId: string, messageId: number, options?: { clientMsgId?: string }): SendPromise;
  /** Add one's reaction (one emoji). */
  react(roomId: string, messageId: number, emoji: string, options?: { clientMsgId?: string }): SendPromise;
  /** Take back one's reaction. */
  unreact(roomId: string, messageId: number, emoji: string, options?: { clientMsgId?: string }): SendPromise;
  /** The unacknowledged changes (of one room, or all): messages, edits, deletions, reactions. */
  pending(roomId?: string): PendingSend[];
  /** Forget the changes `userId` left unsent in storage (after a session ended). */
  discardUnsent(userId: string): Promise<void>;
  /** Resolves once the outbox's last change reached the storage. */
  outboxSaved(): Promise<void>;
  /** Give up a pending send (its promise rejects with code `cancelled`). */
  cancel(clientMsgId: string): boolean;

  /** Call on every keystroke: sends typing_start, and typing_stop after a pause. */
  typing(roomId: string): void;
  /** The user stopped typing. */
  stopTyping(roomId: string): void;
  /** Round trip to the server in milliseconds. */
  ping(timeoutMs?: number): Promise<number>;
}

export default ChatdClient;
