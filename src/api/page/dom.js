// Small DOM helpers: build elements, and keep a keyed list in step with data without
// rebuilding what did not change (so a half-confirmed button or a progress bar's
// transition survives an update of its neighbour).

/** An element: `h('td', {class: 'x', dataset: {id}}, child, 'text', …)`. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child == null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace every child of `el` with `children`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/**
 * Make `container`'s children the rendering of `items`, in order, one per `key(item)`.
 * An item whose `sig(item)` is unchanged keeps its element; otherwise `patch(el, item)` may
 * update it in place (return true), else `render(item)` replaces it.
 */
export function syncList(container, items, { key, sig, render, patch }) {
  const old = new Map();
  for (const el of container.children) old.set(el.dataset.key, el);
  const kept = new Set();
  let before = container.firstChild;
  for (const item of items) {
    const k = String(key(item));
    const s = sig(item);
    let el = old.get(k);
    if (!el || el.$sig !== s) {
      if (!(el && patch && patch(el, item))) {
        const fresh = render(item);
        fresh.dataset.key = k;
        if (el) {
          if (el === before) before = fresh;
          el.replaceWith(fresh);
        }
        el = fresh;
      }
      el.$sig = s;
    }
    kept.add(k);
    if (el !== before) container.insertBefore(el, before);
    before = el.nextSibling;
  }
  for (const [k, el] of old) if (!kept.has(k)) el.remove();
}

/** Show `el` or hide it. */
export function show(el, visible) {
  el.hidden = !visible;
}
