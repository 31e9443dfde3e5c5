// Small line icons as inline SVG built with DOM calls (no markup strings, no icon font,
// nothing that depends on the system's emoji). Decorative: the button that holds one
// carries the accessible name.

const SVG = 'http://www.w3.org/2000/svg';

// 24x24 paths, drawn with a 2px stroke in the current text colour.
const PATHS = {
  search: ['M11 4a7 7 0 1 0 0 14a7 7 0 1 0 0-14z', 'M20 20l-4-4'],
  smile: ['M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z', 'M8.5 14.5c1.8 2 5.2 2 7 0', 'M9 9.5h.01', 'M15 9.5h.01'],
  reply: ['M10 8L5 12.5L10 17', 'M5 12.5h8a6 6 0 0 1 6 6v.5'],
  thread: ['M5 5h14v10H10l-4 4v-4H5z', 'M9 9h6', 'M9 12h4'],
  edit: ['M15.5 4.5l4 4L9 19H5v-4z', 'M13.5 6.5l4 4'],
  trash: ['M5 7h14', 'M10 7V4.5h4V7', 'M7 7l1 13h8l1-13', 'M10.5 11v5.5', 'M13.5 11v5.5'],
  bellOff: ['M6 17h12l-1.5-2.5V10a4.5 4.5 0 0 0-7.4-3.4', 'M7.6 8.6A4.5 4.5 0 0 0 7.5 10v4.5L6 17', 'M10.5 20h3', 'M4 4l16 16'],
  plus: ['M12 5v14', 'M5 12h14'],
  refresh: ['M19 12a7 7 0 1 1-2.1-5', 'M19 4.5V8h-3.5'],
  lock: ['M6.5 11h11v9h-11z', 'M9 11V8a3 3 0 0 1 6 0v3'],
  hash: ['M9 4L7.5 20', 'M16.5 4L15 20', 'M4.5 9h16', 'M3.5 15h16'],
  pin: ['M9 3.5h6', 'M10 3.5l-.5 6L6.5 13h11l-3-3.5l-.5-6', 'M12 13v7.5'],
  flag: ['M6 21V4', 'M6 4.5h11l-2.2 4l2.2 4H6'],
  clip: ['M16.5 8.5l-7 7a2.5 2.5 0 0 1-3.5-3.5l7.5-7.5a4 4 0 0 1 5.6 5.6L11 18.2'],
};

// Built once per name, cloned after: rows of a long room each carry several icons, and a
// clone is cheaper than building the paths again while scrolling.
const built = new Map();

/** An SVG icon (`name` from the set above), hidden from screen readers. */
export function icon(name, cls = 'icon') {
  let proto = built.get(name);
  if (!proto) {
    proto = draw(name);
    built.set(name, proto);
  }
  const svg = proto.cloneNode(true);
  svg.setAttribute('class', cls);
  return svg;
}

function draw(name) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  for (const d of PATHS[name] || []) {
    const path = document.createElementNS(SVG, 'path');
    path.setAttribute('d', d);
    svg.append(path);
  }
  return svg;
}

/** Put icons into every `[data-icon]` placeholder of the page (static buttons). */
export function fillIcons(root = document) {
  for (const node of root.querySelectorAll('[data-icon]')) {
    if (!node.querySelector('svg')) node.prepend(icon(node.dataset.icon));
  }
}
