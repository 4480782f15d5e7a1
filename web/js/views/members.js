// The members panel (a region named "Members"): who is in the room and their roles,
// and per member a menu button "Actions for NAME" with what the viewer may do:
// kick, ban, mute for a time, make admin, make owner (owner and admins, by the rules
// of docs/API.md), send a direct message, block.

import { html, refs, icon, replaceChildren } from '../dom.js';
import { avatar } from './sidebar.js';
import { durationDialog, confirmDialog } from './dialogs.js';

const ROLE_ORDER = { owner: 0, admin: 1, member: 2 };
const ROLE_LABEL = { owner: 'Owner', admin: 'Admin', member: 'Member' };

const MUTE_CHOICES = [
  ['5 minutes', 5], ['15 minutes', 15], ['1 hour', 60], ['8 hours', 480], ['1 day', 1440], ['1 week', 10080],
];
const BAN_CHOICES = [['For ever', null], ['1 hour', 60], ['1 day', 1440], ['1 week', 10080], ['30 days', 43200]];

export function membersView(app, shell, signal) {
  const root = html`
    <section class="members-panel" id="members-panel" aria-label="Members" tabindex="-1">
      <header class="panel-head">
        <h2>Members</h2>
        <button type="button" class="icon-button" data-ref="close" aria-label="Close member list" title="Close member list">${icon('close')}</button>
      </header>
      <ul class="member-list" data-ref="list"></ul>
      <div data-ref="bans"></div>
    </section>`;
  const r = refs(root);
  r.close.addEventListener('click', () => shell.closeMembers());
  let openMenu = null;

  function actionsFor(room, me, member) {
    const myRole = app.myRole(room.chatSeq);
    const run = (fn) => async () => {
      try {
        await fn();
      } catch (e) {
        app.toast(e.message);
      }
    };
    const items = [];
    if (member.userId === me.userId) {
      items.push(['Leave room', run(async () => {
        const ok = await confirmDialog({ title: `Leave ${app.title(room)}?`, text: 'You can join again later unless the room is private.', confirm: 'Leave' });
        if (ok) await app.leaveRoom(room.chatSeq);
      })]);
      return items;
    }
    const staff = !room.isDirected && (myRole === 'owner' || (myRole === 'admin' && member.role === 'member'));
    if (staff) {
      items.push(['Kick', run(() => app.moderate('kick', room.chatSeq, member))]);
      items.push(['Ban', run(async () => {
        const minutes = await durationDialog({ title: `Ban ${member.username}`, text: `${member.username} leaves the room and cannot join again until the ban ends.`, choices: BAN_CHOICES, confirm: 'Ban' });
        if (minutes !== undefined) await app.moderate('ban', room.chatSeq, member, minutes);
      })]);
      if (member.mutedUntil) {
        items.push(['Unmute', run(() => app.moderate('unmute', room.chatSeq, member))]);
      } else {
        items.push(['Mute', run(async () => {
          const minutes = await durationDialog({ title: `Mute ${member.username}`, text: `${member.username} stays in the room but cannot write.`, choices: MUTE_CHOICES, confirm: 'Mute' });
          if (minutes !== undefined) await app.moderate('mute', room.chatSeq, member, minutes);
        })]);
      }
    }
    if (!room.isDirected && myRole === 'owner') {
      if (member.role === 'admin') items.push(['Remove admin', run(() => app.moderate('unadmin', room.chatSeq, member))]);
      else items.push(['Make admin', run(() => app.moderate('admin', room.chatSeq, member))]);
      items.push(['Make owner', run(async () => {
        const ok = await confirmDialog({ title: `Make ${member.username} the owner?`, text: 'You become an admin of the room.', confirm: 'Make owner' });
        if (ok) await app.moderate('owner', room.chatSeq, member);
      })]);
    }
    if (!room.isDirected) items.push(['Send direct message', run(() => app.openDirect(member.userId))]);
    const blocked = app.state.blocks.has(member.userId);
    items.push([blocked ? 'Unblock' : 'Block', run(() => app.setBlocked(member, !blocked))]);
    return items;
  }

  function closeMenu(restoreFocus = true) {
    if (!openMenu) return;
    const { menu, button } = openMenu;
    openMenu = null;
    menu.remove();
    button.setAttribute('aria-expanded', 'false');
    if (restoreFocus) button.focus();
  }

  function showMenu(button, items) {
    closeMenu(false);
    const menu = html`<div class="menu" role="menu"></div>`;
    menu.setAttribute('aria-label', button.getAttribute('aria-label'));
    const entries = items.map(([label, action]) => {
      const item = html`<button type="button" role="menuitem" tabindex="-1">${label}</button>`;
      item.addEventListener('click', () => {
        closeMenu();
        action();
      });
      menu.append(item);
      return item;
    });
    menu.addEventListener('keydown', (e) => {
      const i = entries.indexOf(document.activeElement);
      if (e.key === 'ArrowDown') entries[(i + 1) % entries.length].focus();
      else if (e.key === 'ArrowUp') entries[(i - 1 + entries.length) % entries.length].focus();
      else if (e.key === 'Home') entries[0].focus();
      else if (e.key === 'End') entries[entries.length - 1].focus();
      else if (e.key === 'Escape') closeMenu();
      else if (e.key === 'Tab') closeMenu(false);
      else return;
      e.preventDefault();
    });
    document.body.append(menu);
    const rect = button.getBoundingClientRect();
    const width = menu.offsetWidth;
    menu.style.top = `${Math.min(rect.bottom + 4, window.innerHeight - menu.offsetHeight - 8)}px`;
    menu.style.left = `${Math.max(8, rect.right - width)}px`;
    button.setAttribute('aria-expanded', 'true');
    openMenu = { menu, button };
    entries[0]?.focus();
  }

  document.addEventListener('pointerdown', (e) => {
    if (openMenu && !openMenu.menu.contains(e.target) && e.target !== openMenu.button) closeMenu(false);
  }, { signal });

  function memberItem(room, me, member) {
    const you = member.userId === me.userId;
    const muted = member.mutedUntil ? new Date(member.mutedUntil) : null;
    const button = html`
      <button type="button" class="icon-button" aria-haspopup="menu" aria-expanded="false"
              aria-label="Actions for ${member.username}" title="Actions">${icon('more')}</button>`;
    button.addEventListener('click', () => {
      if (openMenu?.button === button) closeMenu();
      else showMenu(button, actionsFor(room, me, member));
    });
    return html`
      <li class="member">
        ${online(avatar(member.username), app.isOnline(member.userId) || you)}
        <div class="member-main">
          <span class="member-name">${member.username}${you ? html`<span class="you"> (you)</span>` : null}${
            app.isOnline(member.userId) || you ? html`<span class="sr-only">, online</span>` : null}</span>
          <span class="member-role role-${member.role}">${ROLE_LABEL[member.role] ?? member.role}${
            muted ? ` · muted until ${muted.toLocaleString()}` : ''}${
            app.state.blocks.has(member.userId) ? ' · blocked' : ''}</span>
        </div>
        ${button}
      </li>`;
  }

  function render() {
    const room = app.currentRoom();
    closeMenu(false);
    if (!room) {
      r.list.replaceChildren();
      r.bans.replaceChildren();
      return;
    }
    const me = app.state.me;
    const entry = app.state.members.get(room.chatSeq);
    if (!entry) {
      replaceChildren(r.list, html`<li class="muted">Loading…</li>`);
      r.bans.replaceChildren();
      return;
    }
    const members = [...entry.members].sort(
      (a, b) => (ROLE_ORDER[a.role] ?? 3) - (ROLE_ORDER[b.role] ?? 3) || a.username.localeCompare(b.username),
    );
    // Keep the keyboard where it was when the list is rebuilt.
    const focused = root.contains(document.activeElement) ? document.activeElement.getAttribute('aria-label') : null;
    replaceChildren(r.list, members.map((m) => memberItem(room, me, m)));
    if (focused) [...root.querySelectorAll('[aria-label]')].find((el) => el.getAttribute('aria-label') === focused)?.focus();
    if (entry.bans?.length) {
      replaceChildren(r.bans, html`
        <div class="bans">
          <h3>Banned</h3>
          <ul class="member-list">${entry.bans.map((ban) => html`
            <li class="member">
              ${avatar(ban.username)}
              <div class="member-main">
                <span class="member-name">${ban.username}</span>
                <span class="member-role">${ban.until ? `until ${new Date(ban.until).toLocaleString()}` : 'for ever'}</span>
              </div>
              <button type="button" class="small" aria-label="Unban ${ban.username}"
                      @click=${() => app.moderate('unban', room.chatSeq, ban).catch((e) => app.toast(e.message))}>Unban</button>
            </li>`)}
          </ul>
        </div>`);
    } else {
      r.bans.replaceChildren();
    }
  }

  app.addEventListener('members', (e) => {
    if (e.detail === app.state.current) render();
  }, { signal });
  app.addEventListener('room', render, { signal });
  render();
  return root;
}

/** Marks an avatar with the online dot. */
function online(avatarNode, isOnline) {
  if (isOnline) {
    avatarNode.classList.add('online');
    avatarNode.title = 'Online';
  }
  return avatarNode;
}
