//! The Istio version the mesh runs, and which of pilot's behaviours depend on it.
//!
//! Pilot's behaviour for locality load balancing changed between releases. The model answers
//! "does this Istio do X" from one table, [`Behaviour::since`], instead of each rule knowing
//! release numbers. The harness runs one pilot (istio/istio at the version in tests/istio/go.mod,
//! whose `VERSION` file reads 1.31), so only the newest side of every gate is compared with
//! pilot; the older side rests on the release note or change note each row names.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A minor release of Istio (`1.31`); patch releases do not change what the model reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IstioVersion {
    pub major: u16,
    pub minor: u16,
}

/// The version of the pilot the Istio harness builds (istio/istio `VERSION`): the default, and
/// the newest version the model knows.
pub const PINNED: IstioVersion = IstioVersion {
    major: 1,
    minor: 31,
};

/// The oldest version the model describes: the first release with the traffic-distribution
/// annotation. Older meshes are out of support upstream and are refused rather than judged
/// by a model that does not describe them.
pub const OLDEST: IstioVersion = IstioVersion {
    major: 1,
    minor: 24,
};

/// What went wrong reading a version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("istio.version {0:?} is not a version like 1.31")]
    Malformed(String),
    #[error("istio.version {0} is older than {OLDEST}, the oldest the model describes")]
    TooOld(IstioVersion),
}

impl IstioVersion {
    /// Parses `1.31`, `1.31.2` or `v1.31.0-beta.1`; only the minor release counts.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let malformed = || VersionError::Malformed(text.to_owned());
        let trimmed = text.trim().trim_start_matches('v');
        let mut parts = trimmed.split(['.', '-']);
        let major = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(malformed)?;
        let minor = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(malformed)?;
        let version = IstioVersion { major, minor };
        if version < OLDEST {
            return Err(VersionError::TooOld(version));
        }
        Ok(version)
    }

    /// Whether pilot at this version behaves as `behaviour` describes.
    pub fn has(self, behaviour: Behaviour) -> bool {
        self >= behaviour.since()
    }

    /// Whether this version is newer than the model knows (it is then judged as [`PINNED`]).
    pub fn newer_than_pinned(self) -> bool {
        self > PINNED
    }
}

impl Default for IstioVersion {
    fn default() -> Self {
        PINNED
    }
}

impl fmt::Display for IstioVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl Serialize for IstioVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IstioVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // YAML reads `1.31` as a number and `"1.31"` as a string; a float would turn 1.30
        // into 1.3, so the number is written back with its two digits only when it has them.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(serde_yaml_ng::Number),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Text(t) => t,
            Raw::Number(n) => {
                let text = n.to_string();
                if text.split('.').nth(1).is_some_and(|m| m.len() == 1) {
                    return Err(serde::de::Error::custom(format!(
                        "istio.version {text} is ambiguous as a YAML number (1.3 or 1.30?); quote it, e.g. \"{text}0\""
                    )));
                }
                text
            }
        };
        IstioVersion::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A behaviour of pilot that not every supported release has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Sidecars honour a Service's traffic distribution (spec field or annotation) as forced
    /// failoverPriority (loadbalancer.GetEffectiveLbSetting); before, only ztunnel did.
    SidecarTrafficDistribution,
    /// `PreferSameZone` and `PreferSameNode` are known values (model.GetTrafficDistribution);
    /// before, only `PreferClose` was, and the others meant no preference.
    PreferSameZoneAndNode,
    /// A Namespace's traffic-distribution annotation is inherited by its services.
    NamespaceTrafficDistribution,
    /// failoverPriority orders a DNS-resolved (STRICT_DNS/LOGICAL_DNS) cluster's endpoints;
    /// before, pilot applied no priorities to DNS clusters.
    DnsFailoverPriority,
    /// `zoneAwareLbSetting` exists on DestinationRule and MeshConfig.
    ZoneAwareLbSetting,
    /// Unready endpoints are sent in EDS with the panic threshold at 0 unless outlier
    /// detection sets minHealthPercent (PILOT_AUTO_SEND_UNHEALTHY_ENDPOINTS, on by default).
    AutoSendUnhealthyEndpoints,
}

impl Behaviour {
    /// Every behaviour, oldest first (the README's version table).
    pub const ALL: [Behaviour; 6] = [
        Behaviour::SidecarTrafficDistribution,
        Behaviour::PreferSameZoneAndNode,
        Behaviour::NamespaceTrafficDistribution,
        Behaviour::DnsFailoverPriority,
        Behaviour::ZoneAwareLbSetting,
        Behaviour::AutoSendUnhealthyEndpoints,
    ];

    /// The first release with this behaviour.
    pub fn since(self) -> IstioVersion {
        let minor = match self {
            Behaviour::SidecarTrafficDistribution => 25,
            Behaviour::PreferSameZoneAndNode => 27,
            Behaviour::NamespaceTrafficDistribution | Behaviour::DnsFailoverPriority => 30,
            Behaviour::ZoneAwareLbSetting | Behaviour::AutoSendUnhealthyEndpoints => 31,
        };
        IstioVersion { major: 1, minor }
    }

    /// What changed, in a sentence, for messages and the README.
    pub fn describe(self) -> &'static str {
        match self {
            Behaviour::SidecarTrafficDistribution => {
                "sidecars honour a Service's traffic distribution (before: ztunnel only)"
            }
            Behaviour::PreferSameZoneAndNode => {
                "PreferSameZone and PreferSameNode are known traffic-distribution values (before: only PreferClose)"
            }
            Behaviour::NamespaceTrafficDistribution => {
                "a Namespace's networking.istio.io/traffic-distribution annotation is inherited by its services"
            }
            Behaviour::DnsFailoverPriority => {
                "failoverPriority orders the endpoints of DNS-resolved clusters (before: ignored there)"
            }
            Behaviour::ZoneAwareLbSetting => {
                "zoneAwareLbSetting exists on DestinationRule and MeshConfig (before: an unknown field)"
            }
            Behaviour::AutoSendUnhealthyEndpoints => {
                "unready endpoints are sent to Envoy with the panic threshold at 0 (before: left out, panic threshold 50%)"
            }
        }
    }

    /// Where the change is recorded: a release note in istio/istio `releasenotes/notes/`, a
    /// change note, or the compatibility profile that undoes it.
    pub fn source(self) -> &'static str {
        match self {
            Behaviour::SidecarTrafficDistribution => {
                "releasenotes/notes/traffic-distribution.yaml (1.25 change notes)"
            }
            Behaviour::PreferSameZoneAndNode => "1.27.0 change notes, istio/istio#55848",
            Behaviour::NamespaceTrafficDistribution => {
                "releasenotes/notes/namespace-traffic-distribution.yaml, istio/istio#58701 (merged 2026-02, first in 1.30)"
            }
            Behaviour::DnsFailoverPriority => {
                "releasenotes/notes/dns-failover-priority.yaml, istio/istio#58674"
            }
            Behaviour::ZoneAwareLbSetting => "releasenotes/notes/zone-aware-load-balancing.yaml",
            Behaviour::AutoSendUnhealthyEndpoints => {
                "manifests/helm-profiles/compatibility-version-1.30.yaml sets PILOT_AUTO_SEND_UNHEALTHY_ENDPOINTS=false"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(minor: u16) -> IstioVersion {
        IstioVersion { major: 1, minor }
    }

    #[test]
    fn parses_what_users_write() {
        assert_eq!(IstioVersion::parse("1.31"), Ok(v(31)));
        assert_eq!(IstioVersion::parse("1.28.3"), Ok(v(28)));
        assert_eq!(IstioVersion::parse("v1.27.0-beta.1"), Ok(v(27)));
        assert_eq!(
            IstioVersion::parse("latest"),
            Err(VersionError::Malformed("latest".into()))
        );
        assert_eq!(
            IstioVersion::parse("1.20"),
            Err(VersionError::TooOld(v(20)))
        );
    }

    #[test]
    fn a_yaml_number_with_one_decimal_is_refused() {
        #[derive(Deserialize)]
        struct S {
            #[allow(dead_code)]
            version: IstioVersion,
        }
        let err = serde_yaml_ng::from_str::<S>("version: 1.30")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("ambiguous"), "{err}");
        let quoted: Result<S, _> = serde_yaml_ng::from_str("version: \"1.30\"");
        assert!(quoted.is_ok());
        let two_digits: Result<S, _> = serde_yaml_ng::from_str("version: 1.29");
        assert!(two_digits.is_ok());
    }

    #[test]
    fn the_pinned_version_has_every_behaviour_and_the_oldest_none_after_it() {
        for b in Behaviour::ALL {
            assert!(PINNED.has(b), "{b:?}");
            assert!(!v(b.since().minor - 1).has(b), "{b:?}");
            assert!(OLDEST < b.since(), "{b:?}");
        }
        let since: Vec<_> = Behaviour::ALL.iter().map(|b| b.since()).collect();
        assert!(since.is_sorted(), "ALL is oldest first");
    }

    #[test]
    fn the_readme_lists_every_behaviour_with_its_release() {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("<!-- versions:begin -->")
            .nth(1)
            .and_then(|t| t.split("<!-- versions:end -->").next())
            .unwrap_or_default();
        for b in Behaviour::ALL {
            let row = format!("| {} | {} | {} |", b.since(), b.describe(), b.source());
            assert!(table.contains(&row), "README's version table lacks {row}");
        }
        assert_eq!(
            table.lines().filter(|l| l.starts_with("| 1.")).count(),
            Behaviour::ALL.len()
        );
    }
}
