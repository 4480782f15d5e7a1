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
export function roomAfterChat(room, message, read, me) {
  const lastMsgId = Math.max(room.lastMsgId ?? 0, message.msgId);
  let lastReadMsgId = room.lastReadMsgId ?? room.lastMsgId ?? 0;
  if (read) lastReadMsgId = Math.max(lastReadMsgId, message.msgId);
  // A new message that mentions the user and is not read counts; reading to the
  // end clears them all (the server's count is exact; this follows it live).
  let unreadMentions = room.unreadMentions ?? 0;
  if (read && lastReadMsgId >= lastMsgId) unreadMentions = 0;
  else if (!read && me !== undefined && message.senderId !== me && mentions(message, me)) unreadMentions += 1;
  return {
    ...room,
    lastMsgId,
    lastReadMsgId,
    unreadCount: Math.max(0, lastMsgId - lastReadMsgId),
    unreadMentions,
    lastMessageAt: message.createdAt ?? room.lastMessageAt,
  };
}

/** The room after its read marker moved to `lastReadMsgId` (never back). */
export function roomAfterRead(room, lastReadMsgId) {
  const read = Math.max(room.lastReadMsgId ?? 0, lastReadMsgId);
  const lastMsgId = Math.max(room.lastMsgId ?? 0, read);
  const unreadMentions = read >= lastMsgId ? 0 : room.unreadMentions ?? 0;
  return { ...room, lastMsgId, lastReadMsgId: read, unreadCount: Math.max(0, lastMsgId - read), unreadMentions };
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
 * The `resume` parameter of a reconnect: `ROOM:LASTMSGID:LASTSEQ,…` for each room
 * whose messages the client holds, so that the server replays every change it
 * missed there (new messages, edits, deletes, reactions). `held` maps a room id to
 * `{msgId, seq}`: the newest msgId held and the newest change seen (or a bare msgId,
 * for the older `ROOM:LASTMSGID` form: new messages only).
 */
export function resumeParam(held, memberOf) {
  return [...held.entries()]
    .filter(([room]) => memberOf(room))
    .sort(([a], [b]) => a - b)
    .map(([room, last]) => (typeof last === 'number' ? `${room}:${last}` : `${room}:${last.msgId}:${last.seq}`))
    .join(',');
}

/** The newest change seen in `messages`: the highest `seq` that posted one of them. */
export function newestSeq(messages) {
  return messages.reduce((seq, m) => Math.max(seq, m.seq ?? 0), 0);
}

/**
 * `messages` after a change event (`message edited`, `message deleted`,
 * `reaction`): the message it names updated, the list otherwise unchanged (the
 * same array when the message is not held). Applying a change twice (a replay after
 * a reconnect overlapping what was seen) changes nothing more.
 */
export function applyChange(messages, name, data) {
  const at = messages.findIndex((m) => m.msgId === data.msgId);
  if (at < 0) return messages;
  const m = messages[at];
  let next = m;
  if (name === 'message edited') {
    if (m.deleted) return messages;
    next = { ...m, content: data.content, editedAt: data.editedAt, mentions: data.mentions ?? [], mentionsRoom: data.mentionsRoom };
  } else if (name === 'message deleted') {
    next = {
      msgId: m.msgId, chatSeq: m.chatSeq, seq: m.seq, senderId: m.senderId, senderName: m.senderName,
      createdAt: m.createdAt, clientMsgId: m.clientMsgId, deleted: true, deletedBy: data.byUserId, reactions: [],
    };
  } else if (name === 'reaction') {
    if (m.deleted) return messages;
    const reactions = (m.reactions ?? []).map((r) => ({ ...r, userIds: [...r.userIds] }));
    const r = reactions.find((x) => x.emoji === data.emoji);
    if (data.added) {
      if (r?.userIds.includes(data.userId)) return messages;
      if (r) r.userIds.push(data.userId);
      else reactions.push({ emoji: data.emoji, userIds: [data.userId] });
    } else {
      if (!r?.userIds.includes(data.userId)) return messages;
      r.userIds = r.userIds.filter((u) => u !== data.userId);
    }
    next = { ...m, reactions: reactions.filter((x) => x.userIds.length).map((x) => ({ ...x, count: x.userIds.length })) };
  }
  const copy = [...messages];
  copy[at] = next;
  return copy;
}

/** Whether a message mentions the user (by name, or the whole room). */
export function mentions(message, userId) {
  return !message.deleted && (message.mentionsRoom === true || (message.mentions ?? []).includes(userId));
}

/** How long to wait before reconnect attempt `attempt` (0, 1, …): doubling, capped,
 * with jitter so that clients of a restarted server do not all return at once. */
export function backoffMs(attempt, random = Math.random) {
  const base = Math.min(15000, 500 * 2 ** Math.min(attempt, 10));
  return Math.round(base / 2 + (random() * base) / 2);
}
