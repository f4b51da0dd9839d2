//! The HTTP API: `POST /v1/check` judges a raw message (envelope in headers,
//! as Rspamd's `/checkv2`), `GET /v1/policies` lists the loaded policies,
//! `GET /metrics` and `GET /healthz` are for operators.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use crate::cli::message_envelope;
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, Submission};
use crate::runtime::types::Envelope;

/// Largest message body `POST /v1/check` takes unless configured.
pub const DEFAULT_MAX_BODY_BYTES: usize = 25 << 20;

/// Client IP when the `IP` header is absent (as `postern check`).
const DEFAULT_CLIENT_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
/// HELO name when the `Helo` header is absent (as `postern check`).
const DEFAULT_HELO: &str = "localhost";

/// What the HTTP API needs.
#[derive(Clone)]
pub struct HttpState {
    /// The current pipeline, swapped on reload.
    pub pipeline: Arc<ArcSwap<Pipeline>>,
    /// Where verdicts are counted.
    pub metrics: Arc<Metrics>,
    /// Largest message body `POST /v1/check` accepts.
    pub max_body_bytes: usize,
}

impl HttpState {
    /// State with the default body limit ([`DEFAULT_MAX_BODY_BYTES`]).
    pub fn new(pipeline: Arc<ArcSwap<Pipeline>>, metrics: Arc<Metrics>) -> Self {
        HttpState { pipeline, metrics, max_body_bytes: DEFAULT_MAX_BODY_BYTES }
    }
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState").field("max_body_bytes", &self.max_body_bytes).finish_non_exhaustive()
    }
}

/// The API's routes.
pub fn router(state: HttpState) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/v1/check", post(check).layer(DefaultBodyLimit::max(limit)))
        .route("/v1/policies", get(policies))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(state)
}

/// Serves routes (this API's or the admin API's) on an already-bound
/// listener until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    routes: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, routes).with_graceful_shutdown(shutdown).await
}

/// A 4xx answer with a JSON body `{"error": "..."}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }

    fn bad_header(name: &str, why: impl std::fmt::Display) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, format!("invalid `{name}` header: {why}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: String,
        }
        (self.status, Json(Body { error: self.message })).into_response()
    }
}

/// `POST /v1/check`: the verdict, as `postern check --json` prints it.
async fn check(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // Map axum's plain-text rejections (413 over the limit, …) to JSON.
    let raw = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let pipeline = state.pipeline.load_full();
    let envelope = envelope_from_headers(&headers, &raw, &pipeline)?;
    let verdict = pipeline.check(&Submission { raw: &raw, envelope }).await;
    state.metrics.observe_verdict(&verdict);
    Ok(Json(verdict).into_response())
}

/// The envelope from Rspamd-style headers (`IP`, `Helo`, `From`, `Rcpt`),
/// defaulted from the message exactly as `postern check` does.
fn envelope_from_headers(headers: &HeaderMap, raw: &[u8], pipeline: &Pipeline) -> Result<Envelope, ApiError> {
    let client_ip = match single(headers, "ip")? {
        Some(v) => v.trim().parse::<IpAddr>().map_err(|e| ApiError::bad_header("IP", e))?,
        None => DEFAULT_CLIENT_IP,
    };
    let helo = single(headers, "helo")?.map(str::trim).unwrap_or(DEFAULT_HELO);
    let mail_from = single(headers, "from")?.map(str::trim);
    let mut rcpts = Vec::new();
    for value in headers.get_all("rcpt") {
        let value = value.to_str().map_err(|e| ApiError::bad_header("Rcpt", e))?;
        rcpts.extend(value.split(',').map(str::trim).filter(|r| !r.is_empty()));
    }
    let limits = &pipeline.settings().parse_limits;
    let mut envelope = message_envelope(raw, limits, mail_from, rcpts.first().copied(), client_ip, helo);
    // The helper takes one recipient; the rest are cleaned the same way.
    envelope.rcpt_to.extend(rcpts.iter().skip(1).map(|r| r.trim_matches(['<', '>']).to_string()));
    Ok(envelope)
}

/// A header that may appear once, as text.
fn single<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<Option<&'h str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(ApiError::bad_header(name, "given more than once"));
    }
    value.to_str().map(Some).map_err(|e| ApiError::bad_header(name, e))
}

/// `GET /v1/policies`: every policy the current pipeline uses or has
/// deployed, with its scope, version, state and call statistics.
async fn policies(State(state): State<HttpState>) -> Response {
    let source = state.pipeline.load().policy_source();
    Json(source.status()).into_response()
}

/// `GET /metrics`: the Prometheus text format.
async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], state.metrics.render())
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use axum::body::Body;
    use axum::http::Request;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use crate::checks::FixedChecks;
    use crate::pipeline::Settings;
    use crate::policy::{PolicySet, builtin};
    use crate::runtime::{EngineOptions, Runtime};

    /// A pipeline over the default policies and offline checks. The runtime
    /// and compiled policies are shared; the check state is not, so the
    /// duplicate check never sees another test's message.
    fn pipeline() -> Pipeline {
        static SHARED: OnceLock<(Arc<Runtime>, PolicySet)> = OnceLock::new();
        let (runtime, policies) = SHARED.get_or_init(|| {
            let runtime = Arc::new(Runtime::new(&EngineOptions::default()).expect("runtime"));
            let policies = builtin::load_defaults(&runtime).expect("defaults load");
            (runtime, policies)
        });
        Pipeline::new(runtime.clone(), policies.clone(), Settings::default(), FixedChecks::offline())
    }

    fn state() -> HttpState {
        HttpState::new(Arc::new(ArcSwap::from_pointee(pipeline())), Arc::new(Metrics::new()))
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Option<String>, Vec<u8>) {
        let res = app.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let content_type = res.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string());
        let body = axum::body::to_bytes(res.into_body(), usize::MAX).await.expect("body");
        (status, content_type, body.to_vec())
    }

    fn get(path: &str) -> Request<Body> {
        Request::get(path).body(Body::empty()).unwrap()
    }

    fn check_request(file: &str, headers: &[(&str, &str)]) -> Request<Body> {
        let mut req = Request::post("/v1/check");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(Body::from(fixture(file))).unwrap()
    }

    fn json(body: &[u8]) -> Value {
        serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn healthz_answers_ok() {
        let app = router(state());
        let (status, _, body) = send(&app, get("/healthz")).await;
        assert_eq!((status, body.as_slice()), (StatusCode::OK, b"ok".as_slice()));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn dirty_spam_is_rejected_and_counted() {
        let app = router(state());
        let req = check_request("spam-dirty.eml", &[("IP", "192.0.2.1"), ("Helo", "mx.example.test")]);
        let (status, content_type, body) = send(&app, req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some("application/json"));
        let v = json(&body);
        assert_eq!((v["action"].as_str(), v["code"].as_str()), (Some("reject"), Some("spam")), "{v}");

        let (status, content_type, body) = send(&app, get("/metrics")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some("text/plain; version=0.0.4"));
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains(r#"postern_messages_total{action="reject",code="spam"} 1"#), "{text}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn clean_mail_is_accepted_with_the_cli_json() {
        let state = state();
        let app = router(state.clone());
        let rcpts = [("Rcpt", "<help@support.acme.test>, other@support.acme.test"), ("Rcpt", "third@acme.test")];
        let (status, _, body) = send(&app, check_request("clean.eml", &rcpts)).await;
        assert_eq!(status, StatusCode::OK);
        let v = json(&body);
        assert_eq!(v["action"].as_str(), Some("accept"), "{v}");
        assert!(v["code"].is_null(), "{v}");
        assert!(state.metrics.render().contains(r#"postern_messages_total{action="accept",code="none"} 1"#));

        // The same serialisation as `postern check --json`, without `file`.
        let raw = fixture("clean.eml");
        let envelope = envelope_from_headers(&HeaderMap::new(), &raw, &pipeline()).unwrap();
        let cli = serde_json::to_value(pipeline().check(&Submission { raw: &raw, envelope }).await).unwrap();
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&v), keys(&cli));
        assert!(v.get("file").is_none(), "{v}");
        assert_eq!((&v["smtp"], &v["symbols"], &v["route"]), (&cli["smtp"], &cli["symbols"], &cli["route"]));
    }

    #[test]
    fn the_envelope_comes_from_the_headers_or_the_message() {
        let pipeline = pipeline();
        let raw = fixture("clean.eml");
        let e = envelope_from_headers(&HeaderMap::new(), &raw, &pipeline).unwrap();
        let limits = &pipeline.settings().parse_limits;
        assert_eq!(e, message_envelope(&raw, limits, None, None, DEFAULT_CLIENT_IP, DEFAULT_HELO));
        assert_eq!(e.mail_from, "alice@customer.test");
        assert_eq!(e.rcpt_to, ["help@support.acme.test"]);

        let h = headers(&[
            ("IP", "2001:db8::1"),
            ("Helo", "mx.example.test"),
            ("From", "<>"),
            ("Rcpt", "<a@x.test>,b@x.test"),
            ("Rcpt", " c@x.test "),
        ]);
        let e = envelope_from_headers(&h, &raw, &pipeline).unwrap();
        assert_eq!(
            (e.client_ip.as_str(), e.helo.as_str(), e.mail_from.as_str()),
            ("2001:db8::1", "mx.example.test", "")
        );
        assert_eq!(e.rcpt_to, ["a@x.test", "b@x.test", "c@x.test"]);

        let twice = headers(&[("From", "a@x.test"), ("From", "b@x.test")]);
        assert!(envelope_from_headers(&twice, &raw, &pipeline).unwrap_err().message.contains("more than once"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_bad_ip_header_is_a_400_naming_it() {
        let state = state();
        let app = router(state.clone());
        let (status, content_type, body) = send(&app, check_request("clean.eml", &[("IP", "not-an-ip")])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(content_type.as_deref(), Some("application/json"));
        let v = json(&body);
        assert!(v["error"].as_str().unwrap().contains("`IP`"), "{v}");
        assert!(!state.metrics.render().contains("postern_messages_total{"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_oversized_body_is_a_413_in_json() {
        let app = router(HttpState { max_body_bytes: 64, ..state() });
        let (status, _, body) = send(&app, check_request("clean.eml", &[])).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(json(&body)["error"].is_string());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn unknown_paths_are_404_in_json() {
        let (status, _, body) = send(&router(state()), get("/v2/nothing")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(json(&body)["error"].is_string());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn lists_the_loaded_policies() {
        let (status, _, body) = send(&router(state()), get("/v1/policies")).await;
        assert_eq!(status, StatusCode::OK);
        let v = json(&body);
        let list = v.as_array().expect("an array");
        let spam = list.iter().find(|p| p["name"] == "spam-score").unwrap_or_else(|| panic!("{v}"));
        assert_eq!((spam["stage"].as_str(), spam["scope"].as_str()), (Some("score"), Some("platform")), "{v}");
        assert_eq!(spam["sha256"].as_str().map(str::len), Some(64), "{v}");
        assert!(spam["mode"].is_string() && spam["on_error"].is_string() && spam["time_ms"].is_u64(), "{v}");
        assert_eq!(spam["state"], "active", "{v}");
        let stages: Vec<&str> = list.iter().filter_map(|p| p["stage"].as_str()).collect();
        assert!(stages.ends_with(&["threshold", "route"]), "{v}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn serves_on_a_listener_until_shutdown() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router(state()), async {
            let _ = stopped.await;
        }));
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut reply = String::new();
        conn.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 200") && reply.ends_with("ok"), "{reply}");
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
