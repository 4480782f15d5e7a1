// Builds DOM nodes from tagged templates. The template's static parts are our own
// markup; every interpolated value becomes a text node (textContent) or an attribute
// value (setAttribute), never markup, so text from the server cannot become HTML.
//
//   html`<button class="x ${cls}" @click=${fn} ?disabled=${off}>${label}</button>`
//
// In text: strings and numbers become text; a Node, or an array of them, is inserted;
// null, undefined and false insert nothing. In attributes: `name=${v}` sets it
// (null/false removes it), `?name=${v}` toggles a boolean attribute, `.name=${v}`
// sets a property (lowercase names only: the parser lowercases them), `@event=${fn}`
// adds a listener. The result is the element when the template has one root,
// otherwise a DocumentFragment.

const MARK = '\u2063';
const cache = new WeakMap();

/** Where the text after `s` stands, given where `s` starts: text, tag, or a quote. */
function scan(s, state) {
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (state === 'text') {
      if (c === '<' && /[a-zA-Z/!]/.test(s[i + 1] ?? '')) state = 'tag';
    } else if (state === 'tag') {
      if (c === '"' || c === "'") state = c;
      else if (c === '>') state = 'text';
    } else if (c === state) {
      state = 'tag';
    }
  }
  return state;
}

function prepare(strings) {
  let source = '';
  let state = 'text';
  strings.forEach((s, i) => {
    source += s;
    state = scan(s, state);
    if (i === strings.length - 1) return;
    if (state === 'text') source += `<!--${MARK}${i}-->`;
    else if (state === 'tag') source += `"${MARK}${i}${MARK}"`;
    else source += `${MARK}${i}${MARK}`;
  });
  const template = document.createElement('template');
  template.innerHTML = source.trim();
  return template;
}

const markRe = new RegExp(`${MARK}(\\d+)${MARK}`, 'g');

function insertValue(marker, value) {
  const parent = marker.parentNode;
  for (const node of toNodes(value)) parent.insertBefore(node, marker);
  marker.remove();
}

function toNodes(value) {
  if (value === null || value === undefined || value === false) return [];
  if (Array.isArray(value)) return value.flatMap(toNodes);
  if (value instanceof Node) return [value];
  return [document.createTextNode(String(value))];
}

function bindAttribute(el, attr, values) {
  const name = attr.name;
  const whole = attr.value.match(new RegExp(`^${MARK}(\\d+)${MARK}$`));
  if (whole) {
    const value = values[Number(whole[1])];
    const prefix = name[0];
    if (prefix === '@' || prefix === '.' || prefix === '?') el.removeAttribute(name);
    if (prefix === '@') {
      if (value) el.addEventListener(name.slice(1), value);
    } else if (prefix === '.') {
      el[name.slice(1)] = value;
    } else if (prefix === '?') {
      el.toggleAttribute(name.slice(1), Boolean(value));
    } else if (value === null || value === undefined || value === false) {
      el.removeAttribute(name);
    } else {
      el.setAttribute(name, String(value));
    }
    return;
  }
  if (attr.value.includes(MARK)) {
    el.setAttribute(
      name,
      attr.value.replace(markRe, (_, i) => {
        const v = values[Number(i)];
        return v === null || v === undefined || v === false ? '' : String(v);
      }),
    );
  }
}

/** The tag for templates: see the top of this file. */
export function html(strings, ...values) {
  let template = cache.get(strings);
  if (!template) {
    template = prepare(strings);
    cache.set(strings, template);
  }
  const fragment = template.content.cloneNode(true);
  const walker = document.createTreeWalker(fragment, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_COMMENT);
  const markers = [];
  const elements = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.nodeType === Node.COMMENT_NODE) {
      if (node.data.startsWith(MARK)) markers.push(node);
    } else if (node.attributes.length) {
      elements.push(node);
    }
  }
  for (const el of elements) {
    for (const attr of [...el.attributes]) bindAttribute(el, attr, values);
  }
  for (const marker of markers) insertValue(marker, values[Number(marker.data.slice(1))]);
  const roots = [...fragment.childNodes].filter(
    (n) => n.nodeType !== Node.TEXT_NODE || n.data.trim() !== '',
  );
  return roots.length === 1 && roots[0].nodeType === Node.ELEMENT_NODE ? roots[0] : fragment;
}

/** The elements of `root` that carry `data-ref`, by that name. */
export function refs(root) {
  const found = {};
  for (const el of root.querySelectorAll('[data-ref]')) found[el.dataset.ref] = el;
  if (root.dataset?.ref) found[root.dataset.ref] = root;
  return found;
}

/** Replaces the children of `el` with `nodes`. */
export function replaceChildren(el, ...nodes) {
  el.replaceChildren(...nodes.flatMap(toNodes));
}

/** A static SVG icon from the sprite-free set below, hidden from screen readers. */
export function icon(name) {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.classList.add('icon');
  for (const d of ICONS[name] ?? []) {
    const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
    path.setAttribute('d', d);
    svg.append(path);
  }
  return svg;
}

const ICONS = {
  plus: ['M12 5v14', 'M5 12h14'],
  hash: ['M5 9h14', 'M4 15h14', 'M10 3 8 21', 'M16 3l-2 18'],
  lock: ['M6 11h12v10H6z', 'M8 11V7a4 4 0 0 1 8 0v4'],
  eye: ['M2 12s4-7 10-7 10 7 10 7-4 7-10 7S2 12 2 12z', 'M12 9a3 3 0 1 0 0 6 3 3 0 0 0 0-6z'],
  users: ['M16 20v-2a4 4 0 0 0-4-4H6a4 4 0 0 0-4 4v2', 'M9 10a4 4 0 1 0 0-8 4 4 0 0 0 0 8z', 'M22 20v-2a4 4 0 0 0-3-3.9', 'M16 2.1a4 4 0 0 1 0 7.8'],
  user: ['M20 21v-2a4 4 0 0 0-4-4H8a4 4 0 0 0-4 4v2', 'M12 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8z'],
  search: ['M11 19a8 8 0 1 0 0-16 8 8 0 0 0 0 16z', 'M21 21l-4.3-4.3'],
  send: ['M22 2 11 13', 'M22 2 15 22l-4-9-9-4z'],
  attach: ['M21.4 11.1 12.2 20.3a6 6 0 0 1-8.5-8.5l9.2-9.2a4 4 0 0 1 5.7 5.7l-9.2 9.2a2 2 0 0 1-2.8-2.8l8.5-8.5'],
  back: ['M15 18l-6-6 6-6'],
  down: ['M12 5v14', 'M19 12l-7 7-7-7'],
  bell: ['M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9', 'M13.7 21a2 2 0 0 1-3.4 0'],
  bellOff: ['M13.7 21a2 2 0 0 1-3.4 0', 'M18.6 13A17.9 17.9 0 0 1 18 8', 'M6.3 6.3A6 6 0 0 0 6 8c0 7-3 9-3 9h14', 'M18 8a6 6 0 0 0-9.3-5', 'M2 2l20 20'],
  settings: ['M12 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6z', 'M19.4 15a1.7 1.7 0 0 0 .3 1.8l.1.1a2 2 0 1 1-2.8 2.8l-.1-.1a1.7 1.7 0 0 0-1.8-.3 1.7 1.7 0 0 0-1 1.5V21a2 2 0 1 1-4 0v-.1a1.7 1.7 0 0 0-1.1-1.5 1.7 1.7 0 0 0-1.8.3l-.1.1a2 2 0 1 1-2.8-2.8l.1-.1a1.7 1.7 0 0 0 .3-1.8 1.7 1.7 0 0 0-1.5-1H3a2 2 0 1 1 0-4h.1a1.7 1.7 0 0 0 1.5-1.1 1.7 1.7 0 0 0-.3-1.8l-.1-.1a2 2 0 1 1 2.8-2.8l.1.1a1.7 1.7 0 0 0 1.8.3H9a1.7 1.7 0 0 0 1-1.5V3a2 2 0 1 1 4 0v.1a1.7 1.7 0 0 0 1 1.5 1.7 1.7 0 0 0 1.8-.3l.1-.1a2 2 0 1 1 2.8 2.8l-.1.1a1.7 1.7 0 0 0-.3 1.8V9a1.7 1.7 0 0 0 1.5 1H21a2 2 0 1 1 0 4h-.1a1.7 1.7 0 0 0-1.5 1z'],
  invite: ['M16 21v-2a4 4 0 0 0-4-4H5a4 4 0 0 0-4 4v2', 'M8.5 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8z', 'M20 8v6', 'M23 11h-6'],
  leave: ['M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4', 'M16 17l5-5-5-5', 'M21 12H9'],
  more: ['M12 13a1 1 0 1 0 0-2 1 1 0 0 0 0 2z', 'M19 13a1 1 0 1 0 0-2 1 1 0 0 0 0 2z', 'M5 13a1 1 0 1 0 0-2 1 1 0 0 0 0 2z'],
  close: ['M18 6 6 18', 'M6 6l12 12'],
  chat: ['M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z'],
  compass: ['M12 22a10 10 0 1 0 0-20 10 10 0 0 0 0 20z', 'M16.2 7.8l-2.1 6.3-6.3 2.1 2.1-6.3z'],
};
