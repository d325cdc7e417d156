//! `slipway playground`: the REST API of a running server, from the command line.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use reqwest::blocking::{Client, RequestBuilder, Response};

use crate::cli::{PlaygroundArgs, PlaygroundCommand};
use crate::config::Settings;

struct Api {
    url: String,
    token: String,
    client: Client,
}

impl Api {
    /// The server from the flags, else from the data directory's `server.json`.
    fn find(args: &PlaygroundArgs, settings: &Settings) -> Result<Api> {
        let info_path = settings.data_dir.join("server.json");
        let info: serde_json::Value = match std::fs::read(&info_path) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| format!("reading {}", info_path.display()))?,
            Err(_) => serde_json::Value::Null,
        };
        let url = args
            .server
            .clone()
            .or_else(|| info["url"].as_str().map(String::from))
            .with_context(|| {
                format!(
                    "no server: is `slipway serve` running with --data-dir {}? (or give --server and --token)",
                    settings.data_dir.display()
                )
            })?;
        let token = args
            .token
            .clone()
            .or_else(|| info["admin_token"].as_str().map(String::from))
            .context("no admin token: give --token")?;
        // Creating a playground can take a while on a cold machine; exec runs to the end.
        let client = Client::builder().timeout(None).build()?;
        Ok(Api {
            url: url.trim_end_matches('/').to_string(),
            token,
            client,
        })
    }

    fn send(&self, request: RequestBuilder) -> Result<Response> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .with_context(|| format!("reaching {}", self.url))?;
        if !response.status().is_success() {
            let status = response.status();
            let body: serde_json::Value = response.json().unwrap_or_default();
            bail!("{}: {}", status, body["message"].as_str().unwrap_or("request failed"));
        }
        Ok(response)
    }
}

pub fn run(settings: &Settings, args: PlaygroundArgs) -> Result<ExitCode> {
    let api = Api::find(&args, settings)?;
    match args.command {
        PlaygroundCommand::New { nodes, json } => {
            let r: serde_json::Value = api
                .send(
                    api.client
                        .post(format!("{}/api/playgrounds", api.url))
                        .json(&serde_json::json!({ "nodes": nodes })),
                )?
                .json()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("{}", r["id"].as_str().unwrap_or_default());
                for n in r["nodes"].as_array().into_iter().flatten() {
                    println!(
                        "{}\t{}\t{}",
                        n["name"].as_str().unwrap_or_default(),
                        n["ip"].as_str().unwrap_or_default(),
                        n["docker_host"].as_str().unwrap_or_default()
                    );
                }
            }
        }
        PlaygroundCommand::Exec { id, node, cmd } => {
            let r: serde_json::Value = api
                .send(
                    api.client
                        .post(format!("{}/api/playgrounds/{id}/nodes/{node}/exec", api.url))
                        .json(&serde_json::json!({ "cmd": cmd })),
                )?
                .json()?;
            print!("{}", r["stdout"].as_str().unwrap_or_default());
            eprint!("{}", r["stderr"].as_str().unwrap_or_default());
            let _ = std::io::stdout().flush();
            let code = r["exit_code"].as_i64().unwrap_or(1);
            return Ok(ExitCode::from(code.clamp(0, 255) as u8));
        }
        PlaygroundCommand::Ls { json } => {
            let r: serde_json::Value = api
                .send(api.client.get(format!("{}/api/playgrounds", api.url)))?
                .json()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("{:<14} {:<6} {:<22} OWNER", "ID", "NODES", "EXPIRES");
                for p in r.as_array().into_iter().flatten() {
                    println!(
                        "{:<14} {:<6} {:<22} {}",
                        p["id"].as_str().unwrap_or_default(),
                        p["nodes"].as_array().map(|n| n.len()).unwrap_or(0),
                        p["expires_at"]
                            .as_str()
                            .unwrap_or_default()
                            .get(..19)
                            .unwrap_or_default(),
                        p["owner"].as_str().unwrap_or_default()
                    );
                }
            }
        }
        PlaygroundCommand::Rm { id } => {
            api.send(api.client.delete(format!("{}/api/playgrounds/{id}", api.url)))?;
            println!("{id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
