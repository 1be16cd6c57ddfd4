//! Istio localities (`region/zone/subzone`) and the closest-name suggestions used in messages.
//!
//! Istio never validates a locality string: `a.b` is one region called `a.b`, a fourth segment
//! is dropped, and matching is case-sensitive. These helpers are strict where Istio is lax.

use std::fmt;

/// A well-formed locality: a region, optionally a zone, optionally a subzone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Locality {
    pub region: String,
    pub zone: Option<String>,
    pub subzone: Option<String>,
}

/// Why a locality string is not `region[/zone[/subzone]]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalityError {
    #[error("is empty")]
    Empty,
    #[error("contains '*' (wildcards are only meaningful in localityLbSetting rules)")]
    Wildcard,
    #[error("has {0} segments; Istio reads at most region/zone/subzone and drops the rest")]
    TooManySegments(usize),
    #[error("has an empty segment")]
    EmptySegment,
    #[error("uses '.' where Istio expects '/' (Istio reads \"{0}\" as one region name)")]
    Dots(String),
    #[error("contains whitespace")]
    Whitespace,
}

impl Locality {
    /// Parses `region[/zone[/subzone]]` strictly.
    pub fn parse(text: &str) -> Result<Self, LocalityError> {
        if text.is_empty() {
            return Err(LocalityError::Empty);
        }
        if text.contains('*') {
            return Err(LocalityError::Wildcard);
        }
        if text.chars().any(char::is_whitespace) {
            return Err(LocalityError::Whitespace);
        }
        let segments: Vec<&str> = text.split('/').collect();
        if segments.len() > 3 {
            return Err(LocalityError::TooManySegments(segments.len()));
        }
        if segments.iter().any(|s| s.is_empty()) {
            return Err(LocalityError::EmptySegment);
        }
        if segments.len() == 1 && text.contains('.') {
            return Err(LocalityError::Dots(text.to_owned()));
        }
        Ok(Self {
            region: segments[0].to_owned(),
            zone: segments.get(1).map(|s| (*s).to_owned()),
            subzone: segments.get(2).map(|s| (*s).to_owned()),
        })
    }

    /// Whether a localityLbSetting key selects this locality (the model's
    /// `istio::locality::locality_match`, pilot's LocalityMatch).
    pub fn matches_rule(&self, rule: &str) -> bool {
        crate::istio::locality::locality_match(&self.to_string(), rule)
    }
}

impl fmt::Display for Locality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.region)?;
        if let Some(zone) = &self.zone {
            write!(f, "/{zone}")?;
        }
        if let Some(subzone) = &self.subzone {
            write!(f, "/{subzone}")?;
        }
        Ok(())
    }
}

/// Whether a `*` appears inside a segment rather than as the whole segment (`us-east*`):
/// Istio matches segments by equality, so such a key never matches anything.
pub fn has_partial_wildcard(rule: &str) -> bool {
    rule.split('/').any(|seg| seg.contains('*') && seg != "*")
}

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `needle`, if it is close enough to be a plausible typo
/// (case-insensitive equality always counts).
pub fn closest<'a, I>(needle: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let lower = needle.to_lowercase();
    let limit = (needle.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| {
            let d = if c.to_lowercase() == lower {
                0
            } else {
                edit_distance(needle, c)
            };
            (d, c)
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_well_formed_localities() {
        let l = Locality::parse("europe-west1/europe-west1-b").unwrap();
        assert_eq!(l.region, "europe-west1");
        assert_eq!(l.zone.as_deref(), Some("europe-west1-b"));
        assert_eq!(l.to_string(), "europe-west1/europe-west1-b");
        assert!(Locality::parse("r/z/s").is_ok());
    }

    #[test]
    fn rejects_malformed_localities() {
        assert_eq!(Locality::parse(""), Err(LocalityError::Empty));
        assert_eq!(Locality::parse("r/*"), Err(LocalityError::Wildcard));
        assert_eq!(
            Locality::parse("a/b/c/d"),
            Err(LocalityError::TooManySegments(4))
        );
        assert_eq!(Locality::parse("a//c"), Err(LocalityError::EmptySegment));
        assert!(matches!(
            Locality::parse("us-east1.us-east1-b"),
            Err(LocalityError::Dots(_))
        ));
    }

    #[test]
    fn matches_like_istio() {
        let l = Locality::parse("us-east/zone1/sub").unwrap();
        assert!(l.matches_rule("us-east"));
        assert!(l.matches_rule("us-east/*"));
        assert!(l.matches_rule("*"));
        assert!(l.matches_rule("us-east/zone1/*"));
        assert!(!l.matches_rule("us-east*"));
        assert!(!l.matches_rule("us-west/*"));
        assert!(!l.matches_rule("US-EAST"));
    }

    #[test]
    fn suggests_close_names_only() {
        let known = ["europe-west1", "europe-west4"];
        assert_eq!(closest("europe-wset1", known), Some("europe-west1"));
        assert_eq!(closest("EUROPE-WEST4", known), Some("europe-west4"));
        assert_eq!(closest("asia-south1", known), None);
        assert!(has_partial_wildcard("us-east*"));
        assert!(!has_partial_wildcard("us-east/*"));
    }
}
