//! The two routers: admission (TLS) and probes + metrics (plain HTTP). Handlers are thin: they
//! take the body, call [`crate::admission::review`], count, log and encode.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Instant,
};

use axum::{
    Router,
    body::Bytes,
    error_handling::HandleErrorLayer,
    extract::{DefaultBodyLimit, State, rejection::BytesRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use tower::ServiceBuilder;

use crate::{
    admission::{self, Decision, Reviewed, Webhook},
    metrics::{Metrics, RequestLabels, RuleLabels, WebhookLabels},
    world::World,
};

/// Largest accepted request body (SPEC section 5); larger ones get 413.
pub const BODY_LIMIT: usize = 6 * 1024 * 1024;

/// What the handlers share.
pub struct AppState {
    /// The configuration in force (file, mesh config, discovered remotes).
    pub in_force: Arc<crate::inforce::InForce>,
    pub world: Option<Arc<dyn World>>,
    pub metrics: Arc<Metrics>,
    /// Set when SIGTERM arrived: /readyz answers 503 from then on.
    pub draining: AtomicBool,
    /// `serve --record DIR`: every admission body is written there (tests' fixtures).
    pub record_dir: Option<PathBuf>,
    recorded: AtomicU64,
}

impl AppState {
    pub fn new(
        in_force: Arc<crate::inforce::InForce>,
        world: Option<Arc<dyn World>>,
        metrics: Arc<Metrics>,
        record_dir: Option<PathBuf>,
    ) -> Self {
        Self {
            in_force,
            world,
            metrics,
            draining: AtomicBool::new(false),
            record_dir,
            recorded: AtomicU64::new(0),
        }
    }
}

/// `POST /mutate` and `POST /validate`, with the body limit and a concurrency limit that sheds
/// load with a fast 503 instead of queueing past the API server's timeout.
pub fn admission_router(state: Arc<AppState>, max_in_flight: usize) -> Router {
    let shed_state = state.clone();
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .route_layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(move |_: tower::BoxError| {
                    let state = shed_state.clone();
                    async move {
                        state
                            .metrics
                            .rejected
                            .get_or_create(&RuleLabels { rule: "overloaded" })
                            .inc();
                        json_error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "failover-guard is overloaded; retry",
                        )
                    }
                }))
                .load_shed()
                .concurrency_limit(max_in_flight),
        )
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refuse_announced_oversize,
        ))
        .fallback(|| async {
            json_error(
                StatusCode::NOT_FOUND,
                "no such endpoint; use POST /mutate or POST /validate",
            )
        })
        .with_state(state)
}

/// A body whose Content-Length is over the limit gets its 413 before any of it is read: the
/// client learns at once, and the server reads no megabytes only to throw them away. (A client
/// still sending would otherwise meet a closed connection, not the answer.) A body that does
/// not announce its length is cut at the limit by `DefaultBodyLimit`.
async fn refuse_announced_oversize(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|length| length > BODY_LIMIT as u64) {
        state
            .metrics
            .rejected
            .get_or_create(&RuleLabels { rule: "too-large" })
            .inc();
        return json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the request body is larger than the limit of {BODY_LIMIT} bytes"),
        );
    }
    next.run(request).await
}

/// `GET /livez`, `GET /readyz`, `GET /metrics`.
pub fn probe_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.draining.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else {
        // Config and certificate are loaded before the listeners open: being here means ready.
        // Admission never waits for the world, so a syncing world does not make it unready.
        let world = state
            .world
            .as_ref()
            .map_or_else(|| "none".to_owned(), |w| w.describe());
        let remotes = state
            .in_force
            .remotes()
            .map(|r| format!("remotes: {}\n", r.describe()))
            .unwrap_or_default();
        let current = state.in_force.current();
        let (mesh, judged) = (current.mesh_source(), current.judged_by());
        let (multicluster, _) = state.in_force.multicluster_report(state.world.as_deref());
        (
            StatusCode::OK,
            format!("ok\nworld: {world}\n{remotes}{mesh}\n{judged}\n{multicluster}\n"),
        )
            .into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

async fn mutate(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(&state, Webhook::Mutate, body)
}

async fn validate(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(&state, Webhook::Validate, body)
}

fn answer(state: &AppState, webhook: Webhook, body: Result<Bytes, BytesRejection>) -> Response {
    let started = Instant::now();
    let metrics = &state.metrics;
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let reason = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "too-large"
            } else {
                "unreadable"
            };
            metrics
                .rejected
                .get_or_create(&RuleLabels { rule: reason })
                .inc();
            return json_error(status, &rejection.body_text());
        }
    };
    if let Some(dir) = &state.record_dir {
        record(state, dir, webhook, &body);
    }
    metrics.in_flight.inc();
    let config = state.in_force.load();
    // Until the world is synced, cross-object rules stay silent rather than guess.
    let world = state.world.as_deref().filter(|w| w.is_ready());
    let result = admission::review(&body, webhook, &config, world);
    metrics.in_flight.dec();
    let reviewed = match result {
        Ok(reviewed) => reviewed,
        Err(bad) => {
            metrics
                .rejected
                .get_or_create(&RuleLabels {
                    rule: "not-admission-review",
                })
                .inc();
            tracing::warn!(webhook = webhook.as_str(), error = %bad, "bad admission request");
            return json_error(StatusCode::BAD_REQUEST, &bad.to_string());
        }
    };
    for finding in &reviewed.findings {
        metrics.finding(finding.rule, finding.action);
    }
    for rule in &reviewed.skipped {
        metrics.skips.get_or_create(&RuleLabels { rule }).inc();
    }
    if !reviewed.skipped.is_empty() {
        tracing::info!(
            uid = %reviewed.uid, kind = %reviewed.kind, namespace = %reviewed.namespace,
            name = %reviewed.name, skipped = ?reviewed.skipped,
            "rules skipped by the failover-guard.io/skip annotation"
        );
    }
    let encoded = admission::encode(&reviewed.response);
    metrics
        .requests
        .get_or_create(&RequestLabels {
            webhook: webhook.as_str(),
            kind: reviewed.kind.clone(),
            operation: reviewed.operation,
            decision: reviewed.decision.as_str(),
        })
        .inc();
    metrics
        .duration
        .get_or_create(&WebhookLabels {
            webhook: webhook.as_str(),
        })
        .observe(started.elapsed().as_secs_f64());
    log_admission(webhook, &reviewed);
    match encoded {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot encode response: {e}"),
        ),
    }
}

/// Where each admission's line is logged: `FAILOVER_GUARD_LOG=info,failover_guard::admissions=debug`
/// logs every admission.
const ADMISSIONS: &str = "failover_guard::admissions";

/// One line per admission. A denial is logged at info: someone's apply failed, and the
/// operator will be asked why. A patch, a warning or a clean pass is logged at debug.
/// Gatekeeper, too, logs neither denials nor mutations unless asked (`--log-denies`,
/// `--log-mutations`). A patch is recorded anyway: by the object's `failover-guard.io/mutated`
/// annotation, by the API server's audit log, and in `failover_guard_findings_total`. In GitOps
/// every sync re-applies and re-patches the same objects, and an info line for each was noise
/// that cost a patched admission a fifth of its server time at saturation
/// (docs/performance.md).
fn log_admission(webhook: Webhook, reviewed: &Reviewed) {
    macro_rules! line {
        ($level:expr) => {
            // Built only when it will be logged: this is the request path.
            if tracing::enabled!(target: ADMISSIONS, $level) {
                let mut findings = String::new();
                for f in &reviewed.findings {
                    if !findings.is_empty() {
                        findings.push(',');
                    }
                    findings.push_str(f.rule);
                    findings.push(':');
                    findings.push_str(f.action.as_str());
                }
                // Fields as &str, not `%`: a JSON log then copies them instead of running
                // the formatting machinery for each.
                tracing::event!(
                    target: ADMISSIONS,
                    $level,
                    uid = reviewed.uid.as_str(),
                    webhook = webhook.as_str(),
                    kind = reviewed.kind.as_str(),
                    namespace = reviewed.namespace.as_str(),
                    name = reviewed.name.as_str(),
                    operation = reviewed.operation,
                    decision = reviewed.decision.as_str(),
                    findings = findings.as_str(),
                    "reviewed"
                );
            }
        };
    }
    if reviewed.decision == Decision::Denied {
        line!(tracing::Level::INFO);
    } else {
        line!(tracing::Level::DEBUG);
    }
}

fn record(state: &AppState, dir: &std::path::Path, webhook: Webhook, body: &[u8]) {
    let n = state.recorded.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{:04}-{}.json", n, webhook.as_str()));
    if let Err(error) = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&path, body)) {
        tracing::warn!(%error, path = %path.display(), "cannot record admission request");
    }
}

/// An error body in JSON, so API-server logs and curl users see a reason, not HTML or text.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message, "status": status.as_u16() });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// The lines `log_admission` writes for `reviewed` under the filter `directives`.
    fn logged(directives: &str, webhook: Webhook, reviewed: &Reviewed) -> String {
        let lines = crate::logging::Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(directives))
            .with_ansi(false)
            .with_writer({
                let lines = lines.clone();
                move || lines.clone()
            })
            .finish();
        tracing::subscriber::with_default(subscriber, || log_admission(webhook, reviewed));
        lines.text()
    }

    #[test]
    fn a_denial_is_logged_at_info_and_a_patch_only_when_asked() {
        let body = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/apiserver/0000-mutate.json"),
        )
        .unwrap();
        let config = Config::example();
        let patched = admission::review(&body, Webhook::Mutate, &config, None).unwrap();
        assert_eq!(patched.decision, Decision::Patched);
        // The same DestinationRule, unpatched, is denied by the validating webhook (FG101).
        let denied = admission::review(&body, Webhook::Validate, &config, None).unwrap();
        assert_eq!(denied.decision, Decision::Denied);

        let line = logged("info", Webhook::Validate, &denied);
        assert!(
            line.contains("INFO")
                && line.contains("decision=\"denied\"")
                && line.contains("FG101:deny"),
            "{line}"
        );
        assert_eq!(logged("info", Webhook::Mutate, &patched), "");
        let line = logged(
            "info,failover_guard::admissions=debug",
            Webhook::Mutate,
            &patched,
        );
        assert!(
            line.contains("DEBUG")
                && line.contains("decision=\"patched\"")
                && line.contains("FG101:mutate"),
            "{line}"
        );
    }
}
