//! The structure of a set of notes: its title headings and the sections that become lessons.

use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};

use crate::course::markdown::markdown_options;

#[derive(Debug, Clone)]
pub struct Heading {
    pub level: u8,
    /// Byte offset of the heading's first line.
    pub start: usize,
    /// Byte offset just past the heading (its line end included).
    pub end: usize,
    pub text: String,
    /// The anchor GitHub gives the heading, which notes link to.
    pub github_slug: String,
    pub setext: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SectionKind {
    /// Text before the first heading.
    Preamble,
    /// The text under a title heading, before the first lesson.
    TitleText,
    Lesson,
}

#[derive(Debug, Clone)]
pub struct Section {
    pub kind: SectionKind,
    pub title: String,
    /// The heading that starts it, by index into `Structure::headings`.
    pub heading: Option<usize>,
    pub body_start: usize,
    pub body_end: usize,
}

#[derive(Debug)]
pub struct Structure {
    pub headings: Vec<Heading>,
    /// Lone headings at the top (the notes' title, a subtitle), outermost first.
    pub titles: Vec<usize>,
    pub split_level: Option<u8>,
    pub sections: Vec<Section>,
}

fn level_number(level: HeadingLevel) -> u8 {
    level as u8
}

fn line_end(text: &str, offset: usize) -> usize {
    if offset > 0 && text.as_bytes().get(offset - 1) == Some(&b'\n') {
        return offset;
    }
    text[offset..].find('\n').map(|i| offset + i + 1).unwrap_or(text.len())
}

/// GitHub's heading anchors: lower case, punctuation dropped, spaces as dashes, repeats
/// numbered.
fn github_slugs(texts: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    texts
        .iter()
        .map(|t| {
            let base: String = t
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect();
            let n = seen.entry(base.clone()).or_insert(0);
            let slug = if *n == 0 { base.clone() } else { format!("{base}-{n}") };
            *n += 1;
            slug
        })
        .collect()
}

pub fn headings(text: &str) -> Vec<Heading> {
    let mut found: Vec<Heading> = Vec::new();
    let mut current: Option<(u8, usize, usize, String)> = None;
    for (event, range) in Parser::new_ext(text, markdown_options()).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                current = Some((level_number(level), range.start, range.end, String::new()));
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some((.., s)) = current.as_mut() {
                    s.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((level, start, end, t)) = current.take() {
                    let start = text[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
                    let setext = !text[start..].trim_start().starts_with('#');
                    found.push(Heading {
                        level,
                        start,
                        end: line_end(text, end),
                        text: t.trim().to_string(),
                        github_slug: String::new(),
                        setext,
                    });
                }
            }
            _ => {}
        }
    }
    let slugs = github_slugs(&found.iter().map(|h| h.text.clone()).collect::<Vec<_>>());
    for (h, s) in found.iter_mut().zip(slugs) {
        h.github_slug = s;
    }
    found
}

/// Finds the title headings and cuts the notes into sections at the top-level headings (or
/// at `split_override`).
pub fn structure(text: &str, split_override: Option<u8>) -> Structure {
    let headings = headings(text);
    let mut titles = Vec::new();
    let mut rest: Vec<usize> = (0..headings.len()).collect();
    if split_override.is_none() {
        // A heading alone at its level, first in the notes, is a title, not a lesson.
        while rest.len() > 1 {
            let min = rest.iter().map(|&i| headings[i].level).min().unwrap_or(1);
            let at_min = rest.iter().filter(|&&i| headings[i].level == min).count();
            if at_min == 1 && headings[rest[0]].level == min {
                titles.push(rest.remove(0));
            } else {
                break;
            }
        }
    }
    let split_level = split_override.or_else(|| rest.iter().map(|&i| headings[i].level).min());
    let splits: Vec<usize> = match split_level {
        Some(level) => rest.iter().copied().filter(|&i| headings[i].level <= level).collect(),
        None => Vec::new(),
    };

    let mut sections = Vec::new();
    let first_heading = headings.first().map(|h| h.start).unwrap_or(text.len());
    if !text[..first_heading].trim().is_empty() {
        sections.push(Section {
            kind: SectionKind::Preamble,
            title: "Introduction".into(),
            heading: None,
            body_start: 0,
            body_end: first_heading,
        });
    }
    let first_split = splits.first().map(|&i| headings[i].start).unwrap_or(text.len());
    for (n, &t) in titles.iter().enumerate() {
        let start = headings[t].end;
        let end = titles.get(n + 1).map(|&u| headings[u].start).unwrap_or(first_split);
        if end > start && !text[start..end].trim().is_empty() {
            sections.push(Section {
                kind: SectionKind::TitleText,
                title: headings[t].text.clone(),
                heading: Some(t),
                body_start: start,
                body_end: end,
            });
        }
    }
    for (n, &s) in splits.iter().enumerate() {
        let end = splits.get(n + 1).map(|&u| headings[u].start).unwrap_or(text.len());
        sections.push(Section {
            kind: SectionKind::Lesson,
            title: headings[s].text.clone(),
            heading: Some(s),
            body_start: headings[s].end,
            body_end: end,
        });
    }
    // Notes with no usable heading at all become a single lesson.
    if splits.is_empty() && titles.is_empty() && sections.is_empty() {
        sections.push(Section {
            kind: SectionKind::Preamble,
            title: "Notes".into(),
            heading: None,
            body_start: 0,
            body_end: text.len(),
        });
    }
    Structure {
        headings,
        titles,
        split_level,
        sections,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_top_headings_are_titles_and_the_next_level_splits() {
        let text = "# Course\n\n## Module 1\n\nintro text\n\n### Lesson A\n\na\n\n```sh\n# not a heading\n```\n\n### Lesson B\n\n#### Deep\n\nb\n";
        let s = structure(text, None);
        assert_eq!(s.titles.len(), 2);
        assert_eq!(s.split_level, Some(3));
        let kinds: Vec<_> = s.sections.iter().map(|x| (x.kind, x.title.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (SectionKind::TitleText, "Module 1"),
                (SectionKind::Lesson, "Lesson A"),
                (SectionKind::Lesson, "Lesson B")
            ]
        );
        assert!(text[s.sections[1].body_start..s.sections[1].body_end].contains("# not a heading"));
    }

    #[test]
    fn repeated_top_headings_split_and_keep_the_preamble() {
        let text = "Some words first.\n\n# One\n\nx\n\n# Two\n\ny\n";
        let s = structure(text, None);
        assert!(s.titles.is_empty());
        assert_eq!(s.sections.len(), 3);
        assert_eq!(s.sections[0].kind, SectionKind::Preamble);
    }

    #[test]
    fn github_anchor_slugs() {
        let h = headings("# Docker & Kubernetes\n\n## [What Is Docker?](#x)\n\n## What Is Docker?\n");
        let slugs: Vec<_> = h.iter().map(|h| h.github_slug.as_str()).collect();
        assert_eq!(slugs, ["docker--kubernetes", "what-is-docker", "what-is-docker-1"]);
    }
}
