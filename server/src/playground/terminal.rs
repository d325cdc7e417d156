//! A terminal in a node: a login shell exec'd with a PTY, whose recent output is kept so a
//! browser that reconnects (a reload, a dropped network) gets its screen back, and which
//! several browser tabs may watch and type into at once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use slipway_runtime::monitor::client::{Containers, InputSink, Output};
use tokio::sync::broadcast;

/// Output kept for replay: enough for a few screens of a busy shell.
const REPLAY_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub enum Event {
    Output(Arc<[u8]>),
    Exit(i32),
}

struct Screen {
    recent: VecDeque<u8>,
    exited: Option<i32>,
}

pub struct Terminal {
    input: tokio::sync::Mutex<InputSink>,
    screen: Mutex<Screen>,
    events: broadcast::Sender<Event>,
}

/// What a new viewer gets: the screen so far, then every event after it, none twice.
pub struct View {
    pub replay: Vec<u8>,
    pub exited: Option<i32>,
    pub events: broadcast::Receiver<Event>,
}

impl Terminal {
    /// Starts `process` (a shell with `terminal: true`) in `container`.
    pub async fn open(
        containers: &Containers,
        container: &str,
        process: oci_spec::runtime::Process,
    ) -> Result<Arc<Terminal>> {
        let exec_id = format!("term-{}", hex::encode(rand::random::<[u8; 8]>()));
        let session = containers.exec(container, &exec_id, process).await?;
        let (events, _) = broadcast::channel(1024);
        let terminal = Arc::new(Terminal {
            input: tokio::sync::Mutex::new(session.input),
            screen: Mutex::new(Screen {
                recent: VecDeque::new(),
                exited: None,
            }),
            events,
        });
        let mut output = session.output;
        let t = terminal.clone();
        tokio::spawn(async move {
            let code = loop {
                match output.next().await {
                    Ok(Some(Output::Stdout(d))) | Ok(Some(Output::Stderr(d))) => t.push(&d),
                    Ok(Some(Output::Exit(e))) => break e.code,
                    Ok(Some(Output::Error(m))) => {
                        t.push(format!("\r\n[slipway: {m}]\r\n").as_bytes());
                        break -1;
                    }
                    Ok(None) | Err(_) => break -1,
                }
            };
            let mut screen = t.lock();
            screen.exited = Some(code);
            let _ = t.events.send(Event::Exit(code));
        });
        Ok(terminal)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Screen> {
        self.screen.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, data: &[u8]) {
        // Under the lock, so that a viewer's replay and its first event never overlap.
        let mut screen = self.lock();
        screen.recent.extend(data);
        let excess = screen.recent.len().saturating_sub(REPLAY_BYTES);
        screen.recent.drain(..excess);
        let _ = self.events.send(Event::Output(data.into()));
    }

    pub fn view(&self) -> View {
        let screen = self.lock();
        View {
            replay: screen.recent.iter().copied().collect(),
            exited: screen.exited,
            events: self.events.subscribe(),
        }
    }

    pub fn exited(&self) -> bool {
        self.lock().exited.is_some()
    }

    pub async fn write(&self, data: &[u8]) -> Result<()> {
        Ok(self.input.lock().await.write(data).await?)
    }

    pub async fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        Ok(self.input.lock().await.resize(rows, cols).await?)
    }
}
