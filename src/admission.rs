//! One AdmissionReview in, one AdmissionReview out: the adapter between the Kubernetes
//! admission protocol (kube-core's types) and the engine. No I/O; the HTTP layer calls this.

use kube_core::{
    DynamicObject,
    admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation},
};
use serde_json::Value;

use crate::{
    config::Config,
    engine::{self, Finding, Pass, truncate},
    world::World,
};

/// The only AdmissionReview version served (SPEC section 5).
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// Reasons quoted from a parser are cut to this length, so a denial never echoes a large input.
const REASON_LIMIT: usize = 300;

/// Which webhook is answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Webhook {
    Mutate,
    Validate,
}

impl Webhook {
    pub fn as_str(self) -> &'static str {
        match self {
            Webhook::Mutate => "mutate",
            Webhook::Validate => "validate",
        }
    }
}

/// A body that is not a v1 AdmissionReview at all; answered with HTTP 400.
#[derive(Debug, thiserror::Error)]
pub enum BadReview {
    #[error("request body is not JSON: {0}")]
    NotJson(String),
    #[error(
        "expected apiVersion {API_VERSION} and kind AdmissionReview, got apiVersion {api_version:?} and kind {kind:?}"
    )]
    WrongVersion { api_version: String, kind: String },
    #[error("AdmissionReview has no request")]
    NoRequest,
    #[error("AdmissionReview request has no uid")]
    NoUid,
}

/// The decision, as counted in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Patched,
    Denied,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Patched => "patched",
            Decision::Denied => "denied",
        }
    }
}

/// A review answered, with what the caller logs and counts.
#[derive(Debug)]
pub struct Reviewed {
    pub response: AdmissionReview<DynamicObject>,
    pub uid: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub operation: &'static str,
    pub decision: Decision,
    pub findings: Vec<Finding>,
    pub skipped: Vec<&'static str>,
}

/// Answers one AdmissionReview body.
pub fn review(
    body: &[u8],
    webhook: Webhook,
    config: &Config,
    world: Option<&dyn World>,
) -> Result<Reviewed, BadReview> {
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(error) => return unreadable(body, &error),
    };
    if review.types.api_version != API_VERSION || review.types.kind != "AdmissionReview" {
        return Err(BadReview::WrongVersion {
            api_version: truncate(&review.types.api_version, 64),
            kind: truncate(&review.types.kind, 64),
        });
    }
    let request: AdmissionRequest<DynamicObject> =
        review.try_into().map_err(|_| BadReview::NoRequest)?;
    if request.uid.is_empty() {
        return Err(BadReview::NoUid);
    }
    let mut reviewed = Reviewed {
        response: AdmissionReview {
            types: Default::default(),
            request: None,
            response: None,
        },
        uid: request.uid.clone(),
        kind: request.kind.kind.clone(),
        namespace: request.namespace.clone().unwrap_or_default(),
        name: request.name.clone(),
        operation: operation_name(&request.operation),
        decision: Decision::Allowed,
        findings: Vec::new(),
        skipped: Vec::new(),
    };
    let mut response = AdmissionResponse::from(&request);
    let object = match (&request.operation, request.object) {
        (Operation::Create | Operation::Update, Some(object)) => object,
        // DELETE, CONNECT and requests without an object are allowed untouched.
        _ => {
            reviewed.response = response.into_review();
            return Ok(reviewed);
        }
    };
    let mut object = match serde_json::to_value(&object) {
        Ok(object) => object,
        Err(e) => {
            reviewed.decision = Decision::Denied;
            reviewed.response = response
                .deny(format!(
                    "failover-guard cannot read the object: {}",
                    truncate(&e.to_string(), REASON_LIMIT)
                ))
                .into_review();
            return Ok(reviewed);
        }
    };
    let namespace = request.namespace.as_deref().unwrap_or("default");
    match webhook {
        Webhook::Mutate => {
            let original = object.clone();
            let evaluation = engine::evaluate(&mut object, config, world, namespace, Pass::Mutate);
            let patch = json_patch::diff(&original, &object);
            if !patch.0.is_empty() {
                response = match response.with_patch(patch) {
                    Ok(r) => r,
                    Err(e) => deny_with_uid(
                        &reviewed.uid,
                        format!("failover-guard cannot encode its patch: {e}"),
                    ),
                };
                reviewed.decision = if response.allowed {
                    Decision::Patched
                } else {
                    Decision::Denied
                };
            }
            reviewed.findings = evaluation.findings;
            reviewed.skipped = evaluation.skipped;
        }
        Webhook::Validate => {
            let evaluation =
                engine::evaluate(&mut object, config, world, namespace, Pass::Validate);
            let denials: Vec<&str> = evaluation.denials().map(|f| f.message.as_str()).collect();
            let warnings: Vec<String> = evaluation.warnings().map(|f| f.warning.clone()).collect();
            if !warnings.is_empty() {
                response.warnings = Some(warnings);
            }
            if !denials.is_empty() {
                response = response.deny(denials.join("\n"));
                reviewed.decision = Decision::Denied;
            }
            reviewed.findings = evaluation.findings;
            reviewed.skipped = evaluation.skipped;
        }
    }
    reviewed.response = response.into_review();
    Ok(reviewed)
}

/// A body that did not parse as `AdmissionReview<DynamicObject>`: a 400 when it is not an
/// AdmissionReview at all, a denial carrying the uid when it is one with a broken request.
fn unreadable(body: &[u8], error: &serde_json::Error) -> Result<Reviewed, BadReview> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| BadReview::NotJson(truncate(&e.to_string(), REASON_LIMIT)))?;
    let text = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or_default();
    if text("apiVersion") != API_VERSION || text("kind") != "AdmissionReview" {
        return Err(BadReview::WrongVersion {
            api_version: truncate(text("apiVersion"), 64),
            kind: truncate(text("kind"), 64),
        });
    }
    let request = value.get("request").ok_or(BadReview::NoRequest)?;
    let uid = request
        .get("uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or(BadReview::NoUid)?;
    let field = |key: &str| {
        request
            .pointer(key)
            .and_then(Value::as_str)
            .map(|s| truncate(s, 253))
            .unwrap_or_default()
    };
    let response = deny_with_uid(
        uid,
        format!(
            "failover-guard cannot evaluate this request: {}",
            truncate(&error.to_string(), REASON_LIMIT)
        ),
    );
    Ok(Reviewed {
        response: response.into_review(),
        uid: truncate(uid, 64),
        kind: field("/kind/kind"),
        namespace: field("/namespace"),
        name: field("/name"),
        operation: "UNKNOWN",
        decision: Decision::Denied,
        findings: Vec::new(),
        skipped: Vec::new(),
    })
}

/// A denial for a request whose uid is known but whose body could not be used.
fn deny_with_uid(uid: &str, reason: String) -> AdmissionResponse {
    // `invalid` leaves the uid empty, which the API server rejects: set it.
    let mut response = AdmissionResponse::invalid(reason);
    response.uid = uid.to_owned();
    response
}

fn operation_name(operation: &Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// Encodes a response review as the API server expects it.
///
/// kube-core serializes `response.patch` (a `Vec<u8>`) as an array of numbers, but the API
/// server requires the base64 string Go uses for `[]byte` (kube-rs/kube#1781). This writes the
/// patch as base64 and leaves every other field to kube-core.
pub fn encode(review: &AdmissionReview<DynamicObject>) -> Result<Vec<u8>, serde_json::Error> {
    use base64::Engine as _;
    let mut value = serde_json::to_value(review)?;
    if let (Some(patch), Some(slot)) = (
        review.response.as_ref().and_then(|r| r.patch.as_ref()),
        value.pointer_mut("/response/patch"),
    ) {
        *slot = Value::String(base64::engine::general_purpose::STANDARD.encode(patch));
    }
    serde_json::to_vec(&value)
}
