//! Finding heredoc words (`<<EOF`, `<<-EOF`, `<<"EOF"`, `<< EOF`, `3<<EOF`) in a logical
//! line, as buildkit's parser does: the line is lexed with quotes, escapes and unset
//! variables kept as written, and each word is matched against `^(\d*)<<(-?)\s*([^<]*)$`.
//! The escape character used here is always `\`, whatever the `# escape=` directive says.

use crate::build::expand::Lexer;

/// A heredoc word: its delimiter and how its body is to be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HeredocWord {
    pub name: String,
    pub expand: bool,
    pub chomp: bool,
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// The heredoc words of a line, in order. A line the lexer cannot split (an unclosed
/// quote) has none, as in buildkit.
pub(super) fn heredocs_from_line(line: &str) -> Result<Vec<HeredocWord>, String> {
    let mut lexer = Lexer::new(&no_env, '\\');
    lexer.raw_quotes = true;
    lexer.raw_escapes = true;
    lexer.skip_unset = true;
    lexer.heredoc_words = true;
    let words = match lexer.process(line) {
        Ok((_, words)) => words,
        Err(_) => return Ok(Vec::new()),
    };
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// Whether a word is a heredoc word, ignoring errors (buildkit's `MustParseHeredoc`).
pub(super) fn heredoc_word(word: &str) -> Option<HeredocWord> {
    parse_heredoc(word).ok().flatten()
}

fn is_regex_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{0c}' | '\r' | ' ')
}

/// buildkit's `ParseHeredoc`.
pub(super) fn parse_heredoc(src: &str) -> Result<Option<HeredocWord>, String> {
    let after_fd = src.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(rest) = after_fd.strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let rest = rest.trim_start_matches(is_regex_space);
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    // Lex the delimiter with and without its quotes: if the quote counts differ, part of
    // it was quoted and the body must not be expanded.
    let mut lexer = Lexer::new(&no_env, '\\');
    lexer.skip_unset = true;
    lexer.heredoc_words = true;
    let (_, words) = lexer.process(rest).map_err(|e| e.to_string())?;
    if words.len() != 1 {
        return Ok(None);
    }
    lexer.raw_quotes = true;
    let (_, raw_words) = lexer.process(rest).map_err(|e| e.to_string())?;
    if raw_words.len() != words.len() {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    let expand = quotes(&words[0]) == quotes(&raw_words[0]);
    Ok(Some(HeredocWord {
        name: words[0].clone(),
        expand,
        chomp,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(name: &str, expand: bool, chomp: bool) -> HeredocWord {
        HeredocWord {
            name: name.into(),
            expand,
            chomp,
        }
    }

    #[test]
    fn heredoc_words() {
        assert_eq!(parse_heredoc("<<EOF"), Ok(Some(word("EOF", true, false))));
        assert_eq!(parse_heredoc("<<-EOF"), Ok(Some(word("EOF", true, true))));
        assert_eq!(parse_heredoc("<<'EOF'"), Ok(Some(word("EOF", false, false))));
        assert_eq!(parse_heredoc("<<\"EOF\""), Ok(Some(word("EOF", false, false))));
        assert_eq!(parse_heredoc("<<E\"O\"F"), Ok(Some(word("EOF", false, false))));
        assert_eq!(parse_heredoc("<<-'EOT'"), Ok(Some(word("EOT", false, true))));
        assert_eq!(parse_heredoc("3<<EOF"), Ok(Some(word("EOF", true, false))));
        assert_eq!(parse_heredoc("<< EOF"), Ok(Some(word("EOF", true, false))));
        assert_eq!(parse_heredoc("<<"), Ok(None));
        assert_eq!(parse_heredoc("<<<EOF"), Ok(None));
        assert_eq!(parse_heredoc("a<<EOF"), Ok(None));
        assert_eq!(parse_heredoc("<<a b"), Ok(None));
        assert_eq!(parse_heredoc("/dest"), Ok(None));
    }

    #[test]
    fn heredocs_in_a_line() {
        let got = heredocs_from_line("RUN <<EOF <<-'EOT' cat").unwrap();
        assert_eq!(got, [word("EOF", true, false), word("EOT", false, true)]);
        // `cat<<EOF` is one word that does not start with `<<`: not a heredoc in Docker.
        assert_eq!(heredocs_from_line("RUN cat<<EOF").unwrap(), []);
        assert_eq!(
            heredocs_from_line("RUN cat << EOF > /f").unwrap(),
            [word("EOF", true, false)]
        );
        assert_eq!(heredocs_from_line("RUN echo \"<<EOF\"").unwrap(), []);
        assert_eq!(heredocs_from_line("RUN echo '<<EOF").unwrap(), []);
        assert_eq!(
            heredocs_from_line("COPY <<a.txt <<b.txt /dir/").unwrap(),
            [word("a.txt", true, false), word("b.txt", true, false)]
        );
    }
}
