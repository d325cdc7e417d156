//! `slipway lessons lint`: every problem of every lesson, by file and line.

use super::{Course, Problem, Severity};

pub struct Report<'c> {
    pub problems: Vec<&'c Problem>,
    pub lessons: usize,
}

impl Report<'_> {
    pub fn errors(&self) -> usize {
        self.problems.iter().filter(|p| p.severity == Severity::Error).count()
    }
    pub fn warnings(&self) -> usize {
        self.problems.len() - self.errors()
    }
    /// Whether the lint passes: no errors, and no warnings either when `strict`.
    pub fn passes(&self, strict: bool) -> bool {
        self.errors() == 0 && (!strict || self.warnings() == 0)
    }
}

pub fn lint(course: &Course) -> Report<'_> {
    Report {
        problems: course.all_problems(),
        lessons: course.lessons().count(),
    }
}
