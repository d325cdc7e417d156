//! The notes importer on real course notes that no one here wrote (`../shared/course-notes`).

use std::path::{Path, PathBuf};

use slipway::course::{Course, Severity};
use slipway::import::{codeblocks, mojibake};
use slipway_e2e::{Server, course_notes, run};

fn notes() -> Option<Vec<PathBuf>> {
    let Some(dir) = course_notes() else {
        eprintln!("SKIPPED: no course notes at ../shared/course-notes (set SLIPWAY_COURSE_NOTES to run this test)");
        return None;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert_eq!(files.len(), 5, "the five sets of notes in {}", dir.display());
    Some(files)
}

/// A code block's text as the importer should keep it: mojibake repaired, and a fence that
/// had been indented (so CommonMark saw the ``` lines as code) reduced to its content.
fn expected(block: &str) -> String {
    let (fixed, _) = mojibake::repair(block);
    let lines: Vec<&str> = fixed.lines().collect();
    let is_fence = |l: &str| l.trim_start().starts_with("```") || l.trim_start().starts_with("~~~");
    if lines.len() >= 2 && is_fence(lines[0]) && is_fence(lines[lines.len() - 1]) {
        return lines[1..lines.len() - 1].join("\n").trim_end().to_string();
    }
    fixed.trim_end().to_string()
}

fn blocks_of_dir(dir: &Path) -> Vec<String> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "md") {
            let text = std::fs::read_to_string(&p).unwrap();
            all.extend(
                codeblocks::code_blocks(&text)
                    .into_iter()
                    .map(|b| b.trim_end().to_string()),
            );
        }
    }
    all
}

#[test]
fn every_set_of_notes_imports_cleanly() {
    let Some(files) = notes() else { return };
    let out = tempfile::tempdir().unwrap();
    for file in &files {
        let name = file.file_stem().unwrap().to_string_lossy().replace('_', "-");
        let module = out.path().join(format!("m-{name}"));
        let (code, stdout, stderr) = run(&["import", file.to_str().unwrap(), "--out", module.to_str().unwrap()]);
        assert_eq!(code, 0, "{}: {stderr}", file.display());
        assert!(stdout.contains("wrote "), "the importer reports what it did:\n{stdout}");

        // No mojibake remains.
        for entry in std::fs::read_dir(&module).unwrap() {
            let p = entry.unwrap().path();
            let text = std::fs::read_to_string(&p).unwrap();
            let left = mojibake::suspicious(&text);
            assert!(left.is_empty(), "{} still holds mojibake: {left:?}", p.display());
            for marker in ["â€", "Ã¼", "ðŸ", "â”"] {
                assert!(!text.contains(marker), "{} holds {marker}", p.display());
            }
        }

        // Every code block of the input is a code block of the output.
        let input = std::fs::read_to_string(file).unwrap();
        let mut output = blocks_of_dir(&module);
        for block in codeblocks::code_blocks(&input) {
            let want = expected(&block);
            match output.iter().position(|b| *b == want) {
                Some(i) => {
                    output.remove(i);
                }
                None => panic!("{}: this code block is not in the output:\n{want}", file.display()),
            }
        }
    }

    // Every imported lesson renders, as the server loads them.
    let course = Course::load(out.path());
    assert_eq!(course.modules.len(), files.len());
    let lessons: Vec<_> = course.lessons().collect();
    assert!(lessons.len() >= 40, "{} lessons", lessons.len());
    for lesson in &lessons {
        assert!(
            lesson.body.is_some(),
            "{} is broken: {:?}",
            lesson.path.display(),
            lesson.problems
        );
        let errors: Vec<_> = lesson
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", lesson.path.display());
    }
    let server = Server::start(out.path());
    let client = server.client();
    for lesson in &lessons {
        let r = client.get(format!("{}{}", server.url, lesson.url())).send().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}", lesson.url());
    }
}

#[test]
fn the_notes_specific_repairs_happen() {
    let Some(files) = notes() else { return };
    let dir = tempfile::tempdir().unwrap();
    let find = |prefix: &str| {
        files
            .iter()
            .find(|f| f.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .unwrap()
            .clone()
    };

    // 000: mojibake (Schwarzmüller, apostrophes, emoji, box drawing) and links to headings.
    let (_, out, _) = run(&[
        "import",
        find("000").to_str().unwrap(),
        "--out",
        dir.path().join("a").to_str().unwrap(),
    ]);
    assert!(out.contains("repaired") && out.contains("\"â€™\" -> \"’\""), "{out}");
    let all: String = std::fs::read_dir(dir.path().join("a"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(all.contains("Schwarzmüller") && all.contains("├──"));

    // 002: mermaid diagrams kept, indented code fenced.
    let (_, out, _) = run(&[
        "import",
        find("002").to_str().unwrap(),
        "--out",
        dir.path().join("b").to_str().unwrap(),
    ]);
    assert!(out.contains("3 mermaid diagrams kept"), "{out}");
    assert!(out.contains("indented code blocks as fenced blocks"), "{out}");

    // 004: fences indented by four spaces are fences again; headings move up two levels.
    let (_, out, _) = run(&[
        "import",
        find("004").to_str().unwrap(),
        "--out",
        dir.path().join("c").to_str().unwrap(),
    ]);
    assert!(out.contains("restored") && out.contains("code fences"), "{out}");
    let lesson6 = std::fs::read_dir(dir.path().join("c"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("06-"))
        .unwrap();
    let text = std::fs::read_to_string(lesson6).unwrap();
    assert!(
        text.contains("\n```dockerfile\n"),
        "the Dockerfile fence is back at the margin"
    );

    // Several files make one module, in order, and the output directory is protected.
    let (code, _, err) = run(&[
        "import",
        find("001").to_str().unwrap(),
        "--out",
        dir.path().join("c").to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("not empty"), "{err}");
    let (code, out, _) = run(&[
        "import",
        find("003").to_str().unwrap(),
        find("001").to_str().unwrap(),
        "--out",
        dir.path().join("d").to_str().unwrap(),
        "--title",
        "Two sets",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("module \"Two sets\""), "{out}");
}
