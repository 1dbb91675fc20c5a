//! Store round trips per run on a MongoDB-wire server: the commands one `coco worker --slots
//! 2` sends while it runs N enqueued `true` runs, counted by a proxy of this process between
//! the worker and the server (every client message is a length-prefixed frame; an `OP_MSG`'s
//! first section is the command document, whose first key names the command). The runs are
//! enqueued by this process straight to the server (not counted); the worker's `local.yaml`
//! names the proxy instead. The driver's own monitoring (`hello`, `ismaster`, `ping`) is
//! counted apart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::sandbox::Sandbox;

/// `OP_MSG`, the opcode of every command of a current driver.
const OP_MSG: i32 = 2013;

/// Commands of the driver's own, not the store's.
const MONITORING: [&str; 4] = ["hello", "ismaster", "isMaster", "ping"];

/// What the worker sent for `runs` runs.
#[derive(Debug, Clone)]
pub struct RoundTrips {
    pub runs: usize,
    /// Commands by name (monitoring included).
    pub commands: BTreeMap<String, usize>,
}

impl RoundTrips {
    /// Store commands (not monitoring) per run.
    pub fn per_run(&self) -> f64 {
        self.store_commands().values().sum::<usize>() as f64 / self.runs.max(1) as f64
    }

    /// The commands but monitoring.
    pub fn store_commands(&self) -> BTreeMap<&str, usize> {
        self.commands
            .iter()
            .filter(|(name, _)| !MONITORING.contains(&name.as_str()))
            .map(|(name, &count)| (name.as_str(), count))
            .collect()
    }
}

type Counts = Arc<Mutex<BTreeMap<String, usize>>>;

/// A counting proxy to the server at `target` (`host:port`); its own `host:port`.
async fn proxy(target: String, counts: Counts) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (target, counts) = (target.clone(), Arc::clone(&counts));
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&target).await else {
                    return;
                };
                let (mut from_client, mut to_server) = (client.into_split(), server.into_split());
                let upstream = async {
                    let mut frame = Vec::new();
                    loop {
                        let mut length = [0u8; 4];
                        if from_client.0.read_exact(&mut length).await.is_err() {
                            break;
                        }
                        let total = i32::from_le_bytes(length).max(4) as usize;
                        frame.clear();
                        frame.extend_from_slice(&length);
                        frame.resize(total, 0);
                        if from_client.0.read_exact(&mut frame[4..]).await.is_err() {
                            break;
                        }
                        let name = command_name(&frame).unwrap_or_else(|| "?".into());
                        *counts
                            .lock()
                            .expect("not poisoned")
                            .entry(name)
                            .or_default() += 1;
                        if to_server.1.write_all(&frame).await.is_err() {
                            break;
                        }
                    }
                };
                let downstream = tokio::io::copy(&mut to_server.0, &mut from_client.1);
                tokio::select! {
                    () = upstream => {}
                    _ = downstream => {}
                }
            });
        }
    });
    Ok(address)
}

/// The command an `OP_MSG` frame carries: the first key of its section-0 document.
fn command_name(frame: &[u8]) -> Option<String> {
    let opcode = i32::from_le_bytes(frame.get(12..16)?.try_into().ok()?);
    if opcode != OP_MSG {
        return Some(format!("opcode {opcode}"));
    }
    // header (16), flagBits (4), section kind (1) = 0, document: length (4), type (1), name.
    if *frame.get(20)? != 0 {
        return None;
    }
    let name = frame.get(26..)?;
    let end = name.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&name[..end]).into_owned())
}

/// `host:port` of a `mongodb://host:port/…` URL (the test server's form).
fn host_port(url: &str) -> anyhow::Result<&str> {
    let rest = url
        .strip_prefix("mongodb://")
        .context("not a mongodb:// URL")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host = &rest[..end];
    if host.contains(['@', ',']) {
        bail!("the round-trip proxy takes a plain mongodb://host:port/ URL");
    }
    Ok(host)
}

pub async fn measure(sandbox: &Sandbox, url: &str, runs: usize) -> anyhow::Result<RoundTrips> {
    let target = host_port(url)?;
    let counts: Counts = Arc::default();
    let address = proxy(target.to_string(), Arc::clone(&counts)).await?;
    let job = sandbox.job("noop").await?;
    for i in 0..runs {
        sandbox
            .enqueue("noop", &job, json!({ "round_trip": i }))
            .await?;
    }
    // The worker talks to the server through the proxy.
    let config = sandbox.path("local.yaml");
    let text = std::fs::read_to_string(&config)?;
    std::fs::write(&config, text.replace(target, &address))?;
    let worker = sandbox.worker("round-trips", 2)?;
    sandbox
        .wait_idle(Duration::from_millis(250), Duration::from_secs(1800))
        .await?;
    worker.stop().await?;
    let commands = counts.lock().expect("not poisoned").clone();
    let measured = RoundTrips { runs, commands };
    eprintln!(
        "  {runs} runs: {:.1} store commands per run ({:?})",
        measured.per_run(),
        measured.store_commands()
    );
    Ok(measured)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_the_first_key() {
        let mut frame = vec![0u8; 16];
        frame[12..16].copy_from_slice(&OP_MSG.to_le_bytes());
        frame.extend_from_slice(&[0, 0, 0, 0, 0, 20, 0, 0, 0, 2]);
        frame.extend_from_slice(b"find\0");
        assert_eq!(command_name(&frame).as_deref(), Some("find"));
        assert_eq!(
            host_port("mongodb://127.0.0.1:4242/").unwrap(),
            "127.0.0.1:4242"
        );
    }
}
