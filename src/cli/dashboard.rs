//! `coco dashboard [--token NAME]`: print a one-time login link to the dashboard
//! (`http://ADDRESS/login?code=…`, accepted once within a minute) that a running `coco daemon`
//! turns into a session cookie. Without `--token` the session is the operator's own admin
//! (whoever may run coco against this store is one); with it, it holds that token's role and
//! projects, and ends when the token is revoked or expires.
//!
//! The address is `api.listen` (or `--api-listen`); a daemon listening on every address
//! (`0.0.0.0`, `[::]`) is reached on loopback. No link is made unless a daemon answers
//! `GET /healthz` there (within [`ANSWER_WITHIN`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use chrono::{TimeDelta, Utc};
use clap::Args;

use super::{GlobalArgs, context, output};
use crate::access::{self, Role};
use crate::store::TokenRecord;

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Log in with this token's role and projects (default: the operator's own admin).
    #[arg(long, value_name = "NAME")]
    pub token: Option<String>,
    /// The address the daemon serves on, if not `api.listen`.
    #[arg(long, value_name = "IP:PORT", value_parser = crate::config::listen_address)]
    pub api_listen: Option<SocketAddr>,
}

/// The address a browser on this host reaches a daemon listening on `listen` at (pure).
fn reachable(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port())
        }
        _ => listen,
    }
}

/// How long `coco dashboard` waits for the daemon to answer `GET /healthz`.
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

/// The status a daemon at `at` answers `GET /healthz` with, or why none answered.
async fn health(at: SocketAddr) -> Result<u16, String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(at).await?;
        stream
            .write_all(format!("GET /healthz HTTP/1.0\r\nHost: {at}\r\n\r\n").as_bytes())
            .await?;
        let mut head = [0u8; 32];
        let mut read = 0;
        while read < head.len() {
            match stream.read(&mut head[read..]).await {
                Ok(0) => break,
                Ok(n) => read += n,
                // A server that closes without reading the request may reset the connection
                // after its answer: what came before the reset counts.
                Err(_) if read > 0 => break,
                Err(error) => return Err(error),
            }
        }
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&head[..read]).into_owned())
    };
    let head = match tokio::time::timeout(ANSWER_WITHIN, ask).await {
        Err(_) => return Err(format!("no answer within {}s", ANSWER_WITHIN.as_secs())),
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(head)) => head,
    };
    head.strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| "what answers is not coco's API".to_string())
}

pub async fn run(global: &GlobalArgs, args: &DashboardArgs) -> anyhow::Result<i32> {
    let (config, _) = context::load_config(global)?;
    let Some(listen) = args.api_listen.or(config.api.listen) else {
        output::error(
            "the API is turned off (`api.enabled: false` in local.yaml): the daemon serves no \
             dashboard",
        );
        return Ok(1);
    };
    let at = reachable(listen);
    match health(at).await {
        Ok(200) => {}
        Ok(503) => output::warning(&format!(
            "the daemon at http://{at} cannot reach its store (GET /healthz answered 503)"
        )),
        Ok(status) => {
            output::error(&format!(
                "what answers at http://{at} is not coco's API (GET /healthz answered \
                 {status}): name the address `coco daemon` serves on with --api-listen"
            ));
            return Ok(1);
        }
        Err(why) => {
            output::error(&format!(
                "no coco daemon answers at http://{at} ({why}): start `coco daemon`, or name \
                 the address it serves on with --api-listen"
            ));
            return Ok(1);
        }
    }
    let store = context::open_store(&config).await?;
    let now = Utc::now();
    let (role, projects) = match &args.token {
        None => (Role::Admin, Vec::new()),
        Some(name) => {
            let tokens = store.list_tokens().await?;
            let found = tokens.into_iter().find(|token| {
                &token.name == name
                    && access::TokenKind::of_name(&token.name) == access::TokenKind::Token
            });
            match found {
                Some(token) if token.expires.is_none_or(|until| until > now) => {
                    (token.role, token.projects)
                }
                Some(_) => {
                    output::error(&format!("token `{name}` has expired"));
                    return Ok(1);
                }
                None => {
                    output::error(&format!("no token named `{name}` (see `coco token list`)"));
                    return Ok(1);
                }
            }
        }
    };
    let code = access::new_secret()?;
    let link = TokenRecord {
        name: access::derived_name("login", args.token.as_deref())?,
        role,
        projects,
        hash: access::secret_hash(&code),
        created: now,
        expires: Some(now + TimeDelta::from_std(access::LOGIN_LIFETIME)?),
        last_used: None,
    };
    if !store.create_token(&link).await? {
        output::error("could not record the login link (try again)");
        return Ok(1);
    }
    output::text(&format!("http://{at}/login?code={code}"));
    output::text_stderr(&format!(
        "Open this link within a minute (it works once) while `coco daemon` runs; it logs \
         you in as {}.",
        match &args.token {
            None => "admin".to_string(),
            Some(name) => format!("token `{name}`"),
        }
    ));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemon_on_every_address_is_reached_on_loopback() {
        let at = |text: &str| text.parse::<SocketAddr>().unwrap();
        assert_eq!(reachable(at("0.0.0.0:5001")), at("127.0.0.1:5001"));
        assert_eq!(reachable(at("[::]:5001")), at("[::1]:5001"));
        assert_eq!(reachable(at("10.0.0.2:80")), at("10.0.0.2:80"));
    }
}
