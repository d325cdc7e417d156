//! An exercise's setup: its files written into the nodes (through the same confined path
//! the upload button uses), then its script run in node1. Done once per playground and
//! exercise; the time it finished is the exercise's start, from which `event` checks look.

use std::os::fd::AsFd;
use std::time::Duration;

use super::now_nanos;
use crate::course::Exercise;
use crate::playground::{Playgrounds, files};

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

/// Places `ex`'s setup in playground `id`. Errors are for the author (and the learner's
/// page): which file or what the script printed.
pub async fn apply(playgrounds: &Playgrounds, id: &str, ex: &Exercise) -> Result<(), String> {
    for f in &ex.setup.files {
        let node = f.node.as_deref().unwrap_or("node1");
        let proc = playgrounds.node_proc(id, node).map_err(|e| format!("{node}: {e}"))?;
        files::upload(proc.as_fd(), &f.path, f.content.as_bytes()).map_err(|e| format!("writing {}: {e}", f.path))?;
        let mode = f.mode().unwrap_or(0o644);
        if mode != 0o644 {
            let (code, _, err) = playgrounds
                .exec(id, node, vec!["chmod".into(), format!("{mode:o}"), f.path.clone()])
                .await
                .map_err(|e| e.to_string())?;
            if code != 0 {
                return Err(format!(
                    "chmod {:o} {}: {}",
                    mode,
                    f.path,
                    String::from_utf8_lossy(&err)
                ));
            }
        }
    }
    if let Some(script) = &ex.setup.script {
        let run = run_script(playgrounds, id, "node1", script);
        let (code, out, err) = tokio::time::timeout(SCRIPT_TIMEOUT, run)
            .await
            .map_err(|_| "the setup script did not finish within 5 minutes".to_string())??;
        if code != 0 {
            return Err(format!(
                "the setup script exited with {code}: {}{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            ));
        }
    }
    Ok(())
}

/// Runs a bash script in a node's home directory, stopping at the first failing command.
pub async fn run_script(
    playgrounds: &Playgrounds,
    id: &str,
    node: &str,
    script: &str,
) -> Result<(i32, Vec<u8>, Vec<u8>), String> {
    let cmd = vec!["bash".into(), "-e".into(), "-c".into(), format!("cd /root\n{script}")];
    playgrounds.exec(id, node, cmd).await.map_err(|e| e.to_string())
}

/// Done once per playground and exercise: later calls return when the first finished.
/// Returns the exercise's start (Unix nanoseconds).
pub async fn ensure(playgrounds: &Playgrounds, id: &str, key: &str, ex: &Exercise) -> Result<i128, String> {
    let pg = playgrounds.get(id).ok_or("the playground has ended")?;
    let mut done = pg.exercises.lock().await;
    if let Some(since) = done.get(key) {
        return Ok(*since);
    }
    apply(playgrounds, id, ex).await?;
    let since = now_nanos();
    done.insert(key.to_string(), since);
    pg.save_exercises(&done);
    Ok(since)
}
