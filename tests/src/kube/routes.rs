//! HTTP routing: parses `/api/v1/...` and `/apis/{group}/{version}/...` paths into a resource,
//! namespace, name and subresource; names the verb (get, list, watch, create, apply, patch,
//! update, delete, deletecollection); counts the request; checks the kubeconfig's bearer
//! token; applies injected faults; and dispatches to the verbs, watches, logs, metrics or
//! discovery. Whatever is not implemented answers 404/405 with a Status saying so, is printed,
//! and is recorded for the test to assert on.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::faults::{FaultKind, Target};
use super::resources::{self, METRICS_GROUP, METRICS_VERSION, ResourceDef};
use super::selectors::Selectors;
use super::status::{ApiError, json_response};
use super::verbs::{self, WriteOpts};
use super::{Shared, kubelet, lock, logstream, watch};

/// The largest request body accepted.
const MAX_BODY: usize = 16 * 1024 * 1024;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

#[derive(Debug)]
enum Route {
    Version,
    CoreVersions,
    Groups,
    Group(String),
    ResourceList(String, String),
    Collection {
        rd: &'static ResourceDef,
        ns: Option<String>,
    },
    Object {
        rd: &'static ResourceDef,
        ns: String,
        name: String,
        sub: Option<String>,
    },
    Metrics {
        ns: Option<String>,
        name: Option<String>,
    },
    Unknown,
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    let find = |plural: &str| resources::find(group, version, plural);
    match rest {
        [plural] => match find(plural) {
            Some(rd) => Route::Collection { rd, ns: None },
            None => Route::Unknown,
        },
        ["namespaces", ns, plural, tail @ ..]
            if find(plural).is_some_and(|rd| rd.namespaced) && tail.len() <= 2 =>
        {
            let Some(rd) = find(plural) else {
                return Route::Unknown;
            };
            match tail {
                [] => Route::Collection {
                    rd,
                    ns: Some((*ns).to_owned()),
                },
                [name] => Route::Object {
                    rd,
                    ns: (*ns).to_owned(),
                    name: (*name).to_owned(),
                    sub: None,
                },
                [name, sub] => Route::Object {
                    rd,
                    ns: (*ns).to_owned(),
                    name: (*name).to_owned(),
                    sub: Some((*sub).to_owned()),
                },
                _ => Route::Unknown,
            }
        }
        [plural, name, tail @ ..] if tail.len() <= 1 => match find(plural) {
            Some(rd) if !rd.namespaced => Route::Object {
                rd,
                ns: String::new(),
                name: (*name).to_owned(),
                sub: tail.first().map(|s| (*s).to_owned()),
            },
            _ => Route::Unknown,
        },
        _ => Route::Unknown,
    }
}

fn metrics_route(rest: &[&str]) -> Route {
    match rest {
        ["pods"] => Route::Metrics {
            ns: None,
            name: None,
        },
        ["namespaces", ns, "pods"] => Route::Metrics {
            ns: Some((*ns).to_owned()),
            name: None,
        },
        ["namespaces", ns, "pods", name] => Route::Metrics {
            ns: Some((*ns).to_owned()),
            name: Some((*name).to_owned()),
        },
        _ => Route::Unknown,
    }
}

fn parse(path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["api", "v1"] => Route::ResourceList(String::new(), "v1".to_owned()),
        ["apis", g] => Route::Group((*g).to_owned()),
        ["apis", g, v] => Route::ResourceList((*g).to_owned(), (*v).to_owned()),
        ["api", "v1", rest @ ..] => resource_route("", "v1", rest),
        ["apis", g, v, rest @ ..] if *g == METRICS_GROUP && *v == METRICS_VERSION => {
            metrics_route(rest)
        }
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest),
        _ => Route::Unknown,
    }
}

fn is_true(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// (verb, resource) for counting and fault matching.
fn classify(
    method: &Method,
    route: &Route,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    path: &str,
) -> (String, String) {
    let verb = |s: &str| s.to_owned();
    match route {
        Route::Collection { rd, .. } => {
            let v = match *method {
                Method::GET if is_true(q, "watch") => "watch",
                Method::GET => "list",
                Method::POST => "create",
                Method::DELETE => "deletecollection",
                _ => "unsupported",
            };
            (verb(v), rd.plural.to_owned())
        }
        Route::Object { rd, sub, .. } => {
            let v = match *method {
                Method::GET => "get",
                Method::PUT => "update",
                Method::PATCH if content_type(headers) == "application/apply-patch+yaml" => "apply",
                Method::PATCH => "patch",
                Method::DELETE => "delete",
                _ => "unsupported",
            };
            let res = match sub {
                Some(s) => format!("{}/{s}", rd.plural),
                None => rd.plural.to_owned(),
            };
            (verb(v), res)
        }
        Route::Metrics { name, .. } => (
            verb(if name.is_some() { "get" } else { "list" }),
            "pods.metrics.k8s.io".to_owned(),
        ),
        _ => (method.as_str().to_ascii_lowercase(), path.to_owned()),
    }
}

/// What an RBAC rule would have to allow for this request (API requests only).
fn target(
    route: &Route,
    verb: &str,
    resource: &str,
    q: &HashMap<String, String>,
) -> Option<Target> {
    let (group, resource, namespace, name) = match route {
        Route::Collection { rd, ns } => (rd.group, resource, ns.clone(), None),
        Route::Object { rd, ns, name, .. } => (
            rd.group,
            resource,
            (!ns.is_empty()).then(|| ns.clone()),
            Some(name.clone()),
        ),
        // Counted as `pods.metrics.k8s.io`; RBAC names it `pods` in group `metrics.k8s.io`.
        Route::Metrics { ns, name } => (METRICS_GROUP, "pods", ns.clone(), name.clone()),
        _ => return None,
    };
    Some(Target {
        verb: verb.to_owned(),
        group: group.to_owned(),
        resource: resource.to_owned(),
        namespace,
        name,
        field_manager: q.get("fieldManager").cloned(),
        client: None,
    })
}

fn not_implemented(shared: &Shared, method: &Method, path: &str, code: u16) -> Response {
    let what = format!("{method} {path}");
    eprintln!("kubernetes simulator: not implemented: {what}");
    lock(&shared.faults).unimplemented(what.clone());
    let reason = match code {
        405 => "MethodNotAllowed",
        415 => "UnsupportedMediaType",
        _ => "NotFound",
    };
    ApiError::new(
        code,
        reason,
        format!("kubernetes simulator: not implemented: {what}"),
    )
    .into_response()
}

fn parse_body(bytes: &[u8], yaml_ok: bool) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => Ok(v),
        Err(e) if yaml_ok => serde_yaml::from_slice::<Value>(bytes)
            .map_err(|y| ApiError::bad_request(format!("error decoding YAML: {y} (as JSON: {e})"))),
        Err(e) => Err(ApiError::bad_request(format!(
            "couldn't get version/kind; json parse error: {e}"
        ))),
    }
}

fn manager(q: &HashMap<String, String>, headers: &HeaderMap) -> String {
    if let Some(m) = q.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_owned()
}

fn done(result: Result<(u16, Value), ApiError>) -> Response {
    match result {
        Ok((code, v)) => json_response(code, &v),
        Err(e) => e.into_response(),
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let method = parts.method;
    let path = parts.uri.path().to_owned();
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let route = parse(&path);
    let (verb, resource) = classify(&method, &route, &query, &parts.headers, &path);
    // Some(None): the main kubeconfig's token; Some(Some(name)): one of kubeconfig_for's.
    let identity: Option<Option<String>> = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|token| {
            if token == shared.token {
                Some(None)
            } else {
                lock(&shared.identities).get(token).cloned().map(Some)
            }
        });
    let fault = {
        let mut f = lock(&shared.faults);
        f.count(&verb, &resource);
        if let Some(mut t) = target(&route, &verb, &resource, &query) {
            t.client = identity.clone().flatten();
            f.count_target(t);
        }
        f.take(&verb, &resource)
    };
    if identity.is_none() {
        return ApiError::unauthorized().into_response();
    }
    match fault {
        Some(FaultKind::Slow(d)) => tokio::time::sleep(d).await,
        Some(FaultKind::Status(410)) if verb == "watch" => {
            return watch::expired_response("too old resource version (injected fault)");
        }
        Some(FaultKind::Status(code)) => return ApiError::for_code(code).into_response(),
        None => {}
    }
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                413,
                "RequestEntityTooLarge",
                "the request body is too large",
            )
            .into_response();
        }
    };
    let sel = || {
        Selectors::parse(
            query.get("labelSelector").map(String::as_str),
            query.get("fieldSelector").map(String::as_str),
            &resource,
        )
    };
    let opts = WriteOpts {
        manager: manager(&query, &parts.headers),
        dry_run: query.get("dryRun").is_some_and(|d| d == "All"),
        force: is_true(&query, "force"),
        status: false,
    };
    match route {
        Route::Version => json_response(200, &resources::version()),
        Route::CoreVersions => {
            json_response(200, &resources::core_versions(&shared.addr.to_string()))
        }
        Route::Groups => json_response(200, &resources::group_list()),
        Route::Group(g) => match resources::group(&g) {
            Some(v) => json_response(200, &v),
            None => not_implemented(&shared, &method, &path, 404),
        },
        Route::ResourceList(g, v) => match resources::resource_list(&g, &v) {
            Some(doc) => json_response(200, &doc),
            None => not_implemented(&shared, &method, &path, 404),
        },
        Route::Metrics { ns, name } if method == Method::GET => {
            let sel = match sel() {
                Ok(s) => s,
                Err(e) => return e.into_response(),
            };
            let w = lock(&shared.world);
            done(kubelet::metrics(&w, ns.as_deref(), name.as_deref(), &sel).map(|v| (200, v)))
        }
        Route::Collection { rd, ns } => {
            let sel = match sel() {
                Ok(s) => s,
                Err(e) => return e.into_response(),
            };
            match (&method, verb.as_str()) {
                (&Method::GET, "watch") => match watch::start(&shared, rd, ns, &query, sel) {
                    Ok(r) => r,
                    Err(e) => e.into_response(),
                },
                (&Method::GET, _) => {
                    let limit = query.get("limit").and_then(|l| l.parse().ok());
                    let w = lock(&shared.world);
                    let v = verbs::list(
                        &w,
                        rd,
                        ns.as_deref(),
                        &sel,
                        limit,
                        query.get("continue").map(String::as_str),
                    );
                    json_response(200, &v)
                }
                (&Method::POST, _) => {
                    let ns = match (rd.namespaced, ns) {
                        (true, Some(ns)) => ns,
                        (false, None) => String::new(),
                        _ => return not_implemented(&shared, &method, &path, 405),
                    };
                    let body = match parse_body(&bytes, false) {
                        Ok(b) => b,
                        Err(e) => return e.into_response(),
                    };
                    let mut w = lock(&shared.world);
                    done(verbs::create(&mut w, rd, &ns, body, &opts).map(|v| (201, v)))
                }
                (&Method::DELETE, _) => {
                    let options = match parse_body(&bytes, false) {
                        Ok(b) => b,
                        Err(e) => return e.into_response(),
                    };
                    let mut w = lock(&shared.world);
                    done(
                        verbs::delete_collection(
                            &mut w,
                            rd,
                            ns.as_deref(),
                            &sel,
                            &options,
                            opts.dry_run,
                        )
                        .map(|v| (200, v)),
                    )
                }
                _ => not_implemented(&shared, &method, &path, 405),
            }
        }
        Route::Object { rd, ns, name, sub } => object(
            &shared,
            rd,
            &ns,
            &name,
            sub.as_deref(),
            &method,
            &path,
            &query,
            &parts.headers,
            &bytes,
            opts,
        ),
        Route::Metrics { .. } => not_implemented(&shared, &method, &path, 405),
        Route::Unknown => not_implemented(&shared, &method, &path, 404),
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one request's parts, passed through"
)]
fn object(
    shared: &Arc<Shared>,
    rd: &'static ResourceDef,
    ns: &str,
    name: &str,
    sub: Option<&str>,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    bytes: &[u8],
    mut opts: WriteOpts,
) -> Response {
    match sub {
        None => {}
        Some("status") if rd.has_status => opts.status = true,
        Some("log") if rd.plural == "pods" && *method == Method::GET => {
            return logstream::respond(shared, ns, name, query)
                .unwrap_or_else(|e| e.into_response());
        }
        Some(_) => return not_implemented(shared, method, path, 404),
    }
    match *method {
        Method::GET => {
            let w = lock(&shared.world);
            done(verbs::get(&w, rd, ns, name).map(|v| (200, v)))
        }
        Method::PUT => {
            let body = match parse_body(bytes, false) {
                Ok(b) => b,
                Err(e) => return e.into_response(),
            };
            let mut w = lock(&shared.world);
            done(verbs::update(&mut w, rd, ns, name, body, &opts).map(|v| (200, v)))
        }
        Method::PATCH => {
            let ct = content_type(headers);
            match ct.as_str() {
                "application/apply-patch+yaml" => {
                    if query.get("fieldManager").is_none_or(String::is_empty) {
                        opts.manager = String::new();
                    }
                    let body = match parse_body(bytes, true) {
                        Ok(b) => b,
                        Err(e) => return e.into_response(),
                    };
                    let mut w = lock(&shared.world);
                    done(verbs::apply(&mut w, rd, ns, name, body, &opts))
                }
                "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                    let body = match parse_body(bytes, false) {
                        Ok(b) => b,
                        Err(e) => return e.into_response(),
                    };
                    let mut w = lock(&shared.world);
                    done(verbs::merge_patch(&mut w, rd, ns, name, &body, &opts).map(|v| (200, v)))
                }
                _ => not_implemented(shared, method, &format!("{path} (Content-Type: {ct})"), 415),
            }
        }
        Method::DELETE => {
            let mut options = match parse_body(bytes, false) {
                Ok(b) => b,
                Err(e) => return e.into_response(),
            };
            let dry_run = opts.dry_run
                || options
                    .get("dryRun")
                    .and_then(Value::as_array)
                    .is_some_and(|d| d.iter().any(|x| x == "All"));
            if let Some(p) = query.get("propagationPolicy")
                && options.get("propagationPolicy").is_none()
            {
                options["propagationPolicy"] = json!(p);
            }
            let mut w = lock(&shared.world);
            done(verbs::delete(&mut w, rd, ns, name, &options, dry_run).map(|v| (200, v)))
        }
        _ => not_implemented(shared, method, path, 405),
    }
}
