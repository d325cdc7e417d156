// Slipway's page behaviour: theme switch, Copy and Run on code blocks, diagrams, progress.
(function () {
  "use strict";

  var root = document.documentElement;

  function toast(message) {
    var el = document.getElementById("toast");
    if (!el) return;
    el.textContent = message;
    el.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { el.hidden = true; }, 2600);
  }

  // --- Theme -------------------------------------------------------------------------
  function currentTheme() {
    return root.getAttribute("data-theme") === "dark" ? "dark" : "light";
  }
  var toggle = document.getElementById("theme-toggle");
  if (toggle) {
    var label = function () { toggle.setAttribute("data-current", currentTheme()); };
    label();
    toggle.addEventListener("click", function () {
      var next = currentTheme() === "dark" ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { localStorage.setItem("slipway-theme", next); } catch (e) { /* not kept */ }
      label();
      drawDiagrams();
    });
  }

  // --- Copy and Run --------------------------------------------------------------------
  // The clipboard API exists only on secure origins; a workshop served over plain http on
  // a LAN still gets Copy through a hidden textarea.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) resolve(); else reject(new Error("copy refused"));
    });
  }

  function codeOf(block) {
    var pre = block.querySelector("pre.code");
    if (!pre) return "";
    var command = pre.getAttribute("data-command");
    return command !== null ? command : pre.textContent.replace(/\n$/, "");
  }

  function flash(button, text) {
    var original = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", original);
    button.textContent = text;
    button.classList.add("flash");
    setTimeout(function () { button.textContent = original; button.classList.remove("flash"); }, 1500);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest(".code-btn");
    if (!button) return;
    var block = button.closest(".code-block");
    var text = codeOf(block);
    var action = button.getAttribute("data-action");
    if (action === "copy") {
      copyText(text).then(function () { flash(button, "Copied"); },
                          function () { toast("Your browser refused the copy; select the text instead."); });
    } else if (action === "run") {
      // A terminal on the page (playground.js) handles this event and types the command.
      // Without one, or if one cannot be opened, the command goes to the clipboard instead.
      var fallback = function (why) {
        var lead = why ? "No terminal could be opened: " + why.replace(/\.$/, "") + "." : "No terminal is open yet.";
        copyText(text).then(function () { toast(lead + " The command was copied instead."); },
                            function () { toast(lead); });
      };
      var run = new CustomEvent("slipway:run", { detail: { command: text, fallback: fallback }, cancelable: true });
      var unhandled = document.dispatchEvent(run);
      if (unhandled) fallback();
      else flash(button, "Sent");
    }
  });

  // playground.js shares these rather than keeping copies of its own.
  window.slipway = { toast: toast, copyText: copyText };

  // --- Diagrams ------------------------------------------------------------------------
  var diagramsReady = false;
  function drawDiagrams() {
    if (!window.mermaid) return;
    var nodes = document.querySelectorAll("pre.mermaid");
    if (!nodes.length) return;
    nodes.forEach(function (n) {
      if (!n.hasAttribute("data-source")) n.setAttribute("data-source", n.textContent);
      else { n.removeAttribute("data-processed"); n.textContent = n.getAttribute("data-source"); }
    });
    window.mermaid.initialize({
      startOnLoad: false,
      securityLevel: "strict",
      theme: currentTheme() === "dark" ? "dark" : "default",
      fontFamily: "inherit"
    });
    window.mermaid.run({ nodes: nodes }).catch(function (e) {
      toast("A diagram could not be drawn: " + (e && e.message ? e.message : e));
    });
    diagramsReady = true;
  }
  window.addEventListener("load", function () { if (!diagramsReady) drawDiagrams(); });

  // --- Progress ------------------------------------------------------------------------
  // A page served to a first-time visitor reports the visit once it holds its cookie.
  var lesson = document.querySelector("main.lesson[data-beacon]");
  if (lesson) {
    fetch(lesson.getAttribute("data-url") + "/opened", { method: "POST", credentials: "same-origin" })
      .catch(function () { /* progress is a nicety; the lesson still reads */ });
  }
})();
