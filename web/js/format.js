// Pure presentation logic: links in message text, times and days in the browser's
// locale, and the grouping of a message list into days and runs of one sender.
// No DOM here: `node --test` covers it (tests/web/format.test.js).

/** Messages from one sender closer together than this share one header. */
export const GROUP_GAP_MS = 5 * 60 * 1000;

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
// Punctuation that ends a sentence rather than a URL.
const TRAILING_RE = /[.,;:!?)\]}'"]/;

/**
 * Splits message text into `{text}` and `{text, href}` parts. Only http and https
 * URLs become links; everything else stays text.
 */
export function linkify(text) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    const url = trimUrl(match[0]);
    if (!isHttpUrl(url)) continue;
    if (match.index > last) parts.push({ text: text.slice(last, match.index) });
    parts.push({ text: url, href: url });
    last = match.index + url.length;
  }
  if (last < text.length) parts.push({ text: text.slice(last) });
  return parts;
}

/** Drops punctuation that ends the sentence rather than the URL; keeps a closing
 * parenthesis that closes one opened inside the URL (Wikipedia links). */
function trimUrl(url) {
  while (TRAILING_RE.test(url.slice(-1))) {
    if (url.endsWith(')') && count(url, '(') >= count(url, ')')) break;
    url = url.slice(0, -1);
  }
  return url;
}

function count(s, c) {
  return s.split(c).length - 1;
}

/** Whether `url` parses as an http(s) URL with a host. */
export function isHttpUrl(url) {
  try {
    const parsed = new URL(url);
    return (parsed.protocol === 'http:' || parsed.protocol === 'https:') && parsed.host !== '';
  } catch {
    return false;
  }
}

/** A local calendar day, `YYYY-M-D`, to compare days. */
export function dayKey(date) {
  return `${date.getFullYear()}-${date.getMonth() + 1}-${date.getDate()}`;
}

/** "Today", "Yesterday", or the date in the locale's long form. */
export function dayLabel(date, now = new Date(), locale = undefined) {
  if (dayKey(date) === dayKey(now)) return 'Today';
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (dayKey(date) === dayKey(yesterday)) return 'Yesterday';
  const options = { weekday: 'long', month: 'long', day: 'numeric' };
  if (date.getFullYear() !== now.getFullYear()) options.year = 'numeric';
  return date.toLocaleDateString(locale, options);
}

/** The time of day in the locale's short form ("14:05", "2:05 PM"). */
export function timeLabel(date, locale = undefined) {
  return date.toLocaleTimeString(locale, { hour: 'numeric', minute: '2-digit' });
}

/** For the room list: the time today, else a short date. */
export function shortWhen(date, now = new Date(), locale = undefined) {
  if (dayKey(date) === dayKey(now)) return timeLabel(date, locale);
  const options = { month: 'short', day: 'numeric' };
  if (date.getFullYear() !== now.getFullYear()) options.year = 'numeric';
  return date.toLocaleDateString(locale, options);
}

/**
 * Turns a list of messages (oldest first; pending ones carry no msgId) and notices
 * into what the list shows: `{kind: 'day', key, date}` separators and
 * `{kind: 'message', message, head}` entries, where `head` is true for the first of
 * a run by one sender within GROUP_GAP_MS on one day, and `{kind: 'notice', notice}`.
 */
export function layout(items) {
  const out = [];
  let day = null;
  let previous = null;
  for (const item of items) {
    const date = new Date(item.createdAt);
    const key = dayKey(date);
    if (key !== day) {
      out.push({ kind: 'day', key, date });
      day = key;
      previous = null;
    }
    if (item.notice) {
      out.push({ kind: 'notice', notice: item });
      previous = null;
      continue;
    }
    const head =
      !previous ||
      previous.senderId !== item.senderId ||
      date - new Date(previous.createdAt) > GROUP_GAP_MS;
    out.push({ kind: 'message', message: item, head });
    previous = item;
  }
  return out;
}

/** Initials for an avatar: the first letter of the name, upper-cased. */
export function initial(name) {
  const first = [...(name ?? '?').trim()][0] ?? '?';
  return first.toLocaleUpperCase();
}

/** A stable hue (0–359) for a name, so each person keeps one avatar colour. */
export function hue(name) {
  let h = 0;
  for (const ch of name ?? '') h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

/** A direct room's name for `me`: the other person's name. */
export function roomTitle(room, me) {
  if (!room.isDirected) return room.chatName;
  const names = room.chatName.split(', ');
  return names.find((n) => n !== me) ?? names[0] ?? room.chatName;
}

/** A file's size for people: 512 B, 1.5 KB, 3.2 MB. */
export function sizeLabel(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** Types the server serves inline (and only when the bytes are that image). */
const INLINE_IMAGES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);

export function isInlineImage(contentType) {
  return INLINE_IMAGES.has(contentType);
}

/** `text` cut into pieces, each `{text, match}`, where `match` marks an occurrence of
 * one of `terms` (as the server gives them: lower case), compared in lower case.
 * Text whose lower case changes its length is left whole (no offsets to map back). */
export function highlight(text, terms) {
  const lower = text.toLowerCase();
  const wanted = terms.filter((t) => t.length > 0);
  if (lower.length !== text.length || wanted.length === 0) return [{ text, match: false }];
  const marked = new Array(text.length).fill(false);
  for (const term of wanted) {
    for (let at = lower.indexOf(term); at >= 0; at = lower.indexOf(term, at + term.length)) {
      marked.fill(true, at, at + term.length);
    }
  }
  const pieces = [];
  for (let i = 0; i < text.length; i++) {
    const last = pieces[pieces.length - 1];
    if (last && last.match === marked[i]) last.text += text[i];
    else pieces.push({ text: text[i], match: marked[i] });
  }
  return pieces;
}
