// The chat view: the room's header (name, members toggle, notification mute, invite,
// settings, leave), the message list (role "log", named "Messages") with day
// separators, sender groups, older history on scrolling up and a jump to the newest
// message, and the composer (IME-safe Enter, Shift+Enter for a new line).
//
// Messages are rendered by key (msgId, or clientMsgId while pending), so an update
// only adds or replaces what changed: screen readers hear new messages once, and
// later features (edits, reactions) replace a single node.

import { html, refs, icon, replaceChildren } from '../dom.js';
import { dayLabel, isInlineImage, layout, linkify, sizeLabel, timeLabel } from '../format.js';
import { hasOlder, mentions } from '../state.js';
import * as notify from '../notify.js';
import { avatar } from './sidebar.js';
import { confirmDialog, inviteDialog, settingsDialog } from './dialogs.js';

/** Pixels from the bottom within which the list counts as scrolled to the newest. */
const BOTTOM_SLACK = 48;
/** Pixels from the top at which older messages are fetched. */
const TOP_TRIGGER = 200;
/** The reactions offered under every message. */
const QUICK_REACTIONS = ['👍', '😄', '🎉', '❤️'];

export function roomView(app, shell, signal) {
  const root = html`
    <section class="room" aria-labelledby="room-title">
      <div class="welcome" data-ref="welcome">
        <img src="/icon.svg" alt="" width="72" height="72">
        <h2>Welcome to daehwa</h2>
        <p class="muted">Pick a room on the left, create a new one, or browse the rooms of your team.</p>
      </div>
      <header class="room-head" data-ref="head">
        <button type="button" class="icon-button back" data-ref="back" aria-label="Back to rooms" title="Back to rooms">${icon('back')}</button>
        <div class="room-heading">
          <h2 id="room-title" data-ref="title"></h2>
          <p class="room-sub" data-ref="sub"></p>
        </div>
        <div class="room-tools">
          <button type="button" class="icon-button" data-ref="mute" aria-pressed="false"></button>
          <button type="button" class="icon-button" data-ref="invite" aria-label="Invite people" title="Invite people">${icon('invite')}</button>
          <button type="button" class="icon-button" data-ref="settings" aria-label="Room settings" title="Room settings">${icon('settings')}</button>
          <button type="button" class="icon-button" data-ref="leave" aria-label="Leave room" title="Leave room">${icon('leave')}</button>
          <button type="button" class="icon-button members-toggle" data-ref="members" aria-label="Members" title="Members"
                  aria-controls="members-panel" aria-expanded="false">${icon('users')}</button>
        </div>
      </header>
      <p class="offline-banner" data-ref="offline" hidden>You are offline. These are the saved messages; what you write is sent when the connection is back.</p>
      <div class="log-wrap" data-ref="logWrap">
        <div class="log" role="log" aria-label="Messages" tabindex="0" data-ref="log">
          <div class="log-top" data-ref="top"></div>
          <div class="log-items" data-ref="items"></div>
        </div>
        <button type="button" class="jump" data-ref="jump" hidden>${icon('down')}<span>Jump to newest</span></button>
      </div>
      <p class="typing" data-ref="typing" aria-live="polite"></p>
      <p class="editing" data-ref="editing" hidden>Editing a message · Enter saves · Escape cancels</p>
      <ul class="mention-suggest" id="mention-suggest" role="listbox" aria-label="Mention" data-ref="suggest" hidden></ul>
      <ul class="uploads" data-ref="uploads" aria-label="Files to send" hidden></ul>
      <form class="composer" data-ref="composer">
        <input type="file" multiple hidden data-ref="fileInput" aria-label="Choose files to attach">
        <button type="button" class="icon-button attach" data-ref="attach" aria-label="Attach files" title="Attach files (or paste, or drop)">${icon('attach')}</button>
        <textarea data-ref="input" aria-label="Message" rows="1" enterkeyhint="send"
                  aria-describedby="composer-hint" aria-controls="mention-suggest" aria-autocomplete="list"></textarea>
        <button type="submit" class="send" aria-label="Send" title="Send">${icon('send')}</button>
      </form>
      <p class="composer-hint" id="composer-hint">Enter sends · Shift+Enter starts a new line</p>
    </section>`;
  const r = refs(root);
  const nodes = new Map();
  const drafts = new Map();
  let shownRoom = null;
  /** The message being edited in the composer, if one is. */
  let editing = null;
  /** Files being uploaded or uploaded for the open room: {file, attachment, failed, node}. */
  let uploads = [];
  let uploadsRoom = null;

  // ---- header ----

  r.back.addEventListener('click', () => app.openRoom(null));
  r.members.addEventListener('click', () => shell.openMembers());
  r.mute.addEventListener('click', () => {
    const id = app.state.current;
    notify.setMuted(id, !notify.isMuted(id));
    renderHead();
    app.roomsChanged();
  });
  r.invite.addEventListener('click', () => inviteDialog(app, app.currentRoom()));
  r.settings.addEventListener('click', () => settingsDialog(app, app.currentRoom()));
  r.leave.addEventListener('click', async () => {
    const room = app.currentRoom();
    if (!room) return;
    const ok = await confirmDialog({
      title: `Leave ${app.title(room)}?`,
      text: room.isDirected
        ? 'The conversation is hidden until a new message arrives.'
        : 'You can join again later unless the room is private.',
      confirm: 'Leave',
    });
    if (!ok) return;
    try {
      await app.leaveRoom(room.chatSeq);
    } catch (e) {
      app.toast(e.message);
    }
  });

  function renderHead() {
    const room = app.currentRoom();
    root.classList.toggle('empty', !room);
    r.welcome.hidden = Boolean(room);
    r.head.hidden = r.logWrap.hidden = r.composer.hidden = !room;
    if (roomChangedForUploads(room)) clearUploads();
    root.querySelector('.composer-hint').hidden = !room;
    if (!room) return;
    const title = app.title(room);
    r.title.textContent = room.isDirected ? title : `# ${title}`;
    r.title.title = title;
    const type = room.isDirected ? 'Direct message' : { public: 'Public', protected: 'Protected', private: 'Private' }[room.chatType];
    const count = room.memberCount ?? 0;
    r.sub.textContent = `${type} · ${count} ${count === 1 ? 'member' : 'members'}`;
    const muted = notify.isMuted(room.chatSeq);
    r.mute.setAttribute('aria-pressed', String(muted));
    r.mute.setAttribute('aria-label', 'Mute notifications');
    r.mute.title = muted ? 'Notifications muted for this room' : 'Mute notifications for this room';
    replaceChildren(r.mute, icon(muted ? 'bellOff' : 'bell'));
    const role = app.myRole(room.chatSeq);
    r.invite.hidden = room.isDirected || role === 'member';
    r.settings.hidden = room.isDirected || role !== 'owner';
    r.members.setAttribute('aria-expanded', String(shell.membersOpen()));
    r.input.placeholder = room.isDirected ? `Message ${title}` : `Message #${title}`;
    r.offline.hidden = app.state.connection === 'online';
  }

  // ---- message list ----

  function atBottom() {
    const log = r.log;
    return log.scrollHeight - log.scrollTop - log.clientHeight < BOTTOM_SLACK;
  }
  app.setReadingCheck(atBottom);

  function itemsOf(roomId) {
    const held = app.state.rooms_messages.get(roomId);
    if (!held) return { entries: [], held: null };
    const entries = [];
    const notices = [...held.notices];
    const flushNotices = (upTo) => {
      while (notices.length && notices[0].afterMsgId <= upTo) entries.push(notices.shift());
    };
    for (const m of held.list) {
      flushNotices(m.msgId - 1);
      entries.push(m);
    }
    flushNotices(Infinity);
    const me = app.state.me;
    for (const p of app.state.outbox.forRoom(roomId)) {
      entries.push({ ...p, pending: true, senderId: me.userId, senderName: me.username });
    }
    return { entries, held };
  }

  function keyOf(item) {
    if (item.kind === 'day') return `d${item.key}`;
    if (item.kind === 'notice') return `n${item.notice.id}`;
    const m = item.message;
    const head = item.head ? 'h' : 'c';
    if (m.pending) return `p${m.clientMsgId}:${m.state}:${head}:${app.state.connection}`;
    // What the node shows of a message that can change: its text, its tombstone,
    // its reactions (and whether they are the user's).
    const me = app.state.me.userId;
    const reactions = (m.reactions ?? []).map((r) => `${r.emoji}${r.userIds.length}${r.userIds.includes(me) ? '*' : ''}`).join(',');
    return `m${m.msgId}:${head}:${m.deleted ? 'x' : m.editedAt ?? ''}:${reactions}`;
  }

  function messageText(content) {
    return linkify(content).map((part) =>
      part.href
        ? html`<a href="${part.href}" rel="noopener noreferrer" target="_blank">${part.text}</a>`
        : part.text,
    );
  }

  function nodeOf(item) {
    if (item.kind === 'day') {
      return html`<div class="day"><span>${dayLabel(item.date)}</span></div>`;
    }
    if (item.kind === 'notice') {
      return html`<div class="notice">${item.notice.text}</div>`;
    }
    const m = item.message;
    const date = new Date(m.createdAt);
    const time = timeLabel(date);
    const full = date.toLocaleString();
    const mine = m.senderId === app.state.me.userId;
    const el = html`
      <div class="msg ${item.head ? 'head' : 'cont'} ${mine ? 'mine' : ''} ${m.pending ? `pending ${m.state}` : ''}">
        <div class="msg-gutter">${item.head ? avatar(m.senderName) : html`<time class="gutter-time" datetime="${m.createdAt}" title="${full}">${time}</time>`}</div>
        <div class="msg-main">
          ${item.head
            ? html`<div class="msg-meta"><span class="sender">${m.senderName}</span><time datetime="${m.createdAt}" title="${full}">${time}</time></div>`
            : html`<span class="sr-only">${m.senderName}, ${time}:</span>`}
          ${m.deleted
            ? html`<div class="msg-text deleted">This message was deleted.</div>`
            : html`<div class="msg-text">${messageText(m.content)}${m.editedAt ? html` <span class="edited" title="${new Date(m.editedAt).toLocaleString()}">(edited)</span>` : null}</div>`}
          ${m.deleted ? null : attachmentsRow(m)}
          ${m.pending ? pendingStatus(m) : null}
          ${m.pending || m.deleted ? null : reactionsRow(m)}
        </div>
        ${m.pending || m.deleted ? null : messageActions(m, mine)}
      </div>`;
    if (m.msgId) el.dataset.msgId = m.msgId;
    if (!m.pending && mentions(m, app.state.me.userId)) el.classList.add('mentioned');
    return el;
  }

  /** A message's files: images shown (fetched with the files cookie), others as
   * download links. Names are text, never markup. */
  function attachmentsRow(m) {
    const list = m.attachments ?? [];
    if (list.length === 0) return null;
    return html`<ul class="attachments" aria-label="Files">${list.map((a) => {
      const href = `/api/files/${a.fileId}`;
      const label = `${a.name} (${sizeLabel(a.size)})`;
      return isInlineImage(a.contentType)
        ? html`<li class="attachment image"><a href="${href}" target="_blank" rel="noopener" title="${label}"><img src="${href}" alt="${a.name}" loading="lazy"></a></li>`
        : html`<li class="attachment file"><a href="${href}" download="${a.name}">${icon('attach')}<span>${label}</span></a></li>`;
    })}</ul>`;
  }

  function reactionsRow(m) {
    const me = app.state.me.userId;
    const list = m.reactions ?? [];
    if (list.length === 0) return null;
    return html`<div class="reactions">${list.map((r) => {
      const mine = r.userIds.includes(me);
      const names = r.userIds.map((u) => app.nameOf(m.chatSeq, u)).join(', ');
      return html`<button type="button" class="reaction ${mine ? 'mine' : ''}" aria-pressed="${String(mine)}"
        aria-label="${r.emoji} ${r.userIds.length}, by ${names}" title="${names}"
        @click=${() => react(m, r.emoji, !mine)}>${r.emoji} <span>${r.userIds.length}</span></button>`;
    })}</div>`;
  }

  function messageActions(m, mine) {
    const room = app.currentRoom();
    const staff = !room?.isDirected && ['owner', 'admin'].includes(app.myRole(m.chatSeq));
    const me = app.state.me.userId;
    return html`<div class="msg-actions" role="group" aria-label="Message actions">
      ${QUICK_REACTIONS.map((emoji) => {
        const reacted = (m.reactions ?? []).some((r) => r.emoji === emoji && r.userIds.includes(me));
        return html`<button type="button" class="icon-button" aria-label="React with ${emoji}" title="React with ${emoji}"
          @click=${() => react(m, emoji, !reacted)}>${emoji}</button>`;
      })}
      ${mine ? html`<button type="button" class="link-button" aria-label="Edit message" @click=${() => startEditing(m)}>Edit</button>` : null}
      ${mine || staff ? html`<button type="button" class="link-button" aria-label="Delete message" @click=${() => deleteMessage(m)}>Delete</button>` : null}
    </div>`;
  }

  async function react(m, emoji, add) {
    try {
      await app.react(m.msgId, emoji, add);
    } catch (e) {
      app.toast(e.message);
    }
  }

  async function deleteMessage(m) {
    const ok = await confirmDialog({
      title: 'Delete this message?',
      text: 'It is taken back for everyone; its text is gone for good.',
      confirm: 'Delete',
    });
    if (!ok) return;
    try {
      await app.deleteMessage(m.msgId);
    } catch (e) {
      app.toast(e.message);
    }
  }

  function startEditing(m) {
    editing = { msgId: m.msgId, draft: r.input.value };
    r.input.value = m.content;
    r.editing.hidden = false;
    autosize();
    r.input.focus();
  }

  function stopEditing() {
    if (!editing) return;
    r.input.value = editing.draft;
    editing = null;
    r.editing.hidden = true;
    autosize();
  }

  // ---- mention autocomplete ----

  /** The `@name` being typed just before the caret, if one is. */
  function mentionAtCaret() {
    const before = r.input.value.slice(0, r.input.selectionStart);
    const match = before.match(/(^|[^\p{L}\p{N}_.-])@([\p{L}\p{N}_.-]{0,32})$/u);
    return match ? { start: before.length - match[2].length, prefix: match[2].toLowerCase() } : null;
  }

  let suggestions = [];
  let chosen = 0;

  function renderSuggestions() {
    const at = mentionAtCaret();
    const roomId = app.state.current;
    const me = app.state.me.userId;
    const members = app.state.members.get(roomId)?.members ?? [];
    const names = members.filter((m) => m.userId !== me).map((m) => m.username);
    if (['owner', 'admin'].includes(app.myRole(roomId)) && !app.currentRoom()?.isDirected) names.push('room');
    suggestions = at ? names.filter((n) => n.toLowerCase().startsWith(at.prefix)).slice(0, 6) : [];
    chosen = Math.min(chosen, Math.max(0, suggestions.length - 1));
    r.suggest.hidden = suggestions.length === 0;
    r.input.setAttribute('aria-expanded', String(suggestions.length > 0));
    replaceChildren(r.suggest, ...suggestions.map((name, i) => {
      const option = html`<li role="option" id="mention-option-${i}" aria-selected="${String(i === chosen)}"
        @mousedown=${(e) => { e.preventDefault(); accept(i); }}>@${name}</li>`;
      return option;
    }));
    if (suggestions.length) r.input.setAttribute('aria-activedescendant', `mention-option-${chosen}`);
    else r.input.removeAttribute('aria-activedescendant');
  }

  function accept(i) {
    const at = mentionAtCaret();
    if (!at || !suggestions[i]) return;
    const value = r.input.value;
    const caret = r.input.selectionStart;
    const inserted = `${suggestions[i]} `;
    r.input.value = value.slice(0, at.start) + inserted + value.slice(caret);
    const end = at.start + inserted.length;
    r.input.setSelectionRange(end, end);
    suggestions = [];
    renderSuggestions();
    r.input.dispatchEvent(new Event('input'));
  }

  /** The user's newest message in the room that can be edited. */
  function lastOwnMessage() {
    const held = app.state.rooms_messages.get(app.state.current);
    const me = app.state.me.userId;
    return [...(held?.list ?? [])].reverse().find((m) => m.senderId === me && !m.deleted);
  }

  function renderTyping() {
    const names = app.state.current === null ? [] : app.typingIn(app.state.current);
    r.typing.textContent = names.length === 0 ? ''
      : names.length === 1 ? `${names[0]} is typing…`
        : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]} are typing…`;
  }

  function pendingStatus(m) {
    if (m.state === 'failed') {
      return html`<div class="msg-status failed">
        <span>Not sent: ${m.error}</span>
        <button type="button" class="link-button" @click=${() => app.retry(m.clientMsgId)}>Retry</button>
        <button type="button" class="link-button" @click=${() => app.discard(m.clientMsgId)}>Discard</button>
      </div>`;
    }
    const text = app.state.connection === 'online' ? 'Sending…' : 'Waiting for the connection…';
    return html`<div class="msg-status">${text}</div>`;
  }

  function renderTop(held) {
    let text = '';
    if (held?.loadingOlder) text = 'Loading older messages…';
    else if (held && !hasOlder(held.list, held.reachedStart)) {
      const room = app.currentRoom();
      text = room ? `This is the beginning of ${room.isDirected ? 'your conversation with ' : '#'}${app.title(room)}.` : '';
    }
    r.top.textContent = text;
  }

  function firstVisibleMessage() {
    const top = r.log.getBoundingClientRect().top;
    for (const el of r.items.children) {
      if (el.classList.contains('msg') && el.getBoundingClientRect().bottom > top) return el;
    }
    return null;
  }

  function renderMessages(roomChanged = false) {
    const roomId = app.state.current;
    if (roomId === null) return;
    const log = r.log;
    const wasAtBottom = roomChanged || atBottom();
    // The first message on screen stays where it is when older ones go in above it.
    const anchor = wasAtBottom ? null : firstVisibleMessage();
    const anchorTop = anchor?.getBoundingClientRect().top;

    const { entries, held } = itemsOf(roomId);
    renderTop(held);
    const wanted = layout(entries).map((item) => {
      const key = keyOf(item);
      let node = nodes.get(key);
      if (!node) {
        node = nodeOf(item);
        nodes.set(key, node);
      }
      return [key, node];
    });
    const keep = new Set(wanted.map(([key]) => key));
    for (const key of nodes.keys()) if (!keep.has(key)) nodes.delete(key);
    const list = r.items;
    wanted.forEach(([, node], i) => {
      if (list.children[i] !== node) list.insertBefore(node, list.children[i] ?? null);
    });
    while (list.children.length > wanted.length) list.lastElementChild.remove();

    if (wasAtBottom) {
      log.scrollTop = log.scrollHeight;
    } else if (anchor?.isConnected) {
      log.scrollTop += anchor.getBoundingClientRect().top - anchorTop;
    }
    afterScroll();
    // A short list does not scroll: fetch older messages until it does, or none are left.
    if (held && log.scrollHeight <= log.clientHeight + TOP_TRIGGER && hasOlder(held.list, held.reachedStart) && held.fromNetwork) {
      app.loadOlder();
    }
  }

  function afterScroll() {
    const bottom = atBottom();
    r.jump.hidden = bottom;
    if (bottom && document.visibilityState === 'visible') app.markRead();
  }

  r.log.addEventListener('scroll', () => {
    if (r.log.scrollTop < TOP_TRIGGER) app.loadOlder();
    afterScroll();
  }, { passive: true });
  r.jump.addEventListener('click', () => {
    r.log.scrollTop = r.log.scrollHeight;
    afterScroll();
    r.input.focus();
  });
  document.addEventListener('visibilitychange', afterScroll, { signal });
  window.addEventListener('focus', afterScroll, { signal });

  // ---- composer ----

  function autosize() {
    const input = r.input;
    // Empty: the natural one-row height (also while the view is not yet on the page,
    // where there is nothing to measure).
    input.style.height = '';
    if (input.value === '' || !input.isConnected) return;
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
  }

  // ---- uploads: by button, paste and drop; sent with the next message ----

  function roomChangedForUploads(room) {
    const id = room ? app.state.current : null;
    const changed = id !== uploadsRoom;
    uploadsRoom = id;
    return changed;
  }

  function clearUploads() {
    uploads = [];
    renderUploads();
  }

  function renderUploads() {
    r.uploads.hidden = uploads.length === 0;
    replaceChildren(r.uploads, uploads.map((u) => u.node));
  }

  function uploadFiles(files) {
    for (const file of files) {
      const u = { file, attachment: null, failed: false };
      const progress = html`<progress max="1" value="0" aria-label="${`Uploading ${file.name || 'file'}`}"></progress>`;
      const remove = html`<button type="button" class="icon-button" aria-label="${`Remove ${file.name || 'file'}`}" title="Remove">${icon('close')}</button>`;
      const status = html`<span class="upload-status"></span>`;
      u.node = html`<li class="upload"><span class="upload-name">${file.name || 'file'}</span> ${progress}${status}${remove}</li>`;
      remove.addEventListener('click', () => {
        uploads = uploads.filter((x) => x !== u);
        renderUploads();
      });
      uploads.push(u);
      app.upload(file, (fraction) => { progress.value = fraction; })
        .then((attachment) => {
          u.attachment = attachment;
          progress.value = 1;
          status.textContent = sizeLabel(attachment.size);
        })
        .catch((e) => {
          u.failed = true;
          progress.remove();
          status.textContent = `failed: ${e.message}`;
        });
    }
    renderUploads();
  }

  r.attach.addEventListener('click', () => r.fileInput.click());
  r.fileInput.addEventListener('change', () => {
    uploadFiles([...r.fileInput.files]);
    r.fileInput.value = '';
  });
  r.input.addEventListener('paste', (e) => {
    const files = [...(e.clipboardData?.files ?? [])];
    if (files.length === 0) return;
    e.preventDefault();
    uploadFiles(files);
  });
  root.addEventListener('dragover', (e) => {
    if (app.state.current !== null && e.dataTransfer?.types.includes('Files')) e.preventDefault();
  }, { signal });
  root.addEventListener('drop', (e) => {
    const files = [...(e.dataTransfer?.files ?? [])];
    if (app.state.current === null || files.length === 0) return;
    e.preventDefault();
    uploadFiles(files);
  }, { signal });

  async function submit() {
    const text = r.input.value;
    if (editing) {
      if (text.trim() === '') return;
      const { msgId } = editing;
      try {
        await app.editMessage(msgId, text);
        editing.draft = drafts.get(app.state.current) === text ? '' : editing.draft;
        stopEditing();
      } catch (e) {
        app.toast(e.message);
      }
      return;
    }
    if (uploads.some((u) => !u.attachment && !u.failed)) {
      app.toast('Wait for the files to finish uploading.');
      return;
    }
    const attachments = uploads.filter((u) => u.attachment).map((u) => u.attachment);
    if (text.trim() === '' && attachments.length === 0) return;
    app.send(text, attachments);
    clearUploads();
    r.input.value = '';
    drafts.delete(app.state.current);
    autosize();
    r.log.scrollTop = r.log.scrollHeight;
  }

  r.composer.addEventListener('submit', (e) => {
    e.preventDefault();
    submit();
    r.input.focus();
  });
  r.input.addEventListener('keydown', (e) => {
    // An IME (Korean, Japanese, Chinese) uses Enter to commit what is being composed:
    // that Enter must not send. keyCode 229 is how Safari reports it after compositionend.
    if (e.isComposing || e.keyCode === 229) return;
    if (suggestions.length) {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        chosen = (chosen + (e.key === 'ArrowDown' ? 1 : suggestions.length - 1)) % suggestions.length;
        renderSuggestions();
        return;
      }
      if (e.key === 'Enter' || e.key === 'Tab') {
        e.preventDefault();
        accept(chosen);
        return;
      }
      if (e.key === 'Escape') {
        e.preventDefault();
        suggestions = [];
        r.suggest.hidden = true;
        return;
      }
    }
    if (e.key === 'Escape' && editing) {
      e.preventDefault();
      stopEditing();
      return;
    }
    // Up in an empty composer edits the user's last message.
    if (e.key === 'ArrowUp' && r.input.value === '' && !editing) {
      const last = lastOwnMessage();
      if (last) {
        e.preventDefault();
        startEditing(last);
      }
      return;
    }
    if (e.key !== 'Enter' || e.shiftKey) return;
    e.preventDefault();
    submit();
  });
  r.input.addEventListener('input', () => {
    if (!editing) drafts.set(app.state.current, r.input.value);
    autosize();
    if (!editing && r.input.value !== '') app.typing();
    renderSuggestions();
  });
  r.input.addEventListener('blur', () => {
    suggestions = [];
    r.suggest.hidden = true;
  });

  // ---- wiring ----

  function showRoom() {
    const roomId = app.state.current;
    if (shownRoom !== null && shownRoom !== roomId) drafts.set(shownRoom, r.input.value);
    const changed = shownRoom !== roomId;
    shownRoom = roomId;
    renderHead();
    if (changed) {
      editing = null;
      r.editing.hidden = true;
      nodes.clear();
      r.items.replaceChildren();
      r.input.value = drafts.get(roomId) ?? '';
      autosize();
    }
    renderTyping();
    if (roomId !== null) {
      renderMessages(true);
      if (changed && window.matchMedia('(min-width: 700px)').matches) r.input.focus();
    }
  }

  app.addEventListener('room', showRoom, { signal });
  app.addEventListener('rooms', renderHead, { signal });
  app.addEventListener('members', (e) => {
    if (e.detail === app.state.current) renderHead();
  }, { signal });
  app.addEventListener('messages', (e) => {
    if (e.detail === app.state.current) renderMessages();
  }, { signal });
  // A search result: the message in the middle of the log, marked for a moment.
  app.addEventListener('focus-message', (e) => {
    if (e.detail.roomId !== app.state.current) return;
    const el = r.items.querySelector(`[data-msg-id="${Number(e.detail.msgId)}"]`);
    if (!el) return;
    el.scrollIntoView({ block: 'center' });
    el.classList.add('found');
    el.setAttribute('tabindex', '-1');
    el.focus({ preventScroll: true });
    setTimeout(() => el.classList.remove('found'), 2000);
    afterScroll();
  }, { signal });
  app.addEventListener('typing', (e) => {
    if (e.detail === app.state.current) renderTyping();
  }, { signal });
  app.addEventListener('connection', () => {
    renderHead();
    renderMessages();
  }, { signal });
  shell.onMembersToggle(renderHead);
  showRoom();

  return { root, focusComposer: () => r.input.focus() };
}
