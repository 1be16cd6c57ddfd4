//! `failover-guard explain`: the rule text, and the README's rule table, from one source.

use std::fmt::Write as _;

use crate::rules::{RULES, Rule};

/// The full explanation of one rule.
pub fn explain(rule: &Rule) -> String {
    let kinds: Vec<&str> = rule.kinds.iter().map(|k| k.as_str()).collect();
    let modes: Vec<&str> = rule.supported_modes().iter().map(|m| m.as_str()).collect();
    let mut out = String::new();
    let _ = writeln!(out, "{} {}", rule.id, rule.name);
    let _ = writeln!(out, "  kinds:   {}", kinds.join(", "));
    let _ = writeln!(
        out,
        "  default: {} (supports {})",
        rule.default.as_str(),
        modes.join(", ")
    );
    if rule.can_mutate && rule.default != crate::config::Mode::Mutate {
        let _ = writeln!(
            out,
            "           unless configured, it also fixes what it can fix (see below)"
        );
    }
    if rule.needs_world {
        let _ = writeln!(
            out,
            "  world:   reads other objects (the cluster, or the manifests given to check)"
        );
    }
    let _ = writeln!(out, "\n{}\n", wrap(rule.summary, 90));
    let _ = writeln!(out, "Istio behaviour:\n{}\n", indent(&wrap(rule.istio, 88)));
    let _ = writeln!(
        out,
        "Example that triggers it:\n{}",
        indent(rule.example_bad)
    );
    let _ = writeln!(out, "As it should be:\n{}", indent(rule.example_fixed));
    let _ = writeln!(
        out,
        "Opt out for one object: metadata.annotations[\"failover-guard.io/skip\"]: \"{}\"",
        rule.id
    );
    out
}

/// One line per rule.
pub fn list() -> String {
    RULES
        .iter()
        .map(|r| {
            format!(
                "{}  {:<36} {:<7} {}\n",
                r.id,
                r.name,
                r.default.as_str(),
                r.summary
            )
        })
        .collect()
}

/// The README rule table.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| ID | name | kinds | default | W | what it does |\n|---|---|---|---|---|---|\n",
    );
    for rule in RULES {
        let kinds: Vec<&str> = rule.kinds.iter().map(|k| k.as_str()).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            rule.id,
            rule.name,
            kinds.join(", "),
            rule.default.as_str(),
            if rule.needs_world { "W" } else { "" },
            rule.summary
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    out
}

fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split_whitespace() {
        if line > 0 && line + 1 + word.len() > width {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += word.len();
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_explains_itself() {
        for rule in RULES {
            let text = explain(rule);
            assert!(text.starts_with(rule.id));
            assert!(text.contains("Istio behaviour"));
        }
        assert_eq!(markdown_table().lines().count(), RULES.len() + 2);
    }

    #[test]
    fn readme_table_is_current() {
        let readme = include_str!("../README.md");
        assert!(
            readme.contains(&markdown_table()),
            "README.md's rule table is stale: regenerate it with `failover-guard explain --markdown`"
        );
    }
}
