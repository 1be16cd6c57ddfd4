//! Localities as pilot compares them (pilot/pkg/networking/util: LocalityMatch, LbPriority;
//! pkg/model ConvertLocality). The one definition: rules, `simulate` and the model's
//! priorities all ask these.

/// (region, zone, subzone) of a locality label (pkg/model ConvertLocality).
pub fn split(locality: &str) -> (&str, &str, &str) {
    let mut p = locality.splitn(3, '/');
    (
        p.next().unwrap_or(""),
        p.next().unwrap_or(""),
        p.next()
            .map(|s| s.split('/').next().unwrap_or(""))
            .unwrap_or(""),
    )
}

/// pilot/pkg/networking/util LocalityMatch: whether a localityLbSetting key
/// (`region[/zone[/subzone]]`, a segment `*` or left out matching any) selects a locality.
/// Segments compare by equality, so `us-east*` selects nothing.
pub fn locality_match(client: &str, rule: &str) -> bool {
    let (cr, cz, cs) = split(client);
    let (rr, rz, rs) = split(rule);
    (rr == "*" || cr == rr)
        && (rz == "*" || rz.is_empty() || cz == rz)
        && (rs == "*" || rs.is_empty() || cs == rs)
}

/// pilot/pkg/networking/util LbPriority.
pub fn lb_priority(client: &str, endpoint: &str) -> u32 {
    let (cr, cz, cs) = split(client);
    let (er, ez, es) = split(endpoint);
    match (cr == er, cz == ez, cs == es) {
        (true, true, true) => 0,
        (true, true, false) => 1,
        (true, false, _) => 2,
        _ => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_follows_locality_match() {
        let l = "us-east/zone1/sub1";
        assert!(locality_match(l, "us-east"));
        assert!(locality_match(l, "us-east/*"));
        assert!(locality_match(l, "*"));
        assert!(locality_match(l, "us-east/zone1/*"));
        assert!(locality_match(l, "us-east/zone1/sub1"));
        assert!(!locality_match(l, "us-east*"));
        assert!(!locality_match(l, "us-west/*"));
        assert!(!locality_match(l, "US-EAST"));
        assert!(!locality_match("us-east", "us-east/zone1"));
    }

    #[test]
    fn priorities_follow_lb_priority() {
        assert_eq!(lb_priority("r/z/s", "r/z/s"), 0);
        assert_eq!(lb_priority("r/z/s", "r/z/t"), 1);
        assert_eq!(lb_priority("r/z/s", "r/y/s"), 2);
        assert_eq!(lb_priority("r/z/s", "q/z/s"), 3);
    }
}
