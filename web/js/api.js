// The REST API: JSON in and out, the bearer token in a header (never in a URL).

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

/** A request that never reached the server (offline, server down). */
export class NetworkError extends Error {}

export class Api {
  constructor(token, onUnauthorized = () => {}) {
    this.token = token;
    this.onUnauthorized = onUnauthorized;
  }

  async request(method, path, body) {
    const headers = {};
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch (e) {
      throw new NetworkError(`the server cannot be reached (${e.message})`);
    }
    if (response.status === 204) return null;
    const value = await response.json().catch(() => null);
    if (!response.ok) {
      if (response.status === 401 && this.token) this.onUnauthorized();
      throw new ApiError(response.status, value?.error ?? 'http_error', value?.message ?? response.statusText);
    }
    return value;
  }

  get(path) { return this.request('GET', path); }
  post(path, body) { return this.request('POST', path, body); }
  put(path, body) { return this.request('PUT', path, body); }
  patch(path, body) { return this.request('PATCH', path, body); }
  delete(path, body) { return this.request('DELETE', path, body); }

  // Accounts
  register(username, password) { return this.post('/api/auth/register', { username, password }); }
  login(username, password) { return this.post('/api/auth/login', { username, password }); }
  logout() { return this.post('/api/auth/logout'); }
  users(q, limit = 50) { return this.get(`/api/users?q=${encodeURIComponent(q)}&limit=${limit}`); }
  blocks() { return this.get('/api/users/blocks'); }
  block(userId) { return this.put(`/api/users/blocks/${userId}`); }
  unblock(userId) { return this.delete(`/api/users/blocks/${userId}`); }

  // Rooms
  rooms() { return this.get('/api/chatrooms'); }
  myRooms() { return this.get('/api/chatrooms/mine'); }
  createRoom(chatName, chatType, password) {
    return this.post('/api/chatrooms/new', { chatName, chatType, password: password || undefined, isDirected: false });
  }
  openDirect(targetUserId) { return this.post('/api/chatrooms/new', { isDirected: true, targetUserId }); }
  join(room, password) {
    const body = { chatSeq: room };
    if (password) body.password = password;
    return this.put(`/api/chatrooms/join/${room}`, body);
  }
  leave(room) { return this.delete(`/api/chatrooms/leave/${room}`); }
  history(room, before, count) { return this.get(`/api/chatrooms/message/${room}/${before}/${count}`); }
  markRead(room, msgId) { return this.put(`/api/chatrooms/${room}/read/${msgId}`); }
  editMessage(room, msgId, content) { return this.patch(`/api/chatrooms/${room}/messages/${msgId}`, { content }); }
  deleteMessage(room, msgId) { return this.delete(`/api/chatrooms/${room}/messages/${msgId}`); }
  react(room, msgId, emoji, add) {
    const path = `/api/chatrooms/${room}/messages/${msgId}/reactions/${encodeURIComponent(emoji)}`;
    return add ? this.put(path) : this.delete(path);
  }
  members(room) { return this.get(`/api/chatrooms/${room}/members`); }
  /** → {results: [Message], nextBefore, terms}: the caller's rooms' messages that match `q`, newest first. */
  search(q, limit = 20) { return this.get(`/api/search?q=${encodeURIComponent(q)}&limit=${limit}`); }
  updateRoom(room, changes) { return this.patch(`/api/chatrooms/${room}`, changes); }

  // Files
  /** Uploads `file` to `room`; `onProgress(fraction)` as it goes. → {fileId, name, size, contentType}.
   * XMLHttpRequest, as fetch reports no upload progress. */
  upload(room, file, onProgress = () => {}) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', `/api/chatrooms/${room}/files?filename=${encodeURIComponent(file.name || 'file')}`);
      if (this.token) xhr.setRequestHeader('Authorization', `Bearer ${this.token}`);
      xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
      xhr.onerror = () => reject(new NetworkError('the server cannot be reached'));
      xhr.onload = () => {
        let value = null;
        try { value = JSON.parse(xhr.responseText); } catch { value = null; }
        if (xhr.status === 201) return resolve(value);
        if (xhr.status === 401 && this.token) this.onUnauthorized();
        reject(new ApiError(xhr.status, value?.error ?? 'http_error', value?.message ?? xhr.statusText));
      };
      xhr.send(file);
    });
  }
  /** Sets the cookie that lets <img> and download links fetch files (an hour). */
  filesCookie() { return this.post('/api/files/cookie'); }
  dropFilesCookie() { return this.delete('/api/files/cookie'); }

  // Moderation
  kick(room, user) { return this.post(`/api/chatrooms/${room}/kick/${user}`); }
  ban(room, user, minutes) { return this.post(`/api/chatrooms/${room}/ban/${user}`, minutes ? { minutes } : {}); }
  unban(room, user) { return this.delete(`/api/chatrooms/${room}/ban/${user}`); }
  mute(room, user, minutes) { return this.post(`/api/chatrooms/${room}/mute/${user}`, { minutes }); }
  unmute(room, user) { return this.delete(`/api/chatrooms/${room}/mute/${user}`); }
  makeAdmin(room, user) { return this.put(`/api/chatrooms/${room}/admins/${user}`); }
  removeAdmin(room, user) { return this.delete(`/api/chatrooms/${room}/admins/${user}`); }
  makeOwner(room, user) { return this.put(`/api/chatrooms/${room}/owner/${user}`); }
  invite(room, user) { return this.post(`/api/chatrooms/${room}/invite/${user}`); }
}
