// The client's controller: it holds the state (session, rooms, each room's messages,
// the outbox, members), talks to the server (REST and the WebSocket), keeps what
// offline reading needs in IndexedDB, and tells the views what changed. Views read
// `app.state` and call the actions below; they never talk to the server themselves.

import { Api, ApiError, NetworkError } from './api.js';
import { Connection } from './socket.js';
import * as db from './db.js';
import * as notify from './notify.js';
import { Outbox } from './outbox.js';
import { roomTitle } from './format.js';
import {
  applyChange, hasOlder, mentions, mergeMessages, mergeRoom, newestMsgId, newestSeq, resumeParam,
  roomAfterChat, roomAfterRead, unreadOf, withNewestPage,
} from './state.js';

const SESSION_KEY = 'daehwa.session';
/** Messages per history request when scrolling up. */
const OLDER_PAGE = 50;
/** How far back opening a room at a message pages (a search result), in pages. */
const JUMP_PAGES = 40;
/** How long a rate-limited message waits before it is sent again. */
const RATE_LIMIT_RETRY_MS = 1000;
/** How often the composer tells the room the user is typing (the server takes one
 * every 2 s per room). */
const TYPING_EVERY_MS = 3000;
/** How long "X is typing" shows after the last typing event. */
const TYPING_SHOWN_MS = 5000;

export class App extends EventTarget {
  constructor() {
    super();
    this.api = new Api(null, () => this.signedOut('Your session has ended. Please log in again.'));
    this.state = this.emptyState();
    this.connection = null;
    this.saveTimers = new Map();
    this.noticeSeq = 0;
  }

  emptyState() {
    return {
      me: null,
      rooms: new Map(),
      current: null,
      /** roomId → {list, notices, reachedStart, loadingOlder, fromNetwork} */
      rooms_messages: new Map(),
      outbox: new Outbox(),
      /** roomId → {members, bans} */
      members: new Map(),
      blocks: new Map(),
      connection: 'connecting',
      /** Set once the server's list of rooms arrived (else the rooms are the saved ones). */
      roomsFresh: false,
      /** roomId → the newest change (`seq`) applied to what is held of it. */
      seqs: new Map(),
      /** roomId → Map(userId → {username, until}): who is typing there. */
      typing: new Map(),
      /** Users online (from `presence` events and the members lists). */
      online: new Set(),
    };
  }

  /** Tells the views: 'session', 'rooms', 'room' (current changed), 'messages'
   * (detail: roomId), 'members' (detail: roomId), 'connection', 'toast'. */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  // ---- session ----

  /** Restores the session kept in localStorage, if any. */
  async start() {
    let session = null;
    try {
      session = JSON.parse(localStorage.getItem(SESSION_KEY) ?? 'null');
    } catch {
      session = null;
    }
    if (session?.token) await this.signedIn(session);
    else this.emit('session');
  }

  async login(username, password, register) {
    const api = new Api(null);
    const session = register ? await api.register(username, password) : await api.login(username, password);
    localStorage.setItem(SESSION_KEY, JSON.stringify(session));
    await this.signedIn(session);
  }

  async signedIn(session) {
    this.state = this.emptyState();
    this.state.me = { userId: session.userId, username: session.username };
    this.api.token = session.token;
    const [rooms, outbox] = await Promise.all([
      db.get(db.keys.rooms(session.userId)),
      db.get(db.keys.outbox(session.userId)),
    ]);
    for (const room of rooms ?? []) this.state.rooms.set(room.chatSeq, room);
    this.state.outbox = new Outbox(outbox ?? []);
    this.emit('session');
    this.emit('rooms');
    this.connection = new Connection({
      token: session.token,
      resume: () => this.resume(),
      onEvent: (name, data) => this.onEvent(name, data),
      onState: (state) => {
        this.state.connection = state;
        this.emit('connection');
      },
      onLoggedOut: () => this.signedOut('You were logged out.'),
    });
    this.connection.start();
    this.keepFilesCookie();
    this.api.blocks().then((list) => {
      this.state.blocks = new Map(list.map((u) => [u.userId, u]));
    }).catch(() => {});
    this.openFromHash();
  }

  async logout() {
    try {
      await this.api.logout();
    } catch {
      // Offline: the token is forgotten here all the same.
    }
    this.signedOut();
  }

  /** Keeps the files cookie (an hour long) fresh while signed in: images and
   * download links cannot send the bearer token. */
  keepFilesCookie() {
    clearInterval(this.filesCookieTimer);
    const renew = () => this.api.filesCookie().catch(() => {});
    renew();
    this.filesCookieTimer = setInterval(renew, 30 * 60 * 1000);
  }

  /** Uploads a file to the open room: → {fileId, name, size, contentType}. */
  upload(file, onProgress) {
    const roomId = this.state.current;
    if (roomId === null) return Promise.reject(new Error('no room is open'));
    return this.api.upload(roomId, file, onProgress);
  }

  signedOut(message) {
    clearInterval(this.filesCookieTimer);
    this.api.dropFilesCookie().catch(() => {});
    this.connection?.stop();
    this.connection = null;
    localStorage.removeItem(SESSION_KEY);
    db.clear();
    this.api.token = null;
    this.state = this.emptyState();
    if (location.hash) history.replaceState(null, '', location.pathname);
    this.emit('session');
    if (message) this.toast(message);
  }

  // ---- rooms ----

  title(room) {
    return roomTitle(room, this.state.me?.username);
  }

  currentRoom() {
    return this.state.rooms.get(this.state.current) ?? null;
  }

  setRooms(list) {
    const known = this.state.rooms;
    this.state.rooms = new Map(list.map((r) => [r.chatSeq, mergeRoom(known.get(r.chatSeq), r)]));
    this.state.roomsFresh = true;
    this.roomsChanged();
  }

  upsertRoom(room) {
    this.state.rooms.set(room.chatSeq, mergeRoom(this.state.rooms.get(room.chatSeq), room));
    this.roomsChanged();
  }

  removeRoom(roomId) {
    this.state.rooms.delete(roomId);
    this.state.rooms_messages.delete(roomId);
    this.state.members.delete(roomId);
    this.state.outbox.dropRoom(roomId);
    this.saveOutbox();
    db.del(db.keys.page(this.state.me.userId, roomId));
    if (this.state.current === roomId) this.openRoom(null);
    this.roomsChanged();
  }

  roomsChanged() {
    this.updateTitle();
    this.emit('rooms');
    this.later('rooms', () => db.put(db.keys.rooms(this.state.me.userId), [...this.state.rooms.values()]));
  }

  updateTitle() {
    let unread = 0;
    for (const room of this.state.rooms.values()) if (!notify.isMuted(room.chatSeq)) unread += unreadOf(room);
    document.title = unread ? `(${unread}) daehwa` : 'daehwa';
  }

  openFromHash() {
    const match = location.hash.match(/^#\/rooms\/(\d+)$/);
    this.openRoom(match ? Number(match[1]) : null, { fromHash: true });
  }

  /** Shows a room (null: none), loading its saved page and then the newest one. */
  async openRoom(roomId, { fromHash = false } = {}) {
    if (roomId !== null && !this.state.rooms.has(roomId) && this.state.roomsFresh) roomId = null;
    this.state.current = roomId;
    const hash = roomId === null ? '' : `#/rooms/${roomId}`;
    if (!fromHash && location.hash !== hash) {
      history.pushState(null, '', hash || location.pathname);
    }
    this.emit('room');
    if (roomId === null) return;
    let held = this.state.rooms_messages.get(roomId);
    if (!held) {
      held = { list: [], notices: [], reachedStart: false, loadingOlder: false, fromNetwork: false };
      this.state.rooms_messages.set(roomId, held);
      const saved = await db.get(db.keys.page(this.state.me.userId, roomId));
      if (saved?.length) held.list = mergeMessages(saved, held.list);
      this.emit('messages', roomId);
    }
    this.loadMembers(roomId);
    await this.refreshNewest(roomId);
  }

  /**
   * Opens a room at one of its messages (a search result): pages back until the
   * message is loaded (at most JUMP_PAGES pages), then asks the room view to show it.
   */
  async openRoomAt(roomId, msgId) {
    await this.openRoom(roomId);
    for (let i = 0; i < JUMP_PAGES; i++) {
      const held = this.state.rooms_messages.get(roomId);
      if (!held || this.state.current !== roomId) return;
      if (held.list.length && held.list[0].msgId <= msgId) break;
      if (!hasOlder(held.list, held.reachedStart)) break;
      if (held.loadingOlder) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      const before = held.list.length;
      await this.loadOlder();
      if (held.list.length === before && !held.loadingOlder) break;
    }
    if (this.state.current === roomId) this.emit('focus-message', { roomId, msgId });
  }

  /** Fetches the newest page of a room; quietly does nothing offline. */
  async refreshNewest(roomId) {
    const held = this.state.rooms_messages.get(roomId);
    if (!held) return;
    try {
      const page = await this.api.history(roomId, -1, OLDER_PAGE);
      held.list = withNewestPage(held.list, page);
      held.fromNetwork = true;
      if (page.length < OLDER_PAGE) held.reachedStart = true;
      const newest = page[page.length - 1];
      const room = this.state.rooms.get(roomId);
      if (room && newest) this.upsertRoom({ ...room, lastMessageAt: newest.createdAt });
      this.emit('messages', roomId);
      this.savePage(roomId);
    } catch (e) {
      if (e instanceof ApiError && (e.status === 403 || e.status === 404)) this.removeRoom(roomId);
    }
  }

  /** Older messages of the current room (scrolling up). */
  async loadOlder() {
    const roomId = this.state.current;
    const held = this.state.rooms_messages.get(roomId);
    if (!held || held.loadingOlder || !hasOlder(held.list, held.reachedStart)) return;
    held.loadingOlder = true;
    this.emit('messages', roomId);
    try {
      const before = held.list.length ? held.list[0].msgId : -1;
      const page = await this.api.history(roomId, before, OLDER_PAGE);
      held.list = mergeMessages(held.list, page);
      if (page.length < OLDER_PAGE) held.reachedStart = true;
    } catch (e) {
      if (!(e instanceof NetworkError)) this.toast(`Older messages could not be loaded: ${e.message}`);
    } finally {
      held.loadingOlder = false;
      this.emit('messages', roomId);
    }
  }

  async createRoom(chatName, chatType, password) {
    const room = await this.api.createRoom(chatName, chatType, chatType === 'protected' ? password : undefined);
    this.upsertRoom(room);
    this.openRoom(room.chatSeq);
    return room;
  }

  async joinRoom(roomId, password) {
    const room = await this.api.join(roomId, password);
    delete room.members;
    this.upsertRoom(room);
    this.openRoom(room.chatSeq);
  }

  async leaveRoom(roomId) {
    await this.api.leave(roomId);
    this.removeRoom(roomId);
  }

  async openDirect(userId) {
    const room = await this.api.openDirect(userId);
    this.upsertRoom(room);
    this.openRoom(room.chatSeq);
  }

  async updateRoom(roomId, changes) {
    const room = await this.api.updateRoom(roomId, changes);
    this.upsertRoom(room);
  }

  // ---- members and moderation ----

  async loadMembers(roomId) {
    try {
      const reply = await this.api.members(roomId);
      this.state.members.set(roomId, { members: reply.members ?? [], bans: reply.bans ?? null });
      for (const member of reply.members ?? []) {
        if (member.online) this.state.online.add(member.userId);
        else this.state.online.delete(member.userId);
      }
      this.emit('members', roomId);
    } catch {
      // Offline, or no longer a member: the list stays as it was.
    }
  }

  /** Reloads a room's members if a view shows them. */
  refreshMembers(roomId) {
    if (this.state.members.has(roomId) || roomId === this.state.current) this.loadMembers(roomId);
  }

  myRole(roomId) {
    const entry = this.state.members.get(roomId);
    return entry?.members.find((m) => m.userId === this.state.me.userId)?.role ?? 'member';
  }

  async moderate(action, roomId, user, minutes) {
    const api = this.api;
    const calls = {
      kick: () => api.kick(roomId, user.userId),
      ban: () => api.ban(roomId, user.userId, minutes),
      unban: () => api.unban(roomId, user.userId),
      mute: () => api.mute(roomId, user.userId, minutes),
      unmute: () => api.unmute(roomId, user.userId),
      admin: () => api.makeAdmin(roomId, user.userId),
      unadmin: () => api.removeAdmin(roomId, user.userId),
      owner: () => api.makeOwner(roomId, user.userId),
      invite: () => api.invite(roomId, user.userId),
    };
    await calls[action]();
    this.loadMembers(roomId);
  }

  async setBlocked(user, blocked) {
    if (blocked) await this.api.block(user.userId);
    else await this.api.unblock(user.userId);
    if (blocked) this.state.blocks.set(user.userId, user);
    else this.state.blocks.delete(user.userId);
    this.toast(blocked ? `You blocked ${user.username}. You will not see their messages.` : `You unblocked ${user.username}.`);
    this.emit('members', this.state.current);
  }

  // ---- messages ----

  /** Writes a message: shown at once as pending, sent now or when back online. */
  send(content, attachments = []) {
    const roomId = this.state.current;
    if (roomId === null || (content.trim() === '' && attachments.length === 0)) return;
    const entry = this.state.outbox.add(roomId, content, { attachments });
    this.saveOutbox();
    this.emit('messages', roomId);
    this.sendEntry(entry);
  }

  sendEntry(entry) {
    const data = { chatSeq: entry.chatSeq, content: entry.content, clientMsgId: entry.clientMsgId };
    if (entry.attachments?.length) data.attachments = entry.attachments.map((a) => a.fileId);
    this.connection?.send('chat', data);
  }

  retry(clientMsgId) {
    const entry = this.state.outbox.retry(clientMsgId);
    if (!entry) return;
    this.saveOutbox();
    this.emit('messages', entry.chatSeq);
    this.sendEntry(entry);
  }

  discard(clientMsgId) {
    const entry = this.state.outbox.entries.get(clientMsgId);
    this.state.outbox.discard(clientMsgId);
    this.saveOutbox();
    if (entry) this.emit('messages', entry.chatSeq);
  }

  /** Marks the current room read up to its newest message (the view calls this when
   * the newest message is on screen). */
  markRead() {
    const roomId = this.state.current;
    const room = this.state.rooms.get(roomId);
    const held = this.state.rooms_messages.get(roomId);
    if (!room || !held) return;
    const newest = newestMsgId(held.list);
    if (newest === 0 || (room.lastReadMsgId ?? 0) >= newest && unreadOf(room) === 0) return;
    this.upsertRoom(roomAfterRead(room, newest));
    this.api.markRead(roomId, newest).catch(() => {});
  }

  /** What a reconnect resumes from: the newest message held of each room, and the
   * newest change applied to it, so that the server replays every change missed. */
  resume() {
    const held = new Map();
    for (const [roomId, entry] of this.state.rooms_messages) {
      const seq = Math.max(this.state.seqs.get(roomId) ?? 0, newestSeq(entry.list));
      held.set(roomId, { msgId: newestMsgId(entry.list), seq });
    }
    return resumeParam(held, (roomId) => this.state.rooms.has(roomId));
  }

  noteSeq(roomId, seq) {
    if (typeof seq === 'number' && seq > (this.state.seqs.get(roomId) ?? 0)) this.state.seqs.set(roomId, seq);
  }

  /** Applies an edit, a delete or a reaction to what is held of its room. */
  applyChange(name, data) {
    const held = this.state.rooms_messages.get(data.chatSeq);
    if (!held) return;
    held.list = applyChange(held.list, name, data);
    this.noteSeq(data.chatSeq, data.seq);
    this.savePage(data.chatSeq);
    this.emit('messages', data.chatSeq);
  }

  async editMessage(msgId, content) {
    const roomId = this.state.current;
    const message = await this.api.editMessage(roomId, msgId, content);
    const held = this.state.rooms_messages.get(roomId);
    if (held) {
      held.list = mergeMessages(held.list, [message]);
      this.emit('messages', roomId);
    }
  }

  async deleteMessage(msgId) {
    await this.api.deleteMessage(this.state.current, msgId);
  }

  async react(msgId, emoji, add) {
    await this.api.react(this.state.current, msgId, emoji, add);
  }

  /** Tells the current room the user is typing, at most every few seconds. */
  typing() {
    const roomId = this.state.current;
    const now = Date.now();
    if (roomId === null || now - (this.lastTyping?.get(roomId) ?? 0) < TYPING_EVERY_MS) return;
    (this.lastTyping ??= new Map()).set(roomId, now);
    this.connection?.send('typing', { chatSeq: roomId });
  }

  /** Who is typing in a room now, by name. */
  typingIn(roomId) {
    const now = Date.now();
    return [...(this.state.typing.get(roomId)?.values() ?? [])].filter((t) => t.until > now).map((t) => t.username);
  }

  isOnline(userId) {
    return this.state.online.has(userId);
  }

  // ---- server events ----

  onEvent(name, data) {
    const handler = EVENTS[name];
    if (handler) handler.call(this, data);
  }

  addNotice(roomId, text) {
    const held = this.state.rooms_messages.get(roomId);
    if (!held) return;
    held.notices.push({
      notice: true,
      id: ++this.noticeSeq,
      text,
      createdAt: new Date().toISOString(),
      afterMsgId: newestMsgId(held.list),
    });
    this.emit('messages', roomId);
  }

  nameOf(roomId, userId) {
    if (userId === this.state.me.userId) return 'you';
    const member = this.state.members.get(roomId)?.members.find((m) => m.userId === userId);
    return member?.username ?? 'someone';
  }

  /** The view registers how it tells whether the newest message is on screen. */
  setReadingCheck(fn) {
    this.isReading = fn;
  }

  // ---- persistence ----

  /** Runs `fn` once, `ms` from the first of a burst of calls: what it saves is read
   * when it runs, so one write covers the burst, and a steady stream of changes
   * cannot put the write off for ever. */
  later(key, fn, ms = 300) {
    if (this.saveTimers.has(key)) return;
    this.saveTimers.set(key, setTimeout(() => {
      this.saveTimers.delete(key);
      if (this.state.me) fn();
    }, ms));
  }

  savePage(roomId) {
    const me = this.state.me.userId;
    this.later(`page:${roomId}`, () => {
      const held = this.state.rooms_messages.get(roomId);
      if (held) db.put(db.keys.page(me, roomId), held.list.slice(-db.PAGE_SIZE));
    });
  }

  saveOutbox() {
    if (this.state.me) db.put(db.keys.outbox(this.state.me.userId), this.state.outbox.toJSON());
  }

  toast(text, action) {
    this.emit('toast', { text, action });
  }
}

/** What each server event does. `this` is the App. */
const EVENTS = {
  rooms(list) {
    this.setRooms(list);
    if (this.state.current !== null && !this.state.rooms.has(this.state.current)) {
      this.openRoom(null);
    }
    // Anything written offline goes now; resends are idempotent by clientMsgId.
    for (const entry of this.state.outbox.due()) {
      if (this.state.rooms.has(entry.chatSeq)) this.sendEntry(entry);
    }
    // A room opened from its saved page, offline: fetch what the server has now.
    for (const [roomId, held] of this.state.rooms_messages) {
      if (!held.fromNetwork && this.state.rooms.has(roomId)) this.refreshNewest(roomId);
    }
    if (this.state.current !== null) this.loadMembers(this.state.current);
  },

  'message edited'(data) {
    this.applyChange('message edited', data);
  },

  'message deleted'(data) {
    this.applyChange('message deleted', data);
  },

  reaction(data) {
    this.applyChange('reaction', data);
  },

  typing({ chatSeq, userId, username }) {
    if (!this.state.typing.has(chatSeq)) this.state.typing.set(chatSeq, new Map());
    this.state.typing.get(chatSeq).set(userId, { username, until: Date.now() + TYPING_SHOWN_MS });
    this.emit('typing', chatSeq);
    setTimeout(() => this.emit('typing', chatSeq), TYPING_SHOWN_MS + 50);
  },

  presence({ userId, status }) {
    if (status === 'online') this.state.online.add(userId);
    else this.state.online.delete(userId);
    this.emit('members', this.state.current);
  },

  chat(message) {
    const me = this.state.me.userId;
    const roomId = message.chatSeq;
    this.noteSeq(roomId, message.seq);
    // A message from someone typing ends their "is typing".
    this.state.typing.get(roomId)?.delete(message.senderId);
    if (message.senderId === me && message.clientMsgId && this.state.outbox.confirm(message.clientMsgId)) {
      this.saveOutbox();
    }
    const held = this.state.rooms_messages.get(roomId);
    if (held) {
      held.list = mergeMessages(held.list, [message]);
      this.savePage(roomId);
    }
    const room = this.state.rooms.get(roomId);
    if (!room) {
      // A direct room that was hidden shows again with a new message.
      this.api.myRooms().then((list) => this.setRooms(list)).catch(() => {});
      return;
    }
    const mine = message.senderId === me;
    const reading = roomId === this.state.current && document.visibilityState === 'visible' && this.isReading?.();
    this.upsertRoom(roomAfterChat(room, message, mine || reading, me));
    if (held) this.emit('messages', roomId);
    if (reading && !mine) this.markRead();
    if (!mine && !message.deleted) {
      const mentioned = mentions(message, me);
      notify.notifyMessage({
        title: mentioned
          ? `${message.senderName} mentioned you${room.isDirected ? '' : ` in ${this.title(room)}`}`
          : room.isDirected ? message.senderName : `${message.senderName} in ${this.title(room)}`,
        body: message.content.slice(0, 200),
        roomId,
        mention: mentioned,
        onClick: () => this.openRoom(roomId),
      });
    }
  },

  read({ chatSeq, lastReadMsgId }) {
    const room = this.state.rooms.get(chatSeq);
    if (room) this.upsertRoom(roomAfterRead(room, lastReadMsgId));
  },

  resync({ chatSeq }) {
    const held = this.state.rooms_messages.get(chatSeq);
    if (!held) return;
    held.list = [];
    held.reachedStart = false;
    this.refreshNewest(chatSeq);
  },

  'new room'(room) {
    if (room.isDirected || room.ownerId === this.state.me.userId) this.upsertRoom(room);
  },

  'join room'({ chatSeq, userId, username, room }) {
    if (userId === this.state.me.userId) {
      this.upsertRoom(room);
      return;
    }
    if (this.state.rooms.has(chatSeq)) this.upsertRoom(room);
    this.addNotice(chatSeq, `${username} joined`);
    this.refreshMembers(chatSeq);
  },

  'user leave'({ chatSeq, userId, username, reason, until }) {
    const room = this.state.rooms.get(chatSeq);
    if (userId === this.state.me.userId) {
      if (room && reason === 'kick') this.toast(`You were kicked from ${this.title(room)}.`);
      if (room && reason === 'ban') {
        this.toast(`You were banned from ${this.title(room)}${until ? ` until ${new Date(until).toLocaleString()}` : ''}.`);
      }
      if (room) this.removeRoom(chatSeq);
      return;
    }
    if (room) this.upsertRoom({ ...room, memberCount: Math.max(0, (room.memberCount ?? 1) - 1) });
    const what = { leave: 'left', kick: 'was kicked', ban: 'was banned' }[reason] ?? 'left';
    this.addNotice(chatSeq, `${username} ${what}`);
    this.refreshMembers(chatSeq);
  },

  'role change'({ chatSeq, userId, username, role }) {
    const who = userId === this.state.me.userId ? 'You are' : `${username} is`;
    const what = { owner: 'the owner', admin: 'an admin', member: 'a member' }[role] ?? role;
    this.addNotice(chatSeq, `${who} now ${what}`);
    this.refreshMembers(chatSeq);
  },

  'user mute'({ chatSeq, userId, username, until }) {
    const when = until ? new Date(until).toLocaleString() : '';
    if (userId === this.state.me.userId) {
      const room = this.state.rooms.get(chatSeq);
      this.toast(`You are muted in ${room ? this.title(room) : 'a room'}${when ? ` until ${when}` : ''}.`);
    }
    this.addNotice(chatSeq, `${username} was muted${when ? ` until ${when}` : ''}`);
    this.refreshMembers(chatSeq);
  },

  'user unmute'({ chatSeq, username }) {
    this.addNotice(chatSeq, `${username} can write again`);
    this.refreshMembers(chatSeq);
  },

  'user ban'({ chatSeq }) {
    this.refreshMembers(chatSeq);
  },

  'user unban'({ chatSeq }) {
    this.refreshMembers(chatSeq);
  },

  invite({ chatSeq, userId, username, room }) {
    if (userId === this.state.me.userId) {
      if (!this.state.rooms.has(chatSeq)) {
        this.toast(`You were invited to ${room.chatName}.`, {
          label: `Join ${room.chatName}`,
          run: () => this.joinRoom(chatSeq).catch((e) => this.toast(e.message)),
        });
      }
      return;
    }
    this.addNotice(chatSeq, `${username} was invited`);
  },

  'room update'({ room }) {
    if (this.state.rooms.has(room.chatSeq)) this.upsertRoom(room);
  },

  error(data) {
    const ref = data?.ref;
    if (ref?.clientMsgId) {
      const entry = this.state.outbox.refuse(ref.clientMsgId, data);
      if (!entry) return;
      this.saveOutbox();
      this.emit('messages', entry.chatSeq);
      if (entry.state === 'pending') {
        setTimeout(() => {
          if (this.state.outbox.entries.get(entry.clientMsgId)?.state === 'pending') this.sendEntry(entry);
        }, RATE_LIMIT_RETRY_MS);
      }
      return;
    }
    this.toast(data?.message ?? 'The server refused a request.');
  },
};
