//! What a run of the rules over stored objects or manifest files found: findings located in
//! their files, and the inputs that could not be read. `check`, `audit` and the PolicyReports
//! all print it.

use serde::Serialize;

use crate::{
    engine::{Action, Finding},
    object::Subject,
};

/// An input that could not be read or parsed, with where.
#[derive(Debug, Clone, Serialize)]
pub struct InputError {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub message: String,
}

/// One finding located in a file.
#[derive(Debug, Clone, Serialize)]
pub struct Located {
    pub file: String,
    pub document: usize,
    pub line: usize,
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub rule: &'static str,
    pub action: Action,
    pub path: String,
    pub message: String,
}

impl Located {
    pub(crate) fn new(
        file: String,
        (document, line): (usize, usize),
        subject: &Subject,
        finding: Finding,
    ) -> Self {
        Located {
            file,
            document,
            line,
            kind: subject.kind.as_str(),
            namespace: subject.namespace.clone(),
            name: subject.name.clone(),
            rule: finding.rule,
            action: finding.action,
            message: finding.message(),
            path: finding.path.into_owned(),
        }
    }
}

/// Everything `check` found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub files: usize,
    pub objects: usize,
    pub findings: Vec<Located>,
    pub errors: Vec<InputError>,
}

impl Report {
    pub fn count(&self, action: Action) -> usize {
        self.findings.iter().filter(|f| f.action == action).count()
    }

    /// 2 for unreadable input, 1 for deny findings, 0 otherwise.
    pub fn exit_code(&self) -> u8 {
        if !self.errors.is_empty() {
            2
        } else if self.count(Action::Deny) > 0 {
            1
        } else {
            0
        }
    }
}
