// Pure state logic of the client: rooms with their unread counts, a room's message
// list, and the resume positions for a reconnect. No DOM, no network: `node --test`
// covers it (tests/web/state.test.js).

/** A room's unread count as the server counts it: lastMsgId − lastReadMsgId. */
export function unreadOf(room) {
  if (typeof room.unreadCount === 'number') return Math.max(0, room.unreadCount);
  if (typeof room.lastReadMsgId === 'number') return Math.max(0, room.lastMsgId - room.lastReadMsgId);
  return 0;
}

/**
 * The room after a `chat` event. `read` is true when the message counts as read at
 * once: the user sent it, or is looking at the room.
 */
export function roomAfterChat(room, message, read) {
  const lastMsgId = Math.max(room.lastMsgId ?? 0, message.msgId);
  let lastReadMsgId = room.lastReadMsgId ?? room.lastMsgId ?? 0;
  if (read) lastReadMsgId = Math.max(lastReadMsgId, message.msgId);
  return {
    ...room,
    lastMsgId,
    lastReadMsgId,
    unreadCount: Math.max(0, lastMsgId - lastReadMsgId),
    lastMessageAt: message.createdAt ?? room.lastMessageAt,
  };
}

/** The room after its read marker moved to `lastReadMsgId` (never back). */
export function roomAfterRead(room, lastReadMsgId) {
  const read = Math.max(room.lastReadMsgId ?? 0, lastReadMsgId);
  const lastMsgId = Math.max(room.lastMsgId ?? 0, read);
  return { ...room, lastMsgId, lastReadMsgId: read, unreadCount: Math.max(0, lastMsgId - read) };
}

/**
 * Merges the server's view of a room into what the client knows. Events sent to
 * several users carry no `lastMessageAt` worth trusting over a time the client has
 * seen, so a missing one keeps the known one.
 */
export function mergeRoom(known, fresh) {
  const merged = { ...known, ...fresh };
  if (known?.lastMessageAt && !fresh.lastMessageAt) merged.lastMessageAt = known.lastMessageAt;
  return merged;
}

/** The rooms for the sidebar: channels and direct rooms, each by name. */
export function sortRooms(rooms, titleOf) {
  const byName = (a, b) => titleOf(a).localeCompare(titleOf(b), undefined, { sensitivity: 'base' });
  const list = [...rooms];
  return {
    channels: list.filter((r) => !r.isDirected).sort(byName),
    direct: list.filter((r) => r.isDirected).sort(byName),
  };
}

/**
 * `incoming` merged into `messages` (both oldest first): one entry per msgId, the
 * newer copy winning, in msgId order.
 */
export function mergeMessages(messages, incoming) {
  if (incoming.length === 0) return messages;
  const byId = new Map(messages.map((m) => [m.msgId, m]));
  for (const m of incoming) byId.set(m.msgId, m);
  return [...byId.values()].sort((a, b) => a.msgId - b.msgId);
}

/**
 * What the client holds of a room after a fresh newest page: the page merged in when
 * it joins what is held; the page alone when there is a gap between them (what was
 * held is older than anything the page reaches, and paging fills it again).
 */
export function withNewestPage(messages, page) {
  if (messages.length === 0 || page.length === 0) return page.length ? page : messages;
  const heldNewest = messages[messages.length - 1].msgId;
  const pageOldest = page[0].msgId;
  if (pageOldest > heldNewest + 1) return page;
  return mergeMessages(messages, page);
}

/** The newest msgId held, 0 when none. */
export function newestMsgId(messages) {
  return messages.length ? messages[messages.length - 1].msgId : 0;
}

/** Whether older history may exist before what is held. */
export function hasOlder(messages, reachedStart) {
  return !reachedStart && !(messages.length && messages[0].msgId <= 1);
}

/**
 * The `resume` parameter of a reconnect: `ROOM:LASTMSGID,…` for each room whose
 * messages the client holds, so that the server replays what it missed there.
 * `held` maps a room id to the newest msgId held (0 for an empty room).
 */
export function resumeParam(held, memberOf) {
  return [...held.entries()]
    .filter(([room]) => memberOf(room))
    .sort(([a], [b]) => a - b)
    .map(([room, last]) => `${room}:${last}`)
    .join(',');
}

/** How long to wait before reconnect attempt `attempt` (0, 1, …): doubling, capped,
 * with jitter so that clients of a restarted server do not all return at once. */
export function backoffMs(attempt, random = Math.random) {
  const base = Math.min(15000, 500 * 2 ** Math.min(attempt, 10));
  return Math.round(base / 2 + (random() * base) / 2);
}
