//! Splitting a logical line: the instruction name, its `--flags`, and the argument words,
//! with the rules of buildkit's `splitCommand`, `extractBuilderFlags` and `parseWords`.

/// The separators of buildkit's `reWhitespace` (`[\t\v\f\r ]+`); note: not every Unicode
/// space, and no newline (a logical line has none).
pub(super) fn is_separator(c: char) -> bool {
    matches!(c, '\t' | '\u{0b}' | '\u{0c}' | '\r' | ' ')
}

/// Splits on runs of separators, dropping empty pieces.
pub(super) fn split_whitespace_delimited(rest: &str) -> Vec<String> {
    rest.split(is_separator)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Splits at the first run of separators: `(first, rest)`; `rest` keeps its own inner
/// whitespace.
pub(super) fn split_once_whitespace(s: &str) -> (&str, Option<&str>) {
    match s.find(is_separator) {
        Some(i) => {
            let rest = s[i..].trim_start_matches(is_separator);
            (&s[..i], Some(rest))
        }
        None => (s, None),
    }
}

/// Go's `strings.ToLower`, which maps each character to one character (`İ` to `i`).
pub(super) fn go_lower(s: &str) -> String {
    s.chars().map(|c| c.to_lowercase().next().unwrap_or(c)).collect()
}

/// A logical line split into the instruction name, the flags and the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SplitLine {
    pub cmd: String,
    pub flags: Vec<String>,
    pub rest: String,
}

/// buildkit's `splitCommand`.
pub(super) fn split_command(line: &str, escape: char) -> SplitLine {
    let (cmd, rest) = split_once_whitespace(line.trim());
    let (rest, flags) = match rest {
        Some(rest) => extract_flags(rest, escape),
        None => (String::new(), Vec::new()),
    };
    SplitLine {
        cmd: cmd.to_string(),
        flags,
        rest: rest.trim().to_string(),
    }
}

/// Takes the leading words that start with `--` (quotes and escapes inside them
/// processed) and returns the rest of the line. A bare `--` ends the flags.
pub(super) fn extract_flags(line: &str, escape: char) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos < chars.len() {
        let (offset, ch) = chars[pos];
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            // Only keep going if the next word starts with `--`.
            if ch != '-' || chars.get(pos + 1).map(|c| c.1) != Some('-') {
                return (line[offset..].to_string(), words);
            }
            phase = Phase::Word;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (line[offset..].to_string(), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            let mut c = ch;
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue; // an escape at the very end is dropped
                }
                pos += 1;
                c = chars[pos].1;
            }
            word.push(c);
            pos += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        let mut c = ch;
        if ch == escape {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            c = chars[pos].1;
        }
        word.push(c);
        pos += 1;
    }
    if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    (String::new(), words)
}

/// buildkit's `parseWords`: splits on whitespace but keeps quotes and escapes in the
/// words (they are processed later, when the word is expanded).
pub(super) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut word = String::new();
    let mut pos = 0;
    while pos < chars.len() {
        let ch = chars[pos];
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue; // an escape at the end of the line is dropped
                }
                // Outside quotes an escape and the next character are both kept, even
                // when that character is a quote.
                word.push(ch);
                pos += 1;
                word.push(chars[pos]);
                pos += 1;
                continue;
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // In quotes: the escape is special except inside single quotes.
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            word.push(ch);
            pos += 1;
            word.push(chars[pos]);
            pos += 1;
            continue;
        }
        word.push(ch);
        pos += 1;
    }
    if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_command_takes_name_flags_and_rest() {
        let s = split_command("  COPY --from=build --chown=1:1  a b  ", '\\');
        assert_eq!(s.cmd, "COPY");
        assert_eq!(s.flags, ["--from=build", "--chown=1:1"]);
        assert_eq!(s.rest, "a b");
        let s = split_command("RUN", '\\');
        assert_eq!((s.cmd.as_str(), s.flags.len(), s.rest.as_str()), ("RUN", 0, ""));
        // A tab separates; a no-break space does not.
        assert_eq!(split_command("RUN\techo", '\\').cmd, "RUN");
        assert_eq!(split_command("RUN\u{a0}echo", '\\').cmd, "RUN\u{a0}echo");
    }

    #[test]
    fn flags_with_quotes_escapes_and_terminator() {
        assert_eq!(
            extract_flags("--a=\"x y\" --b='' rest", '\\'),
            ("rest".into(), vec!["--a=x y".into(), "--b=".into()])
        );
        assert_eq!(
            extract_flags("--a=x\\ y z", '\\'),
            ("z".into(), vec!["--a=x y".to_string()])
        );
        assert_eq!(
            extract_flags("--a -- --b c", '\\'),
            (" --b c".into(), vec!["--a".to_string()])
        );
        assert_eq!(extract_flags("--a --", '\\'), (String::new(), vec!["--a".to_string()]));
        assert_eq!(extract_flags("-a b", '\\'), ("-a b".into(), vec![]));
        assert_eq!(
            extract_flags("--x=`\" y", '`'),
            ("y".into(), vec!["--x=\"".to_string()])
        );
    }

    #[test]
    fn parse_words_keeps_quotes_and_escapes() {
        assert_eq!(
            parse_words("a=\"b c\" d='e f' g\\ h", '\\'),
            ["a=\"b c\"", "d='e f'", "g\\ h"]
        );
        assert_eq!(parse_words("a=\"b\\\" c\"", '\\'), ["a=\"b\\\" c\""]);
        assert_eq!(parse_words("a='b\\' c", '\\'), ["a='b\\'", "c"]);
        assert_eq!(parse_words("x=\"\"", '\\'), ["x=\"\""]);
        assert_eq!(parse_words("  ", '\\'), Vec::<String>::new());
        assert_eq!(parse_words("a\\", '\\'), ["a"]);
    }
}
