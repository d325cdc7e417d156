//! The pages' templates (askama, under `web/templates/`) and the data each one shows.

use askama::Template;
use askama_web::WebTemplate;

use crate::course::markdown::TocEntry;

/// What every page's frame needs: asset URLs and who is signed in.
pub struct Frame {
    pub css: String,
    pub highlight_css: String,
    pub theme_js: String,
    pub app_js: String,
    pub mermaid_js: Option<String>,
    pub username: Option<String>,
    /// Set on lesson pages that offer a playground; `None` elsewhere.
    pub playground: Option<PlaygroundUrls>,
}

/// The playground panel's stylesheet and scripts.
#[derive(Clone)]
pub struct PlaygroundUrls {
    pub xterm_css: String,
    pub xterm_js: String,
    pub fit_js: String,
    pub web_links_js: String,
    pub playground_js: String,
    pub grading_js: String,
}

pub struct ModuleCard {
    pub title: String,
    pub summary: String,
    pub lessons: Vec<LessonLink>,
    pub done: usize,
    pub total: usize,
    pub percent: usize,
}

pub struct LessonLink {
    pub url: String,
    pub title: String,
    pub summary: String,
    /// "done", "opened", "new" or "broken".
    pub status: &'static str,
    pub current: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "index.html")]
pub struct IndexPage {
    pub frame: Frame,
    pub modules: Vec<ModuleCard>,
    pub done: usize,
    pub total: usize,
    pub resume: Option<LessonLink>,
}

pub struct ExerciseView {
    pub id: String,
    pub title: String,
    pub task_html: String,
    /// Each check's description; the page ticks them as the grader reports.
    pub checks_html: Vec<String>,
    pub hints_total: usize,
    /// The hints this learner has revealed already.
    pub hints_shown: Vec<String>,
    pub has_solution: bool,
    /// Shown when the learner asked for it before or finished the exercise.
    pub solution_html: Option<String>,
    pub completed: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "lesson.html")]
pub struct LessonPage {
    pub frame: Frame,
    pub module_title: String,
    pub module_lessons: Vec<LessonLink>,
    pub title: String,
    pub summary: String,
    pub key: String,
    pub url: String,
    pub body_html: String,
    pub toc: Vec<TocEntry>,
    pub exercises: Vec<ExerciseView>,
    pub completed: bool,
    /// The page should report "opened" itself: the request carried no identity yet.
    pub beacon: bool,
    pub previous: Option<LessonLink>,
    pub next: Option<LessonLink>,
    /// Nodes in the lesson's playground; 0 offers none.
    pub playground_nodes: usize,
}

pub struct ProblemView {
    pub location: String,
    pub severity: &'static str,
    pub message: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "lesson_error.html")]
pub struct LessonErrorPage {
    pub frame: Frame,
    pub title: String,
    pub problems: Vec<ProblemView>,
}

#[derive(Template, WebTemplate)]
#[template(path = "account.html")]
pub struct AccountPage {
    pub frame: Frame,
    pub error: Option<String>,
    pub done: usize,
}

#[derive(Template, WebTemplate)]
#[template(path = "not_found.html")]
pub struct NotFoundPage {
    pub frame: Frame,
    pub what: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_login.html")]
pub struct AdminLoginPage {
    pub frame: Frame,
    pub error: Option<String>,
}

pub struct ImageRow {
    pub tags: String,
    pub id: String,
    pub created: String,
    pub size: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_images.html")]
pub struct AdminImagesPage {
    pub frame: Frame,
    pub status: crate::catalog::status::Snapshot,
    pub phase: String,
    pub building: bool,
    pub rows: Vec<ImageRow>,
}

#[derive(Template, WebTemplate)]
#[template(path = "progress.html")]
pub struct ProgressPage {
    pub frame: Frame,
    pub lessons: Vec<ProgressLesson>,
    pub done: usize,
    pub total: usize,
}

pub struct ProgressLesson {
    pub title: String,
    pub url: String,
    pub completed: bool,
    pub exercises: Vec<ProgressExercise>,
}

pub struct ProgressExercise {
    pub url: String,
    pub title: String,
    /// new, started or done.
    pub status: &'static str,
    pub started: String,
    pub took: String,
    pub hints: String,
    pub solution_viewed: bool,
}
