import { focusMark, refocus } from './actions.js';

// A long list that stays fast: only a bounded window of rows around what is on screen
// is in the DOM (the rest is padding of the measured or estimated height), so a room
// of 10,000 messages costs what one of 100 does. Rows are built by the caller; this
// module keeps their positions, reuses their nodes while their version is unchanged,
// keeps what the reader looks at in place when rows above change (older pages, late
// measurements), and follows the bottom while the reader is there.

const SMALL = 160; // lists up to this many rows are rendered whole
const OVERSCAN = 45; // rows rendered beyond each edge of the screen
const MARGIN = 12; // re-window when the screen comes this close to the window's edge
const BOTTOM_SLACK = 80; // px from the bottom that still counts as "at the bottom"

/**
 * Rows: `{key, v}` objects (v: a version the caller bumps when the row must be built
 * again). `build(row)` makes its element; `estimate(row)` guesses its height in px.
 */
export class Timeline {
  constructor({ scroller, list, build, estimate, onScroll }) {
    this.scroller = scroller;
    this.list = list;
    this.build = build;
    this.estimate = estimate;
    this.onScroll = onScroll;
    this.rows = [];
    this.index = new Map(); // key -> row index
    this.nodes = new Map(); // key -> { node, v } for rows in the DOM
    this.heights = new Map(); // key -> measured px
    this.tops = [0]; // tops[i]: offset of row i in the list; tops[n]: total height
    this.dirty = true;
    this.first = 0; // the rendered window [first, last)
    this.last = 0;
    this.stick = true; // follow the bottom
    this.frame = 0;
    this.width = 0;
    scroller.style.overflowAnchor = 'none';
    scroller.addEventListener('scroll', () => {
      this.stick = this.distanceFromBottom() < BOTTOM_SLACK;
      if (!this.frame) {
        this.frame = requestAnimationFrame(() => {
          this.frame = 0;
          this.#maybeRewindow();
          this.onScroll?.();
        });
      }
    }, { passive: true });
    if (typeof ResizeObserver === 'function') {
      new ResizeObserver(() => {
        const width = this.list.clientWidth;
        if (width === this.width) return;
        this.width = width;
        this.heights.clear(); // line breaks moved: every height is a guess again
        this.dirty = true;
        this.render();
      }).observe(this.scroller);
    }
  }

  /** Replace the rows (the same objects may come back: their nodes are reused). */
  setRows(rows, { keepBottom = false } = {}) {
    const stick = keepBottom || this.stick;
    const anchor = stick ? null : this.#anchor();
    this.rows = rows;
    this.index = new Map(rows.map((r, i) => [r.key, i]));
    for (const key of [...this.nodes.keys()]) {
      if (!this.index.has(key)) {
        this.nodes.get(key).node.remove();
        this.nodes.delete(key);
      }
    }
    this.dirty = true;
    this.stick = stick;
    this.render(anchor);
  }

  /** Row `key` changed (its version was bumped): build it again if shown. */
  refresh(key) {
    const i = this.index.get(key);
    if (i == null) return;
    if (i >= this.first && i < this.last) this.render(this.stick ? null : this.#anchor());
  }

  /** Empty the list. */
  clear() {
    this.rows = [];
    this.index.clear();
    this.nodes.clear();
    this.heights.clear();
    this.list.replaceChildren();
    this.list.style.paddingTop = this.list.style.paddingBottom = '0px';
    this.first = this.last = 0;
    this.dirty = true;
    this.stick = true;
  }

  /** Px between the bottom of what is shown and the end of the list. */
  distanceFromBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight;
  }

  /** True when the reader is at (or near) the newest row. */
  atBottom() { return this.distanceFromBottom() < BOTTOM_SLACK; }

  /** Scroll to the end and follow it. */
  scrollToBottom() {
    this.stick = true;
    this.render(null);
  }

  /** The element of row `key` if it is in the DOM. */
  nodeOf(key) { return this.nodes.get(key)?.node ?? null; }

  /** Bring row `key` into view (`align`: start, center or end); resolves with its element. */
  scrollToKey(key, align = 'center') {
    const i = this.index.get(key);
    if (i == null) return null;
    this.stick = false;
    this.#layout();
    const h = this.tops[i + 1] - this.tops[i];
    const view = this.scroller.clientHeight;
    const want = align === 'start' ? this.tops[i] - 8 : align === 'end' ? this.tops[i] + h - view + 8 : this.tops[i] - (view - h) / 2;
    const top = Math.max(0, want);
    this.#setScroll(this.#listTop() + top);
    this.render({ key, offset: this.tops[i] - top });
    return this.nodeOf(key);
  }

  /** Indexes [first, last) of the rows on screen now. */
  visibleRange() {
    this.#layout();
    return this.#visibleRange();
  }

  // --- rendering ------------------------------------------------------------------

  /** Bring the DOM in line with the rows and the scroll position. */
  render(anchor = this.stick ? null : this.#anchor()) {
    for (let pass = 0; pass < 3; pass++) {
      this.#layout();
      const [a, b] = this.#windowFor(this.#visibleRange());
      this.#mount(a, b);
      const changed = this.#measure();
      this.#pad();
      this.#restore(anchor);
      if (!changed) {
        const [va, vb] = this.#visibleRange();
        if (va >= this.first && vb <= this.last) break;
      }
    }
  }

  #maybeRewindow() {
    this.#layout();
    const [va, vb] = this.#visibleRange();
    const small = this.rows.length <= SMALL;
    const inside = va >= this.first && vb <= this.last;
    const nearEdge = (va - this.first < MARGIN && this.first > 0) || (this.last - vb < MARGIN && this.last < this.rows.length);
    if (!inside || (!small && nearEdge)) this.render(this.#anchor());
  }

  #windowFor([va, vb]) {
    const n = this.rows.length;
    if (n <= SMALL) return [0, n];
    let a = Math.max(0, va - OVERSCAN);
    let b = Math.min(n, vb + OVERSCAN);
    // Keep the row holding the keyboard focus in the DOM when it is near.
    const focused = this.#focusedIndex();
    if (focused != null && focused >= a - OVERSCAN && focused < b + OVERSCAN) {
      a = Math.min(a, focused);
      b = Math.max(b, focused + 1);
    }
    return [a, b];
  }

  #focusedIndex() {
    const active = document.activeElement;
    if (!active || !this.list.contains(active)) return null;
    const li = active.closest('[data-key]');
    return li ? this.index.get(li.dataset.key) ?? null : null;
  }

  // Put rows a..b in the DOM in order, reusing nodes of unchanged rows.
  #mount(a, b) {
    if (a === this.first && b === this.last && !this.#stale(a, b)) return;
    const wanted = new Set();
    const nodes = [];
    for (let i = a; i < b; i++) {
      const row = this.rows[i];
      wanted.add(row.key);
      let held = this.nodes.get(row.key);
      if (!held || held.v !== row.v) {
        const node = this.build(row);
        node.dataset.key = row.key;
        // A row drawn anew under the keyboard focus keeps it (the same control).
        const mark = held && held.node.contains(document.activeElement) ? focusMark(held.node) : null;
        if (held) held.node.replaceWith(node);
        if (mark) refocus(node, mark);
        held = { node, v: row.v };
        this.nodes.set(row.key, held);
        this.heights.delete(row.key); // measure it again
      }
      nodes.push(held.node);
    }
    let movedFocus = false;
    for (const [key, held] of [...this.nodes]) {
      if (wanted.has(key)) continue;
      if (held.node.contains(document.activeElement)) movedFocus = true;
      held.node.remove();
      this.nodes.delete(key);
    }
    let cursor = this.list.firstChild;
    for (const node of nodes) {
      if (node === cursor) {
        cursor = cursor.nextSibling;
        continue;
      }
      this.list.insertBefore(node, cursor);
    }
    this.first = a;
    this.last = b;
    if (movedFocus) nodes[Math.floor(nodes.length / 2)]?.focus?.({ preventScroll: true });
  }

  // True when a row of a..b has no node yet or a node of an older version.
  #stale(a, b) {
    for (let i = a; i < b; i++) {
      const row = this.rows[i];
      if (this.nodes.get(row.key)?.v !== row.v) return true;
    }
    return false;
  }

  // Heights of the rendered rows not measured yet; true when one differs from the guess.
  // (Rows keep their height until they are built again or the width changes.)
  #measure() {
    let changed = false;
    for (let i = this.first; i < this.last; i++) {
      const row = this.rows[i];
      if (this.heights.has(row.key)) continue;
      const node = this.nodes.get(row.key)?.node;
      if (!node) continue;
      // Fractional heights: rounded ones add up to a visible drift over a hundred rows.
      const h = node.getBoundingClientRect().height;
      if (h && Math.abs((this.heights.get(row.key) ?? this.#guess(row)) - h) >= 0.5) changed = true;
      if (h) this.heights.set(row.key, h);
    }
    if (changed) this.dirty = true;
    this.#layout();
    return changed;
  }

  #pad() {
    const total = this.tops[this.rows.length];
    this.list.style.paddingTop = `${this.tops[this.first]}px`;
    this.list.style.paddingBottom = `${Math.max(0, total - this.tops[this.last])}px`;
  }

  #guess(row) { return this.estimate(row); }

  #layout() {
    if (!this.dirty && this.tops.length === this.rows.length + 1) return;
    const n = this.rows.length;
    const tops = new Array(n + 1);
    let y = 0;
    for (let i = 0; i < n; i++) {
      tops[i] = y;
      const row = this.rows[i];
      y += this.heights.get(row.key) ?? this.#guess(row);
    }
    tops[n] = y;
    this.tops = tops;
    this.dirty = false;
  }

  // Where the list starts inside the scroller (which is its offsetParent: position: relative).
  #listTop() {
    return this.list.offsetTop;
  }

  // Rows [a, b) that intersect the scroller's viewport.
  #visibleRange() {
    const top = this.scroller.scrollTop - this.#listTop();
    const bottom = top + this.scroller.clientHeight;
    return [this.#rowAt(top), Math.min(this.rows.length, this.#rowAt(bottom) + 1)];
  }

  // The row at offset y of the list (binary search over tops).
  #rowAt(y) {
    let lo = 0;
    let hi = this.rows.length - 1;
    if (hi < 0) return 0;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.tops[mid] <= y) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  // The first row on screen and how far below the top of the screen it starts.
  #anchor() {
    if (!this.rows.length) return null;
    this.#layout();
    const top = this.scroller.scrollTop - this.#listTop();
    const i = this.#rowAt(Math.max(0, top));
    const row = this.rows[i];
    return row ? { key: row.key, offset: this.tops[i] - top } : null;
  }

  #restore(anchor) {
    if (this.stick || !anchor) {
      if (this.stick) this.#setScroll(this.scroller.scrollHeight);
      return;
    }
    const i = this.index.get(anchor.key);
    if (i == null) return;
    this.#setScroll(this.#listTop() + this.tops[i] - anchor.offset);
  }

  #setScroll(y) {
    const max = this.scroller.scrollHeight - this.scroller.clientHeight;
    const target = Math.max(0, Math.min(max, Math.round(y)));
    if (Math.abs(this.scroller.scrollTop - target) >= 1) this.scroller.scrollTop = target;
  }
}
