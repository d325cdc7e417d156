// Live grading on a lesson page: once the learner's playground is open, a socket brings
// each exercise's check results as the engine changes, and the checks tick themselves.
// Hints and the solution are fetched on request (the server records both).
(function () {
  "use strict";
  const section = document.querySelector("[data-grading]");
  if (!section) return;
  const socketPath = section.getAttribute("data-grading");
  const lessonPath = socketPath.replace(/\/grading$/, "");
  const note = section.querySelector("[data-grading-note]");
  let socket = null;
  let current = null;
  let retry = null;

  function exercise(id) {
    return Array.from(section.querySelectorAll(".exercise")).find((e) => e.getAttribute("data-exercise") === id) || null;
  }

  function say(text) {
    if (note) note.textContent = text;
  }

  function setStatus(ex, text) {
    const s = ex.querySelector("[data-status]");
    if (s) s.textContent = text;
  }

  function insertHtml(container, html) {
    // The server renders and sanitises lesson Markdown; this is the same HTML the page has.
    const div = document.createElement("div");
    div.className = "prose";
    div.innerHTML = html;
    container.appendChild(div);
  }

  function results(m) {
    const ex = exercise(m.exercise);
    if (!ex) return;
    const items = ex.querySelectorAll(".check");
    m.checks.forEach((c, i) => {
      const li = items[i];
      if (!li) return;
      li.setAttribute("data-state", c.passed ? "passed" : "failed");
      const d = li.querySelector(".check-detail");
      if (d) d.textContent = c.passed ? "" : c.detail;
      li.title = c.detail;
      // The author's hint for this check, while it fails (server-rendered lesson HTML).
      let h = li.querySelector(".check-hint");
      if (!c.passed && c.hint_html) {
        if (!h) {
          h = document.createElement("span");
          h.className = "check-hint prose";
          li.appendChild(h);
        }
        if (h.getAttribute("data-html") !== c.hint_html) {
          h.innerHTML = c.hint_html;
          h.setAttribute("data-html", c.hint_html);
        }
      } else if (h) {
        h.remove();
      }
    });
    const wasDone = ex.classList.contains("complete");
    ex.classList.toggle("complete", !!m.complete);
    ex.setAttribute("data-complete", m.complete ? "true" : "false");
    if (m.complete) {
      setStatus(ex, "Done: every check passes.");
      if (m.solution_html) showSolution(ex, m.solution_html);
      if (!wasDone && window.slipway && window.slipway.toast) {
        const title = ex.querySelector("h3");
        window.slipway.toast("Exercise done: " + (title ? title.textContent.trim() : m.exercise));
      }
    } else {
      const passed = m.checks.filter((c) => c.passed).length;
      setStatus(ex, passed + " of " + m.checks.length + " checks pass.");
    }
    offerHint(ex, !!m.offered_hint && !m.complete);
  }

  // While a hint's condition holds its button says so; once it stops, back to its label.
  function offerHint(ex, offered) {
    const button = ex.querySelector("[data-hint-button]");
    if (!button) return;
    button.classList.toggle("offered", offered);
    const shown = ex.querySelectorAll("[data-hints-list] .hint").length;
    button.textContent = offered ? "A hint may help" : shown ? "Show another hint" : "Show a hint";
  }

  function onMessage(event) {
    let m;
    try { m = JSON.parse(event.data); } catch (e) { return; }
    if (m.type === "results") {
      results(m);
    } else if (m.type === "setup") {
      const ex = exercise(m.exercise);
      if (ex && m.error) setStatus(ex, "This exercise could not be prepared in your playground: " + m.error);
    } else if (m.type === "ended") {
      say("The playground has ended: open a new one to be graded again.");
      stop();
    }
  }

  function stop() {
    clearTimeout(retry);
    if (socket) {
      socket.onclose = null;
      socket.close();
    }
    socket = null;
    current = null;
    section.classList.remove("grading-live");
  }

  function connect(id) {
    if (current === id && socket) return;
    stop();
    current = id;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(proto + "//" + location.host + socketPath + "?playground=" + encodeURIComponent(id));
    socket = ws;
    say("Preparing the exercises in your playground…");
    ws.onopen = () => {
      section.classList.add("grading-live");
      say("Checked live: each task ticks itself off as you do it in the terminal.");
    };
    ws.onmessage = onMessage;
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = null;
      section.classList.remove("grading-live");
      // Back when the server is: the playground may still be there.
      retry = setTimeout(() => { if (current === id) { current = null; connect(id); } }, 2000);
    };
  }

  document.addEventListener("slipway:playground", (e) => { if (e.detail && e.detail.id) connect(e.detail.id); });
  document.addEventListener("slipway:playground-ended", () => {
    stop();
    section.querySelectorAll(".check").forEach((li) => {
      li.setAttribute("data-state", "unknown");
      li.removeAttribute("title");
      const d = li.querySelector(".check-detail");
      if (d) d.textContent = "";
    });
    // "1 of 2 checks pass" no longer holds: nothing is being checked.
    section.querySelectorAll("[data-status]").forEach((s) => { s.textContent = ""; });
    section.querySelectorAll(".exercise").forEach((ex) => offerHint(ex, false));
    say("Open the playground: each task ticks itself off as you do it in the terminal.");
  });

  async function post(path) {
    const response = await fetch(path, { method: "POST", credentials: "same-origin", headers: { "Accept": "application/json" } });
    let data = null;
    try { data = await response.json(); } catch (e) { /* not JSON */ }
    if (!response.ok) throw new Error((data && data.message) || response.statusText);
    return data;
  }

  function showSolution(ex, html) {
    const box = ex.querySelector("[data-solution]");
    if (!box || !box.hidden) return;
    insertHtml(box, html);
    box.hidden = false;
    const b = ex.querySelector("[data-solution-button]");
    if (b) b.hidden = true;
  }

  section.addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    const ex = button.closest(".exercise");
    if (!ex) return;
    const base = lessonPath + "/exercises/" + encodeURIComponent(ex.getAttribute("data-exercise"));
    try {
      if (button.hasAttribute("data-hint-button")) {
        button.disabled = true;
        const h = await post(base + "/hint");
        const list = ex.querySelector("[data-hints-list]");
        const wrap = document.createElement("div");
        wrap.className = "hint";
        const title = document.createElement("p");
        title.className = "hint-title";
        title.textContent = "Hint " + h.index;
        wrap.appendChild(title);
        insertHtml(wrap, h.html);
        list.appendChild(wrap);
        button.disabled = false;
        button.textContent = "Show another hint";
        button.classList.remove("offered");
        if (h.remaining === 0) button.hidden = true;
      } else if (button.hasAttribute("data-solution-button")) {
        const s = await post(base + "/solution");
        showSolution(ex, s.html);
      }
    } catch (e) {
      button.disabled = false;
      if (window.slipway && window.slipway.toast) window.slipway.toast(e.message);
    }
  });
})();
