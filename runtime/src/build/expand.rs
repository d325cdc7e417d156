//! Variable substitution as the Dockerfile builder does it (buildkit's `shell.Lex`, the
//! lexer the classic builder vendors): `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`,
//! `${VAR:+word}`, `${VAR+word}`, `${VAR:?msg}`, `${VAR?msg}`, the patterns `${VAR#pat}`,
//! `${VAR##pat}`, `${VAR%pat}`, `${VAR%%pat}`, `${VAR/pat/repl}` and `${VAR//pat/repl}`,
//! single and double quotes, and the escape character of the Dockerfile (`\` or `` ` ``).
//!
//! [`expand`] is buildkit's `ProcessWord` (one word: quotes removed, no splitting), used for
//! ENV, ARG, LABEL, WORKDIR, USER, VOLUME, STOPSIGNAL, COPY/ADD paths and `--chown`, FROM.
//! [`expand_words`] is `ProcessWords` (split into words after expansion; text from a
//! variable is split, quoted text is not), used for EXPOSE.
//!
//! Undefined variables expand to the empty string. Nesting is limited to
//! [`MAX_NESTING`] levels so that no input can exhaust the stack.

use std::fmt;

/// How deeply `${...}` substitutions may nest inside one another.
pub const MAX_NESTING: usize = 64;

/// A substitution that Docker rejects, such as `${A:?}` with `A` unset, `${A` or `${A:=b}`.
/// Displays as Docker does: `failed to process "${A:?}": A: is not allowed to be unset`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ExpandError {
    /// The word that was being expanded.
    pub word: String,
    /// What went wrong, e.g. `syntax error: missing '}'`.
    pub reason: String,
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed to process {}: {}", go_quote(&self.word), self.reason)
    }
}

/// Expands one word (`ProcessWord`): variables substituted, quotes and escapes removed,
/// whitespace kept.
pub fn expand(word: &str, lookup: &dyn Fn(&str) -> Option<String>, escape: char) -> Result<String, ExpandError> {
    Lexer::new(lookup, escape).process(word).map(|(word, _)| word)
}

/// Expands a text and splits it into words (`ProcessWords`): whitespace that comes from
/// the text or from a variable's value separates words, quoted or escaped whitespace does
/// not, and empty words are dropped.
pub fn expand_words(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<Vec<String>, ExpandError> {
    Lexer::new(lookup, escape).process(text).map(|(_, words)| words)
}

/// Expands the body of a COPY or ADD heredoc whose delimiter was not quoted, as buildkit
/// does: variables and `\` escapes are processed (the escape is always `\`, whatever the
/// Dockerfile's), quotes are kept as they are. Pass [`super::dockerfile::Heredoc::body`].
pub fn expand_heredoc(content: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut lexer = Lexer::new(lookup, '\\');
    lexer.skip_quotes = true;
    lexer.process(content).map(|(text, _)| text)
}

/// Quotes a string roughly as Go's `%q` does (used in error messages).
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let n = c as u32;
                if n < 0x100 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else {
                    out.push_str(&format!("\\u{n:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The lexer, with the switches buildkit's parser uses to find heredoc words.
pub(crate) struct Lexer<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    escape: char,
    /// Keep quote characters in the result (`RawQuotes`).
    pub raw_quotes: bool,
    /// Keep escape characters in the result (`RawEscapes`).
    pub raw_escapes: bool,
    /// Leave unset variables as written (`SkipUnsetEnv`).
    pub skip_unset: bool,
    /// Treat `<<` followed by blanks as one piece (`processPossibleHeredoc`), as the
    /// parser does when it looks for heredocs.
    pub heredoc_words: bool,
    /// Quotes are ordinary characters (`SkipProcessQuotes`).
    pub skip_quotes: bool,
}

struct Scan<'s> {
    chars: &'s [char],
    pos: usize,
    depth: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }
}

/// Collects words (`wordsStruct`).
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for c in s.chars() {
            self.add_char(c);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(std::mem::take(&mut self.buf));
        }
        self.words
    }
}

type LexResult<T> = Result<T, String>;

impl<'a> Lexer<'a> {
    pub(crate) fn new(lookup: &'a dyn Fn(&str) -> Option<String>, escape: char) -> Self {
        Lexer {
            lookup,
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset: false,
            heredoc_words: false,
            skip_quotes: false,
        }
    }

    /// Processes `text`, returning the single-word result and the split words.
    pub(crate) fn process(&self, text: &str) -> Result<(String, Vec<String>), ExpandError> {
        let mut chars: Vec<char> = text.chars().collect();
        // Go's text/scanner drops a byte-order mark at the very start.
        if chars.first() == Some(&'\u{feff}') {
            chars.remove(0);
        }
        let mut scan = Scan {
            chars: &chars,
            pos: 0,
            depth: 0,
        };
        self.stop_on(&mut scan, None, self.raw_escapes)
            .map_err(|reason| ExpandError {
                word: text.to_string(),
                reason,
            })
    }

    fn stop_on(&self, s: &mut Scan, stop: Option<char>, raw_escapes: bool) -> LexResult<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = s.peek() {
            if Some(ch) == stop {
                s.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let value = self.dollar(s)?;
                    result.push_str(&value);
                    words.add_string(&value);
                }
                '<' if self.heredoc_words => {
                    let piece = possible_heredoc(s);
                    result.push_str(&piece);
                    words.add_raw_string(&piece);
                }
                '\'' if !self.skip_quotes => {
                    let value = self.single_quote(s)?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                '"' if !self.skip_quotes => {
                    let value = self.double_quote(s, raw_escapes)?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                _ => {
                    s.next();
                    if ch == self.escape {
                        if raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // The escape escapes the next character, except at the end.
                        let Some(escaped) = s.next() else { break };
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        if let Some(stop) = stop {
            return Err(format!("unexpected end of statement while looking for matching {stop}"));
        }
        Ok((result, words.finish()))
    }

    fn single_quote(&self, s: &mut Scan) -> LexResult<String> {
        // Everything up to the next single quote is literal; a single quote cannot be escaped.
        let mut result = String::new();
        let quote = s.next().unwrap_or('\'');
        if self.raw_quotes {
            result.push(quote);
        }
        loop {
            match s.next() {
                None => return Err("unexpected end of statement while looking for matching single-quote".into()),
                Some('\'') => {
                    if self.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn double_quote(&self, s: &mut Scan, raw_escapes: bool) -> LexResult<String> {
        // Literal except `$`, and the escape character before `"`, `$` or itself.
        let mut result = String::new();
        let quote = s.next().unwrap_or('"');
        if self.raw_quotes {
            result.push(quote);
        }
        loop {
            match s.peek() {
                None => return Err("unexpected end of statement while looking for matching double-quote".into()),
                Some('"') => {
                    s.next();
                    if self.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.dollar(s)?;
                    result.push_str(&value);
                }
                Some(_) => {
                    let mut ch = s.next().unwrap_or_default();
                    if ch == self.escape {
                        if raw_escapes {
                            result.push(ch);
                        }
                        match s.peek() {
                            // An escape at the very end is dropped (and the quote is unterminated).
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.escape => {
                                ch = s.next().unwrap_or_default();
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn dollar(&self, s: &mut Scan) -> LexResult<String> {
        s.next(); // the '$'
        if s.peek() != Some('{') {
            let name = process_name(s);
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match (self.lookup)(&name) {
                Some(v) => v,
                None if self.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        s.next(); // the '{'
        match s.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        if s.depth >= MAX_NESTING {
            return Err("syntax error: substitutions nested too deeply".into());
        }
        s.depth += 1;
        let result = self.braced(s);
        s.depth -= 1;
        result
    }

    /// The rest of `${name...}` after the `{`.
    fn braced(&self, s: &mut Scan) -> LexResult<String> {
        let name = process_name(s);
        let Some(ch) = s.next() else {
            return Err("syntax error: missing '}'".into());
        };
        match ch {
            '}' => Ok(match (self.lookup)(&name) {
                Some(v) => v,
                None if self.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let mut chs = ch.to_string();
                let mut null_is_unset = false;
                let mut op = Some(ch);
                if ch == ':' {
                    null_is_unset = true;
                    op = s.next();
                    chs.push(op.unwrap_or('\u{fffd}'));
                }
                let pattern_op = matches!(op, Some('#' | '%'));
                if null_is_unset && pattern_op {
                    return Err(format!("unsupported modifier ({chs}) in substitution"));
                }
                let word = match self.stop_on(s, Some('}'), pattern_op) {
                    Ok((word, _)) => word,
                    Err(_) if s.peek().is_none() => return Err("syntax error: missing '}'".into()),
                    Err(e) => return Err(e),
                };
                let value = (self.lookup)(&name);
                if self.skip_unset && value.is_none() {
                    return Ok(format!("${{{name}{chs}{word}}}"));
                }
                let set = value.is_some();
                let value = value.unwrap_or_default();
                let unset_or_null = !set || (null_is_unset && value.is_empty());
                match op {
                    Some('-') => Ok(if unset_or_null { word } else { value }),
                    Some('+') => Ok(if unset_or_null { String::new() } else { word }),
                    Some('?') => {
                        if !set {
                            let msg = if word.is_empty() {
                                "is not allowed to be unset".to_string()
                            } else {
                                word
                            };
                            return Err(format!("{name}: {msg}"));
                        }
                        if null_is_unset && value.is_empty() {
                            let msg = if word.is_empty() {
                                "is not allowed to be empty".to_string()
                            } else {
                                word
                            };
                            return Err(format!("{name}: {msg}"));
                        }
                        Ok(value)
                    }
                    Some(op @ ('#' | '%')) => {
                        // `#`/`%` remove the shortest match, `##`/`%%` the longest.
                        let mut pattern = word.as_str();
                        let greedy = pattern.starts_with(op);
                        if greedy {
                            pattern = &pattern[op.len_utf8()..];
                        }
                        if op == '%' {
                            trim_suffix(pattern, &value, greedy)
                        } else {
                            trim_prefix(pattern, &value, greedy)
                        }
                    }
                    _ => Err(format!("unsupported modifier ({chs}) in substitution")),
                }
            }
            '/' => {
                let replace_all = s.peek() == Some('/');
                if replace_all {
                    s.next();
                }
                let pattern = match self.stop_on(s, Some('/'), true) {
                    Ok((p, _)) => p,
                    Err(_) if s.peek().is_none() => return Err("syntax error: missing '/' in ${}".into()),
                    Err(e) => return Err(e),
                };
                let replacement = match self.stop_on(s, Some('}'), true) {
                    Ok((r, _)) => r,
                    Err(_) if s.peek().is_none() => return Err("syntax error: missing '}'".into()),
                    Err(e) => return Err(e),
                };
                let value = (self.lookup)(&name);
                if self.skip_unset && value.is_none() {
                    return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                }
                let value = value.unwrap_or_default();
                let toks = pattern_tokens(&pattern.chars().collect::<Vec<_>>())
                    .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
                Ok(replace(&toks, &value, &replacement, replace_all))
            }
            _ => Err(format!("unsupported modifier ({ch}) in substitution")),
        }
    }
}

/// `<` already peeked: returns `<`, or `<<` and the blanks after it.
fn possible_heredoc(s: &mut Scan) -> String {
    s.next();
    if s.peek() != Some('<') {
        return "<".into();
    }
    s.next();
    let mut piece = String::from("<<");
    while let Some(c @ ('\t' | '\r' | ' ')) = s.peek() {
        piece.push(c);
        s.next();
    }
    piece
}

/// Go's `unicode.IsDigit`: decimal digits only (`char::is_numeric` would also take `²`).
fn is_digit(c: char) -> bool {
    if (c as u32) < 0x100 {
        c.is_ascii_digit()
    } else {
        c.is_numeric()
    }
}

fn process_name(s: &mut Scan) -> String {
    let mut name = String::new();
    while let Some(ch) = s.peek() {
        if name.is_empty() && is_digit(ch) {
            // Positional parameters: all the digits.
            while let Some(c) = s.peek().filter(|c| is_digit(*c)) {
                s.next();
                name.push(c);
            }
            return name;
        }
        if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
            s.next();
            return ch.to_string();
        }
        if !(ch.is_alphabetic() || is_digit(ch) || ch == '_') {
            break;
        }
        s.next();
        name.push(ch);
    }
    name
}

// ---- Shell patterns: `?`, `*` and `\` escapes, translated as buildkit translates them to
// a regular expression (so `?` and `*` do not match a newline) and matched with the same
// leftmost-first preference as Go's regexp engine.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PTok {
    Lit(char),
    Any,
    Star,
}

/// Tokenises a pattern. `\` escapes `*`, `?` and `\`; before `}` or `/` it is dropped;
/// anything else after it is an error, as in buildkit.
fn pattern_tokens(pattern: &[char]) -> Result<Vec<PTok>, String> {
    let mut chars = pattern;
    if chars.first() == Some(&'\u{feff}') {
        chars = &chars[1..];
    }
    let mut toks = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => toks.push(PTok::Star),
            '?' => toks.push(PTok::Any),
            '\\' => match chars.get(i) {
                Some('}' | '/') => {}
                Some(&e @ ('*' | '?' | '\\')) => {
                    i += 1;
                    toks.push(PTok::Lit(e));
                }
                Some(&e) => return Err(format!("invalid escape '\\{e}'")),
                None => return Err("invalid escape '\\\u{fffd}'".into()),
            },
            c => toks.push(PTok::Lit(c)),
        }
    }
    Ok(toks)
}

/// For every start position `p` of `text`, the end of the match of `toks` starting exactly
/// at `p` that a backtracking engine would prefer (greedy or lazy stars), or `None`.
fn preferred_ends(toks: &[PTok], text: &[char], greedy: bool) -> Vec<Option<usize>> {
    let m = toks.len();
    let n = text.len();
    // next[i] = f(i, p + 1), cur[i] = f(i, p); computed for p = n down to 0.
    let mut next: Vec<Option<usize>> = vec![None; m + 1];
    let mut cur: Vec<Option<usize>> = vec![None; m + 1];
    let mut starts = vec![None; n + 1];
    for p in (0..=n).rev() {
        let c = text.get(p).copied();
        cur[m] = Some(p);
        for i in (0..m).rev() {
            cur[i] = match toks[i] {
                PTok::Lit(l) => {
                    if c == Some(l) {
                        next[i + 1]
                    } else {
                        None
                    }
                }
                PTok::Any => {
                    if c.is_some_and(|c| c != '\n') {
                        next[i + 1]
                    } else {
                        None
                    }
                }
                PTok::Star => {
                    let more = if c.is_some_and(|c| c != '\n') { next[i] } else { None };
                    if greedy {
                        more.or(cur[i + 1])
                    } else {
                        cur[i + 1].or(more)
                    }
                }
            };
        }
        starts[p] = cur[0];
        std::mem::swap(&mut cur, &mut next);
    }
    starts
}

fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> LexResult<String> {
    let chars: Vec<char> = pattern.chars().collect();
    let toks = pattern_tokens(&chars).map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
    let text: Vec<char> = value.chars().collect();
    Ok(match preferred_ends(&toks, &text, greedy)[0] {
        Some(end) => text[end..].iter().collect(),
        None => value.to_string(),
    })
}

/// Reverses a pattern but keeps each `\x` pair in order, as buildkit does.
fn reverse_pattern(pattern: &str) -> String {
    let p: Vec<char> = pattern.chars().collect();
    let mut out = vec!['\0'; p.len()];
    let last = p.len().saturating_sub(1);
    let mut i = 0;
    while i < p.len() {
        let out_idx = last - i;
        if p[i] == '\\' && i != last {
            out[out_idx - 1] = p[i];
            out[out_idx] = p[i + 1];
            i += 2;
        } else {
            out[out_idx] = p[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> LexResult<String> {
    // The shortest or longest suffix is found by matching a prefix of the reversed value.
    let reversed: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

/// `${v/pat/repl}` and `${v//pat/repl}` (greedy stars, leftmost match). Replacing all uses
/// Go's `ReplaceAllString`, so `$0` and `$$` in the replacement mean what they mean there.
fn replace(toks: &[PTok], value: &str, replacement: &str, all: bool) -> String {
    let text: Vec<char> = value.chars().collect();
    let ends = preferred_ends(toks, &text, true);
    let find_from = |from: usize| (from..=text.len()).find_map(|s| ends[s].map(|e| (s, e)));
    if !all {
        return match find_from(0) {
            Some((s, e)) => {
                let mut out: String = text[..s].iter().collect();
                out.push_str(replacement);
                out.extend(&text[e..]);
                out
            }
            None => value.to_string(),
        };
    }
    let mut out = String::new();
    let mut last_end = 0;
    let mut search = 0;
    while search <= text.len() {
        let Some((s, e)) = find_from(search) else { break };
        out.extend(&text[last_end..s]);
        // No replacement for an empty match right after the previous match.
        if e > last_end || s == 0 {
            expand_template(&mut out, replacement, &text[s..e]);
        }
        last_end = e;
        search = if search + 1 > e { search + 1 } else { e };
    }
    out.extend(&text[last_end.min(text.len())..]);
    out
}

/// Go's `Regexp.Expand` for a regexp without groups: `$0`/`${0}` is the match, `$$` a
/// dollar, other references are empty and a malformed reference is a literal `$`.
fn expand_template(out: &mut String, template: &str, matched: &[char]) {
    let mut rest = template;
    while let Some(idx) = rest.find('$') {
        out.push_str(&rest[..idx]);
        rest = &rest[idx + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let (brace, body) = match rest.strip_prefix('{') {
            Some(b) => (true, b),
            None => (false, rest),
        };
        let name_len: usize = body
            .chars()
            .take_while(|c| c.is_alphabetic() || is_digit(*c) || *c == '_')
            .map(char::len_utf8)
            .sum();
        if name_len == 0 || (brace && !body[name_len..].starts_with('}')) {
            out.push('$');
            continue;
        }
        let name = &body[..name_len];
        rest = &body[name_len + usize::from(brace)..];
        if name == "0" {
            out.extend(matched);
        }
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn word(w: &str, e: &HashMap<String, String>) -> Result<String, String> {
        expand(w, &|k| e.get(k).cloned(), '\\').map_err(|e| e.reason)
    }

    fn words(w: &str, e: &HashMap<String, String>) -> Result<Vec<String>, String> {
        expand_words(w, &|k| e.get(k).cloned(), '\\').map_err(|e| e.reason)
    }

    /// Cases in the spirit of buildkit's envVarTest table, written for these tests.
    #[test]
    fn expand_word_table() {
        let e = env(&[
            ("PWD", "/home"),
            ("SHELL", "bash"),
            ("FOO", "foo-value"),
            ("EMPTY", ""),
            ("SP", "a  b"),
        ]);
        let cases: &[(&str, &str)] = &[
            ("hello", "hello"),
            ("he'll'o", "hello"),
            ("he'llo", "ERR"),
            ("he\\'llo", "he'llo"),
            ("he\\\\'llo", "ERR"),
            ("abc\\\\def", "abc\\def"),
            ("\"abc\\\\def\"", "abc\\def"),
            ("\"abc\\def\"", "abc\\def"),
            ("'abc\\\\def'", "abc\\\\def"),
            ("\"abc\\", "ERR"),
            ("a\\", "a"),
            ("$PWD", "/home"),
            ("\"$PWD\"", "/home"),
            ("'$PWD'", "$PWD"),
            ("\\$PWD", "$PWD"),
            ("\"\\$PWD\"", "$PWD"),
            ("${PWD}", "/home"),
            ("x${PWD}y", "x/homey"),
            ("$PWDx", ""),
            ("${PWD}x", "/homex"),
            ("$", "$"),
            ("$.", "$."),
            ("${", "ERR"),
            ("${}", "ERR"),
            ("${:x}", "ERR"),
            ("${PWD", "ERR"),
            ("$1", ""),
            ("$$", ""),
            ("$@x", "x"),
            ("${NOPE}", ""),
            ("${NOPE:-def}", "def"),
            ("${NOPE-def}", "def"),
            ("${EMPTY:-def}", "def"),
            ("${EMPTY-def}", ""),
            ("${FOO:-def}", "foo-value"),
            ("${NOPE:+alt}", ""),
            ("${EMPTY:+alt}", ""),
            ("${EMPTY+alt}", "alt"),
            ("${FOO:+alt}", "alt"),
            ("${FOO+alt}", "alt"),
            ("${NOPE:-${FOO}}", "foo-value"),
            ("${NOPE:-${NOPE2:-deep}}", "deep"),
            ("${NOPE:-'a b'}", "a b"),
            ("${NOPE:-\"$FOO x\"}", "foo-value x"),
            ("${NOPE:-a\\}b}", "a}b"),
            ("${FOO:?}", "foo-value"),
            ("${NOPE:?}", "ERR"),
            ("${NOPE:=x}", "ERR"),
            ("${FOO:#x}", "ERR"),
            ("${FOO:x}", "ERR"),
            ("${FOO^}", "ERR"),
            ("${FOO#foo}", "-value"),
            ("${FOO#f*}", "oo-value"),
            ("${FOO##f*}", ""),
            ("${FOO##*-}", "value"),
            ("${FOO#*o}", "o-value"),
            ("${FOO##*o}", "-value"),
            ("${FOO%value}", "foo-"),
            ("${FOO%-*}", "foo"),
            ("${FOO%%o*}", "f"),
            ("${FOO%o*}", "fo"),
            ("${FOO%?}", "foo-valu"),
            ("${FOO#nomatch}", "foo-value"),
            ("${FOO#\\*}", "foo-value"),
            ("${FOO#\\q}", "ERR"),
            ("${FOO/o/0}", "f0o-value"),
            ("${FOO//o/0}", "f00-value"),
            ("${FOO/o*/X}", "fX"),
            ("${FOO//?/.}", "........."),
            ("${FOO/nomatch/X}", "foo-value"),
            ("${NOPE/a/b}", ""),
            ("${FOO/o}", "ERR"),
            ("${FOO//o/$$}", "f-value"),
            ("${FOO//o/'$0$0'}", "foooo-value"),
            ("${SP}", "a  b"),
            ("\"${SP}\"", "a  b"),
        ];
        for (input, want) in cases {
            let got = word(input, &e);
            match (*want, &got) {
                ("ERR", Err(_)) => {}
                ("ERR", Ok(v)) => panic!("{input:?}: want an error, got {v:?}"),
                (w, Ok(v)) => assert_eq!(v, w, "{input:?}"),
                (w, Err(err)) => panic!("{input:?}: want {w:?}, got error {err}"),
            }
        }
    }

    /// Cases in the spirit of buildkit's wordsTest table.
    #[test]
    fn expand_words_table() {
        let e = env(&[
            ("HI", "hi"),
            ("SPACE", "abc  def"),
            ("LEADING", "  ab c"),
            ("TRAILING", "ab c   "),
        ]);
        let cases: &[(&str, &[&str])] = &[
            ("hello", &["hello"]),
            ("hello${NOPE}bye", &["hellobye"]),
            ("hello${HI}bye", &["hellohibye"]),
            ("hello${SPACE}bye", &["helloabc", "defbye"]),
            ("hello\"${SPACE}\"bye", &["helloabc  defbye"]),
            ("hello \"${SPACE}\"bye", &["hello", "abc  defbye"]),
            ("hello${LEADING}def", &["hello", "ab", "cdef"]),
            ("hello\"${LEADING}\" def", &["hello  ab c", "def"]),
            ("hello${TRAILING}d", &["helloab", "c", "d"]),
            ("hello\" there  \"", &["hello there  "]),
            ("hello there     ", &["hello", "there"]),
            ("hello\\ there", &["hello there"]),
            ("hello\\\" there", &["hello\"", "there"]),
            ("'' \"\" x", &["x"]),
            ("80 443/udp", &["80", "443/udp"]),
            ("a${NOPE:-b c}d", &["ab", "cd"]),
            ("a << b", &["a", "<<", "b"]),
        ];
        for (input, want) in cases {
            let got = words(input, &e).unwrap_or_else(|err| panic!("{input:?}: {err}"));
            assert_eq!(got, *want, "{input:?}");
        }
        assert!(words("hello\" there", &e).is_err());
    }

    #[test]
    fn error_messages_read_as_docker() {
        let e = env(&[("EMPTY", "")]);
        let err = expand("${A:?}", &|k| e.get(k).cloned(), '\\').unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to process \"${A:?}\": A: is not allowed to be unset"
        );
        assert_eq!(word("${EMPTY:?}", &e).unwrap_err(), "EMPTY: is not allowed to be empty");
        assert_eq!(word("${EMPTY?}", &e).unwrap(), "");
        assert_eq!(word("${A?must be set}", &e).unwrap_err(), "A: must be set");
        assert_eq!(
            word("${A:=b}", &e).unwrap_err(),
            "unsupported modifier (:=) in substitution"
        );
        assert_eq!(
            word("${A:#b}", &e).unwrap_err(),
            "unsupported modifier (:#) in substitution"
        );
        assert_eq!(word("${A", &e).unwrap_err(), "syntax error: missing '}'");
        assert_eq!(word("${A:-x", &e).unwrap_err(), "syntax error: missing '}'");
        assert_eq!(word("${A/x", &e).unwrap_err(), "syntax error: missing '/' in ${}");
        assert_eq!(word("${}", &e).unwrap_err(), "syntax error: bad substitution");
        assert_eq!(
            word("'abc", &e).unwrap_err(),
            "unexpected end of statement while looking for matching single-quote"
        );
        assert_eq!(
            word("\"abc", &e).unwrap_err(),
            "unexpected end of statement while looking for matching double-quote"
        );
        assert_eq!(
            word("${A#\\x}", &e).unwrap_err(),
            "invalid pattern (\\x) in substitution: invalid escape '\\x'"
        );
    }

    #[test]
    fn heredoc_bodies_keep_quotes() {
        let e = env(&[("NAME", "web"), ("PORT", "80")]);
        let body = "server_name \"$NAME\";\nlisten '${PORT}';\nprice: \\$5\n";
        let got = expand_heredoc(body, &|k| e.get(k).cloned()).unwrap();
        assert_eq!(got, "server_name \"web\";\nlisten '80';\nprice: $5\n");
        // A lone quote is no error there.
        assert_eq!(
            expand_heredoc("it's $NAME", &|k| e.get(k).cloned()).unwrap(),
            "it's web"
        );
        assert!(expand_heredoc("${NAME", &|k| e.get(k).cloned()).is_err());
    }

    #[test]
    fn backtick_escape() {
        let e = env(&[("A", "x")]);
        let f = |w: &str| expand(w, &|k| e.get(k).cloned(), '`').unwrap();
        assert_eq!(f("`$A"), "$A");
        assert_eq!(f("c:\\path\\$A"), "c:\\path\\x");
        assert_eq!(f("\"a`\"b\""), "a\"b");
        assert_eq!(f("a` b"), "a b");
        let w = expand_words("a` b c", &|k| e.get(k).cloned(), '`').unwrap();
        assert_eq!(w, ["a b", "c"]);
    }

    #[test]
    fn newline_is_not_matched_by_wildcards() {
        // Go's regexp `.` does not match a newline, and buildkit builds on it.
        let e = env(&[("A", "a\nb")]);
        assert_eq!(word("${A#*b}", &e).unwrap(), "a\nb");
        assert_eq!(word("${A#a?}", &e).unwrap(), "a\nb");
        assert_eq!(word("${A%\nb}", &e).unwrap(), "a");
    }

    #[test]
    fn replace_all_follows_go_rules() {
        let e = env(&[("A", "abc")]);
        // An empty pattern matches between every character.
        assert_eq!(word("${A///-}", &e).unwrap(), "-a-b-c-");
        assert_eq!(word("${A///-}", &env(&[("A", "")])).unwrap(), "-");
        // `*` matches everything once; the empty match at the end abuts it and is skipped.
        assert_eq!(word("${A//*/X}", &e).unwrap(), "X");
        // Replacing only the first match is literal, replacing all expands `$0`.
        assert_eq!(word("${A/b/'[$0]'}", &e).unwrap(), "a[$0]c");
        assert_eq!(word("${A//b/'[$0]'}", &e).unwrap(), "a[b]c");
        assert_eq!(word("${A//b/'${0}$1$x$'}", &e).unwrap(), "ab$c");
    }

    #[test]
    fn patterns_from_variables_and_escapes() {
        let e = env(&[
            ("FILE", "/srv/app/*/x.tar.gz"),
            ("NEEDLE", "\\*/"),
            ("URL", "http://example.com"),
            ("P", "http://"),
            ("R", "https://"),
            ("SPECIAL", "(a)[b]{c}^$.+|\\z"),
        ]);
        // A pattern that comes from a variable is still a pattern; `\*` in it is a star.
        assert_eq!(word("${FILE/$NEEDLE/-}", &e).unwrap(), "/srv/app/-x.tar.gz");
        assert_eq!(word("${URL/$P/$R}", &e).unwrap(), "https://example.com");
        // `\/` and `\}` stand for the separator characters.
        assert_eq!(word("${FILE//\\//:}", &e).unwrap(), ":srv:app:*:x.tar.gz");
        // Characters special in regexps are plain in shell patterns.
        assert_eq!(word("${SPECIAL#(a)[b]{c\\}^$.+|\\\\}", &e).unwrap(), "z");
        assert_eq!(word("${FILE%%.*}", &e).unwrap(), "/srv/app/*/x");
        assert_eq!(word("${FILE%.*}", &e).unwrap(), "/srv/app/*/x.tar");
        assert_eq!(word("${FILE##*/}", &e).unwrap(), "x.tar.gz");
        assert_eq!(word("${FILE#*/}", &e).unwrap(), "srv/app/*/x.tar.gz");
        // An empty pattern matches at the start.
        assert_eq!(word("${URL/$EMPTY/>}", &e).unwrap(), ">http://example.com");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let depth = 10_000;
        let input = format!("{}x{}", "${A:-".repeat(depth), "}".repeat(depth));
        let err = expand(&input, &|_| None, '\\').unwrap_err();
        assert!(err.reason.contains("nested too deeply"), "{}", err.reason);
        let ok = format!("{}x{}", "${A:-".repeat(MAX_NESTING - 1), "}".repeat(MAX_NESTING - 1));
        assert_eq!(expand(&ok, &|_| None, '\\').unwrap(), "x");
        let quoted = format!("{}x{}", "${A:-\"".repeat(depth), "\"}".repeat(depth));
        assert!(expand(&quoted, &|_| None, '\\').is_err());
    }

    #[test]
    fn lookup_sees_the_names_docker_looks_up() {
        let seen = std::cell::RefCell::new(Vec::new());
        let lookup = |k: &str| {
            seen.borrow_mut().push(k.to_string());
            None
        };
        expand("$a_1 ${B} $9x $@ ${_c:-$d}", &lookup, '\\').unwrap();
        // The default word of `${_c:-$d}` is expanded before `_c` is looked up.
        assert_eq!(*seen.borrow(), ["a_1", "B", "9", "@", "d", "_c"]);
    }

    #[test]
    fn raw_modes_keep_quotes_escapes_and_unset_variables() {
        let lookup = |_: &str| None;
        let mut lex = Lexer::new(&lookup, '\\');
        lex.raw_quotes = true;
        lex.raw_escapes = true;
        lex.skip_unset = true;
        lex.heredoc_words = true;
        let (_, words) = lex.process("RUN <<\"EOF\" $X ${Y:-z} a\\ b << END").unwrap();
        assert_eq!(words, ["RUN", "<<\"EOF\"", "$X", "${Y:-z}", "a\\ b", "<< END"]);
    }
}
