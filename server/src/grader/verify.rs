//! `slipway lessons verify`: lesson CI. Every graded exercise gets a fresh playground on a
//! throw-away `slipway serve` (this binary, real nodes, the catalog's images); its setup is
//! done; every check must fail; its solution runs in node1 through the real docker CLI;
//! then every check must pass (within a time limit, for healthchecks and slow starts).
//! The server's author API does the setup and the evaluation, so what is verified is what
//! a learner's page is graded by.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::bench::lab::Lab;
use crate::course::Course;

pub struct Options {
    pub lessons: PathBuf,
    /// Only the lessons whose file is one of these (all when empty).
    pub only: Vec<PathBuf>,
    /// The catalog directory (its `images/` store).
    pub catalog_dir: PathBuf,
    /// Exercises verified at once.
    pub jobs: usize,
    /// How long the checks may take to pass after the solution.
    pub settle: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub lesson: String,
    pub exercise: String,
    pub passed: bool,
    /// What went wrong, for the author.
    pub problems: Vec<String>,
    pub setup_ms: u128,
    pub solution_ms: u128,
    /// From the end of the solution to every check passing.
    pub settle_ms: u128,
    pub total_ms: u128,
}

struct Job {
    module: String,
    lesson: String,
    key: String,
    exercise: String,
    nodes: usize,
    solution: String,
}

fn jobs(course: &Course, only: &[PathBuf]) -> Result<Vec<Job>> {
    let wanted = |p: &Path| {
        only.is_empty()
            || only.iter().any(|o| {
                let (a, b) = (o.canonicalize().ok(), p.canonicalize().ok());
                a.is_some() && a == b
            })
    };
    let mut out = Vec::new();
    for m in &course.modules {
        for l in &m.lessons {
            if !wanted(&l.path) {
                continue;
            }
            let Some(body) = &l.body else {
                bail!("{} cannot be read: run `slipway lessons lint`", l.path.display());
            };
            for e in &body.exercises {
                if e.checks.is_empty() {
                    continue;
                }
                out.push(Job {
                    module: m.slug.clone(),
                    lesson: l.slug.clone(),
                    key: l.key(),
                    exercise: e.id.clone(),
                    nodes: e.nodes,
                    solution: e.solution.clone().unwrap_or_default(),
                });
            }
        }
    }
    if !only.is_empty() && out.is_empty() {
        bail!(
            "no graded exercise in {}",
            only.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(out)
}

/// Lesson CI's steps, on a lab server.
struct Verifier {
    lab: Lab,
}

impl Verifier {
    fn evaluate(&self, pg: &str, job: &Job) -> Result<Value> {
        let (status, v) = self.lab.call(
            reqwest::Method::GET,
            &format!(
                "/api/playgrounds/{pg}/exercises/{}/{}/{}",
                job.module, job.lesson, job.exercise
            ),
            None,
        )?;
        if status != 200 {
            bail!("evaluating: {status} {v}");
        }
        Ok(v)
    }

    fn run(&self, job: &Job, settle: Duration) -> Report {
        let started = Instant::now();
        let mut report = Report {
            lesson: job.key.clone(),
            exercise: job.exercise.clone(),
            passed: false,
            problems: Vec::new(),
            setup_ms: 0,
            solution_ms: 0,
            settle_ms: 0,
            total_ms: 0,
        };
        let pg = match self.lab.create_playground(job.nodes) {
            Ok(v) => v["id"].as_str().unwrap_or_default().to_string(),
            Err(e) => {
                report.problems.push(format!("{e:#}"));
                return report;
            }
        };
        if let Err(e) = self.steps(&pg, job, settle, &mut report) {
            report.problems.push(format!("{e:#}"));
        }
        if let Err(e) = self.lab.remove_playground(&pg) {
            report.problems.push(format!("{e:#}"));
        }
        report.total_ms = started.elapsed().as_millis();
        report.passed = report.problems.is_empty();
        report
    }

    fn steps(&self, pg: &str, job: &Job, settle: Duration, report: &mut Report) -> Result<()> {
        let t = Instant::now();
        let (status, v) = self.lab.call(
            reqwest::Method::POST,
            &format!(
                "/api/playgrounds/{pg}/exercises/{}/{}/{}/setup",
                job.module, job.lesson, job.exercise
            ),
            None,
        )?;
        report.setup_ms = t.elapsed().as_millis();
        if status != 200 {
            bail!("setup failed: {}", v["message"].as_str().unwrap_or(&v.to_string()));
        }
        // Before the solution, nothing may pass: a check that does tests nothing.
        let before = self.evaluate(pg, job)?;
        for c in before["checks"].as_array().into_iter().flatten() {
            if c["passed"] == json!(true) {
                report.problems.push(format!(
                    "passes before the solution ran: “{}” ({})",
                    c["description"].as_str().unwrap_or(""),
                    c["detail"].as_str().unwrap_or("")
                ));
            }
        }
        let t = Instant::now();
        let (status, v) = self.lab.call(
            reqwest::Method::POST,
            &format!("/api/playgrounds/{pg}/nodes/node1/exec"),
            Some(json!({ "cmd": ["bash", "-e", "-c", format!("cd /root\n{}", job.solution)] })),
        )?;
        report.solution_ms = t.elapsed().as_millis();
        if status != 200 {
            bail!("the solution could not run: {status} {v}");
        }
        if v["exit_code"] != json!(0) {
            bail!(
                "the solution exited with {}:\n{}{}",
                v["exit_code"],
                tail(v["stdout"].as_str().unwrap_or("")),
                tail(v["stderr"].as_str().unwrap_or(""))
            );
        }
        let t = Instant::now();
        loop {
            let after = self.evaluate(pg, job)?;
            if after["complete"] == json!(true) {
                report.settle_ms = t.elapsed().as_millis();
                return Ok(());
            }
            if t.elapsed() > settle {
                for c in after["checks"].as_array().into_iter().flatten() {
                    if c["passed"] != json!(true) {
                        report.problems.push(format!(
                            "fails after the solution ran: “{}” ({})",
                            c["description"].as_str().unwrap_or(""),
                            c["detail"].as_str().unwrap_or("")
                        ));
                    }
                }
                report.settle_ms = t.elapsed().as_millis();
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let start = lines.len().saturating_sub(15);
    lines[start..].iter().map(|l| format!("    {l}\n")).collect()
}

/// Verifies the exercises; prints a line per exercise as it finishes.
pub fn run(o: &Options) -> Result<Vec<Report>> {
    let course = Course::load(&o.lessons);
    let broken: Vec<String> = course
        .all_problems()
        .into_iter()
        .filter(|p| p.severity == crate::course::Severity::Error)
        .map(|p| p.to_string())
        .collect();
    if !broken.is_empty() {
        bail!("the lessons have errors (slipway lessons lint):\n{}", broken.join("\n"));
    }
    let jobs = jobs(&course, &o.only)?;
    // Playgrounds as a learner has them.
    let lab = Verifier {
        lab: Lab::start("verify", &o.lessons, &o.catalog_dir, "memory_mib = 2048")?,
    };
    let next = std::sync::Mutex::new(jobs.iter());
    let reports = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..o.jobs.max(1) {
            s.spawn(|| {
                loop {
                    let Some(job) = next.lock().unwrap_or_else(|p| p.into_inner()).next() else {
                        return;
                    };
                    let r = lab.run(job, o.settle);
                    print_one(&r);
                    reports.lock().unwrap_or_else(|p| p.into_inner()).push(r);
                }
            });
        }
    });
    drop(lab);
    let mut reports = reports.into_inner().unwrap_or_else(|p| p.into_inner());
    reports.sort_by(|a, b| (&a.lesson, &a.exercise).cmp(&(&b.lesson, &b.exercise)));
    Ok(reports)
}

fn print_one(r: &Report) {
    println!(
        "{} {}#{}  setup {} ms, solution {} ms, checks passed after {} ms, total {} ms",
        if r.passed { "ok  " } else { "FAIL" },
        r.lesson,
        r.exercise,
        r.setup_ms,
        r.solution_ms,
        r.settle_ms,
        r.total_ms
    );
    for p in &r.problems {
        println!("       {}", p.replace('\n', "\n       "));
    }
}
