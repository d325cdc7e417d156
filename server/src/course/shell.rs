//! What the Copy and Run buttons of a shell block carry.

/// The fence languages whose blocks get a Run button.
pub fn is_shell(lang: &str) -> bool {
    matches!(
        lang.to_ascii_lowercase().as_str(),
        "sh" | "bash" | "shell" | "console" | "zsh"
    )
}

/// One line of a shell block as the page shows it.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A command line; `prompt` is the `$ ` or `# ` that a console block showed before it.
    Command { prompt: &'a str, text: &'a str },
    /// Output shown in a console block; never copied or run.
    Output(&'a str),
}

/// Cuts a shell block into command and output lines. In `sh`, `bash` and `shell` blocks every
/// line is a command. In `console` blocks only lines after a `$ ` or `# ` prompt are, with the
/// lines that a trailing `\` continues.
pub fn lines<'a>(code: &'a str, lang: &str) -> Vec<Line<'a>> {
    let console = lang.eq_ignore_ascii_case("console");
    let mut out = Vec::new();
    let mut continued = false;
    for line in code.lines() {
        if !console {
            out.push(Line::Command { prompt: "", text: line });
            continue;
        }
        if continued {
            out.push(Line::Command { prompt: "", text: line });
        } else if let Some(text) = line.strip_prefix("$ ").or_else(|| (line == "$").then_some("")) {
            out.push(Line::Command { prompt: "$ ", text });
        } else if let Some(text) = line.strip_prefix("# ") {
            out.push(Line::Command { prompt: "# ", text });
        } else {
            out.push(Line::Output(line));
            continue;
        }
        continued = line.trim_end().ends_with('\\');
    }
    out
}

/// The text that Copy copies and Run types: the command lines, without prompts and output.
pub fn command(code: &str, lang: &str) -> String {
    let mut cmd = String::new();
    for line in lines(code, lang) {
        if let Line::Command { text, .. } = line {
            cmd.push_str(text);
            cmd.push('\n');
        }
    }
    // Trailing blank lines would make Run press Enter twice.
    let trimmed = cmd.trim_end_matches(['\n', ' ']);
    trimmed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_blocks_keep_only_prompted_lines_and_continuations() {
        let code = "$ docker run -d \\\n    --name web nginx\n3f2a...\n$ docker ps\nCONTAINER ID\n";
        assert_eq!(
            command(code, "console"),
            "docker run -d \\\n    --name web nginx\ndocker ps"
        );
    }

    #[test]
    fn plain_shell_blocks_are_all_command() {
        assert_eq!(
            command("# list them\ndocker ps -a\n\n", "sh"),
            "# list them\ndocker ps -a"
        );
        assert!(is_shell("Bash") && is_shell("console") && !is_shell("dockerfile"));
    }

    #[test]
    fn root_prompts_count_as_commands_in_console_blocks() {
        assert_eq!(command("# apt-get update\nHit:1 ...\n", "console"), "apt-get update");
    }
}
