//! The server builds the catalog in the background at start and shows its progress on
//! the admin page, which only the holder of the admin token can see.

use std::time::{Duration, Instant};

use slipway_e2e::{Server, repo};

#[test]
fn the_catalog_builds_at_start_and_the_admin_page_shows_it() {
    let lessons = repo().join("lessons");
    let mut server = Server::start_with(&lessons, &[("SLIPWAY_CATALOG", "busybox")]);
    let token = server.admin_token();
    assert!(token.len() >= 32);
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Nobody else sees it.
    let r = client.get(format!("{}/admin/images.json", server.url)).send().unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .get(format!("{}/admin/images.json", server.url))
        .bearer_auth("0".repeat(token.len()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .get(format!("{}/admin/images", server.url))
        .header("accept", "text/html")
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/admin/login");

    // The build runs while the site answers, and ends ready with busybox in the store.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        assert!(server.is_running(), "{}", server.log());
        let r = client
            .get(format!("{}/admin/images.json", server.url))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().unwrap();
        if v["catalog"]["phase"] != "building" {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "still building after 60 s:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["catalog"]["phase"], "ready", "{status:#}\n{}", server.log());
    assert_eq!(status["catalog"]["built"], serde_json::json!(["busybox"]));
    let tags = status["images"][0]["tags"].to_string();
    assert!(tags.contains("busybox:latest"), "{status:#}");
    let lines = status["catalog"]["lines"].to_string();
    assert!(lines.contains("busybox-static"), "progress lines: {lines}");
    // And the log says so.
    assert!(server.log().contains("catalog: ready"), "{}", server.log());

    // Signing in with the token in the form gives a cookie for the page.
    let signed_in = reqwest::blocking::Client::builder().cookie_store(true).build().unwrap();
    let r = signed_in
        .post(format!("{}/admin/login", server.url))
        .form(&[("token", "wrong")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = signed_in
        .post(format!("{}/admin/login", server.url))
        .form(&[("token", token.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().unwrap();
    assert!(page.contains("Catalog: ready"), "{page}");
    assert!(page.contains("busybox:latest"), "{page}");
    assert!(page.contains("MB</td>"), "{page}");
}
