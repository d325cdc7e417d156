//! The course: modules and lessons loaded from `lessons/<module>/<lesson>.md`.
//!
//! Loading never fails as a whole. A lesson whose header cannot be read is kept as a broken
//! lesson with its problems, so the server shows it as an error page and the linter names
//! the file and line; every other lesson is served as usual.

pub mod exercise;
pub mod frontmatter;
pub mod highlight;
pub mod lint;
pub mod markdown;
pub mod shell;

use std::collections::HashMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use frontmatter::{LessonMeta, ModuleMeta};
pub use markdown::Severity;
use markdown::{LinkTarget, Renderer, TocEntry};

/// A problem in a lesson file, at a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub line: usize,
    pub severity: Severity,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}:{}: {severity}: {}", self.path.display(), self.line, self.message)
    }
}

#[derive(Debug)]
pub struct Course {
    pub root: PathBuf,
    pub modules: Vec<Module>,
    /// Problems of the course as a whole (a missing lessons directory, say).
    pub problems: Vec<Problem>,
    index: HashMap<(String, String), (usize, usize)>,
}

#[derive(Debug)]
pub struct Module {
    pub slug: String,
    pub dir_name: String,
    pub title: String,
    pub summary: String,
    pub lessons: Vec<Lesson>,
    pub problems: Vec<Problem>,
}

#[derive(Debug)]
pub struct Lesson {
    pub slug: String,
    pub module_slug: String,
    pub path: PathBuf,
    pub title: String,
    pub summary: String,
    /// Nodes of the playground the lesson offers (0: none).
    pub playground_nodes: usize,
    /// `None` when the lesson is broken; its problems say why.
    pub body: Option<Arc<LessonBody>>,
    pub problems: Vec<Problem>,
}

#[derive(Debug)]
pub struct LessonBody {
    pub html: String,
    pub toc: Vec<TocEntry>,
    pub has_mermaid: bool,
    pub exercises: Vec<Exercise>,
}

#[derive(Debug)]
pub struct Exercise {
    pub id: String,
    pub title: String,
    pub task_html: String,
    pub hints: Vec<Hint>,
    /// The reference solution: a bash script for node1.
    pub solution: Option<String>,
    pub solution_html: Option<String>,
    /// Nodes its playground needs.
    pub nodes: usize,
    pub setup: exercise::Setup,
    pub checks: Vec<exercise::Check>,
    /// Each check's description, rendered.
    pub checks_html: Vec<String>,
    /// Each check's hint for when it fails, rendered.
    pub check_hints_html: Vec<Option<String>>,
}

#[derive(Debug)]
pub struct Hint {
    pub html: String,
    /// Offered by itself while this holds.
    pub when: Option<exercise::Check>,
}

impl Lesson {
    /// The key under which progress is stored: `module/lesson`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.module_slug, self.slug)
    }
    pub fn url(&self) -> String {
        format!("/learn/{}/{}", self.module_slug, self.slug)
    }
}

/// A lesson and where it sits in the course.
#[derive(Clone, Copy)]
pub struct Located<'c> {
    pub course: &'c Course,
    pub module: &'c Module,
    pub lesson: &'c Lesson,
    pub module_index: usize,
    pub lesson_index: usize,
}

impl<'c> Located<'c> {
    /// The lesson before this one in course order, crossing module boundaries.
    pub fn previous(&self) -> Option<&'c Lesson> {
        if self.lesson_index > 0 {
            return self.module.lessons.get(self.lesson_index - 1);
        }
        self.course.modules[..self.module_index]
            .iter()
            .rev()
            .find_map(|m| m.lessons.last())
    }

    pub fn next(&self) -> Option<&'c Lesson> {
        self.module.lessons.get(self.lesson_index + 1).or_else(|| {
            self.course.modules[self.module_index + 1..]
                .iter()
                .find_map(|m| m.lessons.first())
        })
    }
}

impl Course {
    pub fn find(&self, module: &str, lesson: &str) -> Option<Located<'_>> {
        let &(mi, li) = self.index.get(&(module.to_string(), lesson.to_string()))?;
        Some(Located {
            course: self,
            module: &self.modules[mi],
            lesson: &self.modules[mi].lessons[li],
            module_index: mi,
            lesson_index: li,
        })
    }

    pub fn module(&self, slug: &str) -> Option<&Module> {
        self.modules.iter().find(|m| m.slug == slug)
    }

    pub fn lessons(&self) -> impl Iterator<Item = &Lesson> {
        self.modules.iter().flat_map(|m| m.lessons.iter())
    }

    /// Every problem, course-wide, in file and line order.
    pub fn all_problems(&self) -> Vec<&Problem> {
        let mut all: Vec<&Problem> = self
            .problems
            .iter()
            .chain(self.modules.iter().flat_map(|m| {
                m.problems
                    .iter()
                    .chain(m.lessons.iter().flat_map(|l| l.problems.iter()))
            }))
            .collect();
        all.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
        all
    }

    /// Loads the course under `root`. Problems are recorded, never raised.
    pub fn load(root: &Path) -> Course {
        let mut course = Course {
            root: root.to_path_buf(),
            modules: Vec::new(),
            problems: Vec::new(),
            index: HashMap::new(),
        };
        let dirs = match sorted_entries(root) {
            Ok(entries) => entries.into_iter().filter(|p| p.is_dir()).collect::<Vec<_>>(),
            Err(e) => {
                course.problems.push(Problem {
                    path: root.to_path_buf(),
                    line: 1,
                    severity: Severity::Error,
                    message: format!("cannot read the lessons directory: {e}"),
                });
                return course;
            }
        };

        // First pass: read headers, so that links between lessons can be resolved.
        let mut drafts: Vec<(i64, ModuleDraft)> = dirs
            .iter()
            .map(|dir| ModuleDraft::read(dir))
            .map(|d| (d.order, d))
            .collect();
        drafts.sort_by(|a, b| (a.0, &a.1.dir_name).cmp(&(b.0, &b.1.dir_name)));
        let mut urls: HashMap<PathBuf, String> = HashMap::new();
        let mut module_slugs: HashMap<String, PathBuf> = HashMap::new();
        for (_, draft) in drafts.iter_mut() {
            if let Some(first) = module_slugs.get(&draft.slug) {
                draft.problems.push(Problem {
                    path: draft.dir.clone(),
                    line: 1,
                    severity: Severity::Error,
                    message: format!("module `{}` has the same URL as {}", draft.slug, first.display()),
                });
                draft.slug = format!("{}-{}", draft.slug, draft.dir_name);
            }
            module_slugs.insert(draft.slug.clone(), draft.dir.clone());
            for lesson in &draft.lessons {
                urls.insert(
                    PathBuf::from(&draft.dir_name).join(&lesson.file_name),
                    format!("/learn/{}/{}", draft.slug, lesson.slug),
                );
            }
        }

        // Second pass: render.
        for (mi, (_, draft)) in drafts.into_iter().enumerate() {
            let module_slug = draft.slug.clone();
            let mut module = Module {
                slug: draft.slug,
                dir_name: draft.dir_name.clone(),
                title: draft.title,
                summary: draft.summary,
                lessons: Vec::new(),
                problems: draft.problems,
            };
            for (li, lesson) in draft.lessons.into_iter().enumerate() {
                let resolve = |dest: &str| resolve_link(root, &draft.dir_name, dest, &urls);
                let rendered = lesson.render(&module_slug, &resolve);
                course
                    .index
                    .insert((module_slug.clone(), rendered.slug.clone()), (mi, li));
                module.lessons.push(rendered);
            }
            course.modules.push(module);
        }
        course
    }
}

/// A module read but not yet rendered.
struct ModuleDraft {
    dir: PathBuf,
    dir_name: String,
    slug: String,
    title: String,
    summary: String,
    order: i64,
    lessons: Vec<LessonDraft>,
    problems: Vec<Problem>,
}

struct LessonDraft {
    path: PathBuf,
    file_name: String,
    slug: String,
    order: i64,
    text: String,
    header: Result<(LessonMeta, usize, usize), Problem>, // (meta, yaml line, body line)
    problems: Vec<Problem>,
}

impl ModuleDraft {
    fn read(dir: &Path) -> ModuleDraft {
        let dir_name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut problems = Vec::new();
        let meta_path = dir.join("module.yaml");
        let meta: Option<ModuleMeta> = match std::fs::read_to_string(&meta_path) {
            Ok(text) => match frontmatter::parse_yaml::<ModuleMeta>(&text, 1) {
                Ok(m) => Some(m),
                Err(e) => {
                    problems.push(Problem {
                        path: meta_path.clone(),
                        line: e.line,
                        severity: Severity::Error,
                        message: e.message,
                    });
                    None
                }
            },
            Err(_) => {
                problems.push(Problem {
                    path: meta_path.clone(),
                    line: 1,
                    severity: Severity::Warning,
                    message: "no module.yaml: the module's title is made from its directory name".into(),
                });
                None
            }
        };
        let slug = slug_of(&dir_name);
        let order = meta
            .as_ref()
            .and_then(|m| m.order)
            .or_else(|| numeric_prefix(&dir_name))
            .unwrap_or(i64::MAX);
        let (title, summary) = match meta {
            Some(m) => (m.title, m.summary),
            None => (title_from_slug(&slug), String::new()),
        };
        let mut lessons: Vec<LessonDraft> = sorted_entries(dir)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "md"))
            .map(|p| LessonDraft::read(&p))
            .collect();
        lessons.sort_by(|a, b| (a.order, &a.file_name).cmp(&(b.order, &b.file_name)));
        let mut seen: HashMap<String, PathBuf> = HashMap::new();
        for lesson in &mut lessons {
            if let Some(first) = seen.get(&lesson.slug) {
                lesson.problems.push(Problem {
                    path: lesson.path.clone(),
                    line: 1,
                    severity: Severity::Error,
                    message: format!("lesson URL `{}` is already taken by {}", lesson.slug, first.display()),
                });
                lesson.slug = lesson.file_name.trim_end_matches(".md").to_string();
            }
            seen.insert(lesson.slug.clone(), lesson.path.clone());
        }
        ModuleDraft {
            dir: dir.to_path_buf(),
            dir_name,
            slug,
            title,
            summary,
            order,
            lessons,
            problems,
        }
    }
}

impl LessonDraft {
    fn read(path: &Path) -> LessonDraft {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = file_name.trim_end_matches(".md");
        let slug = slug_of(stem);
        let problem = |line: usize, message: String| Problem {
            path: path.to_path_buf(),
            line,
            severity: Severity::Error,
            message,
        };
        let text = match std::fs::read(path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(t) => t,
                Err(e) => {
                    let bytes = e.into_bytes();
                    let valid = std::str::from_utf8(&bytes)
                        .map(|_| 0)
                        .unwrap_or_else(|e| e.valid_up_to());
                    let line = 1 + bytes[..valid].iter().filter(|&&b| b == b'\n').count();
                    return LessonDraft::broken(
                        path,
                        file_name,
                        slug,
                        problem(line, "the file is not valid UTF-8".into()),
                    );
                }
            },
            Err(e) => {
                return LessonDraft::broken(path, file_name, slug, problem(1, format!("cannot read the file: {e}")));
            }
        };
        let header = frontmatter::split(&text)
            .map_err(|e| problem(e.line, e.message))
            .and_then(|s| {
                frontmatter::parse_yaml::<LessonMeta>(s.yaml, s.yaml_line)
                    .map(|m| (m, s.yaml_line, s.body_line))
                    .map_err(|e| problem(e.line, format!("in the lesson header: {}", e.message)))
            });
        let order = header
            .as_ref()
            .ok()
            .and_then(|(m, ..)| m.order)
            .or_else(|| numeric_prefix(stem))
            .unwrap_or(i64::MAX);
        LessonDraft {
            path: path.to_path_buf(),
            file_name,
            slug,
            order,
            text,
            header,
            problems: Vec::new(),
        }
    }

    fn broken(path: &Path, file_name: String, slug: String, problem: Problem) -> LessonDraft {
        LessonDraft {
            path: path.to_path_buf(),
            file_name,
            slug,
            order: i64::MAX,
            text: String::new(),
            header: Err(problem),
            problems: Vec::new(),
        }
    }

    fn render(self, module_slug: &str, resolve: &dyn Fn(&str) -> LinkTarget) -> Lesson {
        let mut problems = self.problems;
        let finding = |f: markdown::Finding| Problem {
            path: self.path.clone(),
            line: f.line,
            severity: f.severity,
            message: f.message,
        };
        let (meta, yaml_line, body_line) = match self.header {
            Ok(h) => h,
            Err(p) => {
                problems.insert(0, p);
                return Lesson {
                    title: title_from_slug(&self.slug),
                    slug: self.slug,
                    module_slug: module_slug.to_string(),
                    path: self.path,
                    summary: String::new(),
                    playground_nodes: 1,
                    body: None,
                    problems,
                };
            }
        };
        let body_text = frontmatter::split(&self.text).map(|s| s.body).unwrap_or_default();
        let body = markdown::render(
            body_text,
            &Renderer {
                resolve,
                first_line: body_line,
            },
        );
        problems.extend(body.findings.into_iter().map(finding));
        if meta.title.trim().is_empty() {
            problems.push(Problem {
                path: self.path.clone(),
                line: yaml_line,
                severity: Severity::Error,
                message: "the title is empty".into(),
            });
        }
        if meta.summary.trim().is_empty() {
            problems.push(Problem {
                path: self.path.clone(),
                line: yaml_line,
                severity: Severity::Warning,
                message: "no summary: the course index shows an empty line".into(),
            });
        }
        if let Some(n) = meta.playground
            && n > crate::playground::Limits::default().max_nodes
        {
            problems.push(Problem {
                path: self.path.clone(),
                line: yaml_line,
                severity: Severity::Error,
                message: format!(
                    "playground: {n}: a playground has at most {} nodes (0 offers none)",
                    crate::playground::Limits::default().max_nodes
                ),
            });
        }
        let mut exercises = Vec::new();
        let mut ids: HashMap<String, ()> = HashMap::new();
        for ex in &meta.exercises {
            if ex.id.is_empty() || !ex.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                problems.push(Problem {
                    path: self.path.clone(),
                    line: yaml_line,
                    severity: Severity::Error,
                    message: format!("exercise id `{}` must be letters, digits, `-` and `_`", ex.id),
                });
            }
            if ids.insert(ex.id.clone(), ()).is_some() {
                problems.push(Problem {
                    path: self.path.clone(),
                    line: yaml_line,
                    severity: Severity::Error,
                    message: format!("two exercises have the id `{}`", ex.id),
                });
            }
            if ex.task.trim().is_empty() {
                problems.push(Problem {
                    path: self.path.clone(),
                    line: yaml_line,
                    severity: Severity::Error,
                    message: format!("exercise `{}` has no task", ex.id),
                });
            }
            let nodes = ex.nodes.unwrap_or(1);
            let ex_line = exercise_line(&self.text, &ex.id).unwrap_or(yaml_line);
            let mut invalid = |message: String| {
                problems.push(Problem {
                    path: self.path.clone(),
                    line: ex_line,
                    severity: Severity::Error,
                    message: format!("exercise `{}`: {message}", ex.id),
                })
            };
            let max_nodes = crate::playground::Limits::default().max_nodes;
            if nodes == 0 || nodes > max_nodes {
                invalid(format!("nodes: {nodes}: an exercise needs 1 to {max_nodes} nodes"));
            }
            let mut checks = Vec::new();
            for (i, spec) in ex.checks.iter().enumerate() {
                match exercise::validate(spec, nodes.max(1), true) {
                    Ok(c) => checks.push(c),
                    Err(e) => invalid(format!("check {}: {e}", i + 1)),
                }
            }
            let mut hints = Vec::new();
            for (i, h) in ex.hints.iter().enumerate() {
                let when = match h {
                    exercise::HintSpec::Offered { when, .. } => match exercise::validate(when, nodes.max(1), false) {
                        Ok(c) => Some(c),
                        Err(e) => {
                            invalid(format!("hint {}: `when`: {e}", i + 1));
                            None
                        }
                    },
                    exercise::HintSpec::Text(_) => None,
                };
                hints.push((h.text().to_string(), when));
            }
            for f in &ex.setup.files {
                if !f.path.starts_with('/') {
                    invalid(format!("setup file `{}` must be an absolute path in the node", f.path));
                }
                if f.mode().is_none() {
                    invalid(format!("setup file `{}`: mode must be octal, such as \"0755\"", f.path));
                }
                if let Some(n) = &f.node
                    && !(1..=nodes).any(|i| n == &format!("node{i}"))
                {
                    invalid(format!(
                        "setup file `{}`: node `{n}` is not one of the exercise's nodes",
                        f.path
                    ));
                }
            }
            if !ex.checks.is_empty() && ex.solution.is_none() {
                invalid("a graded exercise needs a `solution`, which lesson CI replays".into());
            }
            let mut part = |text: &str| {
                let r = markdown::render(
                    text,
                    &Renderer {
                        resolve,
                        first_line: yaml_line,
                    },
                );
                problems.extend(r.findings.into_iter().map(finding));
                r.html
            };
            let checks_html = checks.iter().map(|c| part(&c.description)).collect();
            let check_hints_html = checks.iter().map(|c| c.hint.as_deref().map(&mut part)).collect();
            exercises.push(Exercise {
                id: ex.id.clone(),
                title: ex.title.clone(),
                task_html: part(&ex.task),
                hints: hints
                    .into_iter()
                    .map(|(text, when)| Hint {
                        html: part(&text),
                        when,
                    })
                    .collect(),
                solution: ex.solution.clone(),
                solution_html: ex
                    .solution
                    .as_ref()
                    .map(|s| part(&format!("```sh\n{}\n```\n", s.trim_end()))),
                nodes,
                setup: ex.setup.clone(),
                checks,
                checks_html,
                check_hints_html,
            });
        }
        // The playground beside the lesson has room for its largest exercise.
        let playground_nodes = match meta.playground {
            Some(0) => 0,
            n => exercises.iter().map(|e| e.nodes).fold(n.unwrap_or(1), usize::max),
        };
        Lesson {
            slug: self.slug,
            module_slug: module_slug.to_string(),
            path: self.path,
            title: meta.title,
            summary: meta.summary,
            playground_nodes,
            body: Some(Arc::new(LessonBody {
                html: body.html,
                toc: body.toc,
                has_mermaid: body.has_mermaid,
                exercises,
            })),
            problems,
        }
    }
}

/// The line of `id: <id>` in a lesson file, where an exercise's problems are reported.
fn exercise_line(text: &str, id: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start().trim_start_matches("- ").trim();
            l.strip_prefix("id:")
                .is_some_and(|v| v.trim().trim_matches(['"', '\'']) == id)
        })
        .map(|i| i + 1)
}

/// Directory entries sorted by name, hidden ones skipped.
fn sorted_entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    entries.sort();
    Ok(entries)
}

/// "01-introduction" orders as 1.
fn numeric_prefix(name: &str) -> Option<i64> {
    let digits: String = name.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() { None } else { digits.parse().ok() }
}

/// "01-introduction" is served as "introduction".
pub fn slug_of(name: &str) -> String {
    let rest = name.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.strip_prefix(['-', '_', '.']).unwrap_or(rest);
    let slug = markdown::slugify(if rest.is_empty() { name } else { rest });
    if slug.is_empty() { "untitled".into() } else { slug }
}

fn title_from_slug(slug: &str) -> String {
    let words = slug.replace('-', " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    }
}

/// Characters left alone in a URL path segment.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Resolves a link written in a lesson of `module_dir` against the course.
fn resolve_link(root: &Path, module_dir: &str, dest: &str, urls: &HashMap<PathBuf, String>) -> LinkTarget {
    if dest.is_empty() || dest.starts_with('#') || dest.starts_with('/') || dest.starts_with("//") {
        return LinkTarget::Keep;
    }
    if let Some((scheme, _)) = dest.split_once(':')
        && !scheme.contains('/')
    {
        return LinkTarget::Keep;
    }
    let (path_part, fragment) = match dest.find(['#', '?']) {
        Some(i) => dest.split_at(i),
        None => (dest, ""),
    };
    let decoded = percent_encoding::percent_decode_str(path_part).decode_utf8_lossy();
    // Lexical resolution inside the course: `..` may not climb out of the lessons directory.
    let mut rel = PathBuf::from(module_dir);
    for component in Path::new(decoded.as_ref()).components() {
        match component {
            Component::Normal(c) => rel.push(c),
            Component::ParentDir => {
                if !rel.pop() {
                    return LinkTarget::Missing(format!("link `{dest}` points outside the course"));
                }
            }
            Component::CurDir => {}
            _ => return LinkTarget::Missing(format!("link `{dest}` is not a relative path")),
        }
    }
    if rel.extension().is_some_and(|e| e == "md") {
        return match urls.get(&rel) {
            Some(url) => LinkTarget::Rewrite(format!("{url}{fragment}")),
            None => LinkTarget::Missing(format!("link `{dest}` names no lesson of this course")),
        };
    }
    if root.join(&rel).is_file() {
        let encoded: Vec<String> = rel
            .components()
            .map(|c| utf8_percent_encode(&c.as_os_str().to_string_lossy(), PATH_SEGMENT).to_string())
            .collect();
        LinkTarget::Rewrite(format!("/course-files/{}{fragment}", encoded.join("/")))
    } else {
        LinkTarget::Missing(format!("link `{dest}` names a file that does not exist"))
    }
}

/// A cheap summary of the lesson tree (names, sizes, modification times) that changes
/// whenever a file does; the server polls it to reload edited lessons.
pub fn fingerprint(root: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = sorted_entries(&dir) else {
            continue;
        };
        for path in entries {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            path.hash(&mut hasher);
            meta.len().hash(&mut hasher);
            meta.modified().ok().hash(&mut hasher);
            if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn loads_orders_links_and_keeps_broken_lessons() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "02-images/module.yaml", "title: Images\norder: 2\n");
        write(
            root,
            "02-images/01-layers.md",
            "---\ntitle: Layers\nsummary: s\n---\n## One\n\nSee [intro](../01-intro/02-what.md#why) and ![d](img/d.png).\n",
        );
        write(root, "02-images/img/d.png", "png");
        write(root, "01-intro/module.yaml", "title: Intro\n");
        write(
            root,
            "01-intro/02-what.md",
            "---\ntitle: What\nsummary: s\n---\n[gone](nothere.md)\n",
        );
        write(root, "01-intro/01-broken.md", "---\ntitle: [oops\n---\nbody\n");
        let course = Course::load(root);
        let slugs: Vec<_> = course.modules.iter().map(|m| m.slug.as_str()).collect();
        assert_eq!(slugs, ["intro", "images"]);
        let intro = &course.modules[0];
        assert_eq!(intro.lessons[0].slug, "broken");
        assert!(intro.lessons[0].body.is_none());
        assert_eq!(intro.lessons[0].problems[0].line, 2);
        let layers = course.find("images", "layers").unwrap();
        let html = &layers.lesson.body.as_ref().unwrap().html;
        assert!(html.contains("href=\"/learn/intro/what#why\""), "{html}");
        assert!(html.contains("src=\"/course-files/02-images/img/d.png\""), "{html}");
        assert_eq!(layers.previous().unwrap().slug, "what");
        assert!(layers.next().is_none());
        let problems = course.all_problems();
        assert!(
            problems.iter().any(|p| p.message.contains("nothere.md") && p.line == 5),
            "{problems:?}"
        );
    }

    #[test]
    fn lessons_say_how_many_nodes_their_playground_has() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "m/module.yaml", "title: M\n");
        write(
            root,
            "m/01-two.md",
            "---\ntitle: Two\nsummary: s\nplayground: 2\n---\ntext\n",
        );
        write(
            root,
            "m/02-none.md",
            "---\ntitle: None\nsummary: s\nplayground: 0\n---\ntext\n",
        );
        write(root, "m/03-default.md", "---\ntitle: Default\nsummary: s\n---\ntext\n");
        write(
            root,
            "m/04-many.md",
            "---\ntitle: Many\nsummary: s\nplayground: 9\n---\ntext\n",
        );
        let course = Course::load(root);
        let nodes = |slug: &str| course.find("m", slug).unwrap().lesson.playground_nodes;
        assert_eq!((nodes("two"), nodes("none"), nodes("default")), (2, 0, 1));
        let problems = course.all_problems();
        assert!(
            problems
                .iter()
                .any(|p| p.message.contains("at most 5 nodes") && p.severity == Severity::Error),
            "{problems:?}"
        );
    }

    #[test]
    fn links_cannot_climb_out_of_the_course() {
        let urls = HashMap::new();
        let t = resolve_link(Path::new("/x"), "m", "../../etc/passwd", &urls);
        assert!(matches!(t, LinkTarget::Missing(m) if m.contains("outside")));
        assert_eq!(
            resolve_link(Path::new("/x"), "m", "https://docs.docker.com", &urls),
            LinkTarget::Keep
        );
    }

    #[test]
    fn slugs_drop_numeric_prefixes() {
        assert_eq!(slug_of("01-introduction"), "introduction");
        assert_eq!(slug_of("10_Compose Basics"), "compose-basics");
        assert_eq!(slug_of("2024"), "2024");
    }
}
