// DOM helpers. Data from the server only ever becomes text (text nodes, textContent):
// no innerHTML anywhere in the app.

/** The element with this id (throws when the page lacks it: a bug, not a state). */
export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`missing #${id}`);
  return node;
}

/**
 * Create an element: `attrs` sets attributes (`text` the text content, `class` the
 * class, `dataset` data-* values (null ones left out), `on<event>` listeners); children are nodes or strings
 * (strings become text nodes).
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === 'text') node.textContent = String(value);
    else if (key === 'class') node.className = value;
    else if (key === 'dataset') {
      for (const [name, v] of Object.entries(value)) if (v != null) node.dataset[name] = String(v);
    }
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child != null) node.append(child);
  }
  return node;
}

/** Remove every child. */
export function clear(node) {
  node.replaceChildren();
}

/** The message of an error for people (validation errors list every broken rule). */
export function describe(err) {
  if (!err) return '';
  if (err.code === 'network_error') return 'Cannot reach the server. Check your connection and try again.';
  if (Array.isArray(err.details)) return err.details.join('. ');
  return err.message || String(err);
}
