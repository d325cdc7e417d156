//! Markdown to HTML for lessons: pulldown-cmark with tables, task lists, footnotes,
//! strikethrough and heading anchors; code highlighted; shell blocks with Copy and Run;
//! the author's raw HTML sanitised with ammonia.
//!
//! Markup that Slipway itself adds (code blocks, buttons, task boxes) is kept out of the
//! sanitiser's way: the renderer leaves a random token in its place and swaps the trusted
//! HTML in after sanitising, so an author can neither forge nor break it.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use pulldown_cmark::{CodeBlockKind, CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use super::{highlight, shell};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocEntry {
    pub level: u8,
    pub id: String,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// Something the renderer noticed, at a 1-based line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub line: usize,
    pub severity: Severity,
    pub message: String,
}

/// What a link in a lesson points at, as the course sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkTarget {
    /// Leave the link as written (absolute URLs, anchors).
    Keep,
    /// Serve it at this URL instead.
    Rewrite(String),
    /// It names a lesson or file that does not exist.
    Missing(String),
}

pub struct Renderer<'a> {
    /// Resolves relative links and image sources.
    pub resolve: &'a dyn Fn(&str) -> LinkTarget,
    /// The file line on which the Markdown text starts.
    pub first_line: usize,
}

#[derive(Debug, Default)]
pub struct Rendered {
    pub html: String,
    pub toc: Vec<TocEntry>,
    pub has_mermaid: bool,
    pub shell_blocks: usize,
    pub findings: Vec<Finding>,
}

fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_HEADING_ATTRIBUTES
        | Options::ENABLE_GFM
}

/// Byte offset to file line.
struct Lines {
    starts: Vec<usize>,
    first_line: usize,
}

impl Lines {
    fn new(text: &str, first_line: usize) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { starts, first_line }
    }
    fn line_of(&self, offset: usize) -> usize {
        self.first_line + self.starts.partition_point(|&s| s <= offset) - 1
    }
}

/// Trusted fragments waiting to replace their tokens after sanitising.
struct Trusted {
    nonce: u64,
    fragments: Vec<String>,
}

impl Trusted {
    fn new() -> Self {
        Self {
            nonce: rand::random(),
            fragments: Vec::new(),
        }
    }
    fn token(&self, idx: usize) -> String {
        format!("slipwaytrusted{:016x}n{idx}e", self.nonce)
    }
    fn push(&mut self, html: String) -> String {
        self.fragments.push(html);
        self.token(self.fragments.len() - 1)
    }
    fn restore(&self, mut html: String) -> String {
        for (i, fragment) in self.fragments.iter().enumerate() {
            let token = self.token(i);
            let wrapped = format!("<p>{token}</p>");
            if html.contains(&wrapped) {
                html = html.replacen(&wrapped, fragment, 1);
            } else {
                html = html.replacen(&token, fragment, 1);
            }
        }
        html
    }
}

pub fn render(markdown: &str, renderer: &Renderer) -> Rendered {
    let lines = Lines::new(markdown, renderer.first_line);
    let mut trusted = Trusted::new();
    let mut rendered = Rendered::default();
    let mut ids = IdAllocator::default();
    let mut out: Vec<Event> = Vec::new();

    struct Heading<'e> {
        level: HeadingLevel,
        id: Option<CowStr<'e>>,
        classes: Vec<CowStr<'e>>,
        attrs: Vec<(CowStr<'e>, Option<CowStr<'e>>)>,
        inner: Vec<Event<'e>>,
        text: String,
    }
    let mut heading: Option<Heading> = None;
    let mut code: Option<(String, String, usize)> = None; // (lang, text, line)

    for (event, range) in Parser::new_ext(markdown, options()).into_offset_iter() {
        let line = lines.line_of(range.start);
        if let Some((_, text, _)) = code.as_mut() {
            match event {
                Event::Text(t) => text.push_str(&t),
                Event::End(TagEnd::CodeBlock) => {
                    let (lang, text, line) = code.take().expect("inside a code block");
                    let html = code_block(&lang, &text, line, &mut rendered);
                    let token = trusted.push(html);
                    out.push(Event::Html(format!("<p>{token}</p>\n").into()));
                }
                _ => {}
            }
            continue;
        }
        let event = match event {
            Event::Start(Tag::Heading {
                level,
                id,
                classes,
                attrs,
            }) => {
                heading = Some(Heading {
                    level,
                    id,
                    classes,
                    attrs,
                    inner: Vec::new(),
                    text: String::new(),
                });
                continue;
            }
            Event::End(TagEnd::Heading(level)) => {
                let Some(h) = heading.take() else { continue };
                let text = h.text.trim().to_string();
                let id = ids.allocate(h.id.as_deref().unwrap_or(&slugify(&text)));
                let depth = level as u8;
                if depth == 1 {
                    rendered.findings.push(Finding {
                        line,
                        severity: Severity::Warning,
                        message:
                            "a level-1 heading inside a lesson: the page shows the title already; use `##` for sections"
                                .into(),
                    });
                }
                if depth == 2 || depth == 3 {
                    rendered.toc.push(TocEntry {
                        level: depth,
                        id: id.clone(),
                        text,
                    });
                }
                let anchor =
                    format!("<a class=\"heading-anchor\" href=\"#{id}\" aria-label=\"Link to this section\">#</a>");
                out.push(Event::Start(Tag::Heading {
                    level: h.level,
                    id: Some(id.into()),
                    classes: h.classes,
                    attrs: h.attrs,
                }));
                out.extend(h.inner);
                out.push(Event::InlineHtml(anchor.into()));
                out.push(Event::End(TagEnd::Heading(level)));
                continue;
            }
            Event::Start(Tag::CodeBlock(kind)) => {
                let lang = match kind {
                    CodeBlockKind::Fenced(info) => fence_language(&info),
                    CodeBlockKind::Indented => String::new(),
                };
                code = Some((lang, String::new(), line));
                continue;
            }
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                let dest_url = resolve_link(dest_url, line, renderer, &mut rendered.findings);
                Event::Start(Tag::Link {
                    link_type,
                    dest_url,
                    title,
                    id,
                })
            }
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                let dest_url = resolve_link(dest_url, line, renderer, &mut rendered.findings);
                Event::Start(Tag::Image {
                    link_type,
                    dest_url,
                    title,
                    id,
                })
            }
            Event::TaskListMarker(done) => {
                let html = format!(
                    "<input type=\"checkbox\" class=\"task-box\" disabled{}> ",
                    if done { " checked" } else { "" }
                );
                Event::InlineHtml(trusted.push(html).into())
            }
            Event::Html(html) | Event::InlineHtml(html) => {
                for message in sanitizer_removals(&html) {
                    rendered.findings.push(Finding {
                        line,
                        severity: Severity::Error,
                        message,
                    });
                }
                // Relative URLs in raw HTML resolve like Markdown links do.
                let mut html = html.to_string();
                for (_, _, url) in html_urls(&html.clone()) {
                    match (renderer.resolve)(&url) {
                        LinkTarget::Keep => {}
                        LinkTarget::Rewrite(to) => {
                            html = html.replacen(&format!("\"{url}\""), &format!("\"{to}\""), 1);
                        }
                        LinkTarget::Missing(why) => {
                            rendered.findings.push(Finding {
                                line,
                                severity: Severity::Error,
                                message: why,
                            });
                        }
                    }
                }
                Event::Html(html.into())
            }
            other => other,
        };
        match heading.as_mut() {
            Some(h) => {
                if let Event::Text(t) | Event::Code(t) = &event {
                    h.text.push_str(t);
                }
                h.inner.push(event);
            }
            None => out.push(event),
        }
    }

    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, out.into_iter());
    let clean = SANITIZER.clean(&html).to_string();
    rendered.html = trusted.restore(clean);
    rendered
}

fn resolve_link<'e>(dest: CowStr<'e>, line: usize, renderer: &Renderer, findings: &mut Vec<Finding>) -> CowStr<'e> {
    match (renderer.resolve)(&dest) {
        LinkTarget::Keep => dest,
        LinkTarget::Rewrite(url) => url.into(),
        LinkTarget::Missing(why) => {
            findings.push(Finding {
                line,
                severity: Severity::Error,
                message: why,
            });
            dest
        }
    }
}

/// The language word of a fence's info string: "```bash {.x}" is "bash".
fn fence_language(info: &str) -> String {
    info.split(|c: char| c.is_whitespace() || c == ',' || c == '{')
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

fn code_block(lang: &str, code: &str, line: usize, rendered: &mut Rendered) -> String {
    let lang_attr = html_escape::encode_double_quoted_attribute(lang);
    if lang.eq_ignore_ascii_case("mermaid") {
        rendered.has_mermaid = true;
        return format!(
            "<div class=\"diagram\"><pre class=\"mermaid\">{}</pre></div>\n",
            html_escape::encode_text(code)
        );
    }
    if !highlight::is_known(lang) {
        rendered.findings.push(Finding {
            line,
            severity: Severity::Warning,
            message: format!("code block language `{lang}` is not known; it is shown without highlighting"),
        });
    }
    let label = if lang.is_empty() { "text" } else { lang };
    if shell::is_shell(lang) {
        rendered.shell_blocks += 1;
        let command = shell::command(code, lang);
        let mut body = String::new();
        for l in shell::lines(code, lang) {
            match l {
                shell::Line::Command { prompt, text } => {
                    if !prompt.is_empty() {
                        body.push_str(&format!(
                            "<span class=\"prompt\" aria-hidden=\"true\">{}</span>",
                            html_escape::encode_text(prompt)
                        ));
                    }
                    body.push_str(highlight::highlight(&format!("{text}\n"), "bash").trim_end_matches('\n'));
                    body.push('\n');
                }
                shell::Line::Output(text) => {
                    body.push_str(&format!(
                        "<span class=\"output\">{}</span>\n",
                        html_escape::encode_text(text)
                    ));
                }
            }
        }
        let body = body.trim_end_matches('\n');
        return format!(
            "<div class=\"code-block shell\" data-lang=\"{lang_attr}\">\
<div class=\"code-toolbar\"><span class=\"code-lang\">{label}</span>\
<button type=\"button\" class=\"code-btn\" data-action=\"copy\" title=\"Copy the command\">Copy</button>\
<button type=\"button\" class=\"code-btn run\" data-action=\"run\" title=\"Run it in your terminal\">Run</button></div>\
<pre class=\"code\" data-command=\"{}\"><code>{body}</code></pre></div>\n",
            html_escape::encode_double_quoted_attribute(&command),
            label = html_escape::encode_text(label),
        );
    }
    let body = highlight::highlight(code, lang);
    format!(
        "<div class=\"code-block\" data-lang=\"{lang_attr}\">\
<div class=\"code-toolbar\"><span class=\"code-lang\">{label}</span>\
<button type=\"button\" class=\"code-btn\" data-action=\"copy\" title=\"Copy the code\">Copy</button></div>\
<pre class=\"code\"><code>{}</code></pre></div>\n",
        body.trim_end_matches('\n'),
        label = html_escape::encode_text(label),
    )
}

/// Heading ids: slugs made unique within a page.
#[derive(Default)]
struct IdAllocator {
    seen: HashMap<String, usize>,
}

impl IdAllocator {
    fn allocate(&mut self, base: &str) -> String {
        let base = if base.is_empty() { "section" } else { base };
        let n = self.seen.entry(base.to_string()).or_insert(0);
        *n += 1;
        if *n == 1 {
            base.to_string()
        } else {
            format!("{base}-{}", *n - 1)
        }
    }
}

/// The ids the renderer gives a page's headings, in order (for links made elsewhere).
pub fn heading_ids<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut ids = IdAllocator::default();
    texts.into_iter().map(|t| ids.allocate(&slugify(t.trim()))).collect()
}

/// The Markdown options lessons are read with (the importer parses notes the same way).
pub fn markdown_options() -> Options {
    options()
}

/// "Containers vs. VMs!" becomes "containers-vs-vms".
pub fn slugify(text: &str) -> String {
    let mut slug = String::with_capacity(text.len());
    let mut dash = false;
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            if dash && !slug.is_empty() {
                slug.push('-');
            }
            dash = false;
            slug.push(c);
        } else if c.is_whitespace() || c == '-' || c == '_' || c == '/' || c == '.' {
            dash = true;
        }
    }
    slug
}

// ---------------------------------------------------------------------------------------
// The sanitiser's rules, shared by ammonia and by the linter that reports what it removes.

const TAGS: &[&str] = &[
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "caption",
    "cite",
    "code",
    "col",
    "colgroup",
    "dd",
    "del",
    "details",
    "dfn",
    "div",
    "dl",
    "dt",
    "em",
    "figcaption",
    "figure",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "ins",
    "kbd",
    "li",
    "mark",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "samp",
    "section",
    "small",
    "span",
    "strike",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "time",
    "tr",
    "u",
    "ul",
    "var",
    "wbr",
];
const GENERIC_ATTRIBUTES: &[&str] = &["id", "class", "title", "lang", "aria-label", "aria-hidden", "role"];
const TAG_ATTRIBUTES: &[(&str, &[&str])] = &[
    ("a", &["href", "hreflang"]),
    ("img", &["src", "alt", "width", "height"]),
    ("td", &["colspan", "rowspan", "style"]),
    ("th", &["colspan", "rowspan", "style", "scope"]),
    ("ol", &["start", "reversed"]),
    ("li", &["value"]),
    ("time", &["datetime"]),
    ("details", &["open"]),
    ("col", &["span"]),
    ("colgroup", &["span"]),
];
const URL_SCHEMES: &[&str] = &["http", "https", "mailto"];

static SANITIZER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut b = ammonia::Builder::empty();
    b.tags(TAGS.iter().copied().collect())
        .generic_attributes(GENERIC_ATTRIBUTES.iter().copied().collect())
        .tag_attributes(
            TAG_ATTRIBUTES
                .iter()
                .map(|(t, a)| (*t, a.iter().copied().collect::<HashSet<_>>()))
                .collect(),
        )
        .url_schemes(URL_SCHEMES.iter().copied().collect())
        .clean_content_tags(["script", "style"].into_iter().collect())
        .link_rel(Some("noopener noreferrer"))
        .attribute_filter(|element, attribute, value| {
            // Table alignment is the one inline style Markdown itself produces.
            if attribute == "style" {
                let ok = matches!(element, "td" | "th")
                    && matches!(
                        value.trim().trim_end_matches(';'),
                        "text-align: left" | "text-align: center" | "text-align: right"
                    );
                return ok.then(|| value.into());
            }
            Some(value.into())
        });
    b
});

/// What the sanitiser will strip from one piece of the author's raw HTML, in words.
fn sanitizer_removals(html: &str) -> Vec<String> {
    let mut removed = Vec::new();
    for tag in scan_tags(html) {
        if !TAGS.contains(&tag.name.as_str()) {
            if !removed.iter().any(|m: &String| m.contains(&format!("<{}>", tag.name))) {
                removed.push(format!("raw HTML <{}> is removed by the sanitiser", tag.name));
            }
            continue;
        }
        for (attr, value) in &tag.attributes {
            let allowed = GENERIC_ATTRIBUTES.contains(&attr.as_str())
                || TAG_ATTRIBUTES
                    .iter()
                    .any(|(t, a)| *t == tag.name && a.contains(&attr.as_str()));
            if !allowed || (attr == "style" && !matches!(tag.name.as_str(), "td" | "th")) {
                removed.push(format!(
                    "attribute `{attr}` on <{}> is removed by the sanitiser",
                    tag.name
                ));
            } else if (attr == "href" || attr == "src")
                && let Some((scheme, _)) = value.split_once(':')
                && !scheme.contains('/')
                && !URL_SCHEMES.contains(&scheme.trim().to_ascii_lowercase().as_str())
            {
                removed.push(format!(
                    "a `{scheme}:` URL on <{}> is removed by the sanitiser",
                    tag.name
                ));
            }
        }
    }
    removed
}

/// The URLs in a piece of raw HTML: (tag, attribute, value) for `href` and `src`.
pub(crate) fn html_urls(html: &str) -> Vec<(String, String, String)> {
    scan_tags(html)
        .into_iter()
        .flat_map(|t| {
            let name = t.name;
            t.attributes
                .into_iter()
                .filter(|(a, v)| (a == "href" || a == "src") && !v.is_empty())
                .map(move |(a, v)| (name.clone(), a, v))
        })
        .collect()
}

struct ScannedTag {
    name: String,
    attributes: Vec<(String, String)>,
}

/// A small tag scanner for the linter's report; the sanitiser itself parses with html5ever.
fn scan_tags(html: &str) -> Vec<ScannedTag> {
    let mut tags = Vec::new();
    let bytes = html.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'<' {
            i += 1;
            continue;
        }
        if html[i..].starts_with("<!--") {
            i = html[i..].find("-->").map(|e| i + e + 3).unwrap_or(bytes.len());
            continue;
        }
        let mut j = i + 1;
        if j < bytes.len() && bytes[j] == b'/' {
            j += 1;
        }
        let start = j;
        while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'-') {
            j += 1;
        }
        if j == start {
            i += 1;
            continue;
        }
        let name = html[start..j].to_ascii_lowercase();
        let mut attributes = Vec::new();
        // Attributes until `>`, honouring quotes.
        loop {
            while j < bytes.len() && (bytes[j].is_ascii_whitespace() || bytes[j] == b'/') {
                j += 1;
            }
            if j >= bytes.len() || bytes[j] == b'>' {
                break;
            }
            let a = j;
            while j < bytes.len() && !bytes[j].is_ascii_whitespace() && !matches!(bytes[j], b'=' | b'>' | b'/') {
                j += 1;
            }
            let attr = html[a..j].to_ascii_lowercase();
            let mut value = String::new();
            if j < bytes.len() && bytes[j] == b'=' {
                j += 1;
                if j < bytes.len() && (bytes[j] == b'"' || bytes[j] == b'\'') {
                    let q = bytes[j];
                    let v = j + 1;
                    j = v;
                    while j < bytes.len() && bytes[j] != q {
                        j += 1;
                    }
                    value = html[v..j.min(bytes.len())].to_string();
                    j += 1;
                } else {
                    let v = j;
                    while j < bytes.len() && !bytes[j].is_ascii_whitespace() && bytes[j] != b'>' {
                        j += 1;
                    }
                    value = html[v..j].to_string();
                }
            }
            if attr.is_empty() {
                j += 1;
            } else {
                attributes.push((attr, value));
            }
        }
        if html.as_bytes()[i + 1] != b'/' {
            tags.push(ScannedTag { name, attributes });
        }
        i = j + 1;
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep(_: &str) -> LinkTarget {
        LinkTarget::Keep
    }

    fn md(text: &str) -> Rendered {
        render(
            text,
            &Renderer {
                resolve: &keep,
                first_line: 1,
            },
        )
    }

    #[test]
    fn renders_the_extensions() {
        let r = md("| a | b |\n|:-:|---|\n| 1 | 2 |\n\n- [x] done\n- [ ] todo\n\n~~old~~ new[^n]\n\n[^n]: a note\n");
        assert!(r.html.contains("<table>"), "{}", r.html);
        assert!(r.html.contains("text-align: center"), "{}", r.html);
        assert!(
            r.html
                .contains("<input type=\"checkbox\" class=\"task-box\" disabled checked>"),
            "{}",
            r.html
        );
        assert!(r.html.contains("<del>old</del>"), "{}", r.html);
        assert!(r.html.contains("footnote"), "{}", r.html);
    }

    #[test]
    fn headings_get_unique_anchors_and_a_toc() {
        let r = md("## Images vs. containers\n\ntext\n\n### Layers\n\n## Images vs. containers\n\n#### deep\n");
        assert_eq!(r.toc.len(), 3);
        assert_eq!(r.toc[0].id, "images-vs-containers");
        assert_eq!(r.toc[2].id, "images-vs-containers-1");
        assert!(r.html.contains("<h2 id=\"images-vs-containers\">"), "{}", r.html);
        assert!(r.html.contains("href=\"#layers\""), "{}", r.html);
    }

    #[test]
    fn shell_blocks_carry_their_command_and_buttons() {
        let r = md("```console\n$ docker run --rm busybox echo \"hi <there>\"\nhi <there>\n```\n");
        assert_eq!(r.shell_blocks, 1);
        assert!(r.html.contains("data-action=\"run\""), "{}", r.html);
        assert!(r.html.contains("data-action=\"copy\""), "{}", r.html);
        assert!(
            r.html
                .contains("data-command=\"docker run --rm busybox echo &quot;hi &lt;there&gt;&quot;\""),
            "{}",
            r.html
        );
        assert!(
            r.html.contains("<span class=\"output\">hi &lt;there&gt;</span>"),
            "{}",
            r.html
        );
        let dockerfile = md("```dockerfile\nFROM busybox\n```\n");
        assert!(!dockerfile.html.contains("data-action=\"run\""));
        assert!(dockerfile.html.contains("data-action=\"copy\""));
    }

    #[test]
    fn raw_html_is_sanitised_and_reported() {
        let r = md(
            "Hi <kbd>Ctrl</kbd> <span onclick=\"x()\">s</span>\n\n<script>alert(1)</script>\n\n<a href=\"javascript:alert(1)\">x</a>\n",
        );
        assert!(r.html.contains("<kbd>Ctrl</kbd>"), "{}", r.html);
        assert!(!r.html.contains("onclick"), "{}", r.html);
        assert!(!r.html.contains("alert"), "{}", r.html);
        let messages: Vec<_> = r.findings.iter().map(|f| f.message.as_str()).collect();
        assert!(messages.iter().any(|m| m.contains("<script>")), "{messages:?}");
        assert!(messages.iter().any(|m| m.contains("onclick")), "{messages:?}");
        assert!(messages.iter().any(|m| m.contains("javascript:")), "{messages:?}");
        assert!(r.findings.iter().all(|f| f.line >= 1));
    }

    #[test]
    fn authors_cannot_forge_trusted_markup() {
        let r = md("<button data-action=\"run\">x</button>\n\n<pre data-command=\"rm -rf /\">y</pre>\n");
        assert!(!r.html.contains("<button"), "{}", r.html);
        assert!(!r.html.contains("data-command"), "{}", r.html);
    }

    #[test]
    fn relative_urls_in_raw_html_are_resolved_or_reported() {
        let resolve = |dest: &str| match dest {
            "img/a.png" => LinkTarget::Rewrite("/course-files/m/img/a.png".into()),
            "img/gone.png" => LinkTarget::Missing("img/gone.png does not exist".into()),
            _ => LinkTarget::Keep,
        };
        let r = render(
            "<img src=\"img/a.png\" alt=\"a\">\n\n<p><img src=\"img/gone.png\"></p>\n",
            &Renderer {
                resolve: &resolve,
                first_line: 1,
            },
        );
        assert!(r.html.contains("src=\"/course-files/m/img/a.png\""), "{}", r.html);
        assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
        assert_eq!(r.findings[0].line, 3);
    }

    #[test]
    fn mermaid_is_kept_for_the_browser() {
        let r = md("```mermaid\nflowchart LR\n  A --> B\n```\n");
        assert!(r.has_mermaid);
        assert!(
            r.html
                .contains("<pre class=\"mermaid\">flowchart LR\n  A --&gt; B\n</pre>"),
            "{}",
            r.html
        );
    }

    #[test]
    fn links_are_resolved_and_missing_ones_reported_with_lines() {
        let resolve = |dest: &str| match dest {
            "../b/x.md" => LinkTarget::Rewrite("/learn/b/x".into()),
            "gone.md" => LinkTarget::Missing("no lesson gone.md".into()),
            _ => LinkTarget::Keep,
        };
        let r = render(
            "intro\n\n[x](../b/x.md) and\n[g](gone.md)\n",
            &Renderer {
                resolve: &resolve,
                first_line: 10,
            },
        );
        assert!(r.html.contains("href=\"/learn/b/x\""), "{}", r.html);
        assert_eq!(r.findings.len(), 1);
        assert_eq!(r.findings[0].line, 13);
    }

    #[test]
    fn slugs() {
        assert_eq!(slugify("Containers vs. VMs!"), "containers-vs-vms");
        assert_eq!(slugify("  `docker run` -- flags "), "docker-run-flags");
        assert_eq!(slugify("Schwarzmüller"), "schwarzmüller");
    }
}
