// Modal dialogs (the native <dialog>: focus is kept inside, Escape closes, focus
// returns to the opener): new room, browse and join rooms, a direct message from the
// user directory, invite, room settings, and small confirm / duration questions.

import { html, refs, icon, replaceChildren } from '../dom.js';
import { avatar } from './sidebar.js';

/** How long the user directory waits after a keystroke before it asks the server. */
const SEARCH_DEBOUNCE_MS = 150;

/** Opens `content` in a modal dialog labelled by its first heading; resolves with the
 * value passed to `close` (undefined when dismissed). */
function openDialog(build) {
  const dialog = html`<dialog class="dialog"></dialog>`;
  let result;
  const close = (value) => {
    result = value;
    dialog.close();
  };
  const content = build(close);
  dialog.append(content);
  const heading = dialog.querySelector('h2');
  if (heading) {
    heading.id ||= `dialog-${Math.random().toString(36).slice(2)}`;
    dialog.setAttribute('aria-labelledby', heading.id);
  }
  document.body.append(dialog);
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(result);
    });
    // A click on the backdrop (the dialog element itself, outside its box) dismisses.
    dialog.addEventListener('click', (e) => {
      if (e.target === dialog) close(undefined);
    });
    dialog.showModal();
  });
}

function dialogHead(title, close) {
  return html`
    <header class="dialog-head">
      <h2>${title}</h2>
      <button type="button" class="icon-button" aria-label="Close" title="Close" @click=${() => close(undefined)}>${icon('close')}</button>
    </header>`;
}

/** Runs `action` for a form; shows its error in the form instead of closing. */
async function attempt(errorEl, buttons, action) {
  errorEl.textContent = '';
  for (const b of buttons) b.disabled = true;
  try {
    await action();
    return true;
  } catch (e) {
    errorEl.textContent = e.message || 'That did not work.';
    return false;
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

export function newRoomDialog(app) {
  return openDialog((close) => {
    const form = html`
      <form class="dialog-body" novalidate>
        ${dialogHead('New room', close)}
        <div class="field">
          <label for="new-room-name">Room name</label>
          <input id="new-room-name" data-ref="name" maxlength="64" required autocomplete="off">
        </div>
        <div class="field">
          <label for="new-room-type">Type</label>
          <select id="new-room-type" data-ref="type" aria-describedby="new-room-type-hint">
            <option value="public">public</option>
            <option value="protected">protected</option>
            <option value="private">private</option>
          </select>
          <p class="hint" id="new-room-type-hint" data-ref="typeHint"></p>
        </div>
        <div class="field" data-ref="passwordField">
          <label for="new-room-password">Password</label>
          <input id="new-room-password" data-ref="password" type="password" autocomplete="new-password"
                 aria-describedby="new-room-password-hint">
          <p class="hint" id="new-room-password-hint">Only for protected rooms: members need it to join.</p>
        </div>
        <p class="form-error" role="alert" data-ref="error"></p>
        <div class="dialog-actions">
          <button type="button" data-ref="cancel">Cancel</button>
          <button type="submit" class="primary" data-ref="create">Create</button>
        </div>
      </form>`;
    const r = refs(form);
    const hints = {
      public: 'Anyone on the server can find and join it.',
      protected: 'Anyone can find it; joining takes the password.',
      private: 'Hidden; people join only when invited.',
    };
    const showHint = () => {
      r.typeHint.textContent = hints[r.type.value];
      r.passwordField.classList.toggle('dim', r.type.value !== 'protected');
    };
    r.type.addEventListener('change', showHint);
    showHint();
    r.cancel.addEventListener('click', () => close(undefined));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const name = r.name.value.trim();
      const type = r.type.value;
      const password = r.password.value;
      if (!name) {
        r.error.textContent = 'Give the room a name.';
        r.name.focus();
        return;
      }
      if (type === 'protected' && !password) {
        r.error.textContent = 'A protected room needs a password.';
        r.password.focus();
        return;
      }
      if (type !== 'protected' && password) {
        r.error.textContent = 'Only protected rooms have a password: choose protected, or clear the password.';
        r.type.focus();
        return;
      }
      if (await attempt(r.error, [r.create], () => app.createRoom(name, type, password))) close(true);
    });
    queueMicrotask(() => r.name.focus());
    return form;
  });
}

export function browseDialog(app) {
  return openDialog((close) => {
    const body = html`
      <div class="dialog-body wide">
        ${dialogHead('Browse rooms', close)}
        <p class="muted" data-ref="status">Loading…</p>
        <ul class="pick-list" data-ref="list"></ul>
        <form class="join-form" data-ref="joinForm" hidden novalidate>
          <p data-ref="joinTitle"></p>
          <div class="field">
            <label for="join-password">Password</label>
            <input id="join-password" data-ref="password" type="password" autocomplete="off">
          </div>
          <p class="form-error" role="alert" data-ref="error"></p>
          <div class="dialog-actions">
            <button type="button" data-ref="cancel">Cancel</button>
            <button type="submit" class="primary" data-ref="join">Join</button>
          </div>
        </form>
        <p class="form-error" role="alert" data-ref="listError"></p>
      </div>`;
    const r = refs(body);
    let pending = null;
    r.cancel.addEventListener('click', () => {
      r.joinForm.hidden = true;
      r.list.hidden = false;
    });
    r.joinForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (await attempt(r.error, [r.join], () => app.joinRoom(pending.chatSeq, r.password.value))) close(true);
    });
    const kind = { public: 'Public', protected: 'Protected: needs a password', private: 'Private: you are invited' };
    app.api.rooms().then((rooms) => {
      const list = rooms.filter((room) => !room.isDirected).sort((a, b) => a.chatName.localeCompare(b.chatName));
      r.status.textContent = list.length ? '' : 'There are no rooms yet. Create the first one!';
      r.status.hidden = list.length > 0;
      replaceChildren(r.list, list.map((room) => {
        const member = app.state.rooms.has(room.chatSeq);
        const button = member
          ? html`<button type="button" class="small" aria-label="Open ${room.chatName}">Open</button>`
          : html`<button type="button" class="small primary" aria-label="Join ${room.chatName}">Join</button>`;
        button.addEventListener('click', async () => {
          if (member) {
            app.openRoom(room.chatSeq);
            close(true);
          } else if (room.chatType === 'protected') {
            pending = room;
            r.joinTitle.textContent = `${room.chatName} is protected. Enter its password to join.`;
            r.list.hidden = true;
            r.joinForm.hidden = false;
            r.password.value = '';
            r.password.focus();
          } else if (await attempt(r.listError, [button], () => app.joinRoom(room.chatSeq))) {
            close(true);
          }
        });
        return html`
          <li class="pick">
            <span class="room-icon">${icon(room.chatType === 'public' ? 'hash' : room.chatType === 'protected' ? 'lock' : 'eye')}</span>
            <div class="pick-main">
              <span class="pick-name">${room.chatName}</span>
              <span class="pick-sub">${kind[room.chatType]} · ${room.memberCount} ${room.memberCount === 1 ? 'member' : 'members'}</span>
            </div>
            ${button}
          </li>`;
      }));
    }).catch((e) => {
      r.status.textContent = `The rooms could not be loaded: ${e.message}`;
    });
    return body;
  });
}

/** A list of users from the directory, filtered as you type, each with one button. */
function userPicker(app, { buttonLabel, buttonName, onPick, exclude = () => false }) {
  const body = html`
    <div class="picker">
      <div class="field search">
        ${icon('search')}
        <input type="search" data-ref="q" aria-label="Search people" placeholder="Search people" autocomplete="off">
      </div>
      <p class="muted" data-ref="status" aria-live="polite"></p>
      <ul class="pick-list" data-ref="list"></ul>
      <p class="form-error" role="alert" data-ref="error"></p>
    </div>`;
  const r = refs(body);
  let timer = null;
  let asked = 0;
  async function search() {
    const ask = ++asked;
    try {
      const users = (await app.api.users(r.q.value.trim(), 50)).filter((u) => u.userId !== app.state.me.userId && !exclude(u));
      if (ask !== asked) return;
      r.status.textContent = users.length ? '' : 'Nobody found.';
      replaceChildren(r.list, users.map((user) => {
        const button = html`<button type="button" class="small primary" aria-label="${buttonName(user)}">${buttonLabel}</button>`;
        button.addEventListener('click', () => attempt(r.error, [button], () => onPick(user)));
        return html`
          <li class="pick">
            ${avatar(user.username)}
            <div class="pick-main"><span class="pick-name">${user.username}</span></div>
            ${button}
          </li>`;
      }));
    } catch (e) {
      if (ask === asked) r.status.textContent = `The directory could not be loaded: ${e.message}`;
    }
  }
  r.q.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(search, SEARCH_DEBOUNCE_MS);
  });
  search();
  queueMicrotask(() => r.q.focus());
  return body;
}

export function directDialog(app) {
  return openDialog((close) => html`
    <div class="dialog-body wide">
      ${dialogHead('Direct message', close)}
      <p class="muted">Pick someone from your team to talk with.</p>
      ${userPicker(app, {
        buttonLabel: 'Message',
        buttonName: (u) => `Message ${u.username}`,
        onPick: async (u) => {
          await app.openDirect(u.userId);
          close(true);
        },
      })}
    </div>`);
}

export function inviteDialog(app, room) {
  if (!room) return undefined;
  const members = new Set((app.state.members.get(room.chatSeq)?.members ?? []).map((m) => m.userId));
  return openDialog((close) => html`
    <div class="dialog-body wide">
      ${dialogHead(`Invite people to ${app.title(room)}`, close)}
      <p class="muted">Invited people can join even a private or protected room.</p>
      ${userPicker(app, {
        buttonLabel: 'Invite',
        buttonName: (u) => `Invite ${u.username}`,
        exclude: (u) => members.has(u.userId),
        onPick: async (u) => {
          await app.moderate('invite', room.chatSeq, u);
          app.toast(`${u.username} is invited to ${app.title(room)}.`);
          close(true);
        },
      })}
    </div>`);
}

export function settingsDialog(app, room) {
  if (!room) return undefined;
  return openDialog((close) => {
    const form = html`
      <form class="dialog-body" novalidate>
        ${dialogHead('Room settings', close)}
        <div class="field">
          <label for="settings-name">Room name</label>
          <input id="settings-name" data-ref="name" maxlength="64" required autocomplete="off" .value=${room.chatName}>
        </div>
        <div class="field">
          <label for="settings-type">Type</label>
          <select id="settings-type" data-ref="type">
            <option value="public">public</option>
            <option value="protected">protected</option>
            <option value="private">private</option>
          </select>
        </div>
        <div class="field">
          <label for="settings-password">New password</label>
          <input id="settings-password" data-ref="password" type="password" autocomplete="new-password"
                 aria-describedby="settings-password-hint">
          <p class="hint" id="settings-password-hint">For a protected room. Leave empty to keep the current one.</p>
        </div>
        <p class="form-error" role="alert" data-ref="error"></p>
        <div class="dialog-actions">
          <button type="button" data-ref="cancel">Cancel</button>
          <button type="submit" class="primary" data-ref="save">Save</button>
        </div>
      </form>`;
    const r = refs(form);
    r.type.value = room.chatType;
    r.cancel.addEventListener('click', () => close(undefined));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const changes = {};
      const name = r.name.value.trim();
      if (name && name !== room.chatName) changes.chatName = name;
      if (r.type.value !== room.chatType) changes.chatType = r.type.value;
      if (r.type.value === 'protected' && r.password.value) changes.password = r.password.value;
      if (r.type.value !== 'protected' && room.chatType === 'protected') changes.password = null;
      if (Object.keys(changes).length === 0) {
        close(false);
        return;
      }
      if (await attempt(r.error, [r.save], () => app.updateRoom(room.chatSeq, changes))) close(true);
    });
    return form;
  });
}

/** Asks a yes/no question; resolves true on confirm. */
export async function confirmDialog({ title, text, confirm }) {
  const answer = await openDialog((close) => {
    const body = html`
      <div class="dialog-body">
        ${dialogHead(title, close)}
        <p>${text}</p>
        <div class="dialog-actions">
          <button type="button" @click=${() => close(false)}>Cancel</button>
          <button type="button" class="primary danger" data-ref="ok" @click=${() => close(true)}>${confirm}</button>
        </div>
      </div>`;
    queueMicrotask(() => refs(body).ok.focus());
    return body;
  });
  return answer === true;
}

/** Asks for a duration; resolves with minutes (null: for ever), undefined if dismissed. */
export function durationDialog({ title, text, choices, confirm }) {
  return openDialog((close) => {
    const form = html`
      <form class="dialog-body" novalidate>
        ${dialogHead(title, close)}
        <p>${text}</p>
        <div class="field">
          <label for="duration-select">Duration</label>
          <select id="duration-select" data-ref="select">
            ${choices.map(([label], i) => html`<option value="${i}">${label}</option>`)}
          </select>
        </div>
        <div class="dialog-actions">
          <button type="button" data-ref="cancel">Cancel</button>
          <button type="submit" class="primary danger">${confirm}</button>
        </div>
      </form>`;
    const r = refs(form);
    r.cancel.addEventListener('click', () => close(undefined));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      close(choices[Number(r.select.value)][1]);
    });
    return form;
  });
}
