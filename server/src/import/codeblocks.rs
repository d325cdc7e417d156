//! Code blocks that notes lost to indentation.
//!
//! A fence indented by four spaces outside a list is, to CommonMark, an indented code block
//! whose text shows the ``` lines literally. We dedent such blocks back into fences; other
//! indented code blocks become fenced blocks too, so shell commands get their buttons.

use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Changes {
    /// Fences that had been indented and are fences again.
    pub fences_restored: usize,
    /// Indented code blocks written as fenced blocks.
    pub indented_fenced: usize,
    /// Indented blocks left as they were (inside a block quote, say), by line.
    pub left_alone: Vec<usize>,
}

const SHELL_WORDS: &[&str] = &[
    "docker",
    "docker-compose",
    "aws",
    "cd",
    "ls",
    "mkdir",
    "curl",
    "wget",
    "npm",
    "pip",
    "pip3",
    "git",
    "sudo",
    "apt",
    "apt-get",
    "apk",
    "echo",
    "cat",
    "export",
    "kubectl",
    "brew",
    "chmod",
    "rm",
    "cp",
    "mv",
    "$",
];

fn line_start(text: &str, offset: usize) -> usize {
    text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0)
}

fn expand_tabs(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut col = 0;
    for c in line.chars() {
        if c == '\t' {
            let n = 4 - col % 4;
            out.extend(std::iter::repeat_n(' ', n));
            col += n;
        } else {
            out.push(c);
            col += 1;
        }
    }
    out
}

fn leading_spaces(s: &str) -> usize {
    s.len() - s.trim_start_matches(' ').len()
}

/// Rewrites the text's indented code blocks as fenced blocks.
pub fn fence_indented(text: &str) -> (String, Changes) {
    let mut changes = Changes::default();
    // (range of whole lines, replacement)
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut quote_depth = 0usize;
    let mut block: Option<(usize, String)> = None;
    for (event, range) in Parser::new(text).into_offset_iter() {
        match event {
            Event::Start(Tag::BlockQuote(_)) => quote_depth += 1,
            Event::End(TagEnd::BlockQuote(_)) => quote_depth -= 1,
            Event::Start(Tag::CodeBlock(CodeBlockKind::Indented)) => block = Some((range.start, String::new())),
            Event::Text(t) => {
                if let Some((_, content)) = block.as_mut() {
                    content.push_str(&t);
                }
            }
            Event::End(TagEnd::CodeBlock) => {
                let Some((start, content)) = block.take() else {
                    continue;
                };
                let first = line_start(text, start);
                let end = range.end;
                let line_no = text[..first].matches('\n').count() + 1;
                if quote_depth > 0 || content.trim().is_empty() {
                    changes.left_alone.push(line_no);
                    continue;
                }
                let source: Vec<String> = text[first..end].lines().map(expand_tabs).collect();
                // Where the code's text starts, and so the container's indent 4 columns left.
                let first_source = source
                    .iter()
                    .find(|l| !l.trim().is_empty())
                    .cloned()
                    .unwrap_or_default();
                let first_content = content.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                let code_col = leading_spaces(&first_source).saturating_sub(leading_spaces(first_content));
                let Some(container) = code_col.checked_sub(4) else {
                    changes.left_alone.push(line_no);
                    continue;
                };
                let dedented: Vec<String> = source
                    .iter()
                    .map(|l| {
                        if l.trim().is_empty() {
                            String::new()
                        } else if leading_spaces(l) >= code_col {
                            format!("{}{}", &l[..container], &l[code_col..])
                        } else {
                            l.clone()
                        }
                    })
                    .collect();
                let body: Vec<&String> = dedented.iter().filter(|l| !l.trim().is_empty()).collect();
                let opens = body.first().is_some_and(|l| {
                    let t = l.trim_start();
                    t.starts_with("```") || t.starts_with("~~~")
                });
                let closes = body.len() > 1
                    && body.last().is_some_and(|l| {
                        let t = l.trim();
                        t.chars().all(|c| c == '`') && t.len() >= 3 || t.chars().all(|c| c == '~') && t.len() >= 3
                    });
                let indent = " ".repeat(container);
                let replacement = if opens && closes {
                    changes.fences_restored += 1;
                    dedented.join("\n")
                } else {
                    changes.indented_fenced += 1;
                    let first_word = first_content.split_whitespace().next().unwrap_or("");
                    let lang = if SHELL_WORDS.contains(&first_word) {
                        "sh"
                    } else {
                        "text"
                    };
                    // Blank lines at the end belong to the text between blocks, not the code.
                    let mut lines = dedented.clone();
                    while lines.last().is_some_and(|l| l.trim().is_empty()) {
                        lines.pop();
                    }
                    let longest_ticks = lines
                        .iter()
                        .map(|l| l.chars().take_while(|&c| c == '`').count())
                        .max()
                        .unwrap_or(0);
                    let fence = "`".repeat(longest_ticks.max(2) + 1);
                    format!("{indent}{fence}{lang}\n{}\n{indent}{fence}", lines.join("\n"))
                };
                // Keep what followed the block's last line (its newline and blank lines).
                let consumed_end = first + text[first..end].trim_end_matches(['\n', ' ', '\t']).len();
                let replacement = if opens && closes {
                    replacement.trim_end().to_string()
                } else {
                    replacement
                };
                edits.push((first, consumed_end, replacement));
            }
            _ => {}
        }
    }
    let mut out = text.to_string();
    for (start, end, replacement) in edits.into_iter().rev() {
        out.replace_range(start..end, &replacement);
    }
    (out, changes)
}

/// Every code block's text, as CommonMark reads the document.
pub fn code_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for event in Parser::new(text) {
        match event {
            Event::Start(Tag::CodeBlock(_)) => current = Some(String::new()),
            Event::Text(t) => {
                if let Some(c) = current.as_mut() {
                    c.push_str(&t);
                }
            }
            Event::End(TagEnd::CodeBlock) => blocks.extend(current.take()),
            _ => {}
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restores_a_fence_indented_at_top_level() {
        let text = "Write this:\n\n    ```dockerfile\n    FROM busybox\n\n    CMD [\"sh\"]\n    ```\n\nThen build.\n";
        let (out, changes) = fence_indented(text);
        assert_eq!(changes.fences_restored, 1, "{out}");
        assert_eq!(
            out,
            "Write this:\n\n```dockerfile\nFROM busybox\n\nCMD [\"sh\"]\n```\n\nThen build.\n"
        );
        assert_eq!(code_blocks(&out), vec!["FROM busybox\n\nCMD [\"sh\"]\n"]);
    }

    #[test]
    fn fences_plain_indented_code_and_guesses_shell() {
        let text = "Step 1\n\n    aws ecr create-repository --repository-name x\n\nStep 2\n";
        let (out, changes) = fence_indented(text);
        assert_eq!(changes.indented_fenced, 1);
        assert!(
            out.contains("```sh\naws ecr create-repository --repository-name x\n```\n\nStep 2"),
            "{out}"
        );
        assert_eq!(code_blocks(&out), code_blocks(text));
    }

    #[test]
    fn leaves_list_fences_alone() {
        let text = "* Check:\n    ```bash\n    docker --version\n    ```\n";
        let (out, changes) = fence_indented(text);
        assert_eq!(out, text);
        assert_eq!(changes.fences_restored + changes.indented_fenced, 0);
    }
}
