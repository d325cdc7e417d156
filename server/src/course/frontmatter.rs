//! The YAML header of a lesson and the `module.yaml` of a module.

use serde::Deserialize;

pub use super::exercise::ExerciseMeta;

/// The header of a lesson file. Unknown keys are errors so that a misspelt key is reported
/// by the linter instead of being silently ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LessonMeta {
    pub title: String,
    #[serde(default)]
    pub summary: String,
    pub order: Option<i64>,
    /// Where an imported lesson came from (file and lines), kept for the author.
    pub source: Option<String>,
    #[serde(default)]
    pub exercises: Vec<ExerciseMeta>,
    /// Nodes in the lesson's playground (0 offers none) [default: 1].
    pub playground: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleMeta {
    pub title: String,
    #[serde(default)]
    pub summary: String,
    pub order: Option<i64>,
}

/// A lesson file cut into its header and its body.
#[derive(Debug)]
pub struct Split<'a> {
    pub yaml: &'a str,
    /// 1-based line of the first YAML line.
    pub yaml_line: usize,
    pub body: &'a str,
    /// 1-based line of the first body line.
    pub body_line: usize,
}

/// Why a header could not be read, with the 1-based line it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderError {
    pub line: usize,
    pub message: String,
}

/// Splits `---\n<yaml>\n---\n<body>`. A byte-order mark and CRLF line ends are accepted.
pub fn split(text: &str) -> Result<Split<'_>, HeaderError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first_end = text.find('\n').unwrap_or(text.len());
    if text[..first_end].trim_end() != "---" {
        return Err(HeaderError {
            line: 1,
            message: "a lesson must start with a YAML header between two `---` lines".into(),
        });
    }
    let yaml_start = (first_end + 1).min(text.len());
    let mut offset = yaml_start;
    for (line, raw) in (2..).zip(text[yaml_start..].split_inclusive('\n')) {
        let trimmed = raw.trim_end();
        if trimmed == "---" || trimmed == "..." {
            let body_start = offset + raw.len();
            return Ok(Split {
                yaml: &text[yaml_start..offset],
                yaml_line: 2,
                body: &text[body_start..],
                body_line: line + 1,
            });
        }
        offset += raw.len();
    }
    Err(HeaderError {
        line: 1,
        message: "the YAML header opened on line 1 is never closed with `---`".into(),
    })
}

/// Parses a YAML document into `T`, mapping the parser's position to a line of the file.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(yaml: &str, first_line: usize) -> Result<T, HeaderError> {
    serde_norway::from_str(yaml).map_err(|e| {
        let line = e.location().map(|l| first_line + l.line() - 1).unwrap_or(first_line);
        // The parser appends "at line L column C" in its own numbering; ours is the file's.
        let message = e.to_string();
        let message = match message.find(" at line ") {
            Some(i) => message[..i].to_string(),
            None => message,
        };
        HeaderError { line, message }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_header_and_body_with_lines() {
        let s = split("---\ntitle: A\norder: 2\n---\n\nBody\n").unwrap();
        assert_eq!(s.yaml, "title: A\norder: 2\n");
        assert_eq!(s.body, "\nBody\n");
        assert_eq!(s.body_line, 5);
        let meta: LessonMeta = parse_yaml(s.yaml, s.yaml_line).unwrap();
        assert_eq!(meta.title, "A");
        assert_eq!(meta.order, Some(2));
    }

    #[test]
    fn reports_unclosed_and_missing_headers() {
        assert_eq!(split("no header").unwrap_err().line, 1);
        assert!(split("---\ntitle: x\n").unwrap_err().message.contains("never closed"));
    }

    #[test]
    fn yaml_errors_carry_the_file_line() {
        let text = "---\ntitle: A\nsummary: [unclosed\norder: 1\n---\nbody";
        let s = split(text).unwrap();
        let err = parse_yaml::<LessonMeta>(s.yaml, s.yaml_line).unwrap_err();
        assert!(err.line >= 3, "{err:?}");
        let unknown = parse_yaml::<LessonMeta>("title: A\ntitel: B\n", 2).unwrap_err();
        assert_eq!(unknown.line, 3, "{unknown:?}");
        assert!(unknown.message.contains("titel"), "{unknown:?}");
    }
}
