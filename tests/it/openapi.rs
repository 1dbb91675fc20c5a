//! `GET /api/v1/openapi.json` of a real `coco daemon`, checked against the routes it serves:
//! every documented operation is answered by its handler (not the router's fallback), with a
//! status the document lists and a body of the documented shape; every route served is
//! documented, and no method a path does not document is served.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::api::{Answer, create, daemon, get, http_with};
use crate::support::Sandbox;

/// Every route the router serves under `/api/v1` (axum cannot list them): a route added
/// without its documentation, or documented without being added, fails here.
pub(crate) const SERVED: &[(&str, &str)] = &[
    ("get", "/api/v1/apps"),
    ("post", "/api/v1/apps/{app}/restart"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/plan"),
    ("get", "/api/v1/projects"),
    ("get", "/api/v1/status"),
    ("get", "/api/v1/jobs"),
    ("post", "/api/v1/jobs/{job}/enqueue"),
    ("get", "/api/v1/log"),
    ("get", "/api/v1/members"),
    ("get", "/api/v1/openapi.json"),
    ("post", "/api/v1/pause"),
    ("post", "/api/v1/resume"),
    ("get", "/api/v1/runs"),
    ("get", "/api/v1/runs/{id}"),
    ("post", "/api/v1/runs/{id}/kill"),
    ("get", "/api/v1/runs/{id}/output"),
    ("post", "/api/v1/runs/{id}/remove"),
    ("post", "/api/v1/runs/{id}/restart"),
    ("get", "/api/v1/token/self"),
];

/// The methods a documented path is probed with, besides its own.
const METHODS: &[&str] = &["get", "post", "put", "delete", "patch"];

#[test]
fn the_document_describes_the_routes_served() {
    let sandbox = Sandbox::new();
    sandbox.project("shop", "jobs:\n  hello:\n    command: ['true']\n");
    sandbox.apply();
    let admin = create(&sandbox, &["root", "--role", "admin"]);
    // A pending run (the daemon has no worker), so the run routes have one to answer about.
    let run = sandbox.enqueue(&["shop.hello"]);
    let (daemon, port) = daemon(&sandbox);

    // Like every /api/ route: a token first.
    let refused = get(port, "/api/v1/openapi.json", None);
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Bearer realm=\"coco\"")
    );

    let answer = get(port, "/api/v1/openapi.json", Some(&admin));
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let document = answer.json();
    let version = document["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1"), "openapi: {version:?}");
    assert_eq!(document["info"]["title"], "coco");

    let documented = operations(&document);
    let served: BTreeSet<(String, String)> = SERVED
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    let listed: BTreeSet<(String, String)> = documented
        .iter()
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect();
    assert_eq!(listed, served, "documented vs served");

    // Dummy values: every operation reaches its handler (which may say there is no such run).
    let dummies = |path: &str| {
        path.replace("{id}", "01JZZZZZZZZZZZZZZZZZZZZZZZ")
            .replace("{job}", "nosuch.job")
            .replace("{app}", "nosuch.app")
    };
    for (method, path, operation) in &documented {
        let answer = call(port, method, &dummies(path), &admin, "{}");
        check(&document, method, path, operation, &answer);
    }
    // Real values: the successes, and their bodies' shapes. In the document's order: the run
    // is read, killed, its output read, its removal refused (killed is final), restarted.
    let real = |path: &str| {
        path.replace("{id}", &run)
            .replace("{job}", "shop.hello")
            .replace("{app}", "shop.web")
    };
    let mut statuses = Vec::new();
    for (method, path, operation) in &documented {
        let body = if path.ends_with("/enqueue") {
            r#"{"args": {"n": 1}}"#
        } else {
            ""
        };
        let answer = call(port, method, &real(path), &admin, body);
        check(&document, method, path, operation, &answer);
        statuses.push((path.as_str(), answer.status));
    }
    for (path, status) in [
        ("/api/v1/jobs/{job}/enqueue", 201),
        ("/api/v1/runs/{id}", 200),
        ("/api/v1/runs/{id}/kill", 200),
        ("/api/v1/runs/{id}/remove", 409),
        ("/api/v1/runs/{id}/restart", 201),
        ("/api/v1/pause", 200),
    ] {
        assert!(statuses.contains(&(path, status)), "{path}: {statuses:?}");
    }

    // Conversely: a method a documented path does not document is not served (HEAD is
    // axum's for every GET, so it is not probed).
    for path in listed.iter().map(|(_, path)| path).collect::<BTreeSet<_>>() {
        for method in METHODS {
            if listed.contains(&(method.to_string(), path.clone())) {
                continue;
            }
            let answer = call(port, method, &dummies(path), &admin, "");
            assert_eq!(
                answer.status, 405,
                "{method} {path} is served but not documented: {}",
                answer.body
            );
        }
    }
    drop(daemon);
}

/// Every (method, path, operation) of `document`, in its order.
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().unwrap() {
            all.push((method.clone(), path.clone(), operation.clone()));
        }
    }
    all
}

fn call(port: u16, method: &str, path: &str, secret: &str, body: &str) -> Answer {
    if method == "get" && path.ends_with("/events") {
        return stream_head(port, path, secret);
    }
    let bearer = format!("Bearer {secret}");
    let mut headers = vec![("Authorization", bearer.as_str())];
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    http_with(
        port,
        &method.to_uppercase(),
        path,
        &headers,
        body.as_bytes(),
    )
}

/// `answer` came from the handler of `method path`, with a documented status and body.
fn check(document: &Value, method: &str, path: &str, operation: &Value, answer: &Answer) {
    let here = format!("{method} {path}: {} {}", answer.status, answer.body);
    let error = answer
        .header("content-type")
        .filter(|t| t.starts_with("application/json"))
        .and_then(|_| serde_json::from_str::<Value>(&answer.body).ok())
        .map(|body| body["error"].clone())
        .unwrap_or_default();
    // The router's fallbacks (`api::routes::not_found`, `method_not_allowed`).
    assert!(
        !(answer.status == 404 && error == "no such route"),
        "the fallback: {here}"
    );
    assert_ne!(answer.status, 405, "not served: {here}");
    let status = answer.status.to_string();
    let response = resolve(document, &operation["responses"][&status]);
    assert!(response.is_object(), "an undocumented status: {here}");
    let content = response["content"].as_object();
    let Some((media_type, content)) = content.and_then(|c| c.iter().next()) else {
        return;
    };
    let served_type = answer.header("content-type").unwrap_or_default();
    assert!(
        served_type.starts_with(media_type.as_str()),
        "served as {served_type}, documented as {media_type}: {here}"
    );
    if media_type == "application/json" {
        let body: Value =
            serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {here}"));
        if let Err(problem) = fits(document, &content["schema"], &body, "$") {
            panic!("{problem}: {here}");
        }
    }
}

/// `value`, or what its `$ref` names in `document`.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local reference");
            document.pointer(pointer).unwrap_or(&Value::Null)
        }
        None => value,
    }
}

/// Does `value` (at `at`) fit `schema`? The part of JSON Schema the document uses: `$ref`,
/// `oneOf`, `type` (one or several), `enum`, objects' `required` and `properties` (no other
/// field), arrays' `items`.
fn fits(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(document, schema);
    if let Some(choices) = schema["oneOf"].as_array() {
        return match choices
            .iter()
            .any(|choice| fits(document, choice, value, at).is_ok())
        {
            true => Ok(()),
            false => Err(format!("{at}: {value} fits none of {schema}")),
        };
    }
    if let Some(values) = schema["enum"].as_array()
        && !values.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {values:?}"));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(several) => several.iter().filter_map(Value::as_str).collect(),
        _ => return Ok(()),
    };
    let fits_type = |kind: &str| match kind {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    };
    if !types.iter().any(|kind| fits_type(kind)) {
        return Err(format!("{at}: {value} is not {types:?}"));
    }
    if let Some(fields) = value.as_object() {
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap();
            if !fields.contains_key(name) {
                return Err(format!("{at}: no `{name}`"));
            }
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (name, field) in fields {
                let property = properties
                    .get(name)
                    .ok_or_else(|| format!("{at}: `{name}` is not documented"))?;
                fits(document, property, field, &format!("{at}.{name}"))?;
            }
        }
    }
    if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
        for (i, item) in values.iter().enumerate() {
            fits(document, items, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// The head of an event stream (which does not end): its status and headers, no body.
pub(crate) fn stream_head(port: u16, path: &str, secret: &str) -> Answer {
    use std::io::{BufRead as _, Write as _};
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {secret}\r\n\r\n"
    );
    (&stream).write_all(request.as_bytes()).unwrap();
    let mut reader = std::io::BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let Some((name, value)) = line.trim().split_once(':') else {
            break;
        };
        headers.push((name.trim().to_lowercase(), value.trim().to_string()));
    }
    Answer {
        status,
        headers,
        body: String::new(),
    }
}
