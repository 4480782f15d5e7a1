// The sidebar: the app's name and connection state, the room list (a navigation
// landmark named "Rooms") with unread counts and the last message time, the buttons
// that create, browse and open rooms, and the signed-in user.

import { html, refs, icon, replaceChildren } from '../dom.js';
import { highlight, hue, initial, shortWhen } from '../format.js';
import { sortRooms, unreadOf } from '../state.js';
import * as notify from '../notify.js';
import { browseDialog, directDialog, newRoomDialog } from './dialogs.js';

const CONNECTION_TEXT = {
  connecting: 'Connecting…',
  online: 'Connected',
  offline: 'Offline – reconnecting…',
};

export function avatar(name, extraClass = '') {
  const el = html`<span class="avatar ${extraClass}" aria-hidden="true">${initial(name)}</span>`;
  el.style.setProperty('--hue', hue(name));
  return el;
}

export function sidebarView(app, signal) {
  const root = html`
    <div class="sidebar-inner">
      <header class="sidebar-head">
        <div class="brand"><img src="/icon.svg" alt="" width="26" height="26"><span>daehwa</span></div>
        <div class="conn" role="status" data-ref="conn"></div>
      </header>
      <div class="sidebar-actions">
        <button type="button" class="primary wide" data-ref="newRoom">${icon('plus')}<span>New room</span></button>
        <button type="button" class="icon-button" data-ref="browse" aria-label="Browse rooms" title="Browse rooms">${icon('compass')}</button>
        <button type="button" class="icon-button" data-ref="dm" aria-label="New direct message" title="New direct message">${icon('chat')}</button>
      </div>
      <form class="search-form" role="search" data-ref="searchForm">
        <span class="search-icon">${icon('search')}</span>
        <input type="search" data-ref="search" aria-label="Search messages" placeholder="Search messages  /" autocomplete="off" maxlength="200">
      </form>
      <section class="search-results" data-ref="results" aria-label="Search results" hidden>
        <p class="search-status" role="status" data-ref="resultsStatus"></p>
        <ul class="search-list" data-ref="resultsList"></ul>
      </section>
      <nav aria-label="Rooms" class="room-nav">
        <h2 class="section-title" id="channels-title">Rooms</h2>
        <ul class="room-list" data-ref="channels" aria-labelledby="channels-title"></ul>
        <p class="empty-hint" data-ref="channelsEmpty">No rooms yet. Create one or browse the rooms of your team.</p>
        <h2 class="section-title" id="direct-title">Direct messages</h2>
        <ul class="room-list" data-ref="direct" aria-labelledby="direct-title"></ul>
        <p class="empty-hint" data-ref="directEmpty">Start a conversation with someone from your team.</p>
      </nav>
      <footer class="sidebar-foot">
        <div class="me" data-ref="me"></div>
        <button type="button" class="icon-button" data-ref="notify" aria-label="Enable desktop notifications" title="Enable desktop notifications">${icon('bell')}</button>
        <button type="button" class="icon-button" data-ref="logout" aria-label="Log out" title="Log out">${icon('leave')}</button>
      </footer>
    </div>`;
  const r = refs(root);
  const items = new Map();

  r.newRoom.addEventListener('click', () => newRoomDialog(app));
  r.browse.addEventListener('click', () => browseDialog(app));
  r.dm.addEventListener('click', () => directDialog(app));
  r.logout.addEventListener('click', () => app.logout());
  r.notify.addEventListener('click', async () => {
    await notify.ask();
    renderNotify();
  });

  // Search: `/` focuses the box; Enter searches; Escape clears.
  let searchRun = 0;
  document.addEventListener('keydown', (e) => {
    if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
    const target = e.target;
    if (target instanceof HTMLElement && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName))) return;
    e.preventDefault();
    r.search.focus();
  }, { signal });
  r.searchForm.addEventListener('submit', (e) => {
    e.preventDefault();
    runSearch(r.search.value.trim());
  });
  r.search.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      r.search.value = '';
      runSearch('');
    }
  });
  r.search.addEventListener('search', () => { if (!r.search.value) runSearch(''); });

  async function runSearch(q) {
    const run = ++searchRun;
    if (!q) {
      r.results.hidden = true;
      replaceChildren(r.resultsList);
      return;
    }
    r.results.hidden = false;
    r.resultsStatus.textContent = 'Searching…';
    replaceChildren(r.resultsList);
    let page;
    try {
      page = await app.api.search(q);
    } catch (e) {
      if (run === searchRun) r.resultsStatus.textContent = e.message;
      return;
    }
    if (run !== searchRun) return;
    const count = page.results.length;
    r.resultsStatus.textContent = count === 0 ? 'No messages found.' : `${count}${page.nextBefore ? '+' : ''} ${count === 1 ? 'message' : 'messages'} found`;
    replaceChildren(r.resultsList, page.results.map((m) => result(m, page.terms)));
  }

  function result(message, terms) {
    const room = app.state.rooms.get(message.chatSeq);
    const roomTitle = room ? app.title(room) : `#${message.chatSeq}`;
    const text = html`<span class="search-text"></span>`;
    for (const piece of highlight(message.content ?? '', terms)) {
      if (piece.match) {
        const mark = document.createElement('mark');
        mark.textContent = piece.text;
        text.append(mark);
      } else {
        text.append(document.createTextNode(piece.text));
      }
    }
    const li = html`
      <li><button type="button" class="search-result">
        <span class="search-meta"><span class="search-room">${roomTitle}</span> · <span class="search-sender">${message.senderName}</span>
        <time datetime="${message.createdAt}">${shortWhen(new Date(message.createdAt))}</time></span>
      </button></li>`;
    li.firstElementChild.append(text);
    li.firstElementChild.addEventListener('click', () => app.openRoomAt(message.chatSeq, message.msgId));
    return li;
  }

  function renderNotify() {
    r.notify.hidden = !notify.supported() || notify.permission() !== 'default';
  }

  function renderConnection() {
    const state = app.state.connection;
    r.conn.dataset.state = state;
    r.conn.textContent = CONNECTION_TEXT[state] ?? state;
  }

  function item(room) {
    let li = items.get(room.chatSeq);
    if (!li) {
      li = html`<li><a class="room-link" href="#/rooms/${room.chatSeq}"></a></li>`;
      li.firstElementChild.addEventListener('click', (e) => {
        e.preventDefault();
        app.openRoom(room.chatSeq);
      });
      items.set(room.chatSeq, li);
    }
    const link = li.firstElementChild;
    const title = app.title(room);
    const unread = unreadOf(room);
    const muted = notify.isMuted(room.chatSeq);
    const kind = room.isDirected ? avatar(title, 'small') : icon(room.chatType === 'public' ? 'hash' : room.chatType === 'protected' ? 'lock' : 'eye');
    replaceChildren(
      link,
      html`<span class="room-icon">${kind}</span>`,
      html`<span class="room-name">${title}</span>`,
      room.lastMessageAt ? html`<time class="room-when" datetime="${room.lastMessageAt}">${shortWhen(new Date(room.lastMessageAt))}</time>` : null,
      room.unreadMentions ? html`<span class="badge mention" title="Mentions you">@<span class="sr-only"> ${room.unreadMentions} unread ${room.unreadMentions === 1 ? 'mention' : 'mentions'}</span></span>` : null,
      unread ? html`<span class="badge ${muted ? 'muted' : ''}">${unread > 99 ? '99+' : unread}<span class="sr-only"> unread</span></span>` : null,
    );
    link.classList.toggle('unread', unread > 0);
    if (room.chatSeq === app.state.current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
    return li;
  }

  function renderRooms() {
    const { channels, direct } = sortRooms(app.state.rooms.values(), (room) => app.title(room));
    for (const id of items.keys()) if (!app.state.rooms.has(id)) items.delete(id);
    sync(r.channels, channels.map(item));
    sync(r.direct, direct.map(item));
    r.channelsEmpty.hidden = channels.length > 0;
    r.directEmpty.hidden = direct.length > 0;
  }

  /** Puts `nodes` in `list` in order, moving only what is out of place (focus stays). */
  function sync(list, nodes) {
    nodes.forEach((node, i) => {
      if (list.children[i] !== node) list.insertBefore(node, list.children[i] ?? null);
    });
    while (list.children.length > nodes.length) list.lastElementChild.remove();
  }

  function renderMe() {
    const me = app.state.me;
    replaceChildren(r.me, avatar(me.username), html`<span class="me-name">${me.username}</span>`);
  }

  app.addEventListener('rooms', renderRooms, { signal });
  app.addEventListener('room', renderRooms, { signal });
  app.addEventListener('connection', renderConnection, { signal });
  renderConnection();
  renderRooms();
  renderMe();
  renderNotify();
  return root;
}
