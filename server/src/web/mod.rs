//! The HTTP face of Slipway: the course site.

mod account;
pub mod admin;
pub mod assets;
mod compress;
mod files;
mod grading;
pub mod identity;
mod pages;
mod playground;
mod progress;
mod proxy;
pub mod templates;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::{FromRef, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum_extra::extract::cookie::Key;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::catalog::Catalog;
use crate::catalog::status::{self, CatalogStatus};
use crate::config::Settings;
use crate::course::{self, Course};
use crate::playground::Playgrounds;
use crate::store::{Learner, Store};
use assets::Assets;
use templates::Frame;

/// Asset URLs, worked out once: every page links them.
#[derive(Clone)]
pub struct AssetUrls {
    css: String,
    highlight_css: String,
    theme_js: String,
    app_js: String,
    mermaid_js: Option<String>,
    playground: Option<templates::PlaygroundUrls>,
}

impl AssetUrls {
    fn new(assets: &Assets) -> Self {
        let mermaid = "vendor/mermaid/dist/mermaid.min.js";
        AssetUrls {
            css: assets.url("app.css"),
            highlight_css: assets.url("highlight.css"),
            theme_js: assets.url("theme.js"),
            app_js: assets.url("app.js"),
            mermaid_js: assets.contains(mermaid).then(|| assets.url(mermaid)),
            playground: {
                let v = [
                    "vendor/@xterm/xterm/css/xterm.css",
                    "vendor/@xterm/xterm/lib/xterm.js",
                    "vendor/@xterm/addon-fit/lib/addon-fit.js",
                    "vendor/@xterm/addon-web-links/lib/addon-web-links.js",
                ];
                v.iter().all(|p| assets.contains(p)).then(|| templates::PlaygroundUrls {
                    xterm_css: assets.url(v[0]),
                    xterm_js: assets.url(v[1]),
                    fit_js: assets.url(v[2]),
                    web_links_js: assets.url(v[3]),
                    playground_js: assets.url("playground.js"),
                    grading_js: assets.url("grading.js"),
                })
            },
        }
    }
}

/// What every handler may use, passed explicitly.
#[derive(Clone)]
pub struct AppState {
    pub course: Arc<ArcSwap<Course>>,
    pub store: Store,
    pub key: Key,
    pub assets: Arc<Assets>,
    pub urls: AssetUrls,
    /// The operator's token (see `admin`).
    pub admin_token: Arc<str>,
    /// The image store and its builder; `None` when it cannot be opened.
    pub catalog: Option<Arc<Catalog>>,
    pub catalog_status: Arc<CatalogStatus>,
    /// Learners' playgrounds; `None` when the runtime cannot run here.
    pub playgrounds: Option<Arc<Playgrounds>>,
}

impl FromRef<AppState> for Key {
    fn from_ref(state: &AppState) -> Key {
        state.key.clone()
    }
}

impl AppState {
    pub fn new(course: Course, store: Store, key: Key, admin_token: String, catalog: Option<Arc<Catalog>>) -> Self {
        let assets = Assets::load();
        let urls = AssetUrls::new(&assets);
        AppState {
            course: Arc::new(ArcSwap::from_pointee(course)),
            store,
            key,
            assets,
            urls,
            admin_token: admin_token.into(),
            catalog,
            catalog_status: Arc::new(CatalogStatus::default()),
            playgrounds: None,
        }
    }

    fn frame(&self, learner: &Learner) -> Frame {
        Frame {
            css: self.urls.css.clone(),
            highlight_css: self.urls.highlight_css.clone(),
            theme_js: self.urls.theme_js.clone(),
            app_js: self.urls.app_js.clone(),
            mermaid_js: None,
            username: learner.username.clone(),
            playground: None,
        }
    }
}

/// An internal error: logged with its context, answered with a plain 500.
pub struct AppError(anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for AppError {
    fn from(e: E) -> Self {
        AppError(e.into())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        tracing::error!(error = format!("{:#}", self.0), "request failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong on our side; it has been logged.",
        )
            .into_response()
    }
}

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'; \
base-uri 'none'; form-action 'self'; object-src 'none'";

pub fn router(state: AppState) -> Router {
    let pages = Router::new()
        .route("/", get(pages::index))
        .route("/learn/{module}/{lesson}", get(pages::lesson))
        .route("/learn/{module}/{lesson}/opened", post(pages::opened))
        .route("/learn/{module}/{lesson}/complete", post(pages::complete))
        .route("/learn/{module}/{lesson}/grading", get(grading::socket))
        .route(
            "/learn/{module}/{lesson}/exercises/{exercise}/hint",
            post(grading::hint),
        )
        .route(
            "/learn/{module}/{lesson}/exercises/{exercise}/solution",
            post(grading::solution),
        )
        .route("/progress", get(progress::show))
        .route("/account", get(account::show))
        .route("/account/signup", post(account::signup))
        .route("/account/login", post(account::login))
        .route("/account/logout", post(account::logout))
        .route(
            "/admin",
            get(|| async { axum::response::Redirect::to("/admin/images") }),
        )
        .route("/admin/login", get(admin::login_form).post(admin::login))
        .route("/admin/images", get(admin::images_page))
        .route("/admin/images.json", get(admin::images_json))
        .route("/api/playgrounds", get(playground::list).post(playground::create))
        .route("/api/playgrounds/mine", get(playground::mine))
        .route(
            "/api/playgrounds/{id}",
            get(playground::show).delete(playground::remove),
        )
        .route("/api/playgrounds/{id}/extend", post(playground::extend))
        .route("/api/playgrounds/{id}/share", post(playground::share))
        .route("/api/playgrounds/{id}/nodes/{node}/exec", post(playground::exec))
        .route(
            "/api/playgrounds/{id}/exercises/{module}/{lesson}/{exercise}",
            get(grading::evaluate_exercise),
        )
        .route(
            "/api/playgrounds/{id}/exercises/{module}/{lesson}/{exercise}/setup",
            post(grading::setup_exercise),
        )
        .route("/pg/{id}/nodes/{node}/terminals/{n}/ws", get(playground::terminal))
        .route("/api/playgrounds/{id}/ports", get(proxy::ports))
        .route(
            "/api/playgrounds/{id}/nodes/{node}/files",
            get(files::download).put(files::upload),
        )
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(state.key.clone(), identity::middleware))
        .layer(middleware::from_fn(same_origin))
        .layer(middleware::from_fn_with_state(
            compress::PageCache::new(64 << 20),
            compress::middleware,
        ));
    // Learners' own web servers (node names are `nodeN`, so these never meet the terminals'
    // `/pg/{id}/nodes/...`). Outside the page cache, which would hold whole pages back.
    let proxied = Router::new()
        .route("/pg/{id}/{node}/{port}", any(proxy::by_path))
        .route("/pg/{id}/{node}/{port}/", any(proxy::by_path))
        .route("/pg/{id}/{node}/{port}/{*rest}", any(proxy::by_path))
        .layer(middleware::from_fn_with_state(state.key.clone(), identity::middleware));
    let by_host = middleware::from_fn_with_state(state.clone(), proxy::by_host);
    let static_files = Router::new()
        .route("/static/{*path}", get(assets::serve))
        .with_state(state.assets.clone());
    Router::new()
        .route("/course-files/{*path}", get(pages::course_file))
        .route("/healthz", get(|| async { "ok" }))
        .merge(pages)
        .merge(proxied)
        .with_state(state)
        .merge(static_files)
        // Pages and assets compress themselves (cached); this covers whatever else is sent.
        .layer(CompressionLayer::new().quality(CompressionLevel::Fastest))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ))
        // `<id>-<node>-<port>.<host>` goes to a learner's server, past Slipway's headers.
        .layer(by_host)
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::new())
}

/// Refuses a state-changing request sent by another site's page. The cookie's SameSite=Lax
/// already keeps cross-site posts anonymous; this makes the refusal explicit.
async fn same_origin(request: Request, next: Next) -> Response {
    if !matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    ) {
        let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok());
        let origin = request
            .headers()
            .get(header::ORIGIN)
            .or_else(|| request.headers().get(header::REFERER))
            .and_then(|h| h.to_str().ok());
        if let (Some(host), Some(origin)) = (host, origin) {
            let origin_host = origin.split("://").nth(1).and_then(|rest| rest.split('/').next());
            if origin != "null" && origin_host != Some(host) {
                return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
            }
        }
    }
    next.run(request).await
}

/// Reloads the course when a lesson file changes, so authors see their edits on refresh.
fn watch_lessons(course: Arc<ArcSwap<Course>>) {
    tokio::spawn(async move {
        let root = course.load().root.clone();
        let mut seen = course::fingerprint(&root);
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let root2 = root.clone();
            let now = tokio::task::spawn_blocking(move || course::fingerprint(&root2))
                .await
                .unwrap_or(seen);
            if now == seen {
                continue;
            }
            seen = now;
            let root2 = root.clone();
            if let Ok(fresh) = tokio::task::spawn_blocking(move || Course::load(&root2)).await {
                log_problems(&fresh);
                tracing::info!(lessons = fresh.lessons().count(), "lessons changed; course reloaded");
                course.store(Arc::new(fresh));
            }
        }
    });
}

fn log_problems(course: &Course) {
    for p in course.all_problems() {
        match p.severity {
            course::Severity::Error => tracing::error!("{p}"),
            course::Severity::Warning => tracing::warn!("{p}"),
        }
    }
}

/// `slipway serve`: loads the course, opens the database and serves until SIGINT or SIGTERM.
pub async fn serve(settings: Settings) -> Result<()> {
    let started = std::time::Instant::now();
    let store = Store::open(&settings.data_dir).await?;
    let key = identity::load_key(&settings.data_dir)?;
    let lessons = settings.lessons.clone();
    let course = tokio::task::spawn_blocking(move || {
        course::highlight::warm_up();
        Course::load(&lessons)
    })
    .await?;
    log_problems(&course);
    tracing::info!(
        modules = course.modules.len(),
        lessons = course.lessons().count(),
        root = %course.root.display(),
        "course loaded"
    );
    let admin_token = admin::load_token(&settings.data_dir)?;
    let catalog = match Catalog::open(&settings.images, &settings.data_dir.join("runtime")) {
        Ok(c) => Some(Arc::new(c)),
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), images = %settings.images.display(), "cannot open the image store");
            None
        }
    };
    let mut state = AppState::new(course, store, key, admin_token.clone(), catalog.clone());
    if let Some(catalog) = &catalog {
        match Playgrounds::new(
            catalog.containers.clone(),
            catalog.store.clone(),
            &settings.data_dir,
            crate::catalog::cgroup_root(),
            settings.playgrounds.clone(),
        ) {
            Ok(pgs) => {
                pgs.adopt().await;
                pgs.reap_in_background();
                state.playgrounds = Some(pgs);
            }
            Err(e) => tracing::error!(error = format!("{e:#}"), "playgrounds are not available"),
        }
    }
    if let Some(catalog) = catalog {
        status::build_in_background(catalog, settings.catalog.clone(), state.catalog_status.clone());
    }
    watch_lessons(state.course.clone());
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let addr: SocketAddr = listener.local_addr()?;
    // Local tools (the CLI, the tests) find a running server through this file.
    let info_path = settings.data_dir.join("server.json");
    let info = serde_json::json!({
        "url": format!("http://{addr}"),
        "pid": std::process::id(),
        "admin_token": admin_token,
    });
    write_private(&info_path, &serde_json::to_vec_pretty(&info)?)
        .with_context(|| format!("writing {}", info_path.display()))?;
    tracing::info!(
        url = %format!("http://{addr}/"),
        ms = started.elapsed().as_millis() as u64,
        data_dir = %settings.data_dir.display(),
        "Slipway is serving"
    );
    // Terminal output comes in small pieces (a prompt after a line): without TCP_NODELAY
    // the second waits for the browser's delayed ACK, 40 ms on Linux.
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let served = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP");
    let _ = std::fs::remove_file(&info_path);
    tracing::info!("stopped");
    served
}

/// Writes a file only root can read (it holds the admin token), replacing any old one.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    std::fs::rename(&tmp, path)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
