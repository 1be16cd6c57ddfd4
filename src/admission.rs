//! One AdmissionReview in, one AdmissionReview out: the adapter between the Kubernetes
//! admission protocol (kube-core's types) and the engine. No I/O; the HTTP layer calls this.

use kube_core::{
    DynamicObject,
    admission::{AdmissionResponse, AdmissionReview, Operation},
};
use serde_json::Value;

use crate::object::Field as _;

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

/// The request half of an AdmissionReview as it arrives, decoded in one pass with the object
/// straight into a `serde_json::Value`. kube-core's `AdmissionReview<DynamicObject>` buffers
/// the whole body for its flattened fields, types the metadata and then has to be turned into
/// a `Value` again; that was a third of a request's cost (docs/performance.md). The fields and
/// their names are kube-core's `AdmissionRequest`; what the engine does not use (`oldObject`,
/// `options`) is skipped unread.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct IncomingReview {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    request: Option<IncomingRequest>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct IncomingRequest {
    #[serde(default)]
    uid: String,
    kind: kube_core::GroupVersionKind,
    // Required like kube-core requires them: a request without them is not the API server's.
    #[allow(dead_code)]
    resource: kube_core::GroupVersionResource,
    #[allow(dead_code)]
    user_info: serde::de::IgnoredAny,
    #[serde(default)]
    name: String,
    namespace: Option<String>,
    operation: Operation,
    #[serde(default)]
    object: Option<Admitted>,
}

/// The admitted object without `metadata.managedFields`, which no rule reads and which is the
/// costliest part of a stored object to decode (hundreds of tiny maps). No fix writes it, so
/// the patch never touches it and the API server keeps it.
struct Admitted(Value);

impl<'de> serde::Deserialize<'de> for Admitted {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(ObjectVisitor { skip: None })
            .map(Admitted)
    }
}

/// Decodes a JSON object into a `Value`, leaving out one key (`skip`) and decoding `metadata`
/// the same way with `managedFields` left out. Anything that is not an object is decoded as is.
struct ObjectVisitor {
    skip: Option<&'static str>,
}

impl<'de> serde::de::Visitor<'de> for ObjectVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if self.skip == Some(key.as_str()) {
                map.next_value::<serde::de::IgnoredAny>()?;
            } else if self.skip.is_none() && key == "metadata" {
                let metadata = map.next_value_seed(Metadata)?;
                out.insert(key, metadata);
            } else {
                out.insert(key, map.next_value()?);
            }
        }
        Ok(Value::Object(out))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element()? {
            out.push(item);
        }
        Ok(Value::Array(out))
    }
}

struct Metadata;

impl<'de> serde::de::DeserializeSeed<'de> for Metadata {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ObjectVisitor {
            skip: Some("managedFields"),
        })
    }
}

/// Answers one AdmissionReview body.
pub fn review(
    body: &[u8],
    webhook: Webhook,
    config: &Config,
    world: Option<&dyn World>,
) -> Result<Reviewed, BadReview> {
    let review: IncomingReview = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(error) => return unreadable(body, &error),
    };
    if review.api_version != API_VERSION || review.kind != "AdmissionReview" {
        return Err(BadReview::WrongVersion {
            api_version: truncate(&review.api_version, 64),
            kind: truncate(&review.kind, 64),
        });
    }
    let request = review.request.ok_or(BadReview::NoRequest)?;
    if request.uid.is_empty() {
        return Err(BadReview::NoUid);
    }
    let mut response = allow(&request.uid);
    let mut reviewed = Reviewed {
        response: AdmissionReview {
            types: Default::default(),
            request: None,
            response: None,
        },
        uid: request.uid,
        kind: request.kind.kind,
        namespace: request.namespace.unwrap_or_default(),
        name: request.name,
        operation: operation_name(&request.operation),
        decision: Decision::Allowed,
        findings: Vec::new(),
        skipped: Vec::new(),
    };
    let mut object = match (&request.operation, request.object) {
        (Operation::Create | Operation::Update, Some(Admitted(object))) if !object.is_null() => {
            object
        }
        // DELETE, CONNECT and requests without an object are allowed untouched.
        _ => {
            reviewed.response = response.into_review();
            return Ok(reviewed);
        }
    };
    let namespace = if reviewed.namespace.is_empty() {
        "default"
    } else {
        &reviewed.namespace
    };
    match webhook {
        Webhook::Mutate => {
            let evaluation = engine::evaluate(&mut object, config, world, namespace, Pass::Mutate);
            // The patch is built from where the fixes wrote: no copy of the object, no diff.
            if !evaluation.applied.is_empty() {
                // Written from the object's members, not through `with_patch` (which takes
                // a json_patch::Patch of copied values); `encode` sends it as a JSONPatch.
                match engine::patch_json(&object, &evaluation.changes) {
                    Ok(patch) => response.patch = Some(patch),
                    Err(e) => {
                        response = deny_with_uid(
                            &reviewed.uid,
                            format!("failover-guard cannot encode its patch: {e}"),
                        )
                    }
                }
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
            let warnings: Vec<String> = evaluation.warnings().map(Finding::warning).collect();
            if !warnings.is_empty() {
                response.warnings = Some(warnings);
            }
            let denied = {
                let mut denials = evaluation.denials().map(Finding::message);
                denials.next().map(|mut message| {
                    for denial in denials {
                        message.push('\n');
                        message.push_str(&denial);
                    }
                    message
                })
            };
            if let Some(message) = denied {
                response = response.deny(message);
                reviewed.decision = Decision::Denied;
            }
            reviewed.findings = evaluation.findings;
            reviewed.skipped = evaluation.skipped;
        }
    }
    reviewed.response = response.into_review();
    Ok(reviewed)
}

/// An allowing response for the request `uid`.
fn allow(uid: &str) -> AdmissionResponse {
    let mut response = AdmissionResponse::invalid("");
    response.uid = uid.to_owned();
    response.allowed = true;
    response.result = Default::default();
    response
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
    let request = value.field("request").ok_or(BadReview::NoRequest)?;
    let uid = request
        .field("uid")
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
/// server requires the base64 string Go uses for `[]byte` (kube-rs/kube#1781). This writes
/// the review in one pass with the patch as base64; every other field is kube-core's, but for
/// a denial's message that needs no escaping, which is copied as it is. A patch
/// is always a JSONPatch, the only type the API server takes, whether `with_patch` or `review`
/// (which sets the bytes itself) put it there.
pub fn encode(review: &AdmissionReview<DynamicObject>) -> Result<Vec<u8>, serde_json::Error> {
    use base64::Engine as _;
    use std::collections::HashMap;

    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Outgoing<'a> {
        api_version: &'a str,
        kind: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        response: Option<OutgoingResponse<'a>>,
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct OutgoingResponse<'a> {
        uid: &'a str,
        allowed: bool,
        /// Left out when only its message is set and that is written after the rest.
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<&'a kube_core::Status>,
        #[serde(skip_serializing_if = "HashMap::is_empty")]
        audit_annotations: &'a HashMap<String, String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        warnings: Option<&'a [String]>,
    }
    // A denial's status is its message, a few hundred characters: written here when nothing in
    // it needs escaping (as for every message the rules write), it is copied, not scanned byte
    // by byte by serde_json (a sixth of what a denial adds to a request).
    let message = review
        .response
        .as_ref()
        .map(|r| &r.result)
        .filter(|status| {
            status.status.is_none()
                && status.code == 0
                && status.metadata.is_none()
                && status.reason.is_empty()
                && status.details.is_none()
        })
        .map(|status| status.message.as_str())
        .filter(|message| !message.is_empty() && is_plain_json_text(message));
    let response = review.response.as_ref().map(|r| OutgoingResponse {
        uid: &r.uid,
        allowed: r.allowed,
        status: message.is_none().then_some(&r.result),
        audit_annotations: &r.audit_annotations,
        warnings: r.warnings.as_deref(),
    });
    let patch = review.response.as_ref().and_then(|r| r.patch.as_deref());
    // Room for the usual response, the patch's base64 (a third larger than the patch) and the
    // message: written without growing the buffer on the way.
    let base64_len = patch.map_or(0, |p| p.len().div_ceil(3) * 4);
    let message_len = message.map_or(0, str::len);
    let mut out = Vec::with_capacity(256 + base64_len + message_len);
    serde_json::to_writer(
        &mut out,
        &Outgoing {
            api_version: if review.types.api_version.is_empty() {
                API_VERSION
            } else {
                &review.types.api_version
            },
            kind: if review.types.kind.is_empty() {
                "AdmissionReview"
            } else {
                &review.types.kind
            },
            response,
        },
    )?;
    if patch.is_none() && message.is_none() {
        return Ok(out);
    }
    // The response is the review's last member, so the JSON ends with both their closing
    // braces: the patch and the message go in before them.
    if !out.ends_with(b"}}") {
        return Err(serde::ser::Error::custom(
            "the encoded review does not end with its response",
        ));
    }
    out.truncate(out.len() - 2);
    if let Some(message) = message {
        out.extend_from_slice(br#","status":{"message":""#);
        out.extend_from_slice(message.as_bytes());
        out.extend_from_slice(br#""}"#);
    }
    if let Some(patch) = patch {
        // Base64 never needs escaping either (a tenth of a fix's encoding).
        out.extend_from_slice(br#","patchType":"JSONPatch","patch":""#);
        let start = out.len();
        out.resize(start + base64_len, 0);
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(patch, &mut out[start..])
            .map_err(serde::ser::Error::custom)?;
        out.truncate(start + written);
        out.push(b'"');
    }
    out.extend_from_slice(b"}}");
    Ok(out)
}

/// Whether `text` is a JSON string's content as it stands: no quote, backslash or control
/// character (RFC 8259 section 7; other characters, any UTF-8 included, go in unescaped).
/// Checked 32 bytes at a time without an early exit, which the compiler turns into vector
/// compares (SSE2 `pcmpeqb` on x86-64).
fn is_plain_json_text(text: &str) -> bool {
    text.as_bytes().chunks(32).all(|chunk| {
        chunk.iter().fold(0u8, |bad, &b| {
            bad | u8::from(b < 0x20) | u8::from(b == b'"') | u8::from(b == b'\\')
        }) == 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/apiserver")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn patch_of(reviewed: &Reviewed) -> Vec<json_patch::PatchOperation> {
        let bytes = reviewed
            .response
            .response
            .as_ref()
            .and_then(|r| r.patch.clone())
            .unwrap_or_default();
        serde_json::from_slice::<json_patch::Patch>(&bytes)
            .map(|p| p.0)
            .unwrap_or_default()
    }

    #[test]
    fn patch_applies_to_the_object_as_sent_and_keeps_managed_fields() {
        let body = recorded("0000-mutate.json");
        let sent: Value = serde_json::from_slice(&body).unwrap();
        let mut object = sent["request"]["object"].clone();
        assert!(object["metadata"]["managedFields"].is_array(), "fixture");
        let reviewed = review(&body, Webhook::Mutate, &Config::example(), None).unwrap();
        assert_eq!(reviewed.decision, Decision::Patched);
        let patch = patch_of(&reviewed);
        assert!(
            patch
                .iter()
                .all(|op| !op.path().to_string().contains("managedFields")),
            "{patch:?}"
        );
        json_patch::patch(&mut object, &patch).unwrap();
        assert_eq!(
            object["metadata"]["managedFields"],
            sent["request"]["object"]["metadata"]["managedFields"]
        );
        assert_eq!(
            object["spec"]["trafficPolicy"]["outlierDetection"]["maxEjectionPercent"],
            100
        );
        assert_eq!(
            object["metadata"]["annotations"]["failover-guard.io/mutated"],
            "FG101"
        );
    }

    #[test]
    fn an_object_already_correct_gets_no_patch() {
        let body = recorded("0001-validate.json");
        let reviewed = review(&body, Webhook::Mutate, &Config::example(), None).unwrap();
        assert_eq!(reviewed.decision, Decision::Allowed);
        assert!(patch_of(&reviewed).is_empty());
        let encoded: Value = serde_json::from_slice(&encode(&reviewed.response).unwrap()).unwrap();
        assert_eq!(encoded["response"]["allowed"], true);
        assert!(encoded["response"].field("patch").is_none());
        assert!(encoded["response"].field("patchType").is_none());
    }

    #[test]
    fn encoded_patch_is_base64_json_patch() {
        let body = recorded("0000-mutate.json");
        let reviewed = review(&body, Webhook::Mutate, &Config::example(), None).unwrap();
        let encoded: Value = serde_json::from_slice(&encode(&reviewed.response).unwrap()).unwrap();
        assert_eq!(encoded["apiVersion"], API_VERSION);
        assert_eq!(encoded["kind"], "AdmissionReview");
        assert_eq!(encoded["response"]["patchType"], "JSONPatch");
        use base64::Engine as _;
        let patch = base64::engine::general_purpose::STANDARD
            .decode(encoded["response"]["patch"].as_str().unwrap())
            .unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
        assert!(!patch.0.is_empty());
    }

    #[test]
    fn any_patch_reads_back_beside_every_other_field() {
        use base64::Engine as _;
        for len in 0..8 {
            // Arbitrary bytes: base64 must carry any of them.
            let bytes: Vec<u8> = (0..len)
                .map(|i| (i as u8).wrapping_mul(97) ^ 0x80)
                .collect();
            let mut response = allow("u-1");
            response.patch = Some(bytes.clone());
            response.warnings = Some(vec!["a \"quoted\" warning".into()]);
            response
                .audit_annotations
                .insert("failover-guard.io/x".into(), "y".into());
            let encoded: Value =
                serde_json::from_slice(&encode(&response.into_review()).unwrap()).unwrap();
            let r = &encoded["response"];
            assert_eq!(r["uid"], "u-1");
            assert_eq!(r["allowed"], true);
            assert_eq!(r["patchType"], "JSONPatch");
            assert_eq!(r["warnings"][0], "a \"quoted\" warning");
            assert_eq!(r["auditAnnotations"]["failover-guard.io/x"], "y");
            let sent = base64::engine::general_purpose::STANDARD
                .decode(r["patch"].as_str().unwrap())
                .unwrap();
            assert_eq!(sent, bytes, "{len} bytes");
        }
    }

    #[test]
    fn a_denial_message_reads_back_whatever_it_holds() {
        for message in [
            "FG101 DestinationRule bookinfo/reviews: spec.trafficPolicy has no outlierDetection",
            "a \"quoted\" name, a back\\slash\nand a new line",
            "control \u{1} and tab\t",
            "locality in région é, 東京 and 🚀",
            &"x".repeat(1000),
        ] {
            let mut response = allow("u-2").deny(message);
            response.warnings = Some(vec!["w".into()]);
            let encoded = encode(&response.into_review()).unwrap();
            let read: Value = serde_json::from_slice(&encoded).unwrap_or_else(|e| {
                panic!("{message:?}: {e}: {}", String::from_utf8_lossy(&encoded))
            });
            let r = &read["response"];
            assert_eq!(r["status"]["message"], message);
            assert_eq!(r["allowed"], false);
            assert_eq!(r["uid"], "u-2");
            assert_eq!(r["warnings"][0], "w");
        }
        // A status with more than a message is kube-core's to write, all of it.
        let invalid = deny_with_uid("u-3", "no \"object\"".into());
        let read: Value = serde_json::from_slice(&encode(&invalid.into_review()).unwrap()).unwrap();
        assert_eq!(read["response"]["status"]["message"], "no \"object\"");
        assert_eq!(read["response"]["status"]["reason"], "InvalidRequest");
        assert_eq!(read["response"]["status"]["status"], "Failure");
    }

    #[test]
    fn plain_json_text_is_what_serde_json_writes_unescaped() {
        let samples = (0u8..=127)
            .map(|b| format!("{}{}", "a".repeat(b as usize % 40), char::from(b)))
            .chain(["", "é東🚀", "\u{7f}"].map(String::from));
        for text in samples {
            let unescaped = serde_json::to_string(&text).unwrap() == format!("\"{text}\"");
            assert_eq!(is_plain_json_text(&text), unescaped, "{text:?}");
        }
    }

    #[test]
    fn odd_objects_are_answered_not_dropped() {
        let config = Config::example();
        let with = |object: &str| {
            format!(
                r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u1","kind":{{"group":"","version":"v1","kind":"Service"}},"resource":{{"group":"","version":"v1","resource":"services"}},"userInfo":{{}},"operation":"CREATE","object":{object}}}}}"#
            )
        };
        for object in [
            "\"a string\"",
            "[1, 2]",
            "null",
            "{\"metadata\": 7}",
            "{\"metadata\": {\"managedFields\": 1}}",
        ] {
            let reviewed = review(with(object).as_bytes(), Webhook::Mutate, &config, None)
                .unwrap_or_else(|e| panic!("{object}: {e}"));
            assert_eq!(reviewed.uid, "u1", "{object}");
            assert_eq!(reviewed.decision, Decision::Allowed, "{object}");
        }
    }
}
