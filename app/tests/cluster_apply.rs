//! `Cluster` against a small fake API server on 127.0.0.1: the requests kube-rs makes for
//! server-side apply and namespace deletion (paths, field manager, force, content type,
//! bodies), and how answers are sorted into retryable trouble and rejections.
//!
//! The fake knows just enough: PATCH echoes the body as the stored object, DELETE and GET of
//! namespaces answer for `gone`/`missing` with 404, and any object named `fail-<code>` gets that
//! status with a Kubernetes `Status` body.

mod cluster_support;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cluster_support::{TOKEN, TempDir, meta, web_service};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use previewd::cluster::objects::FIELD_MANAGER;
use previewd::cluster::{
    Cluster, ClusterError, DeleteOutcome, build_secret, deployment, namespace, to_apply_json,
};
use secrecy::SecretString;
use serde_json::{Value, json};

const KUBE_TOKEN: &str = "kube-bearer-token-not-for-logs";

#[derive(Debug, Clone)]
struct Request {
    method: Method,
    path: String,
    query: String,
    content_type: String,
    authorization: String,
    body: Value,
}

type Log = Arc<Mutex<Vec<Request>>>;

async fn handle(
    State(log): State<Log>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    log.lock().unwrap().push(Request {
        method: method.clone(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        content_type: header("content-type"),
        authorization: header("authorization"),
        body: body.clone(),
    });
    let name = uri.path().rsplit('/').next().unwrap_or_default().to_owned();
    let status = |code: u16, reason: &str, message: &str| {
        let body = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code,
        });
        (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
    };
    if let Some(code) = name.strip_prefix("fail-") {
        let code: u16 = code.parse().unwrap();
        return status(
            code,
            "Failure",
            &format!("{name} refused; leaked ghs_ShouldNotAppear0123456789abcdef here"),
        );
    }
    let namespace = |name: &str, phase: &str| {
        axum::Json(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": { "name": name, "uid": "uid-1", "resourceVersion": "2" },
            "status": { "phase": phase },
        }))
        .into_response()
    };
    match method {
        Method::PATCH => {
            let mut stored = body;
            stored["metadata"]["uid"] = json!("uid-1");
            stored["metadata"]["resourceVersion"] = json!("1");
            axum::Json(stored).into_response()
        }
        Method::DELETE if name == "gone" => {
            status(404, "NotFound", "namespaces \"gone\" not found")
        }
        Method::DELETE => namespace(&name, "Terminating"),
        Method::GET if name == "missing" => {
            status(404, "NotFound", "namespaces \"missing\" not found")
        }
        Method::GET => namespace(&name, "Active"),
        _ => status(405, "MethodNotAllowed", "unexpected"),
    }
}

/// A fake API server and a `Cluster` connected to it through a kubeconfig file.
struct Fake {
    cluster: Cluster,
    log: Log,
    _dir: TempDir,
}

impl Fake {
    async fn start() -> Self {
        let log: Log = Arc::default();
        let app = Router::new().fallback(handle).with_state(log.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let (cluster, dir) = connect(port).await;
        Self {
            cluster,
            log,
            _dir: dir,
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

async fn connect(port: u16) -> (Cluster, TempDir) {
    let dir = TempDir::new("kubeconfig");
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
             clusters: [{{name: fake, cluster: {{server: \"http://127.0.0.1:{port}\"}}}}]\n\
             users: [{{name: fake, user: {{token: {KUBE_TOKEN}}}}}]\n\
             contexts: [{{name: fake, context: {{cluster: fake, user: fake}}}}]\n"
        ),
    )
    .unwrap();
    let cluster = Cluster::connect(Some(&kubeconfig)).await.expect("connects");
    (cluster, dir)
}

fn assert_server_side_apply(request: &Request) {
    assert_eq!(request.method, Method::PATCH);
    assert_eq!(request.content_type, "application/apply-patch+yaml");
    assert!(
        request
            .query
            .contains(&format!("fieldManager={FIELD_MANAGER}")),
        "{}",
        request.query
    );
    assert!(request.query.contains("force=true"), "{}", request.query);
    assert_eq!(request.authorization, format!("Bearer {KUBE_TOKEN}"));
}

#[tokio::test]
async fn applies_cluster_scoped_and_namespaced_objects() {
    let fake = Fake::start().await;
    let meta = meta();
    let stored: Namespace = fake
        .cluster
        .apply(&namespace(&meta))
        .await
        .expect("applies");
    assert_eq!(stored.metadata.uid.as_deref(), Some("uid-1"));
    assert_eq!(
        stored.metadata.name.as_deref(),
        Some(meta.namespace.as_str())
    );
    fake.cluster
        .apply(&deployment(&meta, &web_service(None)))
        .await
        .expect("applies");

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_server_side_apply(&requests[0]);
    assert_eq!(
        requests[0].path,
        format!("/api/v1/namespaces/{}", meta.namespace)
    );
    assert_eq!(requests[0].body["kind"], "Namespace");
    assert_eq!(requests[0].body["apiVersion"], "v1");
    assert_server_side_apply(&requests[1]);
    assert_eq!(
        requests[1].path,
        format!(
            "/apis/apps/v1/namespaces/{}/deployments/web",
            meta.namespace
        )
    );
    assert_eq!(
        requests[1].body,
        to_apply_json(&deployment(&meta, &web_service(None)))
    );
}

#[tokio::test]
async fn applies_rendered_chart_objects_by_their_allowed_kind() {
    let fake = Fake::start().await;
    let ns = meta().namespace;
    let config_map = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "demo", "namespace": ns }, "data": { "a": "b" },
    });
    fake.cluster.apply_json(&config_map).await.expect("applies");
    let cron = json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": { "name": "nightly", "namespace": ns }, "spec": {},
    });
    fake.cluster.apply_json(&cron).await.expect("applies");
    let requests = fake.requests();
    assert_server_side_apply(&requests[0]);
    assert_eq!(
        requests[0].path,
        format!("/api/v1/namespaces/{ns}/configmaps/demo")
    );
    assert_eq!(requests[0].body, config_map);
    assert_eq!(
        requests[1].path,
        format!("/apis/batch/v1/namespaces/{ns}/cronjobs/nightly")
    );

    // Outside the allow-list, or without a namespace: refused before any request.
    for refused in [
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "x", "namespace": ns}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": ns}}),
        json!({"kind": "ConfigMap"}),
    ] {
        let err = fake.cluster.apply_json(&refused).await.unwrap_err();
        assert!(matches!(err, ClusterError::Invalid(_)), "{err:?}");
        assert!(!err.is_retryable());
    }
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn server_trouble_is_retryable_and_rejections_are_not() {
    let fake = Fake::start().await;
    let ns = meta().namespace;
    for code in [500, 503, 429] {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("fail-{code}"), "namespace": ns}});
        let err = fake.cluster.apply_json(&obj).await.unwrap_err();
        assert!(err.is_retryable(), "{code}: {err:?}");
    }
    for code in [403, 409, 422] {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("fail-{code}"), "namespace": ns}});
        let err = fake.cluster.apply_json(&obj).await.unwrap_err();
        assert!(!err.is_retryable(), "{code}: {err:?}");
        assert_eq!(err.status_code(), Some(code));
        let message = err.to_string();
        assert!(
            message.contains(&format!("fail-{code} refused")),
            "the server's message: {message}"
        );
        assert!(!message.contains("ghs_ShouldNotAppear"), "{message}");
    }
    // kube's own retries are off: one request per call, the jobs decide about retrying.
    assert_eq!(fake.requests().len(), 6);
}

#[tokio::test]
async fn a_rejected_secret_leaks_neither_token_nor_credentials() {
    let fake = Fake::start().await;
    let mut secret: Secret = build_secret(&meta(), &SecretString::from(TOKEN));
    secret.metadata.name = Some("fail-422".to_owned());
    let err = fake.cluster.apply(&secret).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains(TOKEN) && !text.contains(KUBE_TOKEN),
        "{text}"
    );
    // The token did travel, base64-encoded, in the body (that is the point of the Secret).
    let body = &fake.requests()[0].body;
    assert!(body["data"]["GIT_AUTH_TOKEN"].is_string());
}

#[tokio::test]
async fn deleting_namespaces_in_the_foreground() {
    let fake = Fake::start().await;
    assert_eq!(
        fake.cluster
            .delete_namespace("acme-web-pr-12")
            .await
            .unwrap(),
        DeleteOutcome::Deleting
    );
    assert_eq!(
        fake.cluster.delete_namespace("gone").await.unwrap(),
        DeleteOutcome::AlreadyGone
    );
    let requests = fake.requests();
    assert_eq!(requests[0].method, Method::DELETE);
    assert_eq!(requests[0].path, "/api/v1/namespaces/acme-web-pr-12");
    assert_eq!(requests[0].body["propagationPolicy"], "Foreground");

    let err = fake.cluster.delete_namespace("fail-503").await.unwrap_err();
    assert!(err.is_retryable());
    assert!(
        fake.cluster
            .namespace_exists("acme-web-pr-12")
            .await
            .unwrap()
    );
    assert!(!fake.cluster.namespace_exists("missing").await.unwrap());
    assert!(
        fake.cluster
            .namespace_exists("fail-500")
            .await
            .unwrap_err()
            .is_retryable()
    );
}

#[tokio::test]
async fn an_unreachable_api_server_is_retryable() {
    // A port that was free a moment ago: connection refused.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (cluster, _dir) = connect(port).await;
    let err = cluster.namespace_exists("anything").await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(!err.to_string().contains(KUBE_TOKEN));
}

#[tokio::test]
async fn a_missing_kubeconfig_is_a_configuration_error() {
    let err = Cluster::connect(Some(std::path::Path::new("/nonexistent/kubeconfig")))
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/kubeconfig"));
    assert!(!err.is_retryable());
}
