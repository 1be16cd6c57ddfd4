//! Small typed views over Kubernetes and Istio objects held as `serde_json::Value`.
//!
//! Rules read fields by name through these helpers and write through them, so that every field
//! the engine does not know (newer Istio APIs, status, managedFields) survives a mutation.
//! Every accessor tolerates objects of the wrong shape (a `spec` that is a string) by answering
//! `None`: hostile input must never panic a request.

use json_patch::jsonptr::PointerBuf;
use serde_json::{Map, Value};

/// Annotation that opts an object out of rules: `"FG101,FG203"` or `"*"`.
pub const SKIP_ANNOTATION: &str = "failover-guard.io/skip";
/// Annotation listing the rules whose fixes were applied to the object.
pub const MUTATED_ANNOTATION: &str = "failover-guard.io/mutated";
/// Annotation that marks a ServiceEntry as a failover entry and asks for generated endpoints.
pub const FAILOVER_ANNOTATION: &str = "failover-guard.io/failover";
/// Annotation naming the subset label sets FG208 generates endpoints for.
pub const SUBSET_LABELS_ANNOTATION: &str = "failover-guard.io/subset-labels";

/// The kinds the engine reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Service,
    DestinationRule,
    ServiceEntry,
    AuthorizationPolicy,
    Gateway,
    PeerAuthentication,
}

impl Kind {
    /// The kind of an object from its `apiVersion` and `kind`, if the engine handles it.
    pub fn of(object: &Value) -> Option<Kind> {
        let api_version = object.field("apiVersion")?.as_str()?;
        let kind = object.field("kind")?.as_str()?;
        Self::from_group_kind(api_version.split_once('/').map_or("", |(g, _)| g), kind)
    }

    /// The kind for an API group (empty for core) and kind name.
    pub fn from_group_kind(group: &str, kind: &str) -> Option<Kind> {
        match (group, kind) {
            ("", "Service") => Some(Kind::Service),
            ("networking.istio.io", "DestinationRule") => Some(Kind::DestinationRule),
            ("networking.istio.io", "ServiceEntry") => Some(Kind::ServiceEntry),
            ("networking.istio.io", "Gateway") => Some(Kind::Gateway),
            ("security.istio.io", "AuthorizationPolicy") => Some(Kind::AuthorizationPolicy),
            ("security.istio.io", "PeerAuthentication") => Some(Kind::PeerAuthentication),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Service => "Service",
            Kind::DestinationRule => "DestinationRule",
            Kind::ServiceEntry => "ServiceEntry",
            Kind::AuthorizationPolicy => "AuthorizationPolicy",
            Kind::Gateway => "Gateway",
            Kind::PeerAuthentication => "PeerAuthentication",
        }
    }
}

/// The identity of the object under evaluation, as named in messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl Subject {
    /// As displayed, `DestinationRule ns/name`, shared by the findings of one pass: copied
    /// into one allocation rather than formatted (this is on every finding's request path).
    pub fn shown(&self) -> std::sync::Arc<str> {
        let parts = self.parts();
        let mut shown = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        parts.iter().for_each(|p| shown.push_str(p));
        shown.into()
    }

    fn parts(&self) -> [&str; 5] {
        [self.kind.as_str(), " ", &self.namespace, "/", &self.name]
    }

    /// The subject of `object`; `default_namespace` stands in when metadata has none (the
    /// admission request's namespace, or `default` offline).
    pub fn of(object: &Value, kind: Kind, default_namespace: &str) -> Subject {
        let (namespace, name) = Self::names(object, default_namespace);
        Subject {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// Whether `object` is this subject (the namespace `default` standing in for none), without
    /// building a subject for it.
    pub fn is(&self, object: &Value) -> bool {
        let (namespace, name) = Self::names(object, "default");
        Kind::of(object) == Some(self.kind) && name == self.name && namespace == self.namespace
    }

    /// `(namespace, name)` of `object`: `generateName` when it has no name yet.
    fn names<'a>(object: &'a Value, default_namespace: &'a str) -> (&'a str, &'a str) {
        let namespace = str_at(object, &["metadata", "namespace"])
            .filter(|ns| !ns.is_empty())
            .unwrap_or(default_namespace);
        let name = str_at(object, &["metadata", "name"])
            .or_else(|| str_at(object, &["metadata", "generateName"]))
            .unwrap_or("");
        (namespace, name)
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.parts().iter().try_for_each(|p| f.write_str(p))
    }
}

/// Member lookups for the small maps Kubernetes objects are made of. serde_json's ordered maps
/// (`preserve_order`, kept so that `mutate` and `render` output keep the user's key order) hash
/// every key with SipHash on each lookup: about 35 ns here, where scanning a map of a dozen
/// members takes 8. The rules look up the same few keys many times per request, so every
/// lookup on the request path goes through [`Field`]; large maps still use the hash.
pub trait Field {
    fn field(&self, key: &str) -> Option<&Value>;
    fn field_mut(&mut self, key: &str) -> Option<&mut Value>;

    /// The member at a path of keys (no pointer to parse).
    fn path(&self, keys: &[&str]) -> Option<&Value>;
}

/// Up to this many members a scan beats hashing the key.
const SCAN_LIMIT: usize = 12;

impl Field for Map<String, Value> {
    fn field(&self, key: &str) -> Option<&Value> {
        if self.len() > SCAN_LIMIT {
            return self.get(key);
        }
        self.iter().find_map(|(k, v)| (k == key).then_some(v))
    }

    fn field_mut(&mut self, key: &str) -> Option<&mut Value> {
        if self.len() > SCAN_LIMIT {
            return self.get_mut(key);
        }
        self.iter_mut().find_map(|(k, v)| (k == key).then_some(v))
    }

    fn path(&self, keys: &[&str]) -> Option<&Value> {
        let (first, rest) = keys.split_first()?;
        self.field(first)?.path(rest)
    }
}

impl Field for Value {
    fn field(&self, key: &str) -> Option<&Value> {
        self.as_object()?.field(key)
    }

    fn field_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.as_object_mut()?.field_mut(key)
    }

    fn path(&self, keys: &[&str]) -> Option<&Value> {
        keys.iter().try_fold(self, |v, key| v.field(key))
    }
}

/// Whether two values are equal, as `==` says (maps in any order), with [`Field`] lookups
/// for members out of order instead of hashing every key.
pub fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|((k, v), (l, w))| {
                    if k == l {
                        equal(v, w)
                    } else {
                        y.field(k).is_some_and(|w| equal(v, w))
                    }
                })
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| equal(v, w))
        }
        _ => a == b,
    }
}

/// Whether `value` fits in `budget` bytes (string and key lengths, and 16 a node), taking what
/// it uses from the budget; it stops walking as soon as the budget is spent.
pub fn fits(value: &Value, budget: &mut usize) -> bool {
    let take = |budget: &mut usize, bytes: usize| match budget.checked_sub(bytes) {
        Some(left) => {
            *budget = left;
            true
        }
        None => false,
    };
    if !take(budget, 16 + value.as_str().map_or(0, str::len)) {
        return false;
    }
    match value {
        Value::Array(items) => items.iter().all(|v| fits(v, budget)),
        Value::Object(map) => map
            .iter()
            .all(|(k, v)| take(budget, k.len()) && fits(v, budget)),
        _ => true,
    }
}

/// The string at a path of object keys.
pub fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    value.path(path)?.as_str()
}

/// The array at a path of object keys (empty when absent or not an array).
pub fn array_at<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    value
        .path(path)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The object at `key`, created empty when absent; `None` when present but not an object.
pub fn child_object<'a>(value: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    let map = value.as_object_mut()?;
    map.entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
}

/// An annotation of the object.
pub fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    str_at(object, &["metadata", "annotations", key])
}

/// Sets an annotation, creating `metadata.annotations` when needed. Returns where it wrote
/// (see [`insert_at`]).
pub fn set_annotation(object: &mut Value, key: &str, value: String) -> Option<PointerBuf> {
    insert_at(
        object,
        &["metadata", "annotations"],
        key,
        Value::String(value),
    )
}

/// Sets `key` in the map at `path`, creating the maps missing on the way. Returns the JSON
/// pointer a JSONPatch `add` of the change names: the first map it created, else the key;
/// `None` when something on the way is not a map.
pub fn insert_at(object: &mut Value, path: &[&str], key: &str, value: Value) -> Option<PointerBuf> {
    let mut map = object.as_object_mut()?;
    // The pointer names the first map created on the way, else the key.
    let mut written = path.len() + 1;
    for (depth, step) in path.iter().enumerate() {
        // Looked up with `field` (a scan for small maps) rather than hashed twice.
        if map.field(step).is_none() {
            written = written.min(depth + 1);
            map.insert((*step).to_owned(), Value::Object(Map::new()));
        }
        map = map.field_mut(step)?.as_object_mut()?;
    }
    map.insert(key.to_owned(), value);
    Some(pointer_of(path.iter().copied().chain([key]).take(written)))
}

/// The JSON pointer (RFC 6901) of these object keys and array indices, escaped, built in one
/// allocation: fixes name what they wrote on the request path, and growing a pointer token by
/// token cost a patched admission several allocations each.
pub fn pointer_of<'t>(tokens: impl Iterator<Item = &'t str> + Clone) -> PointerBuf {
    // An escape adds a character: `~` and `/` are rare in keys, so they may grow it once.
    let capacity = tokens.clone().map(|t| t.len() + 1).sum();
    let mut pointer = String::with_capacity(capacity);
    for token in tokens {
        pointer.push('/');
        let mut rest = token;
        while let Some(i) = rest.bytes().position(|b| b == b'~' || b == b'/') {
            pointer.push_str(&rest[..i]);
            pointer.push_str(if rest.as_bytes()[i] == b'~' {
                "~0"
            } else {
                "~1"
            });
            rest = &rest[i + 1..];
        }
        pointer.push_str(rest);
    }
    // Escaped as RFC 6901 says, so it parses; the root pointer is the empty string.
    PointerBuf::parse(pointer).unwrap_or_default()
}

/// A label of the object.
pub fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    str_at(object, &["metadata", "labels", key])
}

/// A JSON value as an integer, accepting integral floats and numeric strings the way
/// protobuf JSON does (`"5"` for a uint32).
pub fn as_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Comma-separated list in an annotation, trimmed, empties dropped.
pub fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Cuts `text` to at most `limit` characters, marking the cut with an ellipsis.
pub fn truncate(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(limit.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_are_recognised_by_group() {
        let dr = json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule"});
        assert_eq!(Kind::of(&dr), Some(Kind::DestinationRule));
        let svc = json!({"apiVersion": "v1", "kind": "Service"});
        assert_eq!(Kind::of(&svc), Some(Kind::Service));
        let other = json!({"apiVersion": "example.com/v1", "kind": "Service"});
        assert_eq!(Kind::of(&other), None);
        assert_eq!(Kind::of(&json!("string")), None);
    }

    #[test]
    fn wrong_shapes_do_not_panic() {
        let mut v = json!({"metadata": "oops"});
        assert!(set_annotation(&mut v, "a", "b".into()).is_none());
        assert_eq!(annotation(&v, "a"), None);
        let mut v = json!({"metadata": {"labels": null}});
        assert!(insert_at(&mut v, &["metadata", "labels"], "a", json!("b")).is_none());
    }

    #[test]
    fn insert_at_names_the_outermost_member_it_created() {
        let mut v = json!({"metadata": {"name": "x"}});
        let wrote = set_annotation(&mut v, "failover-guard.io/mutated", "FG101".into());
        assert_eq!(wrote.unwrap().as_str(), "/metadata/annotations");
        let wrote = set_annotation(&mut v, "failover-guard.io/mutated", "FG102".into());
        assert_eq!(
            wrote.unwrap().as_str(),
            "/metadata/annotations/failover-guard.io~1mutated"
        );
        let mut v = json!({});
        let wrote = insert_at(&mut v, &["metadata", "labels"], "a", json!("b"));
        assert_eq!(wrote.unwrap().as_str(), "/metadata");
        assert_eq!(v, json!({"metadata": {"labels": {"a": "b"}}}));
        assert_eq!(as_int(&json!("7")), Some(7));
        assert_eq!(as_int(&json!(7.0)), Some(7));
        assert_eq!(as_int(&json!(7.5)), None);
    }

    #[test]
    fn pointer_of_escapes_as_rfc_6901_says() {
        for tokens in [
            &[][..],
            &[""],
            &["spec", "endpoints", "0"],
            &["metadata", "annotations", "failover-guard.io/mutated"],
            &["a~b", "~1", "/", "x/y~z"],
        ] {
            let built = pointer_of(tokens.iter().copied());
            assert_eq!(built, PointerBuf::from_tokens(tokens.iter().copied()));
            let back: Vec<String> = built.tokens().map(|t| t.decoded().into_owned()).collect();
            assert_eq!(
                back,
                tokens.iter().map(|t| t.to_string()).collect::<Vec<_>>()
            );
        }
    }
}

/// JSON-pointer lookups without `Value::pointer`'s allocation per token (it unescapes every
/// token into a new String), which dominated the engine's profile on large objects.
pub trait Pointer {
    fn at(&self, pointer: &str) -> Option<&Value>;
    fn at_mut(&mut self, pointer: &str) -> Option<&mut Value>;
}

fn unescape(token: &str) -> std::borrow::Cow<'_, str> {
    if token.contains('~') {
        token.replace("~1", "/").replace("~0", "~").into()
    } else {
        token.into()
    }
}

/// Whether `key` is the member an RFC 6901 reference token names, decoding `~0` and `~1` as
/// it compares (an annotation key such as `failover-guard.io~1mutated` is not copied).
fn names(token: &str, key: &str) -> bool {
    let (t, k) = (token.as_bytes(), key.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < t.len() {
        // As serde_json's `pointer`: `~` followed by anything else stays a `~`.
        let (want, step) = match (t[i], t.get(i + 1)) {
            (b'~', Some(b'0')) => (b'~', 2),
            (b'~', Some(b'1')) => (b'/', 2),
            (b, _) => (b, 1),
        };
        if k.get(j) != Some(&want) {
            return false;
        }
        i += step;
        j += 1;
    }
    j == k.len()
}

/// The member of `map` a reference token names.
fn member<'v>(map: &'v Map<String, Value>, token: &str) -> Option<&'v Value> {
    // Most tokens escape nothing: they name their key as it is, compared whole (length
    // first) rather than decoded byte by byte.
    if !token.as_bytes().contains(&b'~') {
        return map.field(token);
    }
    if map.len() > SCAN_LIMIT {
        return map.get(unescape(token).as_ref());
    }
    map.iter().find_map(|(k, v)| names(token, k).then_some(v))
}

fn index(token: &str) -> Option<usize> {
    (token == "0" || !token.starts_with(['0', '+'])).then(|| token.parse().ok())?
}

/// The deepest member on the path of `pointer` that `value` has (the whole path, unless
/// something on it is missing): its pointer (a prefix of `pointer`), the member, and whether
/// it is an array element. One walk, no allocation for tokens without `~`.
pub fn deepest<'v, 'p>(value: &'v Value, pointer: &'p str) -> (&'p str, &'v Value, bool) {
    let (mut value, mut end, mut in_array) = (value, 0, false);
    let mut rest = pointer;
    while let Some(tail) = rest.strip_prefix('/') {
        // A byte scan: tokens are short, and `find`'s searcher costs more to set up.
        let len = tail.bytes().position(|b| b == b'/').unwrap_or(tail.len());
        let token = &tail[..len];
        let next = match value {
            Value::Object(map) => member(map, token),
            Value::Array(items) => index(token).and_then(|i| items.get(i)),
            _ => None,
        };
        let Some(next) = next else { break };
        in_array = value.is_array();
        value = next;
        end += 1 + len;
        rest = &tail[len..];
    }
    (&pointer[..end], value, in_array)
}

impl Pointer for Value {
    fn at(&self, pointer: &str) -> Option<&Value> {
        let (found, value, _) = deepest(self, pointer);
        (found.len() == pointer.len()).then_some(value)
    }

    fn at_mut(&mut self, pointer: &str) -> Option<&mut Value> {
        if pointer.is_empty() {
            return Some(self);
        }
        pointer
            .strip_prefix('/')?
            .split('/')
            .try_fold(self, |value, token| match value {
                Value::Object(map) => map.field_mut(unescape(token).as_ref()),
                Value::Array(items) => items.get_mut(index(token)?),
                _ => None,
            })
    }
}

#[cfg(test)]
mod pointer_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn agrees_with_serde_json() {
        let mut v =
            json!({"a": [{"b/c": 1, "d~e": 2}], "x": {"y": null}, "~1": 4, "a/b~": 5, "~": 6});
        for p in [
            "",
            "/a",
            "/a/0",
            "/a/0/b~1c",
            "/a/0/d~0e",
            "/a/1",
            "/a/01",
            "/x/y",
            "/x/z",
            "a",
            "/a/-",
            "/~01",
            "/a~1b~0",
            "/~",
            "/~2",
            "/~1",
            "/~0",
            "/~~1",
            "/x~1y",
        ] {
            assert_eq!(v.at(p), v.pointer(p), "{p}");
        }
        *v.at_mut("/a/0/b~1c").unwrap() = json!(3);
        assert_eq!(v["a"][0]["b/c"], 3);
        assert_eq!(deepest(&v, "/a/0/b~1c"), ("/a/0/b~1c", &json!(3), false));
        assert_eq!(deepest(&v, "/a/0"), ("/a/0", &v["a"][0], true));
        assert_eq!(deepest(&v, "/a/0/nope/deeper"), ("/a/0", &v["a"][0], true));
        assert_eq!(deepest(&v, "/x/y/z"), ("/x/y", &Value::Null, false));
        assert_eq!(deepest(&v, ""), ("", &v, false));
    }

    #[test]
    fn field_agrees_with_get_on_small_and_large_maps() {
        let small = json!({"a": 1, "b": null});
        let large = Value::Object((0..40).map(|i| (format!("k{i}"), json!(i))).collect());
        for v in [&small, &large] {
            for key in ["a", "b", "k0", "k39", "k40", ""] {
                assert_eq!(v.field(key), v.get(key), "{key}");
            }
        }
        assert_eq!(json!([1]).field("0"), None);
        let budget = |v: &Value, mut bytes: usize| (fits(v, &mut bytes), bytes);
        assert_eq!(
            budget(&json!({"ab": "xyz"}), 100),
            (true, 100 - 16 - 2 - 16 - 3)
        );
        assert!(!budget(&json!({"ab": "xyz"}), 36).0);
        assert_eq!(budget(&json!([[1], [2]]), 80), (true, 0));
        assert!(!budget(&json!("x".repeat(1 << 20)), 16 * 1024).0);
        for (a, b) in [
            (
                json!({"a": 1, "b": [1, {"c": 2}]}),
                json!({"b": [1, {"c": 2}], "a": 1}),
            ),
            (json!({"a": 1}), json!({"a": 1.0})),
            (json!({"a": 1}), json!({"b": 1})),
            (json!({"a": 1}), json!({"a": 1, "b": 2})),
            (json!([1, 2]), json!([2, 1])),
            (large.clone(), large.clone()),
        ] {
            assert_eq!(equal(&a, &b), a == b, "{a} {b}");
        }
        assert_eq!(json!("spec").field("spec"), None);
        let mut large = large;
        *large.field_mut("k39").unwrap() = json!("x");
        assert_eq!(large["k39"], "x");
    }
}
