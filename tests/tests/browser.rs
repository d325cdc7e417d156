//! The course site in a real headless Chromium (Debian's `chromium`): pages load with no
//! console error, Copy puts the command on the clipboard, Run without a terminal says so,
//! diagrams are drawn, and the theme switches; a playground's terminal takes typed input,
//! Run buttons, a window resize and a reload; a graded exercise ticks its checks as the
//! learner types in that terminal, and untick them when the work is undone.

use std::ffi::OsStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::protocol::cdp::{Browser as Cdp, Log, Runtime};
use headless_chrome::{Browser, LaunchOptions, Tab};
use slipway_e2e::lab::LabServer;
use slipway_e2e::{Server, repo};

fn chromium() -> Browser {
    let path = std::env::var_os("SLIPWAY_CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&path).exists(),
        "no Chromium at {path:?}: the README's test command installs Debian's chromium"
    );
    let options = LaunchOptions::default_builder()
        .path(Some(path.into()))
        .headless(true)
        .sandbox(false)
        .window_size(Some((1280, 900)))
        .idle_browser_timeout(Duration::from_secs(120))
        .args(
            [
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
                "--disable-gpu",
            ]
            .iter()
            .map(OsStr::new)
            .collect(),
        )
        .build()
        .expect("launch options");
    Browser::new(options).expect("starting chromium")
}

/// Everything the page reports as an error: console.error, uncaught exceptions, failed
/// loads, CSP violations.
fn watch_errors(tab: &Tab) -> Arc<Mutex<Vec<String>>> {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sink = errors.clone();
    tab.add_event_listener(Arc::new(move |event: &Event| {
        let message = match event {
            Event::RuntimeConsoleAPICalled(e) if e.params.Type == Runtime::ConsoleAPICalledEventTypeOption::Error => {
                let args: Vec<String> = e
                    .params
                    .args
                    .iter()
                    .map(|a| {
                        a.description
                            .clone()
                            .or_else(|| a.value.as_ref().map(|v| v.to_string()))
                            .unwrap_or_default()
                    })
                    .collect();
                Some(format!("console.error: {}", args.join(" ")))
            }
            Event::RuntimeExceptionThrown(e) => Some(format!(
                "uncaught: {} {:?}",
                e.params.exception_details.text,
                e.params
                    .exception_details
                    .exception
                    .as_ref()
                    .and_then(|x| x.description.clone())
            )),
            Event::LogEntryAdded(e) if e.params.entry.level == Log::LogEntryLevel::Error => {
                Some(format!("log: {} {:?}", e.params.entry.text, e.params.entry.url))
            }
            _ => None,
        };
        if let Some(m) = message {
            sink.lock().unwrap().push(m);
        }
    }))
    .expect("event listener");
    tab.enable_log().expect("Log domain");
    tab.enable_runtime().expect("Runtime domain");
    errors
}

fn eval(tab: &Tab, js: &str) -> serde_json::Value {
    tab.evaluate(js, true)
        .expect("evaluate")
        .value
        .unwrap_or(serde_json::Value::Null)
}

fn wait_until(tab: &Tab, js: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if eval(tab, js) == serde_json::Value::Bool(true) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for `{js}`");
}

fn assert_no_errors(errors: &Mutex<Vec<String>>, when: &str) {
    let errors = errors.lock().unwrap();
    assert!(errors.is_empty(), "console errors {when}: {errors:#?}");
}

#[test]
fn index_lesson_copy_run_diagrams_and_theme_in_chromium() {
    let server = Server::start(&repo().join("lessons"));
    let browser = chromium();
    let tab = browser.new_tab().expect("tab");
    let errors = watch_errors(&tab);

    // The index.
    tab.navigate_to(&format!("{}/", server.url))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    tab.wait_for_element("ol.modules").expect("the module list");
    assert_no_errors(&errors, "on the index");

    // Open a lesson by clicking it.
    tab.wait_for_element(".lesson-item a").unwrap().click().unwrap();
    tab.wait_for_element("main.lesson").expect("a lesson page");
    wait_until(&tab, "document.querySelector('.code-block.shell') !== null");
    let lesson_url = eval(&tab, "location.pathname").as_str().unwrap().to_string();

    // Copy: the command, without prompts or output, lands on the clipboard.
    tab.call_method(Cdp::GrantPermissions {
        permissions: vec![
            Cdp::PermissionType::ClipboardReadWrite,
            Cdp::PermissionType::ClipboardSanitizedWrite,
        ],
        origin: Some(server.url.clone()),
        browser_context_id: None,
    })
    .expect("clipboard permission");
    tab.bring_to_front().unwrap();
    let command = eval(
        &tab,
        "document.querySelector('.code-block.shell pre').getAttribute('data-command')",
    );
    let command = command.as_str().expect("a shell block carries its command").to_string();
    assert!(!command.is_empty());
    tab.find_element(".code-block.shell [data-action=copy]")
        .unwrap()
        .click()
        .unwrap();
    wait_until(
        &tab,
        "document.querySelector('.code-block.shell [data-action=copy]').textContent === 'Copied'",
    );
    let clipboard = eval(&tab, "navigator.clipboard.readText()");
    assert_eq!(
        clipboard.as_str(),
        Some(command.as_str()),
        "Copy put the command on the clipboard"
    );

    // Run opens a playground first; this server has no node image (no catalog), so the
    // server answers 503 with its reason, which the page shows (and copies instead).
    tab.find_element(".code-block.shell [data-action=run]")
        .unwrap()
        .click()
        .unwrap();
    wait_until(&tab, "!document.getElementById('toast').hidden");
    let toast = eval(&tab, "document.getElementById('toast').textContent");
    let toast = toast.as_str().unwrap();
    assert!(
        toast.contains("No terminal") && toast.contains("node image is not ready"),
        "{toast}"
    );
    // Chromium logs the 503 itself; that one is expected.
    errors
        .lock()
        .unwrap()
        .retain(|e| !(e.contains("status of 503") && e.contains("/api/playgrounds")));
    assert_no_errors(&errors, "on a lesson after Copy and Run");

    // A lesson with a diagram: mermaid draws it, and draws it again in the dark theme.
    tab.navigate_to(&format!("{}/learn/introduction/containers-and-vms", server.url))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    wait_until(&tab, "document.querySelector('pre.mermaid svg') !== null");
    tab.find_element("#theme-toggle").unwrap().click().unwrap();
    wait_until(&tab, "document.documentElement.getAttribute('data-theme') === 'dark'");
    wait_until(&tab, "document.querySelector('pre.mermaid svg') !== null");
    let background = eval(&tab, "getComputedStyle(document.body).backgroundColor");
    assert_ne!(
        background.as_str(),
        Some("rgb(247, 248, 250)"),
        "the dark theme applies"
    );
    assert_no_errors(&errors, "drawing diagrams");

    // A tablet-sized window: nothing runs off the side.
    tab.set_bounds(headless_chrome::types::Bounds::Normal {
        left: None,
        top: None,
        width: Some(800.0),
        height: Some(1000.0),
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    wait_until(&tab, "document.documentElement.scrollWidth <= window.innerWidth + 1");

    // The first visit recorded the lesson as opened.
    tab.navigate_to(&format!("{}/", server.url))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    wait_until(
        &tab,
        &format!(
            "document.querySelector('.lesson-item.opened a[href=\"{lesson_url}\"], .lesson-item.done a[href=\"{lesson_url}\"]') !== null"
        ),
    );
    assert_no_errors(&errors, "at the end");
}

/// The text on the active terminal's screen (and scrollback), or "" before one is open.
fn terminal_text(tab: &Tab) -> String {
    eval(
        tab,
        "(() => { const a = window.slipwayPlayground && window.slipwayPlayground.active(); \
         if (!a) return ''; const b = a.term.buffer.active; const out = []; \
         for (let i = 0; i < b.length; i++) out.push(b.getLine(i).translateToString(true)); \
         return out.join('\\n'); })()",
    )
    .as_str()
    .unwrap_or_default()
    .to_string()
}

fn wait_for_text(tab: &Tab, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = terminal_text(tab);
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "no {needle:?} on the terminal:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn type_line(tab: &Tab, line: &str) {
    tab.find_element(".pg-panel .xterm").unwrap().click().unwrap();
    tab.type_str(line).unwrap();
    tab.press_key("Enter").unwrap();
}

#[test]
fn a_playground_terminal_types_runs_resizes_and_survives_a_reload() {
    let catalog = std::env::var_os("SLIPWAY_CATALOG_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/var/cache/slipway/catalog".into());
    let images = catalog.join("images");
    assert!(
        images.is_dir(),
        "no catalog at {}: run scripts/test.sh",
        catalog.display()
    );
    let cgroup_root = format!("slipway-test-browser-{}", std::process::id());
    let server = Server::start_with(
        &repo().join("lessons"),
        &[
            ("SLIPWAY_IMAGES", images.to_str().unwrap()),
            ("SLIPWAY_CGROUP_ROOT", &cgroup_root),
        ],
    );
    let browser = chromium();
    let tab = browser.new_tab().expect("tab");
    let errors = watch_errors(&tab);
    tab.navigate_to(&format!("{}/", server.url))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    tab.wait_for_element(".lesson-item a").unwrap().click().unwrap();
    tab.wait_for_element("main.lesson").expect("a lesson page");

    // Open a playground: a root shell on node1 appears beside the lesson.
    tab.wait_for_element("[data-playground-open]").unwrap().click().unwrap();
    wait_until(
        &tab,
        "!!(window.slipwayPlayground && window.slipwayPlayground.active())",
    );
    wait_for_text(&tab, "node1");

    // Typed input comes back as the shell's output.
    type_line(&tab, "echo marker-$((40+2))");
    wait_for_text(&tab, "marker-42");

    // Run types a lesson's command into the terminal.
    let command = eval(
        &tab,
        "document.querySelector('.code-block.shell pre').getAttribute('data-command')",
    );
    let command = command.as_str().unwrap().lines().next().unwrap().to_string();
    tab.find_element(".code-block.shell [data-action=run]")
        .unwrap()
        .click()
        .unwrap();
    wait_for_text(&tab, &command);

    // The terminal follows the window's size, and so does the shell's.
    let size = |tab: &Tab| {
        eval(
            tab,
            "(() => { const t = window.slipwayPlayground.active().term; return t.rows + ' ' + t.cols; })()",
        )
    };
    let before = size(&tab);
    tab.call_method(headless_chrome::protocol::cdp::Emulation::SetDeviceMetricsOverride {
        width: 1500,
        height: 1000,
        device_scale_factor: 1.0,
        mobile: false,
        scale: None,
        screen_width: None,
        screen_height: None,
        position_x: None,
        position_y: None,
        dont_set_visible_size: None,
        screen_orientation: None,
        viewport: None,
        display_feature: None,
        device_posture: None,
    })
    .unwrap();
    wait_until(
        &tab,
        &format!(
            "(() => {{ const t = window.slipwayPlayground.active().term; return (t.rows + ' ' + t.cols) !== {before}; }})()"
        ),
    );
    std::thread::sleep(Duration::from_millis(300));
    let after = size(&tab).as_str().unwrap().to_string();
    type_line(&tab, "echo size=$(stty size)=");
    wait_for_text(&tab, &format!("size={after}="));

    // A reload reattaches to the same shell, with the earlier output on screen.
    tab.reload(false, None).unwrap();
    tab.wait_for_element("main.lesson").unwrap();
    wait_until(
        &tab,
        "!!(window.slipwayPlayground && window.slipwayPlayground.active())",
    );
    wait_for_text(&tab, "marker-42");
    assert_no_errors(&errors, "with a playground open");

    // Closing removes it on the server.
    let id = eval(
        &tab,
        "fetch('/api/playgrounds/mine').then(r => r.json()).then(p => p.id)",
    );
    let client = server.client();
    let r = client
        .get(format!("{}/api/playgrounds", server.url))
        .bearer_auth(server.admin_token())
        .send()
        .unwrap();
    assert!(r.text().unwrap().contains(id.as_str().unwrap()));
    let r = client
        .delete(format!("{}/api/playgrounds/{}", server.url, id.as_str().unwrap()))
        .bearer_auth(server.admin_token())
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    for h in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        let _ = std::fs::remove_dir(h.path().join(&cgroup_root));
    }
}

/// The graded lesson of the test below: a volume and a file in it, a plain hint and one
/// offered while the volume exists but the exercise is not done.
const GRADED_LESSON: &str = r#"---
title: Keep notes
summary: A graded lesson for the browser test.
exercises:
  - id: keep-notes
    title: Notes that outlive their container
    task: Keep a note saying hello in a volume named `notes`.
    checks:
      - description: A volume named `notes` exists
        hint: Try `docker volume create`.
        volume: {name: notes}
      - description: Its file `hello.txt` says hello
        volume: {name: notes, file: {path: hello.txt, contains: hello}}
    hints:
      - Volumes are made by `docker volume create`.
      - text: Write the file from a container that mounts the volume, with `-v notes:/data`.
        when:
          volume: {name: notes}
    solution: |
      docker volume create notes
      docker run --rm -v notes:/data busybox sh -c 'echo hello > /data/hello.txt'
---
Volumes keep what containers write.
"#;

/// `data-state` of every check, in order.
fn check_states(tab: &Tab) -> Vec<String> {
    eval(
        tab,
        "JSON.stringify(Array.from(document.querySelectorAll('li.check')).map(li => li.getAttribute('data-state')))",
    )
    .as_str()
    .and_then(|s| serde_json::from_str(s).ok())
    .unwrap_or_default()
}

#[test]
fn a_graded_exercise_ticks_its_checks_as_the_learner_types() {
    let started = Instant::now();
    let lessons = tempfile::Builder::new()
        .prefix("slipway-test-browser-grading-")
        .tempdir()
        .unwrap();
    let module = lessons.path().join("01-notes");
    std::fs::create_dir_all(&module).unwrap();
    std::fs::write(module.join("module.yaml"), "title: Notes\n").unwrap();
    std::fs::write(module.join("01-keep-notes.md"), GRADED_LESSON).unwrap();
    let (code, out, err) = slipway_e2e::run(&["lessons", "lint", "--lessons", lessons.path().to_str().unwrap()]);
    assert_eq!(code, 0, "the test lesson must lint clean:\n{out}{err}");
    // Declared before the browser, so dropped after it; its drop removes every playground
    // and the cgroup root, also when the test fails.
    let lab = LabServer::start_on(lessons.path(), "");
    let server = &lab.server;
    let browser = chromium();
    let tab = browser.new_tab().expect("tab");
    let errors = watch_errors(&tab);
    tab.navigate_to(&format!("{}/learn/notes/keep-notes", server.url))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    tab.wait_for_element(".exercise[data-exercise=keep-notes]")
        .expect("the exercise");
    assert_eq!(
        check_states(&tab),
        ["unknown", "unknown"],
        "no results before a playground"
    );

    // Open the playground: the grading socket follows, and the first results say that
    // nothing is done yet.
    tab.wait_for_element("[data-playground-open]").unwrap().click().unwrap();
    wait_until(
        &tab,
        "!!(window.slipwayPlayground && window.slipwayPlayground.active())",
    );
    wait_for_text(&tab, "node1");
    wait_until(
        &tab,
        "document.querySelector('.exercises').classList.contains('grading-live')",
    );
    wait_until(
        &tab,
        "Array.from(document.querySelectorAll('li.check')).every(li => li.getAttribute('data-state') === 'failed')",
    );
    assert_eq!(check_states(&tab), ["failed", "failed"]);
    let detail = eval(&tab, "document.querySelector('li.check .check-detail').textContent");
    assert!(
        detail.as_str().is_some_and(|d| d.contains("notes")),
        "a failed check says why: {detail}"
    );
    let hint = eval(&tab, "document.querySelector('li.check .check-hint').textContent");
    assert!(
        hint.as_str().is_some_and(|h| h.contains("docker volume create")),
        "a failed check shows its author's hint: {hint}"
    );
    assert_eq!(
        eval(
            &tab,
            "document.querySelector('.exercise').classList.contains('complete')"
        ),
        serde_json::Value::Bool(false)
    );

    // A hint on request.
    tab.find_element("[data-hint-button]").unwrap().click().unwrap();
    wait_until(&tab, "document.querySelectorAll('.hints .hint').length === 1");
    let hint = eval(&tab, "document.querySelector('.hints .hint').textContent");
    assert!(
        hint.as_str()
            .is_some_and(|h| h.contains("Hint 1") && h.contains("docker volume create")),
        "{hint}"
    );
    wait_until(
        &tab,
        "document.querySelector('[data-hint-button]').textContent === 'Show another hint'",
    );

    // The learner types; the checks tick themselves, one by one, without a reload.
    type_line(&tab, "docker volume create notes");
    wait_until(
        &tab,
        "document.querySelector('li.check[data-check=\"0\"]').getAttribute('data-state') === 'passed'",
    );
    assert_eq!(check_states(&tab), ["passed", "failed"]);
    // The second hint's condition holds now: its button is highlighted.
    wait_until(
        &tab,
        "document.querySelector('[data-hint-button]').classList.contains('offered')",
    );

    type_line(
        &tab,
        "docker run --rm -v notes:/data busybox sh -c 'echo hello > /data/hello.txt'",
    );
    wait_until(
        &tab,
        "Array.from(document.querySelectorAll('li.check')).every(li => li.getAttribute('data-state') === 'passed') \
         && document.querySelector('.exercise').classList.contains('complete') \
         && document.querySelector('.exercise').getAttribute('data-complete') === 'true'",
    );
    // Done: the status says so, the hint is no longer pushed, and the solution is shown.
    let status = eval(&tab, "document.querySelector('.exercise-status').textContent");
    assert!(
        status.as_str().is_some_and(|s| s.contains("every check passes")),
        "{status}"
    );
    assert_eq!(
        eval(
            &tab,
            "document.querySelector('[data-hint-button]').classList.contains('offered')"
        ),
        serde_json::Value::Bool(false)
    );
    wait_until(
        &tab,
        "!document.querySelector('[data-solution]').hidden \
         && document.querySelector('[data-solution]').textContent.includes('docker volume create notes')",
    );
    // The hint button is back to asking, not pushing.
    wait_until(
        &tab,
        "document.querySelector('[data-hint-button]').textContent === 'Show another hint'",
    );
    // The page's styles apply: a done exercise keeps its block layout (the lesson's
    // `form.complete` is a flex row), with the theme's done colour on its edge and ticks.
    let look = eval(
        &tab,
        "(() => { const probe = document.createElement('span'); probe.style.color = 'var(--done)'; \
         document.body.appendChild(probe); const done = getComputedStyle(probe).color; probe.remove(); \
         const ex = getComputedStyle(document.querySelector('.exercise')); \
         const mark = getComputedStyle(document.querySelector('li.check .check-mark')); \
         return [ex.display, ex.borderLeftColor === done, mark.backgroundColor === done].join(' '); })()",
    );
    assert_eq!(look.as_str(), Some("block true true"), "the done exercise's look");

    // Undoing the work turns the checks back.
    type_line(&tab, "docker volume rm notes");
    wait_until(
        &tab,
        "Array.from(document.querySelectorAll('li.check')).every(li => li.getAttribute('data-state') === 'failed') \
         && !document.querySelector('.exercise').classList.contains('complete') \
         && document.querySelector('.exercise').getAttribute('data-complete') === 'false'",
    );
    assert_no_errors(&errors, "while grading");

    // Closing the playground removes it on the server.
    let id = eval(
        &tab,
        "fetch('/api/playgrounds/mine').then(r => r.json()).then(p => p.id)",
    );
    let id = id.as_str().expect("the learner's playground").to_string();
    let r = server
        .client()
        .delete(format!("{}/api/playgrounds/{id}", server.url))
        .bearer_auth(server.admin_token())
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    // The page notices: nothing is checked any more.
    wait_until(
        &tab,
        "Array.from(document.querySelectorAll('li.check')).every(li => li.getAttribute('data-state') === 'unknown') \
         && document.querySelector('.exercise-status').textContent === ''",
    );
    eprintln!("graded exercise in Chromium: {:.1} s", started.elapsed().as_secs_f64());
}
