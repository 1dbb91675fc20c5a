//! Read latency of `GET /api/v1/runs?limit=50` (the admin token: one `list_runs` over every
//! project), against the same page read in-process through the library.
//!
//! Over HTTP, `requests` sequential requests each (after [`warm_up`] uncounted ones), timed
//! from just before the request is written until the whole body is read:
//!
//! - page 1 on one keep-alive connection (HTTP/1.1);
//! - page 2, `?limit=50&before=NEXT` with the `next` page 1 returned, on that connection;
//! - page 1 on a fresh connection each time (connect included, then closed).
//!
//! Every answer must be 200 with 50 runs (a page of the first and second 50 in the
//! newest-first order) — checked after its time was taken.
//!
//! In-process, on this process's own connection to the same store, the calls the route
//! makes: `Queue::list_runs` with limit 50 (page 1); the same plus encoding the page as the
//! route's JSON (`{"runs": […], "next": …}`, `serde_json::to_vec`); and for page 2 what the
//! route does for `before` — `run_id::resolve`, `get_run`, then `list_runs` from that
//! cursor.

use std::time::Instant;

use anyhow::{Context as _, ensure};
use coco::store::{RunCursor, RunFilter, run_id};

use crate::Samples;
use crate::http::Connection;
use crate::sandbox::Sandbox;

const PAGE: usize = 50;

/// Uncounted requests before each series: a tenth of them, 2 to 20.
fn warm_up(requests: usize) -> usize {
    (requests / 10).clamp(2, 20)
}

/// What was measured on one store size.
#[derive(Debug, Clone)]
pub struct Reads {
    pub keep_alive: Samples,
    pub second_page: Samples,
    pub fresh: Samples,
    pub library: Samples,
    pub library_json: Samples,
    pub library_second: Samples,
    /// Bytes of page 1's body.
    pub body_bytes: usize,
}

pub async fn measure(sandbox: &Sandbox, port: u16, requests: usize) -> anyhow::Result<Reads> {
    let token = sandbox.token.clone();
    let (keep_alive, second_page, fresh, body_bytes, next) =
        tokio::task::spawn_blocking(move || over_http(port, &token, requests)).await??;

    let store = sandbox.store.as_ref();
    let page1 = RunFilter {
        limit: Some(PAGE),
        ..RunFilter::default()
    };
    let (mut library, mut library_json, mut library_second) = (
        Vec::with_capacity(requests),
        Vec::with_capacity(requests),
        Vec::with_capacity(requests),
    );
    for n in 0..warm_up(requests) + requests {
        let started = Instant::now();
        let runs = store.list_runs(&page1).await?;
        let took = started.elapsed();
        ensure!(runs.len() == PAGE, "list_runs gave {} runs", runs.len());

        let started = Instant::now();
        let runs = store.list_runs(&page1).await?;
        let next = runs.last().map(|r| r.id.clone());
        let json = serde_json::to_vec(&serde_json::json!({ "runs": runs, "next": next }))?;
        let took_json = started.elapsed();
        std::hint::black_box(json);

        let started = Instant::now();
        let id = run_id::resolve(store, next.as_deref().unwrap_or_default())
            .await?
            .map_err(|problem| anyhow::anyhow!("{problem}"))?;
        let cursor = store.get_run(&id).await?.context("the cursor's run")?;
        let second = store
            .list_runs(&RunFilter {
                before: Some(RunCursor::of(&cursor)),
                ..page1.clone()
            })
            .await?;
        let took_second = started.elapsed();
        ensure!(second.len() == PAGE, "page 2 gave {} runs", second.len());
        if n >= warm_up(requests) {
            library.push(took);
            library_json.push(took_json);
            library_second.push(took_second);
        }
    }
    ensure!(
        library_second.len() == requests && next.is_some(),
        "no second page"
    );
    Ok(Reads {
        keep_alive,
        second_page,
        fresh,
        library: Samples::new(library),
        library_json: Samples::new(library_json),
        library_second: Samples::new(library_second),
        body_bytes,
    })
}

/// The three HTTP series, page 1's size and its `next`.
fn over_http(
    port: u16,
    token: &str,
    requests: usize,
) -> anyhow::Result<(Samples, Samples, Samples, usize, Option<String>)> {
    let first = format!("/api/v1/runs?limit={PAGE}");
    let warm = warm_up(requests);
    let check = |body: &[u8], what: &str| -> anyhow::Result<Option<String>> {
        let page: serde_json::Value = serde_json::from_slice(body)
            .with_context(|| format!("{what}: {}", String::from_utf8_lossy(body)))?;
        let runs = page["runs"].as_array().map_or(0, Vec::len);
        ensure!(runs == PAGE, "{what}: {runs} runs, not {PAGE}");
        Ok(page["next"].as_str().map(str::to_string))
    };
    let timed = |connection: &mut Connection, path: &str| -> anyhow::Result<_> {
        let started = Instant::now();
        let answer = connection.get(path, Some(token))?;
        let took = started.elapsed();
        ensure!(
            answer.status == 200,
            "GET {path}: {} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
        Ok((took, answer.body))
    };

    let mut connection = Connection::open(port)?;
    let mut page1 = Vec::with_capacity(requests);
    let (mut next, mut body_bytes) = (None, 0);
    for n in 0..warm + requests {
        let (took, body) = timed(&mut connection, &first)?;
        next = check(&body, "page 1")?;
        body_bytes = body.len();
        if n >= warm {
            page1.push(took);
        }
    }
    let cursor = next.clone().context("page 1 has no `next`")?;
    let second = format!("{first}&before={cursor}");
    let mut page2 = Vec::with_capacity(requests);
    for n in 0..warm + requests {
        let (took, body) = timed(&mut connection, &second)?;
        check(&body, "page 2")?;
        if n >= warm {
            page2.push(took);
        }
    }
    let mut fresh = Vec::with_capacity(requests);
    for n in 0..warm + requests {
        let started = Instant::now();
        let mut connection = Connection::open(port)?;
        let answer = connection.get(&first, Some(token))?;
        let took = started.elapsed();
        ensure!(answer.status == 200, "GET {first}: {}", answer.status);
        check(&answer.body, "page 1, fresh connection")?;
        if n >= warm {
            fresh.push(took);
        }
    }
    Ok((
        Samples::new(page1),
        Samples::new(page2),
        Samples::new(fresh),
        body_bytes,
        next,
    ))
}
