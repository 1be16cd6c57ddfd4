//! Offline mode (`check`, `mutate`): the engine over manifest files, with the manifests given
//! as the world for cross-object rules. Documents are split on YAML document markers so that
//! each keeps its exact text and first line: findings point at the right line, and `mutate`
//! prints untouched documents byte for byte.

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
    process::ExitCode,
};

use serde_json::{Value, json};

use crate::{
    cli::{CheckArgs, MutateArgs, OutputFormat},
    config::{Config, ConfigError},
    engine::{self, Action, Pass},
    object::{Kind, Subject},
    rules::RULES,
    world::ManifestWorld,
};

/// Namespace of manifests that name none, as `kubectl apply` would default it.
pub const DEFAULT_NAMESPACE: &str = "default";

/// One YAML (or JSON) document of an input file.
#[derive(Debug, Clone)]
pub struct Document {
    /// Index of the document in its file, from 0.
    pub index: usize,
    /// 1-based line where the document's object starts (comments and blank lines skipped).
    pub line: usize,
    /// 1-based line of the document's first line of text (after its `---`).
    pub first_line: usize,
    /// The separator line before the document (`---\n`), if any, kept for byte-exact output.
    pub separator: String,
    /// The document's text.
    pub text: String,
    /// The objects in it (one, several for `kind: List`, none for an empty document).
    pub objects: Vec<Value>,
    /// Whether the objects are the items of a `kind: List`.
    pub list: bool,
    /// The parse error, if the document is broken: the file's line and the message.
    pub error: Option<(usize, String)>,
}

/// An input file (or standard input) split into documents.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub json: bool,
    pub documents: Vec<Document>,
    /// Text after the last document that belongs to no document (a trailing `...`).
    pub trailer: String,
}

pub use crate::report::{InputError, Located, Report};

/// Splits text into YAML documents at `---` lines (and `...` end markers), keeping each
/// document's exact text and first line.
pub fn split_documents(text: &str) -> (Vec<(usize, String, String)>, String) {
    let mut docs = Vec::new();
    let mut separator = String::new();
    let mut current = String::new();
    let mut start_line = 1;
    let mut ended = false;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_start = bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t");
        let is_end = bare == "..." || bare.starts_with("... ");
        if is_start {
            if !current.is_empty() || !separator.is_empty() || ended {
                docs.push((
                    start_line,
                    std::mem::take(&mut separator),
                    std::mem::take(&mut current),
                ));
            }
            separator = line.to_owned();
            start_line = i + 2;
            ended = false;
            // Content on the marker line (`--- {a: 1}`) belongs to the document.
            if let Some(rest) = bare
                .strip_prefix("---")
                .map(str::trim_start)
                .filter(|r| !r.is_empty())
            {
                separator = line[..line.len() - rest.len() - (line.len() - bare.len())].to_owned();
                current.push_str(&line[separator.len()..]);
                start_line = i + 1;
            }
        } else if is_end {
            current.push_str(line);
            ended = true;
        } else {
            current.push_str(line);
        }
    }
    if !current.is_empty() || !separator.is_empty() {
        docs.push((start_line, separator, current));
    }
    (docs, String::new())
}

fn is_blank_yaml(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "..."
    })
}

/// Parses an input's text into documents.
pub fn parse_input(name: &str, text: &str) -> Input {
    let json = name.ends_with(".json");
    let (chunks, trailer) = if json {
        (vec![(1, String::new(), text.to_owned())], String::new())
    } else {
        split_documents(text)
    };
    let documents = chunks
        .into_iter()
        .enumerate()
        .map(|(index, (line, separator, text))| {
            let content = text
                .lines()
                .position(|l| {
                    let t = l.trim();
                    !t.is_empty() && !t.starts_with('#')
                })
                .unwrap_or(0);
            let mut doc = Document {
                index,
                line: line + content,
                first_line: line,
                separator,
                text,
                objects: Vec::new(),
                list: false,
                error: None,
            };
            if is_blank_yaml(&doc.text) {
                return doc;
            }
            let parsed: Result<Value, (Option<usize>, String)> = if json {
                serde_json::from_str(&doc.text).map_err(|e| (Some(e.line()), e.to_string()))
            } else {
                serde_yaml_ng::from_str(&doc.text)
                    .map_err(|e| (e.location().map(|l| l.line()), e.to_string()))
            };
            match parsed {
                Ok(Value::Null) => {}
                Ok(value) if value.get("kind").and_then(Value::as_str) == Some("List") => {
                    doc.list = true;
                    doc.objects = value
                        .get("items")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                }
                Ok(value) => doc.objects.push(value),
                Err((at, message)) => {
                    let line = at.map_or(doc.line, |l| doc.first_line + l.saturating_sub(1));
                    // The parser says "at line N" relative to the document; the report names
                    // the file's line instead.
                    let message = message
                        .split(" at line ")
                        .next()
                        .unwrap_or(&message)
                        .to_owned();
                    doc.error = Some((line, message));
                }
            }
            doc
        })
        .collect();
    Input {
        name: name.to_owned(),
        json,
        documents,
        trailer,
    }
}

/// Reads the paths: files, folders (recursively, `*.yaml|*.yml|*.json`, sorted), `-` for
/// standard input. Unreadable paths become errors; the rest is still read.
pub fn read_inputs(paths: &[PathBuf]) -> (Vec<Input>, Vec<InputError>) {
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            match std::io::stdin().read_to_string(&mut text) {
                Ok(_) => inputs.push(parse_input("<stdin>", &text)),
                Err(e) => errors.push(InputError {
                    file: "<stdin>".into(),
                    line: None,
                    message: format!("cannot read standard input: {e}"),
                }),
            }
            continue;
        }
        let mut files = Vec::new();
        if let Err(e) = collect_files(path, &mut files, true) {
            errors.push(InputError {
                file: path.display().to_string(),
                line: None,
                message: e.to_string(),
            });
        }
        for file in files {
            match std::fs::read(&file) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => inputs.push(parse_input(&file.display().to_string(), &text)),
                    Err(_) => errors.push(InputError {
                        file: file.display().to_string(),
                        line: None,
                        message: "not UTF-8 text".into(),
                    }),
                },
                Err(e) => errors.push(InputError {
                    file: file.display().to_string(),
                    line: None,
                    message: format!("cannot read: {e}"),
                }),
            }
        }
    }
    for input in &inputs {
        for doc in &input.documents {
            if let Some((line, message)) = &doc.error {
                errors.push(InputError {
                    file: input.name.clone(),
                    line: Some(*line),
                    message: message.clone(),
                });
            }
        }
    }
    (inputs, errors)
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>, explicit: bool) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        for entry in entries {
            collect_files(&entry, out, false)?;
        }
    } else if explicit
        || path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
    {
        out.push(path.to_owned());
    }
    Ok(())
}

/// The world of all objects in the inputs.
pub fn world_of(inputs: &[Input], config: &Config) -> ManifestWorld {
    ManifestWorld::new(
        inputs
            .iter()
            .flat_map(|i| &i.documents)
            .flat_map(|d| &d.objects),
        DEFAULT_NAMESPACE,
        &config.cluster.cluster_domain,
    )
}

/// Checks the inputs: the fixes the mutating webhook would make are reported as `mutate`,
/// then what the validating webhook would deny or warn about on the mutated object, judged
/// against the other objects as they would be stored (mutated too), as the cluster holds them
/// once everything is applied.
pub fn check(inputs: &[Input], config: &Config) -> Report {
    // Applied in order: each object is judged with the ones before it as stored (mutated),
    // the ones after it as written, as in a cluster that `kubectl apply` fills in file order.
    let mut world = world_of(inputs, config);
    let mut report = Report {
        files: inputs.len(),
        ..Report::default()
    };
    // Pass 1: every object as the mutating webhook would store it.
    let mut stored = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        for doc in &input.documents {
            for object in &doc.objects {
                let Some(kind) = Kind::of(object) else {
                    stored.push((i, doc, None, object.clone()));
                    continue;
                };
                let mut object = object.clone();
                let mutated = engine::evaluate(
                    &mut object,
                    config,
                    Some(&world),
                    DEFAULT_NAMESPACE,
                    Pass::Mutate,
                );
                world.upsert(object.clone());
                stored.push((i, doc, Some((kind, mutated)), object));
            }
        }
    }
    // Pass 2: the validating webhook on each, against the stored world.
    let stored_world = ManifestWorld::new(
        stored.iter().map(|(_, _, _, o)| o),
        DEFAULT_NAMESPACE,
        &config.cluster.cluster_domain,
    );
    for (i, doc, mutation, mut object) in stored {
        let Some((kind, mutated)) = mutation else {
            continue;
        };
        report.objects += 1;
        let subject = Subject::of(&object, kind, DEFAULT_NAMESPACE);
        let validated = engine::evaluate(
            &mut object,
            config,
            Some(&stored_world),
            DEFAULT_NAMESPACE,
            Pass::Validate,
        );
        let findings = mutated
            .findings
            .into_iter()
            .filter(|f| f.action == Action::Mutate)
            .chain(validated.findings);
        for finding in findings {
            report.findings.push(Located::new(
                inputs[i].name.clone(),
                (doc.index, doc.line),
                &subject,
                finding,
            ));
        }
    }
    report
}

/// One input as the webhook would store it.
#[derive(Debug, Clone)]
pub struct MutatedFile {
    pub name: String,
    /// The whole text: untouched documents byte for byte, changed ones re-rendered.
    pub text: String,
    pub changes: Vec<Change>,
}

/// One changed document.
#[derive(Debug, Clone)]
pub struct Change {
    pub document: usize,
    pub before: Value,
    pub after: Value,
}

/// The mutated text of every input, untouched documents byte for byte.
pub fn mutate(inputs: &[Input], config: &Config) -> Vec<MutatedFile> {
    // Applied in order, like `check`: earlier objects as stored, later ones as written.
    let mut world = world_of(inputs, config);
    let mut out = Vec::new();
    for input in inputs {
        let mut text = String::new();
        let mut changes = Vec::new();
        for doc in &input.documents {
            let mut objects = doc.objects.clone();
            let mut changed = false;
            for object in &mut objects {
                let evaluation = engine::evaluate(
                    object,
                    config,
                    Some(&world),
                    DEFAULT_NAMESPACE,
                    Pass::Mutate,
                );
                changed |= !evaluation.applied.is_empty();
                if evaluation.kind.is_some() {
                    world.upsert(object.clone());
                }
            }
            text.push_str(&doc.separator);
            if !changed || doc.error.is_some() {
                text.push_str(&doc.text);
                continue;
            }
            let (before, after) = if doc.list {
                let mut list: Value = if input.json {
                    serde_json::from_str(&doc.text).unwrap_or(Value::Null)
                } else {
                    serde_yaml_ng::from_str(&doc.text).unwrap_or(Value::Null)
                };
                let before = list.clone();
                if let Some(items) = list.get_mut("items") {
                    *items = Value::Array(objects);
                }
                (before, list)
            } else {
                (
                    doc.objects.first().cloned().unwrap_or(Value::Null),
                    objects.into_iter().next().unwrap_or(Value::Null),
                )
            };
            text.push_str(&render(&after, input.json));
            changes.push(Change {
                document: doc.index,
                before,
                after,
            });
        }
        text.push_str(&input.trailer);
        out.push(MutatedFile {
            name: input.name.clone(),
            text,
            changes,
        });
    }
    out
}

fn render(value: &Value, json: bool) -> String {
    if json {
        let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
        s.push('\n');
        s
    } else {
        serde_yaml_ng::to_string(value).unwrap_or_default()
    }
}

/// Loads `--config`, or the built-in example.
pub fn load_config(path: Option<&Path>, mesh: Option<&Path>) -> Result<Config, LoadError> {
    let config = match path {
        Some(path) => crate::inforce::load_file(path)?,
        None => Config::example(),
    };
    let mesh = match mesh {
        Some(path) => crate::inforce::load_mesh_file(path)?,
        None => crate::istio::mesh::MeshConfig::default(),
    };
    let config = config.with_mesh(mesh);
    eprintln!("failover-guard: {}", config.mesh_source());
    eprintln!("failover-guard: {}", config.judged_by());
    for warning in config.warnings() {
        eprintln!("failover-guard: config: {warning}");
    }
    Ok(config)
}

/// The configuration with remote clusters' workloads read from files (`--remote NAME=PATH`):
/// the Services, EndpointSlices, Pods and Nodes there are what istiod reads from that remote
/// in a native multicluster model.
pub fn with_remote_files(mut config: Config, remotes: &[String]) -> Result<Config, LoadError> {
    for spec in remotes {
        let bad = |why: String| LoadError::Remote(format!("--remote {spec}: {why}"));
        let Some((name, path)) = spec
            .split_once('=')
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
        else {
            return Err(bad("expected NAME=PATH".into()));
        };
        if !config.multicluster.native() {
            return Err(bad(format!(
                "remote workloads are read by istiod only in multicluster.model multiPrimary or primaryRemote; this config's is {}",
                config.multicluster.model
            )));
        }
        let Some(remote) = config.remotes.iter_mut().find(|r| r.name == name) else {
            return Err(bad(format!("{name} is not one of the config's remotes")));
        };
        let (inputs, errors) = read_inputs(&[std::path::PathBuf::from(path)]);
        if let Some(e) = errors.first() {
            return Err(bad(format!(
                "{}:{}: {}",
                e.file,
                e.line.unwrap_or(0),
                e.message
            )));
        }
        let workloads: Vec<Value> = inputs
            .into_iter()
            .flat_map(|i| i.documents)
            .flat_map(|d| d.objects)
            .filter(|o| {
                matches!(
                    (
                        o.get("apiVersion").and_then(Value::as_str),
                        o.get("kind").and_then(Value::as_str)
                    ),
                    (Some("v1"), Some("Service" | "Pod" | "Node" | "Namespace"))
                        | (Some("discovery.k8s.io/v1"), Some("EndpointSlice"))
                )
            })
            .collect();
        remote.workloads = Some(std::sync::Arc::new(crate::istio::kube::RemoteObjects::new(
            workloads.into_iter().map(std::sync::Arc::new).collect(),
        )));
    }
    Ok(config)
}

/// Why the configuration in force could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Mesh(#[from] crate::istio::mesh::MeshConfigError),
    #[error("{0}")]
    Remote(String),
}

/// `failover-guard check`.
pub fn check_command(args: &CheckArgs) -> ExitCode {
    let config = match load_config(args.config.as_deref(), args.mesh_config.as_deref())
        .and_then(|c| with_remote_files(c, &args.remotes))
    {
        Ok(config) => config,
        Err(e) => {
            eprintln!("failover-guard: {e}");
            return ExitCode::from(2);
        }
    };
    let (inputs, errors) = read_inputs(&args.paths);
    let mut report = check(&inputs, &config);
    report.errors = errors;
    print_report(&report, args.output)
}

/// Prints a report in a format; returns the exit code it stands for.
pub fn print_report(report: &Report, format: OutputFormat) -> ExitCode {
    let text = match format {
        OutputFormat::Text => text_report(report),
        OutputFormat::Json => {
            serde_json::to_string_pretty(&json_report(report)).unwrap_or_default() + "\n"
        }
        OutputFormat::Sarif => {
            serde_json::to_string_pretty(&sarif_report(report)).unwrap_or_default() + "\n"
        }
        OutputFormat::Policyreport => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            crate::policyreport::yaml(&crate::policyreport::reports(report, now))
        }
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    ExitCode::from(report.exit_code())
}

/// Judges live objects as they are stored (the validating webhook's view): anything a rule
/// finds is reported, fixable findings as denials since nothing fixed them. Each object is
/// named `cluster/<namespace>/<Kind>/<name>` in place of a file.
pub fn audit(objects: &[Value], config: &Config) -> Report {
    let world = ManifestWorld::new(objects, DEFAULT_NAMESPACE, &config.cluster.cluster_domain);
    let mut report = Report::default();
    for object in objects {
        let Some(kind) = Kind::of(object) else {
            continue;
        };
        report.objects += 1;
        let subject = Subject::of(object, kind, DEFAULT_NAMESPACE);
        let mut object = object.clone();
        let evaluation = engine::evaluate(
            &mut object,
            config,
            Some(&world),
            DEFAULT_NAMESPACE,
            Pass::Validate,
        );
        for finding in evaluation.findings {
            let file = format!(
                "cluster/{}/{}/{}",
                subject.namespace,
                kind.as_str(),
                subject.name
            );
            report
                .findings
                .push(Located::new(file, (0, 1), &subject, finding));
        }
    }
    report.files = report.objects;
    report
}

/// `failover-guard mutate`.
pub fn mutate_command(args: &MutateArgs) -> ExitCode {
    let config = match load_config(args.config.as_deref(), args.mesh_config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("failover-guard: {e}");
            return ExitCode::from(2);
        }
    };
    let (inputs, errors) = read_inputs(&args.paths);
    for e in &errors {
        eprintln!("{}:{}: {}", e.file, e.line.unwrap_or(0), e.message);
    }
    let mut stdout = std::io::stdout().lock();
    let outputs = mutate(&inputs, &config);
    let mut open_line_closed = true;
    for (i, file) in outputs.iter().enumerate() {
        let (name, text) = (&file.name, &file.text);
        if args.diff {
            for Change {
                document: index,
                before,
                after,
            } in &file.changes
            {
                let (b, a) = (render(before, false), render(after, false));
                let diff = similar::TextDiff::from_lines(&b, &a);
                let _ = write!(
                    stdout,
                    "{}",
                    diff.unified_diff().context_radius(3).header(
                        &format!("{name} (document {index})"),
                        &format!("{name} (document {index}, mutated)")
                    )
                );
            }
        } else {
            // A file without a final newline must not glue the next separator (or document)
            // onto its last line.
            if i > 0 && !open_line_closed {
                let _ = writeln!(stdout);
            }
            if i > 0 && !text.starts_with("---") {
                let _ = writeln!(stdout, "---");
            }
            let _ = stdout.write_all(text.as_bytes());
            open_line_closed = text.is_empty() || text.ends_with('\n');
        }
    }
    ExitCode::from(if errors.is_empty() { 0 } else { 2 })
}

/// Human output: one finding a line, grouped by file, then a summary.
pub fn text_report(report: &Report) -> String {
    let mut by_file: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for e in &report.errors {
        by_file.entry(&e.file).or_default().push(match e.line {
            Some(line) => format!("  line {line}: error: {}", e.message),
            None => format!("  error: {}", e.message),
        });
    }
    for f in &report.findings {
        by_file.entry(&f.file).or_default().push(format!(
            "  line {} (document {}): {}: {}",
            f.line,
            f.document + 1,
            f.action.as_str(),
            f.message
        ));
    }
    let mut out = String::new();
    for (file, lines) in by_file {
        out.push_str(file);
        out.push('\n');
        for line in lines {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "{} files, {} objects: {} deny, {} warn, {} mutate (fixed by the mutating webhook), {} errors\n",
        report.files,
        report.objects,
        report.count(Action::Deny),
        report.count(Action::Warn),
        report.count(Action::Mutate),
        report.errors.len()
    ));
    out
}

/// The JSON output (schema documented in the README).
pub fn json_report(report: &Report) -> Value {
    json!({
        "version": 1,
        "summary": {
            "files": report.files,
            "objects": report.objects,
            "deny": report.count(Action::Deny),
            "warn": report.count(Action::Warn),
            "mutate": report.count(Action::Mutate),
            "errors": report.errors.len(),
            "exitCode": report.exit_code(),
        },
        "findings": report.findings,
        "errors": report.errors,
    })
}

/// SARIF 2.1.0, for code-scanning UIs.
pub fn sarif_report(report: &Report) -> Value {
    let level = |action: Action| match action {
        Action::Deny => "error",
        Action::Warn => "warning",
        Action::Mutate => "note",
    };
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "shortDescription": {"text": r.summary},
                "fullDescription": {"text": r.istio},
                "help": {"text": format!("failover-guard explain {}", r.id)},
                "defaultConfiguration": {"level": match r.default {
                    crate::config::Mode::Deny => "error",
                    crate::config::Mode::Warn => "warning",
                    _ => "note",
                }},
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.rule,
                "ruleIndex": RULES.iter().position(|r| r.id == f.rule).unwrap_or(0),
                "level": level(f.action),
                "message": {"text": f.message},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": sarif_uri(&f.file)},
                        "region": {"startLine": f.line},
                    },
                    "logicalLocations": [{
                        "fullyQualifiedName": format!("{}/{}/{}.{}", f.kind, f.namespace, f.name, f.path),
                    }],
                }],
            })
        })
        .collect();
    let notifications: Vec<Value> = report
        .errors
        .iter()
        .map(|e| {
            json!({
                "level": "error",
                "message": {"text": e.message},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": sarif_uri(&e.file)},
                        "region": {"startLine": e.line.unwrap_or(1)},
                    },
                }],
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "failover-guard",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/failover-guard/failover-guard",
                "rules": rules,
            }},
            "invocations": [{
                "executionSuccessful": report.errors.is_empty(),
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }],
    })
}

fn sarif_uri(file: &str) -> String {
    file.strip_prefix("./").unwrap_or(file).replace('\\', "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_their_text_and_lines() {
        let text = "# head\na: 1\n---\nb: 2\n--- \n\n---\nc: 3\n";
        let (docs, _) = split_documents(text);
        let joined: String = docs.iter().map(|(_, s, t)| format!("{s}{t}")).collect();
        assert_eq!(joined, text);
        assert_eq!(docs.len(), 4);
        assert_eq!(docs[0].0, 1);
        assert_eq!(docs[1].0, 4);
        assert_eq!(docs[3].0, 8);
    }

    #[test]
    fn broken_documents_report_the_file_line() {
        let input = parse_input("x.yaml", "a: 1\n---\nb: [\n");
        assert!(input.documents[0].error.is_none());
        let (line, error) = input.documents[1].error.clone().unwrap();
        // The unclosed `[` is reported where the parser gave up: the end of the document.
        assert_eq!(line, 4, "the file's line, not the document's");
        assert!(!error.contains("at line"), "{error}");
    }

    #[test]
    fn lists_are_expanded() {
        let input = parse_input(
            "x.yaml",
            "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: a}}\n- {apiVersion: v1, kind: Service, metadata: {name: b}}\n",
        );
        assert!(input.documents[0].list);
        assert_eq!(input.documents[0].objects.len(), 2);
    }
}
