//! `slipway import`: arbitrary Markdown course notes become a module of lessons.
//!
//! The notes are split at their top-level sections; double-encoded UTF-8 is repaired where
//! the repair is lossless; fences lost to indentation become code blocks again; links to
//! headings follow the heading into its lesson; mermaid diagrams are kept. Every change is
//! reported, and nothing is dropped without a line in the report.

pub mod codeblocks;
pub mod mojibake;
pub mod sections;

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use pulldown_cmark::{Event, Parser, Tag, TagEnd};
use serde::Serialize;

use crate::cli::ImportArgs;
use crate::course::markdown::{heading_ids, html_urls, markdown_options, slugify};
use crate::course::{Course, Severity};
use sections::Structure;

#[derive(Debug, Clone)]
pub struct Options {
    pub split_level: Option<u8>,
    pub title: Option<String>,
}

/// A lesson ready to be written.
#[derive(Debug, Clone)]
pub struct ImportedLesson {
    pub file_name: String,
    pub title: String,
    pub summary: String,
    pub order: usize,
    pub source: String,
    pub body: String,
}

#[derive(Debug, Default, Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    pub lines: usize,
    pub lessons: usize,
    pub split_level: Option<u8>,
    pub title_headings: Vec<String>,
    pub crlf_normalized: bool,
    pub decoded_as_windows_1252: bool,
    pub mojibake_repaired: Vec<mojibake::Repair>,
    pub mojibake_left: Vec<(usize, String)>,
    pub code: codeblocks::Changes,
    pub code_blocks: usize,
    pub headings_promoted_by: u8,
    pub anchors_rewritten: usize,
    pub anchors_unresolved: Vec<String>,
    pub mermaid_diagrams: usize,
    pub files_copied: Vec<String>,
    pub missing_targets: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub out: PathBuf,
    pub module_title: String,
    pub files: Vec<FileReport>,
    pub lessons: Vec<LessonSummary>,
    /// What `slipway lessons lint` says about the imported lessons.
    pub lint: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct LessonSummary {
    pub file: String,
    pub title: String,
    pub source: String,
}

/// The result of reading notes, before anything is written.
pub struct Imported {
    pub module_title: String,
    pub module_summary: String,
    pub lessons: Vec<ImportedLesson>,
    /// Files the lessons link to: (source path, path relative to the module).
    pub copies: Vec<(PathBuf, PathBuf)>,
    pub files: Vec<FileReport>,
}

fn decode(bytes: Vec<u8>, report: &mut FileReport) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            // Not UTF-8 at all: such notes were saved as Windows-1252.
            report.decoded_as_windows_1252 = true;
            encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(e.as_bytes())
                .0
                .into_owned()
        }
    }
}

/// Reads and converts notes into lessons (nothing is written).
pub fn import(notes: &[PathBuf], options: &Options) -> Result<Imported> {
    let mut lessons: Vec<ImportedLesson> = Vec::new();
    let mut files = Vec::new();
    let mut copies = Vec::new();
    let mut module_title: Option<String> = options.title.clone();
    let mut module_summary: Option<String> = None;
    let mut used_names: HashMap<String, usize> = HashMap::new();

    for path in notes {
        let mut report = FileReport {
            path: path.clone(),
            ..Default::default()
        };
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let mut text = decode(bytes, &mut report);
        if let Some(stripped) = text.strip_prefix('\u{feff}') {
            text = stripped.to_string();
        }
        if text.contains("\r\n") {
            text = text.replace("\r\n", "\n");
            report.crlf_normalized = true;
        }
        report.lines = text.lines().count();
        let (text, repairs) = mojibake::repair(&text);
        report.mojibake_repaired = repairs;
        report.mojibake_left = mojibake::suspicious(&text);
        let (text, code_changes) = codeblocks::fence_indented(&text);
        report.code = code_changes;
        report.code_blocks = codeblocks::code_blocks(&text).len();

        let structure = sections::structure(&text, options.split_level);
        report.split_level = structure.split_level;
        report.title_headings = structure
            .titles
            .iter()
            .map(|&t| structure.headings[t].text.clone())
            .collect();
        if module_title.is_none() {
            module_title = report
                .title_headings
                .first()
                .cloned()
                .or_else(|| structure.sections.first().map(|s| s.title.clone()));
        }
        if module_summary.is_none() {
            module_summary = report.title_headings.get(1).cloned();
        }
        let shift = structure.split_level.map(|l| l.saturating_sub(1)).unwrap_or(0);
        report.headings_promoted_by = shift;

        // Name every lesson first, so links to headings can point across lessons.
        let first_order = lessons.len() + 1;
        let names: Vec<String> = structure
            .sections
            .iter()
            .enumerate()
            .map(|(i, s)| unique_file_name(first_order + i, &s.title, &mut used_names))
            .collect();
        let anchors = anchor_map(&structure, &names);

        let notes_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        for (i, section) in structure.sections.iter().enumerate() {
            let raw = &text[section.body_start..section.body_end];
            let body = rewrite_body(raw, shift, &names[i], &anchors, &notes_dir, &mut report, &mut copies);
            let first_line = text[..section
                .heading
                .map(|h| structure.headings[h].start)
                .unwrap_or(section.body_start)]
                .matches('\n')
                .count()
                + 1;
            let last_line = text[..section.body_end].trim_end().matches('\n').count() + 1;
            let file_label = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            lessons.push(ImportedLesson {
                file_name: names[i].clone(),
                title: section.title.clone(),
                summary: summary_of(&body),
                order: first_order + i,
                source: format!("{file_label}, lines {first_line}-{last_line}"),
                body,
            });
        }
        report.mermaid_diagrams = count_mermaid(&text);
        report.lessons = structure.sections.len();
        files.push(report);
    }
    Ok(Imported {
        module_title: module_title.unwrap_or_else(|| "Imported notes".into()),
        module_summary: module_summary.unwrap_or_default(),
        lessons,
        copies,
        files,
    })
}

fn count_mermaid(text: &str) -> usize {
    Parser::new(text)
        .filter(|e| matches!(e, Event::Start(Tag::CodeBlock(pulldown_cmark::CodeBlockKind::Fenced(info))) if info.trim().starts_with("mermaid")))
        .count()
}

fn unique_file_name(order: usize, title: &str, used: &mut HashMap<String, usize>) -> String {
    let mut slug = slugify(title);
    if slug.len() > 48 {
        let cut = slug[..48].rfind('-').unwrap_or(48);
        slug.truncate(cut);
    }
    if slug.is_empty() {
        slug = "lesson".into();
    }
    let n = used.entry(slug.clone()).or_insert(0);
    *n += 1;
    let slug = if *n > 1 { format!("{slug}-{n}") } else { slug };
    format!("{order:02}-{slug}.md")
}

/// Where each heading of the notes ended up: (lesson file, anchor in it, if not its title).
fn anchor_map(structure: &Structure, names: &[String]) -> HashMap<String, (String, Option<String>)> {
    let mut map = HashMap::new();
    for (i, section) in structure.sections.iter().enumerate() {
        let inner: Vec<usize> = (0..structure.headings.len())
            .filter(|&h| {
                let s = structure.headings[h].start;
                s >= section.body_start && s < section.body_end
            })
            .collect();
        let ids = heading_ids(inner.iter().map(|&h| structure.headings[h].text.as_str()));
        for (&h, id) in inner.iter().zip(ids) {
            map.entry(structure.headings[h].github_slug.clone())
                .or_insert((names[i].clone(), Some(id)));
        }
        if let Some(h) = section.heading {
            map.entry(structure.headings[h].github_slug.clone())
                .or_insert((names[i].clone(), None));
        }
    }
    // A link to a title heading with no text of its own goes to the first lesson.
    if let Some(first) = names.first() {
        for &t in &structure.titles {
            map.entry(structure.headings[t].github_slug.clone())
                .or_insert((first.clone(), None));
        }
    }
    map
}

/// Lesson text: headings promoted, links to headings and files resolved.
fn rewrite_body(
    raw: &str,
    shift: u8,
    own_file: &str,
    anchors: &HashMap<String, (String, Option<String>)>,
    notes_dir: &Path,
    report: &mut FileReport,
    copies: &mut Vec<(PathBuf, PathBuf)>,
) -> String {
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut image: Option<(usize, String)> = None; // (start, dest) of a relative image
    for (event, range) in Parser::new_ext(raw, markdown_options()).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { level, .. }) if shift > 0 => {
                let start = raw[..range.start].rfind('\n').map(|i| i + 1).unwrap_or(0);
                let line = &raw[start..];
                let indent = line.len() - line.trim_start_matches(' ').len();
                let new_level = (level as u8).saturating_sub(shift).max(2) as usize;
                if line[indent..].starts_with('#') {
                    let hashes = line[indent..].chars().take_while(|&c| c == '#').count();
                    edits.push((start + indent, start + indent + hashes, "#".repeat(new_level)));
                } else {
                    // A setext heading: its text lines, then an underline.
                    let text_end = raw[range.clone()]
                        .trim_end()
                        .rfind('\n')
                        .map(|i| range.start + i)
                        .unwrap_or(range.end);
                    let text = raw[range.start..text_end]
                        .lines()
                        .map(str::trim)
                        .collect::<Vec<_>>()
                        .join(" ");
                    edits.push((range.start, range.end, format!("{} {}\n", "#".repeat(new_level), text)));
                }
            }
            Event::Start(Tag::Link { dest_url, .. }) => {
                let dest = dest_url.to_string();
                if let Some(anchor) = dest.strip_prefix('#') {
                    let key = percent_encoding::percent_decode_str(anchor)
                        .decode_utf8_lossy()
                        .to_lowercase();
                    match anchors.get(&key) {
                        Some((file, id)) => {
                            let new = match (file == own_file, id) {
                                (true, Some(id)) => format!("#{id}"),
                                (true, None) => "#".to_string(),
                                (false, Some(id)) => format!("{file}#{id}"),
                                (false, None) => file.clone(),
                            };
                            if let Some(at) = raw[range.clone()].find(&format!("]({dest}")) {
                                let s = range.start + at + 2;
                                edits.push((s, s + dest.len(), new));
                                report.anchors_rewritten += 1;
                            }
                        }
                        None => report.anchors_unresolved.push(dest.clone()),
                    }
                } else if is_relative(&dest)
                    && let Some(edit) = local_target(
                        &dest,
                        &raw[range.clone()],
                        range.start,
                        notes_dir,
                        report,
                        copies,
                        false,
                    )
                {
                    edits.push(edit);
                }
            }
            Event::Html(html) | Event::InlineHtml(html) => {
                // Raw `<img src=...>` with a relative source: copy it, or say it is missing.
                for (tag, _, url) in html_urls(&html) {
                    if !is_relative(&url) {
                        continue;
                    }
                    let source = &raw[range.clone()];
                    let Some(at) = source.find(&url) else {
                        continue;
                    };
                    let open = source[..at].rfind('<').unwrap_or(0);
                    let close = source[at..].find('>').map(|c| at + c + 1).unwrap_or(source.len());
                    let tag_text = &source[open..close];
                    if let Some((_, _, text)) = local_target(&url, tag_text, 0, notes_dir, report, copies, tag == "img")
                    {
                        let note = if tag == "img" {
                            format!("*[image not included: {url}]*")
                        } else {
                            text
                        };
                        edits.push((range.start + open, range.start + close, note));
                    }
                }
            }
            Event::Start(Tag::Image { dest_url, .. }) => {
                // The image's source text ends at its End event.
                image = is_relative(&dest_url).then(|| (range.start, dest_url.to_string()));
            }
            Event::End(TagEnd::Image) => {
                if let Some((start, dest)) = image.take() {
                    let source = &raw[start..range.end];
                    if let Some(edit) = local_target(&dest, source, start, notes_dir, report, copies, true) {
                        edits.push(edit);
                    }
                }
            }
            _ => {}
        }
    }
    edits.sort_by_key(|e| (e.0, std::cmp::Reverse(e.1)));
    let mut out = String::with_capacity(raw.len() + 64);
    let mut at = 0;
    for (start, end, replacement) in edits {
        if start < at {
            continue; // overlaps an edit already made (a link inside a setext heading)
        }
        out.push_str(&raw[at..start]);
        out.push_str(&replacement);
        at = end;
    }
    out.push_str(&raw[at..]);
    let trimmed = out.trim_matches('\n');
    format!("{trimmed}\n")
}

fn is_relative(dest: &str) -> bool {
    !(dest.is_empty()
        || dest.starts_with('#')
        || dest.starts_with('/')
        || dest.split_once(':').is_some_and(|(scheme, _)| !scheme.contains('/')))
}

/// A relative link or image: copy its file beside the lessons, or, when the file does not
/// exist, turn the link into text that says so (a dead link would fail the lint).
fn local_target(
    dest: &str,
    source: &str,
    source_start: usize,
    notes_dir: &Path,
    report: &mut FileReport,
    copies: &mut Vec<(PathBuf, PathBuf)>,
    image: bool,
) -> Option<(usize, usize, String)> {
    let path_part = dest.split(['#', '?']).next().unwrap_or("");
    let rel = PathBuf::from(
        percent_encoding::percent_decode_str(path_part)
            .decode_utf8_lossy()
            .as_ref(),
    );
    let inside = rel
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    let file = notes_dir.join(&rel);
    let is_lesson = rel.extension().is_some_and(|e| e == "md");
    if inside && !is_lesson && file.is_file() {
        if !copies.iter().any(|(_, r)| r == &rel) {
            copies.push((file, rel.clone()));
            report.files_copied.push(dest.to_string());
        }
        return None;
    }
    report.missing_targets.push(dest.to_string());
    let text = if image {
        let alt = source.trim_start_matches('!').trim_start_matches('[');
        let alt = alt.split("](").next().unwrap_or("").trim();
        format!(
            "*[image not included: {} ({dest})]*",
            if alt.is_empty() { "no description" } else { alt }
        )
    } else {
        let label = source.trim_start_matches('[').split("](").next().unwrap_or(dest);
        format!("{label} *(link to `{dest}` not included)*")
    };
    Some((source_start, source_start + source.len(), text))
}

/// The first sentence of the first paragraph, shortened for the index.
fn summary_of(body: &str) -> String {
    let mut text = String::new();
    let mut in_paragraph = false;
    for event in Parser::new_ext(body, markdown_options()) {
        match event {
            Event::Start(Tag::Paragraph) => in_paragraph = true,
            Event::End(TagEnd::Paragraph) if !text.trim().is_empty() => break,
            Event::End(TagEnd::Paragraph) => in_paragraph = false,
            Event::Text(t) | Event::Code(t) if in_paragraph => text.push_str(&t),
            Event::SoftBreak | Event::HardBreak if in_paragraph => text.push(' '),
            _ => {}
        }
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let sentence = match text.find(". ") {
        Some(i) => &text[..=i],
        None => &text,
    };
    if sentence.chars().count() <= 160 {
        return sentence.to_string();
    }
    let cut: String = sentence.chars().take(157).collect();
    let cut = cut.rfind(' ').map(|i| &cut[..i]).unwrap_or(&cut);
    format!("{cut}…")
}

#[derive(Serialize)]
struct Header<'a> {
    title: &'a str,
    summary: &'a str,
    order: usize,
    source: &'a str,
}

#[derive(Serialize)]
struct ModuleHeader<'a> {
    title: &'a str,
    summary: &'a str,
}

/// Writes the module: `module.yaml`, one file per lesson, and the files they link to.
pub fn write(imported: &Imported, out: &Path, force: bool) -> Result<()> {
    if out.exists() {
        let non_empty = std::fs::read_dir(out)
            .with_context(|| format!("reading {}", out.display()))?
            .next()
            .is_some();
        if non_empty && !force {
            bail!("{} is not empty; use --force to write into it", out.display());
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let module = serde_norway::to_string(&ModuleHeader {
        title: &imported.module_title,
        summary: &imported.module_summary,
    })?;
    std::fs::write(out.join("module.yaml"), module)?;
    for lesson in &imported.lessons {
        let header = serde_norway::to_string(&Header {
            title: &lesson.title,
            summary: &lesson.summary,
            order: lesson.order,
            source: &lesson.source,
        })?;
        let text = format!("---\n{header}---\n\n{}", lesson.body);
        let path = out.join(&lesson.file_name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    for (from, rel) in &imported.copies {
        let to = out.join(rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from, &to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

/// Lints the written module as the server would load it.
pub fn lint_written(out: &Path) -> Vec<String> {
    let Some(name) = out.file_name() else {
        return Vec::new();
    };
    // Load a course holding just this module, wherever it was written.
    let staging = match tempfile_dir() {
        Ok(d) => d,
        Err(e) => return vec![format!("could not check the lessons: {e}")],
    };
    let link = staging.join(name);
    if std::os::unix::fs::symlink(std::fs::canonicalize(out).unwrap_or(out.to_path_buf()), &link).is_err() {
        return vec!["could not check the lessons".into()];
    }
    let course = Course::load(&staging);
    let lines = course
        .all_problems()
        .into_iter()
        .map(|p| {
            let rel = p.path.strip_prefix(&link).unwrap_or(&p.path);
            let severity = if p.severity == Severity::Error {
                "error"
            } else {
                "warning"
            };
            format!("{}:{}: {severity}: {}", out.join(rel).display(), p.line, p.message)
        })
        .collect();
    let _ = std::fs::remove_file(&link);
    let _ = std::fs::remove_dir(&staging);
    lines
}

fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("slipway-import-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir)?;
    Ok(dir)
}

/// `slipway import`.
pub fn run(args: &ImportArgs) -> Result<ExitCode> {
    let options = Options {
        split_level: args.split_level,
        title: args.title.clone(),
    };
    let imported = import(&args.notes, &options)?;
    write(&imported, &args.out, args.force)?;
    let report = Report {
        out: args.out.clone(),
        module_title: imported.module_title.clone(),
        lessons: imported
            .lessons
            .iter()
            .map(|l| LessonSummary {
                file: l.file_name.clone(),
                title: l.title.clone(),
                source: l.source.clone(),
            })
            .collect(),
        lint: lint_written(&args.out),
        files: imported.files,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &Report) {
    for f in &r.files {
        println!("{}", f.path.display());
        let split = f
            .split_level
            .map(|l| format!("at level-{l} headings"))
            .unwrap_or_else(|| "as one lesson".into());
        println!("  {} lessons, split {split}", f.lessons);
        if !f.title_headings.is_empty() {
            println!("  title headings (not lessons): {}", f.title_headings.join(" / "));
        }
        if f.decoded_as_windows_1252 {
            println!("  the file was not UTF-8: read as Windows-1252");
        }
        if f.crlf_normalized {
            println!("  CRLF line ends made LF");
        }
        let repaired: usize = f.mojibake_repaired.iter().map(|m| m.count).sum();
        if repaired > 0 {
            println!("  repaired {repaired} mojibake sequences:");
            for m in &f.mojibake_repaired {
                println!(
                    "    {:?} -> {:?} x{} (first on line {})",
                    m.from, m.to, m.count, m.first_line
                );
            }
        }
        for (line, seq) in &f.mojibake_left {
            println!("  left as is (no lossless repair): {seq:?} on line {line}");
        }
        if f.code.fences_restored > 0 {
            println!(
                "  restored {} code fences that were indented by four spaces",
                f.code.fences_restored
            );
        }
        if f.code.indented_fenced > 0 {
            println!(
                "  wrote {} indented code blocks as fenced blocks",
                f.code.indented_fenced
            );
        }
        for line in &f.code.left_alone {
            println!("  indented code block on line {line} left as it was");
        }
        println!(
            "  {} code blocks, {} mermaid diagrams kept",
            f.code_blocks, f.mermaid_diagrams
        );
        if f.headings_promoted_by > 0 {
            println!(
                "  headings inside lessons moved up {} levels (lessons start at ##)",
                f.headings_promoted_by
            );
        }
        if f.anchors_rewritten > 0 {
            println!(
                "  {} links to headings now point into the lesson holding the heading",
                f.anchors_rewritten
            );
        }
        for a in &f.anchors_unresolved {
            println!("  link {a} matches no heading; kept as is");
        }
        for c in &f.files_copied {
            println!("  copied {c}");
        }
        for m in &f.missing_targets {
            println!("  {m} does not exist beside the notes: the link is now text saying so");
        }
        if let Some(level) = f
            .split_level
            .filter(|&l| l < 6 && f.lessons > 0 && f.lines / f.lessons > 400)
        {
            println!(
                "  the lessons are long ({} lines each on average); --split-level {} cuts them at the next heading level",
                f.lines / f.lessons,
                level + 1
            );
        }
    }
    println!(
        "wrote {} lessons of module {:?} to {}",
        r.lessons.len(),
        r.module_title,
        r.out.display()
    );
    if r.lint.is_empty() {
        println!("lint: no problems");
    } else {
        println!("lint:");
        for l in &r.lint {
            println!("  {l}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_a_small_set_of_notes() {
        let dir = tempfile::tempdir().unwrap();
        let notes = dir.path().join("notes.md");
        std::fs::write(
            &notes,
            "# My Course\n\nContents: [Second](#second-part)\n\n## First part\n\nItâ€™s here.\n\n### Detail\n\n    ```sh\n    docker ps\n    ```\n\n## Second part\n\n![arch](./img/arch.png) and [up](#detail)\n\n```mermaid\nflowchart LR\n A --> B\n```\n",
        )
        .unwrap();
        let imported = import(
            &[notes],
            &Options {
                split_level: None,
                title: None,
            },
        )
        .unwrap();
        assert_eq!(imported.module_title, "My Course");
        let titles: Vec<_> = imported.lessons.iter().map(|l| l.title.as_str()).collect();
        assert_eq!(titles, ["My Course", "First part", "Second part"]);
        let first = &imported.lessons[1];
        assert!(first.body.contains("It’s here."), "{}", first.body);
        assert!(first.body.contains("## Detail"), "{}", first.body);
        assert!(first.body.contains("```sh\ndocker ps\n```"), "{}", first.body);
        assert_eq!(first.summary, "It’s here.");
        let second = &imported.lessons[2];
        assert!(second.body.contains("[up](02-first-part.md#detail)"), "{}", second.body);
        assert!(
            second.body.contains("*[image not included: arch (./img/arch.png)]*"),
            "{}",
            second.body
        );
        assert!(second.body.contains("```mermaid"), "{}", second.body);
        assert!(
            imported.lessons[0].body.contains("[Second](03-second-part.md)"),
            "{}",
            imported.lessons[0].body
        );
        let f = &imported.files[0];
        assert_eq!(f.code.fences_restored, 1);
        assert_eq!(f.mermaid_diagrams, 1);
        assert_eq!(f.missing_targets, ["./img/arch.png"]);

        let out = dir.path().join("out/imported");
        write(&imported, &out, false).unwrap();
        assert!(lint_written(&out).is_empty(), "{:?}", lint_written(&out));
        assert!(
            write(&imported, &out, false).is_err(),
            "a non-empty directory needs --force"
        );
    }
}
