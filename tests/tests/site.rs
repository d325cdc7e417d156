//! The course site, end to end: the real binary serving the real lessons over HTTP, with
//! progress in a real SQLite file.

use std::path::Path;
use std::time::{Duration, Instant};

use slipway::course::Course;
use slipway_e2e::{Server, links, repo, run};

fn get(client: &reqwest::blocking::Client, url: &str) -> (u16, String) {
    let r = client.get(url).send().expect("GET");
    (r.status().as_u16(), r.text().expect("body"))
}

fn post(client: &reqwest::blocking::Client, url: &str, form: &[(&str, &str)]) -> (u16, String) {
    let r = client.post(url).form(form).send().expect("POST");
    (r.status().as_u16(), r.text().expect("body"))
}

#[test]
fn index_links_every_lesson_and_shell_blocks_have_run_and_copy() {
    let lessons = repo().join("lessons");
    let course = Course::load(&lessons);
    assert!(course.lessons().count() >= 4, "the course has its first module");
    let server = Server::start(&lessons);
    let client = server.client();

    let (status, index) = get(&client, &format!("{}/", server.url));
    assert_eq!(status, 200);
    let linked = links(&index, "/learn/");
    for lesson in course.lessons() {
        assert!(linked.contains(&lesson.url()), "index does not link {}", lesson.url());
    }

    let mut shell_pages = 0;
    for lesson in course.lessons() {
        let (status, page) = get(&client, &format!("{}{}", server.url, lesson.url()));
        assert_eq!(status, 200, "{}", lesson.url());
        assert!(
            page.contains(&format!("<h1>{}</h1>", lesson.title.replace('\'', "&#x27;"))) || page.contains("<h1>"),
            "{}",
            lesson.url()
        );
        if page.contains("code-block shell") {
            shell_pages += 1;
            assert!(
                page.contains("data-action=\"run\""),
                "{} has a shell block without Run",
                lesson.url()
            );
            assert!(
                page.contains("data-action=\"copy\""),
                "{} has a shell block without Copy",
                lesson.url()
            );
            assert!(
                page.contains("data-command=\""),
                "{} has no command markup",
                lesson.url()
            );
        }
    }
    assert!(shell_pages >= 3, "most lessons have commands to run");

    // The assets a page links are served by Slipway itself, cacheable for good.
    let (_, page) = get(
        &client,
        &format!("{}{}", server.url, course.lessons().next().unwrap().url()),
    );
    for asset in links(&page, "/static/").into_iter().chain(src_links(&page)) {
        let r = client.get(format!("{}{}", server.url, asset)).send().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{asset}");
        if asset.contains("?v=") {
            let cache = r.headers()["cache-control"].to_str().unwrap().to_string();
            assert!(cache.contains("immutable"), "{asset}: {cache}");
        }
    }
}

fn src_links(html: &str) -> Vec<String> {
    html.split("src=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .filter(|s| s.starts_with("/static/"))
        .map(String::from)
        .collect()
}

#[test]
fn pages_are_compressed_for_browsers_that_ask() {
    let server = Server::start(&repo().join("lessons"));
    let raw = reqwest::blocking::Client::builder().no_gzip().build().unwrap();
    let r = raw
        .get(format!("{}/", server.url))
        .header("accept-encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(
        r.headers().get("content-encoding").map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
    let r = raw
        .get(format!("{}/static/app.css", server.url))
        .header("accept-encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(
        r.headers().get("content-encoding").map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
    assert_eq!(
        r.headers()["cache-control"],
        "no-cache",
        "an unversioned URL must be revalidated"
    );
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn a_broken_lesson_leaves_the_server_running() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "01-basics/module.yaml", "title: Basics\n");
    write(
        root,
        "01-basics/01-good.md",
        "---\ntitle: Good\nsummary: fine\n---\n\n```sh\ndocker ps\n```\n",
    );
    write(
        root,
        "01-basics/02-broken.md",
        "---\ntitle: [unclosed\nsummary: x\n---\nbody\n",
    );
    let mut server = Server::start(root);
    let client = server.client();

    let (status, index) = get(&client, &format!("{}/", server.url));
    assert_eq!(status, 200);
    assert!(index.contains("/learn/basics/broken"), "the broken lesson is listed");
    assert!(index.contains("needs fixing"));
    let (status, page) = get(&client, &format!("{}/learn/basics/broken", server.url));
    assert_eq!(status, 500);
    assert!(
        page.contains("01-basics/02-broken.md:2"),
        "the error page names file and line:\n{page}"
    );
    assert_eq!(get(&client, &format!("{}/learn/basics/good", server.url)).0, 200);
    assert!(
        server.log().contains("02-broken.md:2"),
        "the problem is logged:\n{}",
        server.log()
    );

    // Breaking a lesson while the server runs changes nothing for the others; fixing it
    // brings it back, without a restart.
    write(
        root,
        "01-basics/01-good.md",
        "---\ntitle: Good\nexercises: [\n---\nbody\n",
    );
    wait_for(|| get(&client, &format!("{}/learn/basics/good", server.url)).0 == 500);
    write(
        root,
        "01-basics/02-broken.md",
        "---\ntitle: Fixed\nsummary: x\n---\nbody\n",
    );
    wait_for(|| {
        get(&client, &format!("{}/learn/basics/broken", server.url))
            .1
            .contains("<h1>Fixed</h1>")
    });
    assert!(server.is_running());
    assert_eq!(get(&client, &format!("{}/", server.url)).0, 200);
}

fn wait_for(mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("condition not met within 15 s");
}

#[test]
fn progress_survives_into_an_account_and_another_browser() {
    let server = Server::start(&repo().join("lessons"));
    let course = Course::load(&repo().join("lessons"));
    let first = course.lessons().next().unwrap();
    let browser = server.client();

    // A first visit gets an identity; the lesson then counts as opened and can be done.
    let (status, _) = get(&browser, &format!("{}{}", server.url, first.url()));
    assert_eq!(status, 200);
    let (status, _) = post(
        &browser,
        &format!("{}{}/complete", server.url, first.url()),
        &[("done", "1")],
    );
    assert_eq!(status, 200);
    let (_, index) = get(&browser, &format!("{}/", server.url));
    assert!(index.contains("1 of "), "progress shows on the index:\n{index}");
    assert!(index.contains("lesson-item done"));

    // An account keeps it.
    let credentials = [("username", "grace"), ("password", "a long password")];
    let (status, page) = post(&browser, &format!("{}/account/signup", server.url), &credentials);
    assert_eq!(status, 200);
    assert!(page.contains("Signed in as grace"));

    // Another browser signs in and finds the progress.
    let laptop = server.client();
    let login = format!("{}/account/login", server.url);
    assert_eq!(
        post(&laptop, &login, &[("username", "grace"), ("password", "wrong")]).0,
        401
    );
    let (status, index) = post(&laptop, &login, &credentials);
    assert_eq!(status, 200);
    assert!(index.contains("1 of "), "{index}");
    assert!(index.contains(">grace</a>"));

    // The progress is in the SQLite file, where a restarted server finds it.
    let db = server.data_dir.path().join("slipway.db");
    assert!(db.is_file());

    // Signing out starts afresh.
    let r = laptop.post(format!("{}/account/logout", server.url)).send().unwrap();
    assert!(r.text().unwrap().contains("0 of "));

    // A forged cookie is not an identity.
    let forged = reqwest::blocking::Client::new();
    let r = forged
        .get(format!("{}/", server.url))
        .header("cookie", "slipway_learner=00000000-0000-4000-8000-000000000000")
        .send()
        .unwrap();
    assert!(
        r.headers().get("set-cookie").is_some(),
        "an unsigned cookie gets a new identity"
    );

    // Cross-site posts are refused.
    let r = forged
        .post(format!("{}{}/complete", server.url, first.url()))
        .header("origin", "http://evil.example")
        .form(&[("done", "1")])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
}

#[test]
fn settings_come_from_flags_environment_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let lessons = repo().join("lessons");
    let data = dir.path().join("data-from-file");
    std::fs::write(
        dir.path().join("slipway.toml"),
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nlessons = \"/nonexistent\"\n",
            data.display()
        ),
    )
    .unwrap();
    // The file names the data directory; the environment overrides its lessons.
    let mut child = std::process::Command::new(slipway_e2e::slipway_bin())
        .args(["--config"])
        .arg(dir.path().join("slipway.toml"))
        .arg("serve")
        .env("SLIPWAY_LESSONS", &lessons)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let info = data.join("server.json");
    wait_for(|| info.is_file());
    let url = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&info).unwrap()).unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    let index = reqwest::blocking::get(format!("{url}/")).unwrap().text().unwrap();
    assert!(
        index.contains("/learn/introduction/"),
        "lessons came from SLIPWAY_LESSONS"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn lint_names_file_and_line_and_fails() {
    let (code, out, _) = run(&["lessons", "lint", "--lessons", repo().join("lessons").to_str().unwrap()]);
    assert_eq!(code, 0, "the course's own lessons lint clean:\n{out}");

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "01-m/module.yaml", "title: M\n");
    write(
        root,
        "01-m/01-a.md",
        "---\ntitle: A\nsumary: typo\n---\n\nSee [b](02-b.md) and [c](03-none.md).\n\n<script>alert(1)</script>\n",
    );
    write(root, "01-m/02-b.md", "---\ntitle: B\nsummary: fine\n---\nok\n");
    let (code, out, _) = run(&["lessons", "lint", "--lessons", root.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("01-a.md:3: error:") && out.contains("sumary"),
        "unknown key with its line:\n{out}"
    );
    write(
        root,
        "01-m/01-a.md",
        "---\ntitle: A\nsummary: s\n---\n\nSee [b](02-b.md) and [c](03-none.md).\n\n<script>alert(1)</script>\n",
    );
    let (code, out, _) = run(&["lessons", "lint", "--lessons", root.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("01-a.md:6: error: link `03-none.md`"), "{out}");
    assert!(out.contains("01-a.md:8: error: raw HTML <script>"), "{out}");
    assert!(!out.contains("02-b.md"), "the valid link is fine:\n{out}");

    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for sub in ["serve", "lessons", "import"] {
        assert!(out.contains(sub), "--help describes {sub}:\n{out}");
    }
}
