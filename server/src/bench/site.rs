//! `slipway bench site`: lesson pages per second and their latency under load, with wrk,
//! against nginx serving the very same page as a static file.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::{ServerProcess, header, http_get, require_tool};
use crate::course::Course;

pub struct Options {
    pub lessons: PathBuf,
    pub duration: u32,
    pub connections: u32,
    pub threads: u32,
}

#[derive(Debug, Serialize)]
pub struct Figure {
    pub scenario: String,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub command: String,
}

/// Runs wrk and reads its summary.
fn wrk(scenario: &str, url: &str, headers: &[(&str, &str)], o: &Options) -> Result<Figure> {
    let mut args = vec![
        format!("-t{}", o.threads),
        format!("-c{}", o.connections),
        format!("-d{}s", o.duration),
        "--latency".into(),
    ];
    for (k, v) in headers {
        args.push("-H".into());
        args.push(format!("{k}: {v}"));
    }
    args.push(url.into());
    let out = Command::new("wrk").args(&args).output().context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("Socket errors") && text.contains("timeout") {
        bail!(
            "wrk failed for {scenario}:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let non_2xx = text.lines().find(|l| l.contains("Non-2xx"));
    if let Some(line) = non_2xx {
        bail!("{scenario}: the server answered errors under load: {line}");
    }
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .context("wrk printed no Requests/sec")?;
    let percentile = |p: &str| -> Result<f64> {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(p))
            .context("wrk printed no latency distribution")?;
        parse_duration_ms(line.split_whitespace().nth(1).unwrap_or(""))
    };
    let shown: Vec<String> = args
        .iter()
        .map(|a| if a.contains(' ') { format!("'{a}'") } else { a.clone() })
        .collect();
    Ok(Figure {
        scenario: scenario.into(),
        requests_per_second: rps,
        p50_ms: percentile("50%")?,
        p99_ms: percentile("99%")?,
        command: format!("wrk {}", shown.join(" ")),
    })
}

fn parse_duration_ms(s: &str) -> Result<f64> {
    let (num, factor) = if let Some(v) = s.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1000.0)
    } else {
        bail!("unexpected duration {s:?} from wrk")
    };
    Ok(num.parse::<f64>()? * factor)
}

/// nginx serving one file from a temporary root on a free port.
struct Nginx {
    child: std::process::Child,
    dir: PathBuf,
    port: u16,
}

impl Nginx {
    fn start(page: &[u8]) -> Result<Nginx> {
        let bin = require_tool("nginx", "nginx-light")?;
        let dir = std::env::temp_dir().join(format!("slipway-bench-nginx-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("root"))?;
        std::fs::write(dir.join("root/page.html"), page)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        // As many workers as Slipway has threads: one per core.
        let conf = format!(
            "daemon off;\nworker_processes auto;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log off; sendfile on; tcp_nopush on; types {{ text/html html; }}\n\
             client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
             server {{ listen 127.0.0.1:{port}; root {d}/root; }} }}\n",
            d = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf)?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-p")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting nginx")?;
        let nginx = Nginx { child, dir, port };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(nginx);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("nginx did not start")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn run(o: &Options) -> Result<Vec<Figure>> {
    require_tool("wrk", "wrk")?;
    let course = Course::load(&o.lessons);
    let lesson = course
        .lessons()
        .filter(|l| l.body.is_some())
        .max_by_key(|l| l.body.as_ref().map(|b| b.html.len()).unwrap_or(0))
        .context("the course has no lesson to load")?;
    let path = lesson.url();
    let server = ServerProcess::start(&o.lessons)?;
    let url = format!("http://{}{path}", server.addr);

    // A returning learner: the browser holds the identity cookie and has opened the lesson.
    let (head, _) = http_get(server.addr, "/", &[])?;
    let cookie = header(&head, "set-cookie")
        .and_then(|c| c.split(';').next())
        .context("no identity cookie")?
        .to_string();
    http_get(server.addr, &path, &[("Cookie", &cookie)])?;
    let (_, page) = http_get(server.addr, &path, &[("Cookie", &cookie)])?;
    eprintln!(
        "lesson {path}: {} bytes of HTML; {} s per scenario, {} connections",
        page.len(),
        o.duration,
        o.connections
    );

    let browser = "gzip, deflate, br, zstd";
    let mut figures = vec![
        wrk(
            "slipway: returning learner, uncompressed",
            &url,
            &[("Cookie", &cookie)],
            o,
        )?,
        wrk(
            "slipway: returning learner, as a browser asks (br)",
            &url,
            &[("Cookie", &cookie), ("Accept-Encoding", browser)],
            o,
        )?,
        wrk(
            "slipway: first visit, no cookie (br)",
            &url,
            &[("Accept-Encoding", browser)],
            o,
        )?,
    ];
    match Nginx::start(&page) {
        Ok(nginx) => {
            let peer = format!("http://127.0.0.1:{}/page.html", nginx.port);
            figures.push(wrk("peer: nginx, the same page as a static file", &peer, &[], o)?);
        }
        Err(e) => eprintln!("peer skipped: {e:#}"),
    }
    drop(server);
    Ok(figures)
}

pub fn print(figures: &[Figure]) {
    println!("{:<56} {:>10} {:>9} {:>9}", "scenario", "req/s", "p50 ms", "p99 ms");
    for f in figures {
        println!(
            "{:<56} {:>10.0} {:>9.2} {:>9.2}",
            f.scenario, f.requests_per_second, f.p50_ms, f.p99_ms
        );
    }
    if let Some(peer) = figures.iter().find(|f| f.scenario.starts_with("peer")) {
        for f in figures.iter().filter(|f| f.scenario.starts_with("slipway")) {
            println!(
                "ratio to nginx, {}: {:.2}x the requests per second",
                f.scenario.trim_start_matches("slipway: "),
                f.requests_per_second / peer.requests_per_second
            );
        }
    }
    let worst = figures
        .iter()
        .filter(|f| f.scenario.starts_with("slipway"))
        .fold((f64::MAX, 0.0f64), |(r, p), f| {
            (r.min(f.requests_per_second), p.max(f.p99_ms))
        });
    let ok = worst.0 >= 10_000.0 && worst.1 < 10.0;
    println!(
        "target: >= 10000 lesson pages/s with p99 < 10 ms at 64 connections: {} (worst {:.0}/s, p99 {:.2} ms)",
        if ok { "met" } else { "NOT met" },
        worst.0,
        worst.1
    );
    println!("commands:");
    for f in figures {
        println!("  {}", f.command);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_durations() {
        assert_eq!(parse_duration_ms("850.00us").unwrap(), 0.85);
        assert_eq!(parse_duration_ms("2.24ms").unwrap(), 2.24);
        assert_eq!(parse_duration_ms("1.50s").unwrap(), 1500.0);
        assert!(parse_duration_ms("7m").is_err());
    }
}
