// Slipway's playground terminals: a panel beside the lesson with a tab per node and, on
// each node, a tab per terminal. Every terminal is an xterm.js screen tied to the server
// by a WebSocket (binary frames are terminal bytes, text frames JSON control messages).
(function () {
  "use strict";

  const panel = document.querySelector("[data-playground-panel]");
  if (!panel || typeof window.Terminal !== "function" || !window.FitAddon) return;

  const root = document.documentElement;
  const body = document.body;
  const openers = Array.from(document.querySelectorAll("[data-playground-open]"));
  const nodeTabs = panel.querySelector("[data-pg-nodes]");
  const termTabs = panel.querySelector("[data-pg-terms]");
  const screens = panel.querySelector("[data-pg-screens]");
  const expiry = panel.querySelector("[data-pg-expiry]");
  const extendButton = panel.querySelector("[data-pg-extend]");
  const newButton = panel.querySelector("[data-pg-new]");
  const closeButton = panel.querySelector("[data-pg-close]");
  const minButton = panel.querySelector("[data-pg-min]");
  const endedBox = panel.querySelector("[data-pg-ended]");
  const endedText = panel.querySelector("[data-pg-ended-text]");
  const resizer = panel.querySelector("[data-pg-resize]");
  const portsBar = panel.querySelector("[data-pg-ports]");
  const portsList = panel.querySelector("[data-pg-ports-list]");
  const shareBox = panel.querySelector("[data-pg-share]");
  const downloadButton = panel.querySelector("[data-pg-download]");

  const MAX_TERMINALS = 16; // the server numbers a node's terminals 1 to 16
  const FONT_KEY = "slipway-term-font";
  const SIZE_KEY = "slipway-pg-size";
  const MIN_KEY = "slipway-pg-min";
  const TABS_KEY = "slipway-pg-tabs";
  const encoder = new TextEncoder();

  // --- Small helpers -------------------------------------------------------------------
  const store = {
    get(key, fallback) {
      try {
        const v = localStorage.getItem(key);
        return v === null ? fallback : JSON.parse(v);
      } catch (e) { return fallback; }
    },
    set(key, value) { try { localStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* not kept */ } },
    drop(key) { try { localStorage.removeItem(key); } catch (e) { /* not kept */ } },
  };

  const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));

  function toast(message) {
    if (window.slipway && window.slipway.toast) window.slipway.toast(message);
  }

  function copy(text) {
    if (window.slipway && window.slipway.copyText) return window.slipway.copyText(text);
    return navigator.clipboard.writeText(text);
  }

  async function errorOf(response) {
    try {
      const data = await response.json();
      if (data && data.message) return data.message;
    } catch (e) { /* not JSON */ }
    return "the server answered " + response.status;
  }

  function request(method, path, json) {
    const init = { method: method, credentials: "same-origin", headers: {} };
    if (json !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(json);
    }
    return fetch(path, init);
  }

  // --- Looks: colours follow the site's theme, font size is the reader's ------------------
  // ANSI colours picked to stay readable on each theme's terminal background.
  const PALETTES = {
    light: {
      black: "#1c2230", red: "#c0362c", green: "#1d7a46", yellow: "#8a6100",
      blue: "#0d65a8", magenta: "#8a3fc2", cyan: "#137480", white: "#6b7384",
      brightBlack: "#555e6e", brightRed: "#d8423a", brightGreen: "#23914f", brightYellow: "#a87700",
      brightBlue: "#2b7fd0", brightMagenta: "#a052d8", brightCyan: "#1a8c99", brightWhite: "#8d95a3",
    },
    dark: {
      black: "#3b4452", red: "#ff7b72", green: "#4cc985", yellow: "#e3b341",
      blue: "#5db4ff", magenta: "#c99bff", cyan: "#4fd1d9", white: "#c2cad6",
      brightBlack: "#6c7789", brightRed: "#ffa29a", brightGreen: "#72dca2", brightYellow: "#f2cc6b",
      brightBlue: "#8ccbff", brightMagenta: "#dcbcff", brightCyan: "#7fe3e8", brightWhite: "#f4f6fa",
    },
  };

  function themeName() {
    return root.getAttribute("data-theme") === "dark" ? "dark" : "light";
  }

  function cssVar(name, fallback) {
    const v = getComputedStyle(root).getPropertyValue(name).trim();
    return v || fallback;
  }

  function termTheme() {
    const name = themeName();
    return Object.assign({
      background: cssVar("--term-bg", name === "dark" ? "#0b1016" : "#fcfcfd"),
      foreground: cssVar("--term-fg", name === "dark" ? "#dfe5ec" : "#1c2230"),
      cursor: cssVar("--accent", "#0d65a8"),
      cursorAccent: cssVar("--term-bg", "#ffffff"),
      selectionBackground: cssVar("--term-selection", "rgba(13, 101, 168, .28)"),
    }, PALETTES[name]);
  }

  let fontSize = clamp(Number(store.get(FONT_KEY, 14)) || 14, 9, 28);

  // --- State ----------------------------------------------------------------------------
  let pg = null;          // the playground as the server describes it: {id, expires_at, nodes}
  let ended = false;      // expired or removed: nothing reconnects any more
  let pending = null;     // a create under way, so that two clicks make one playground
  let restoring = null;   // the look-up of an open playground when the page loads
  let layout = null;      // which terminals are open, kept per playground across page loads
  const sessions = new Map(); // "node/n" -> Session
  let clock = 0;
  let portsTimer = 0;
  let portsShown = "";   // the ports on screen, so that an unchanged list is not redrawn

  function saveLayout() {
    if (pg && layout) store.set(TABS_KEY, layout);
  }

  function activeSession() {
    if (!pg || !layout) return null;
    return sessions.get(layout.node + "/" + layout.active[layout.node]) || null;
  }

  // --- One terminal -------------------------------------------------------------------------
  class Session {
    constructor(node, n) {
      this.node = node;
      this.n = n;
      this.ws = null;
      this.queue = [];       // input typed while the socket is down
      this.attempt = 0;
      this.timer = 0;
      this.state = "connecting"; // open, waiting (to reconnect), exited, ended, closed
      this.opened = false;   // has ever connected: a reconnection must clear the screen
      this.lostNoted = false;
      this.sentSize = "";
      this.pasteSeen = false;

      this.host = document.createElement("div");
      this.host.className = "pg-screen";
      screens.appendChild(this.host);

      const dark = themeName() === "dark";
      this.term = new window.Terminal({
        fontFamily: cssVar("--mono", "monospace"),
        fontSize: fontSize,
        cursorBlink: true,
        scrollback: 5000,
        theme: termTheme(),
        // Programs colour their output for dark terminals; on the light theme xterm
        // darkens whatever would be unreadable.
        minimumContrastRatio: dark ? 1 : 4.5,
      });
      this.fit = new window.FitAddon.FitAddon();
      this.term.loadAddon(this.fit);
      if (window.WebLinksAddon) {
        this.term.loadAddon(new window.WebLinksAddon.WebLinksAddon((event, uri) => {
          window.open(uri, "_blank", "noopener,noreferrer");
        }));
      }
      this.term.open(this.host);

      this.term.onData((data) => this.input(encoder.encode(data)));
      // Some mouse reports are raw bytes, not UTF-8.
      this.term.onBinary((data) => this.input(Uint8Array.from(data, (c) => c.charCodeAt(0) & 255)));
      this.term.onResize(() => this.sendSize(false));
      this.term.attachCustomKeyEventHandler((event) => this.keys(event));

      // Like X terminals: whatever the mouse selects is copied.
      this.host.addEventListener("mouseup", () => {
        setTimeout(() => {
          if (!this.term.hasSelection()) return;
          const text = this.term.getSelection();
          if (text) copy(text).then(() => this.term.focus(), () => {});
        }, 0);
      });
      this.host.addEventListener("paste", () => { this.pasteSeen = true; }, true);

      this.connect();
    }

    url() {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      return scheme + location.host + "/pg/" + encodeURIComponent(pg.id) + "/nodes/" +
        encodeURIComponent(this.node) + "/terminals/" + this.n + "/ws";
    }

    connect() {
      clearTimeout(this.timer);
      if (!pg || ended || this.state === "closed") return;
      const ws = new WebSocket(this.url());
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      this.state = "connecting";
      ws.addEventListener("open", () => {
        if (this.ws !== ws) return;
        // The server replays the terminal's recent output, which is already on screen.
        if (this.opened) this.term.reset();
        this.opened = true;
        this.attempt = 0;
        this.lostNoted = false;
        this.state = "open";
        this.sendSize(true);
        const queued = this.queue;
        this.queue = [];
        queued.forEach((bytes) => ws.send(bytes));
        renderTerms();
      });
      ws.addEventListener("message", (event) => {
        if (this.ws !== ws) return;
        if (typeof event.data === "string") this.control(event.data);
        else this.term.write(new Uint8Array(event.data));
      });
      ws.addEventListener("close", () => {
        if (this.ws !== ws) return;
        this.ws = null;
        if (this.state === "open" || this.state === "connecting") this.lost();
      });
      renderTerms();
    }

    // Backoff with jitter, so a restarted server is not met by every tab at once.
    lost() {
      this.state = "waiting";
      if (!this.lostNoted) {
        this.note(this.opened ? "connection lost; reconnecting…" : "connecting…", "2");
        this.lostNoted = true;
      }
      const delay = Math.min(15000, 500 * 2 ** this.attempt) * (0.8 + Math.random() * 0.4);
      this.attempt += 1;
      // Failing for a while may mean the playground is gone (the socket cannot say why).
      if (this.attempt === 3 || this.attempt % 8 === 0) checkGone();
      this.timer = setTimeout(() => this.connect(), delay);
      renderTerms();
    }

    retryNow() {
      if (this.state === "waiting") this.connect();
    }

    control(text) {
      let message;
      try { message = JSON.parse(text); } catch (e) { return; }
      if (message.type === "exit") {
        const ws = this.ws;
        this.ws = null;
        this.state = "exited";
        const code = typeof message.code === "number" ? " with code " + message.code : "";
        this.note("the shell exited" + code + "; press Enter for a new one", "2");
        if (ws) ws.close();
        renderTerms();
      } else if (message.type === "expired") {
        finish(message.message || "This playground has ended.");
      }
    }

    input(bytes) {
      if (this.state === "ended" || this.state === "closed") return;
      if (this.state === "exited") {
        // A key starts a new shell; anything but a bare Enter is typed into it.
        this.connect();
        if (bytes.length === 1 && (bytes[0] === 13 || bytes[0] === 10)) return;
      }
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes);
      else if (this.queue.length < 200) this.queue.push(bytes);
    }

    sendSize(force) {
      const size = this.term.rows + "x" + this.term.cols;
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
      if (!force && size === this.sentSize) return;
      this.sentSize = size;
      this.ws.send(JSON.stringify({ type: "resize", rows: this.term.rows, cols: this.term.cols }));
    }

    fitNow() {
      // A hidden screen has no size; fitting it would shrink the terminal to nothing.
      if (this.host.clientWidth > 0 && this.host.clientHeight > 0) {
        try { this.fit.fit(); } catch (e) { /* not laid out yet */ }
      }
    }

    keys(event) {
      if (!event.ctrlKey || !event.shiftKey || event.altKey || event.metaKey) return true;
      const key = event.code === "KeyC" ? "c" : event.code === "KeyV" ? "v" : "";
      if (!key) return true;
      if (event.type !== "keydown") return false;
      if (key === "c") {
        event.preventDefault();
        if (this.term.hasSelection()) {
          copy(this.term.getSelection()).then(() => this.term.focus(),
            () => toast("Your browser refused the copy."));
        }
      } else {
        // Browsers paste on Ctrl+Shift+V themselves (xterm takes the paste event); when one
        // does not, read the clipboard instead.
        this.pasteSeen = false;
        setTimeout(() => {
          if (this.pasteSeen) return;
          if (navigator.clipboard && navigator.clipboard.readText && window.isSecureContext) {
            navigator.clipboard.readText().then((text) => { if (text) this.term.paste(text); },
              () => toast("Your browser refused to paste; try Shift+Insert."));
          }
        }, 80);
      }
      return false;
    }

    note(text, sgr) {
      this.term.write("\r\n\x1b[" + sgr + "m[" + text + "]\x1b[0m\r\n");
    }

    end(message) {
      clearTimeout(this.timer);
      if (this.state !== "ended") this.note(message, "33;1");
      this.state = "ended";
      const ws = this.ws;
      this.ws = null;
      if (ws) ws.close();
    }

    dispose() {
      clearTimeout(this.timer);
      this.state = "closed";
      const ws = this.ws;
      this.ws = null;
      if (ws) ws.close();
      this.term.dispose();
      this.host.remove();
    }
  }

  // --- Tabs -----------------------------------------------------------------------------------
  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function renderNodes() {
    nodeTabs.textContent = "";
    pg.nodes.forEach((node) => {
      const tab = el("button", "pg-node");
      tab.type = "button";
      tab.setAttribute("role", "tab");
      tab.setAttribute("data-pg-node", node.name);
      tab.setAttribute("aria-selected", String(node.name === layout.node));
      tab.title = node.name + (node.ip ? " · " + node.ip : "");
      tab.append(el("span", "pg-node-name", node.name));
      if (node.ip) tab.append(el("span", "pg-node-ip", node.ip));
      nodeTabs.append(tab);
    });
    // One node needs no node tabs; the panel shows its title instead.
    nodeTabs.hidden = pg.nodes.length < 2;
    panel.classList.toggle("single", pg.nodes.length < 2);
  }

  function renderTerms() {
    if (!pg || !layout) return;
    const node = layout.node;
    const open = layout.open[node] || [];
    termTabs.textContent = "";
    open.forEach((n) => {
      const s = sessions.get(node + "/" + n);
      const tab = el("div", "pg-term");
      const pick = el("button", "pg-term-pick");
      pick.type = "button";
      pick.setAttribute("role", "tab");
      pick.setAttribute("data-pg-term", String(n));
      pick.setAttribute("aria-selected", String(n === layout.active[node]));
      const dot = el("span", "pg-dot " + (s ? s.state : "connecting"));
      dot.title = s ? s.state : "";
      pick.append(dot, document.createTextNode("Terminal " + n));
      tab.append(pick);
      if (open.length > 1) {
        const x = el("button", "pg-term-close", "×");
        x.type = "button";
        x.setAttribute("data-pg-term-close", String(n));
        x.setAttribute("aria-label", "Close terminal " + n);
        x.title = "Close this tab (the shell keeps running)";
        tab.append(x);
      }
      termTabs.append(tab);
    });
    newButton.disabled = ended || open.length >= MAX_TERMINALS;
  }

  function selectNode(node, focus) {
    layout.node = node;
    if (!layout.open[node] || !layout.open[node].length) layout.open[node] = [1];
    layout.open[node].forEach((n) => {
      const key = node + "/" + n;
      if (!sessions.has(key) && !ended) sessions.set(key, new Session(node, n));
    });
    nodeTabs.querySelectorAll("[data-pg-node]").forEach((t) => {
      t.setAttribute("aria-selected", String(t.getAttribute("data-pg-node") === node));
    });
    const active = layout.open[node].includes(layout.active[node]) ? layout.active[node] : layout.open[node][0];
    selectTerm(active, focus);
  }

  function selectTerm(n, focus) {
    const node = layout.node;
    layout.active[node] = n;
    sessions.forEach((s) => s.host.classList.toggle("active", s.node === node && s.n === n));
    saveLayout();
    renderTerms();
    const s = activeSession();
    if (s) {
      s.fitNow();
      if (focus && !body.classList.contains("pg-min")) s.term.focus();
    }
  }

  function newTerm() {
    if (!pg || ended) return;
    const node = layout.node;
    const open = layout.open[node];
    if (open.length >= MAX_TERMINALS) return;
    // The lowest free number, so a closed tab's number is used again.
    let n = 1;
    while (open.includes(n)) n += 1;
    open.push(n);
    open.sort((a, b) => a - b);
    sessions.set(node + "/" + n, new Session(node, n));
    selectTerm(n, true);
  }

  function closeTerm(n) {
    const node = layout.node;
    const open = layout.open[node];
    if (open.length < 2) return;
    const key = node + "/" + n;
    const s = sessions.get(key);
    if (s) s.dispose();
    sessions.delete(key);
    const at = open.indexOf(n);
    open.splice(at, 1);
    if (layout.active[node] === n) selectTerm(open[Math.min(at, open.length - 1)], true);
    else { saveLayout(); renderTerms(); }
  }

  function fitAll() {
    sessions.forEach((s) => s.fitNow());
  }

  // --- Ports and files -------------------------------------------------------------------------
  // Servers listening in the nodes, as links through Slipway's proxy (every 3 s while shown).
  async function pollPorts() {
    if (!pg || ended || document.hidden || body.classList.contains("pg-min")) return;
    const id = pg.id;
    try {
      const response = await request("GET", "/api/playgrounds/" + encodeURIComponent(id) + "/ports");
      if (response.ok && pg && pg.id === id && !ended) renderPorts(await response.json());
    } catch (e) { /* the next poll tries again */ }
  }

  function renderPorts(list) {
    const key = list.map((p) => p.node + ":" + p.port).join(" ");
    if (key === portsShown) return;
    portsShown = key;
    portsList.textContent = "";
    list.forEach((p) => {
      const link = el("a", "pg-port", (pg.nodes.length > 1 ? p.node + ":" : "") + p.port);
      link.href = p.url;
      link.target = "_blank";
      link.rel = "noopener";
      link.title = "Open port " + p.port + " of " + p.node + " in a new tab";
      portsList.append(link);
    });
    portsBar.hidden = list.length === 0;
  }

  function filesUrl(node, path) {
    return "/api/playgrounds/" + encodeURIComponent(pg.id) + "/nodes/" + encodeURIComponent(node) +
      "/files?path=" + encodeURIComponent(path);
  }

  // Files dropped on the terminals go to /root on the node shown.
  async function upload(file) {
    if (!pg || ended) return;
    const node = layout.node;
    const path = "/root/" + file.name;
    try {
      const response = await fetch(filesUrl(node, path), { method: "PUT", credentials: "same-origin", body: file });
      if (!response.ok) throw new Error(await errorOf(response));
      toast("Uploaded " + file.name + " to " + node + ":" + path);
    } catch (e) {
      toast(file.name + " was not uploaded: " + e.message);
    }
  }

  let lastDownload = "/root/";
  async function download() {
    if (!pg || ended) return;
    const node = layout.node;
    const path = window.prompt("Download which file from " + node + "? Give its full path.", lastDownload);
    if (!path) return;
    lastDownload = path;
    try {
      const response = await request("GET", filesUrl(node, path));
      if (!response.ok) throw new Error(await errorOf(response));
      const url = URL.createObjectURL(await response.blob());
      const a = el("a");
      a.href = url;
      a.download = path.split("/").pop() || "download";
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) {
      toast("Nothing was downloaded: " + e.message);
    }
  }

  const carriesFiles = (event) => event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files");
  screens.addEventListener("dragover", (event) => {
    if (!carriesFiles(event) || !pg || ended) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    screens.classList.add("pg-dropping");
  });
  screens.addEventListener("dragleave", (event) => {
    if (!screens.contains(event.relatedTarget)) screens.classList.remove("pg-dropping");
  });
  screens.addEventListener("drop", (event) => {
    screens.classList.remove("pg-dropping");
    if (!carriesFiles(event) || !pg || ended) return;
    event.preventDefault();
    Array.from(event.dataTransfer.files).forEach(upload);
  });

  // --- The playground's life ----------------------------------------------------------------
  function show(data) {
    teardown();
    pg = data;
    ended = false;
    if (shareBox) shareBox.checked = !!pg.shared;
    const names = pg.nodes.map((n) => n.name);
    const saved = store.get(TABS_KEY, null);
    layout = saved && saved.id === pg.id && saved.open ? saved : { id: pg.id, open: {}, active: {}, node: null };
    layout.active = layout.active || {};
    Object.keys(layout.open).forEach((k) => {
      const ns = Array.isArray(layout.open[k]) ? layout.open[k] : [];
      layout.open[k] = ns.filter((n, i) => Number.isInteger(n) && n >= 1 && n <= MAX_TERMINALS && ns.indexOf(n) === i);
      if (!names.includes(k)) delete layout.open[k];
    });
    if (!names.includes(layout.node)) layout.node = names[0];

    panel.hidden = false;
    panel.classList.remove("ended");
    endedBox.hidden = true;
    closeButton.classList.remove("confirm");
    closeButton.textContent = "Close playground";
    body.classList.add("pg-open");
    setMinimised(store.get(MIN_KEY, false) === true);
    renderNodes();
    selectNode(layout.node, false);
    tick();
    clearInterval(clock);
    clock = setInterval(tick, 15000);
    portsShown = null;
    renderPorts([]);
    pollPorts();
    portsTimer = setInterval(pollPorts, 3000);
    renderOpeners();
    document.dispatchEvent(new CustomEvent("slipway:playground", { detail: { id: pg.id, nodes: names } }));
  }

  function teardown() {
    sessions.forEach((s) => s.dispose());
    sessions.clear();
    clearInterval(clock);
    clearInterval(portsTimer);
  }

  // The playground is over (expired or removed elsewhere): say so in every terminal and
  // offer a new one. The screens stay, so their last output can still be read and copied.
  function finish(message) {
    if (!pg || ended) return;
    ended = true;
    sessions.forEach((s) => s.end(message));
    clearInterval(clock);
    clearInterval(portsTimer);
    portsBar.hidden = true;
    expiry.textContent = "Ended";
    extendButton.hidden = true;
    panel.classList.add("ended");
    endedText.textContent = message;
    endedBox.hidden = false;
    closeButton.textContent = "Dismiss";
    store.drop(TABS_KEY);
    renderTerms();
    renderOpeners();
    document.dispatchEvent(new CustomEvent("slipway:playground-ended"));
  }

  // Hides the panel without asking the server for anything.
  function dismiss() {
    teardown();
    pg = null;
    layout = null;
    ended = false;
    panel.hidden = true;
    body.classList.remove("pg-open", "pg-min");
    closeButton.textContent = "Close playground";
    store.drop(TABS_KEY);
    renderOpeners();
    document.dispatchEvent(new CustomEvent("slipway:playground-ended"));
  }

  let checking = false;
  async function checkGone() {
    if (!pg || ended || checking) return;
    checking = true;
    const id = pg.id;
    try {
      const response = await request("GET", "/api/playgrounds/mine");
      if (response.ok) {
        const data = await response.json();
        if (!data) {
          if (pg && pg.id === id) finish("This playground no longer exists.");
        } else if (pg && pg.id === id && data.id !== id) {
          finish("This playground was replaced by another one.");
        }
      }
    } catch (e) {
      /* the server is unreachable: keep trying to reconnect */
    } finally {
      checking = false;
    }
  }

  function open() {
    if (restoring) return restoring.then(() => open());
    if (pending) return pending.then(() => (pg && !ended ? reveal() : open()));
    if (pg && !ended) { reveal(); return Promise.resolve(); }
    const first = openers[0];
    const nodes = clamp(parseInt(first ? first.getAttribute("data-nodes") : "1", 10) || 1, 1, 5);
    pending = (async () => {
      const response = await request("POST", "/api/playgrounds", { nodes: nodes });
      if (!response.ok) throw new Error(await errorOf(response));
      show(await response.json());
      setMinimised(false);
    })().finally(() => {
      pending = null;
      renderOpeners();
    });
    renderOpeners();
    return pending;
  }

  async function close() {
    const id = pg && !ended ? pg.id : null;
    dismiss();
    if (!id) return;
    try {
      const response = await request("DELETE", "/api/playgrounds/" + encodeURIComponent(id));
      if (!response.ok && response.status !== 404) toast("The playground could not be removed: " + await errorOf(response));
    } catch (e) {
      toast("The playground could not be removed: the server did not answer.");
    }
  }

  async function extend() {
    if (!pg || ended) return;
    extendButton.disabled = true;
    try {
      const response = await request("POST", "/api/playgrounds/" + encodeURIComponent(pg.id) + "/extend");
      if (!response.ok) throw new Error(await errorOf(response));
      const data = await response.json();
      if (pg && data.id === pg.id) pg.expires_at = data.expires_at;
      tick();
    } catch (e) {
      toast("The playground could not be extended: " + e.message);
    } finally {
      extendButton.disabled = false;
    }
  }

  function tick() {
    if (!pg || ended) return;
    const left = Date.parse(pg.expires_at) - Date.now();
    if (Number.isNaN(left)) { expiry.textContent = ""; return; }
    const minutes = Math.ceil(left / 60000);
    if (left <= 0) expiry.textContent = "Ending…";
    else if (minutes < 60) expiry.textContent = minutes + " min left";
    else expiry.textContent = Math.floor(minutes / 60) + " h " + (minutes % 60) + " min left";
    expiry.classList.toggle("soon", left < 5 * 60000);
    expiry.title = "Ends at " + new Date(pg.expires_at).toLocaleTimeString();
    extendButton.hidden = left > 15 * 60000;
  }

  function reveal() {
    setMinimised(false);
    const s = activeSession();
    if (s) s.term.focus();
  }

  function setMinimised(on) {
    body.classList.toggle("pg-min", on);
    minButton.setAttribute("aria-pressed", String(on));
    minButton.title = on ? "Show the terminals" : "Minimise the terminals";
    minButton.setAttribute("aria-label", minButton.title);
    store.set(MIN_KEY, on);
    if (!on) requestAnimationFrame(fitAll);
  }

  function renderOpeners() {
    openers.forEach((b) => {
      if (!b.hasAttribute("data-label")) b.setAttribute("data-label", b.textContent);
      b.disabled = !!pending;
      b.classList.toggle("busy", !!pending);
      if (pending) b.textContent = "Starting the playground…";
      else if (pg && !ended) b.textContent = "Show the playground";
      else b.textContent = b.getAttribute("data-label");
    });
  }

  // Types a command into the active terminal, opening a playground first if need be.
  async function type(text) {
    if (!pg || ended) await open();
    const s = activeSession();
    if (!s) throw new Error("no terminal is open");
    const line = String(text).replace(/[\r\n]+$/, "").replace(/\r?\n/g, "\r") + "\r";
    reveal();
    s.input(encoder.encode(line));
  }

  // --- Wiring -----------------------------------------------------------------------------------
  openers.forEach((b) => b.addEventListener("click", () => {
    open().catch((e) => toast("No playground could be opened: " + e.message.replace(/\.$/, "") + "."));
  }));

  let confirmTimer = 0;
  panel.addEventListener("click", (event) => {
    const t = event.target.closest("button");
    if (!t || !panel.contains(t)) return;
    if (t.hasAttribute("data-pg-node")) selectNode(t.getAttribute("data-pg-node"), true);
    else if (t.hasAttribute("data-pg-term")) selectTerm(Number(t.getAttribute("data-pg-term")), true);
    else if (t.hasAttribute("data-pg-term-close")) closeTerm(Number(t.getAttribute("data-pg-term-close")));
    else if (t === newButton) newTerm();
    else if (t === extendButton) extend();
    else if (t === downloadButton) download();
    else if (t === minButton) setMinimised(!body.classList.contains("pg-min"));
    else if (t.hasAttribute("data-pg-font")) setFont(fontSize + Number(t.getAttribute("data-pg-font")));
    else if (t.hasAttribute("data-pg-restart")) {
      dismiss();
      open().catch((e) => toast("No playground could be opened: " + e.message.replace(/\.$/, "") + "."));
    } else if (t === closeButton) {
      if (ended) { dismiss(); return; }
      // Closing throws the nodes away: ask for a second click rather than a dialog.
      if (!t.classList.contains("confirm")) {
        t.classList.add("confirm");
        t.textContent = "Click again to remove it";
        clearTimeout(confirmTimer);
        confirmTimer = setTimeout(() => {
          t.classList.remove("confirm");
          t.textContent = ended ? "Dismiss" : "Close playground";
        }, 3500);
        return;
      }
      clearTimeout(confirmTimer);
      t.classList.remove("confirm");
      close();
    }
  });

  function setFont(size) {
    fontSize = clamp(size, 9, 28);
    store.set(FONT_KEY, fontSize);
    sessions.forEach((s) => { s.term.options.fontSize = fontSize; });
    fitAll();
  }

  // Run buttons (app.js) ask for a terminal with this event; cancelling it says "handled".
  document.addEventListener("slipway:run", (event) => {
    const detail = event.detail || {};
    if (typeof detail.command !== "string") return;
    event.preventDefault();
    type(detail.command).catch((e) => {
      if (typeof detail.fallback === "function") detail.fallback(e.message);
      else toast(e.message);
    });
  });

  // Screens follow the panel's size; the server hears of every change (onResize).
  let fitQueued = false;
  new ResizeObserver(() => {
    if (fitQueued) return;
    fitQueued = true;
    requestAnimationFrame(() => { fitQueued = false; fitAll(); });
  }).observe(screens);

  new MutationObserver(() => {
    const dark = themeName() === "dark";
    sessions.forEach((s) => {
      s.term.options.theme = termTheme();
      s.term.options.minimumContrastRatio = dark ? 1 : 4.5;
    });
  }).observe(root, { attributes: true, attributeFilter: ["data-theme"] });

  // Back online, or back to the tab: reconnect now rather than at the end of a backoff.
  const retryAll = () => sessions.forEach((s) => s.retryNow());
  window.addEventListener("online", retryAll);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) retryAll(); });

  // The panel's width (side by side) or height (stacked) is dragged with the handle on its
  // inner edge, or moved with the arrow keys, and remembered.
  const size = Object.assign({ width: null, height: null }, store.get(SIZE_KEY, {}));
  const stacked = () => window.matchMedia("(max-width: 899px)").matches;
  function applySize() {
    if (size.width) root.style.setProperty("--pg-width", size.width + "px");
    if (size.height) root.style.setProperty("--pg-height", size.height + "px");
  }
  function resizeTo(x, y) {
    if (stacked()) size.height = Math.round(clamp(window.innerHeight - y, 160, window.innerHeight - 120));
    else size.width = Math.round(clamp(window.innerWidth - x, 340, window.innerWidth - 340));
    applySize();
  }
  applySize();
  resizer.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    resizer.setPointerCapture(event.pointerId);
    body.classList.add("pg-resizing");
    const move = (e) => resizeTo(e.clientX, e.clientY);
    const up = () => {
      resizer.removeEventListener("pointermove", move);
      resizer.removeEventListener("pointerup", up);
      resizer.removeEventListener("pointercancel", up);
      body.classList.remove("pg-resizing");
      store.set(SIZE_KEY, size);
    };
    resizer.addEventListener("pointermove", move);
    resizer.addEventListener("pointerup", up);
    resizer.addEventListener("pointercancel", up);
  });
  resizer.addEventListener("keydown", (event) => {
    const r = panel.getBoundingClientRect();
    const step = event.shiftKey ? 120 : 40;
    if (stacked()) {
      if (event.key === "ArrowUp") resizeTo(0, r.top - step);
      else if (event.key === "ArrowDown") resizeTo(0, r.top + step);
      else return;
    } else {
      if (event.key === "ArrowLeft") resizeTo(r.left - step, 0);
      else if (event.key === "ArrowRight") resizeTo(r.left + step, 0);
      else return;
    }
    event.preventDefault();
    store.set(SIZE_KEY, size);
  });

  // For Run buttons, other scripts and the browser tests.
  window.slipwayPlayground = {
    open: open,
    close: close,
    type: type,
    active() {
      const s = activeSession();
      return s ? { term: s.term, node: s.node, n: s.n } : null;
    },
  };

  // A playground opened earlier (another lesson, a reload) comes back with its terminals.
  renderOpeners();
  restoring = request("GET", "/api/playgrounds/mine")
    .then((response) => (response.ok ? response.json() : null))
    .then((data) => { if (data && data.id && Array.isArray(data.nodes) && data.nodes.length) show(data); })
    .catch(() => { /* no playground to restore */ })
    .finally(() => { restoring = null; });
  // Sharing opens the port links to anyone who has them; the server keeps the choice.
  if (shareBox) {
    shareBox.addEventListener("change", async () => {
      if (!pg) return;
      const wanted = shareBox.checked;
      try {
        const response = await request("POST", "/api/playgrounds/" + encodeURIComponent(pg.id) + "/share", { shared: wanted });
        if (!response.ok) throw new Error(await errorOf(response));
        pg.shared = wanted;
        window.slipway.toast(wanted ? "Port links are shared: anyone with a link can open it." : "Port links are yours alone again.");
      } catch (e) {
        shareBox.checked = !wanted;
        window.slipway.toast("Sharing did not change: " + e.message);
      }
    });
  }
})();
