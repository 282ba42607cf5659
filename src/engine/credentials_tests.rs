use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::SignedDuration;

use super::*;
use crate::crd::TokenStatus;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_750_000_000 + secs).unwrap()
}

fn status(creds: &str, zones: &str, checked_at: i64, expires_on: Option<&str>) -> CustomerStatus {
    let cond = |t: &'static str, s: &str| {
        let st = match s {
            "True" => Some(true),
            "False" => Some(false),
            _ => None,
        };
        CondSpec::new(t, st, "R", "m")
    };
    CustomerStatus {
        conditions: c::merge(
            &[],
            &[cond(c::CREDENTIALS_VALID, creds), cond(c::ZONES_RESOLVED, zones)],
            Some(1),
            &Time(at(0)),
        ),
        token: Some(TokenStatus {
            status: "active".into(),
            expires_on: expires_on.map(str::to_string),
            checked_for: Some("v1".into()),
            checked_at: Some(Time(at(checked_at))),
        }),
        ..Default::default()
    }
}

#[test]
fn token_checks_are_cached_per_secret_version() {
    let st = status("True", "True", 0, None);
    assert_eq!(recheck(&st, "v1", at(60), None), Recheck::Cached);
    // A changed Secret (or account) is verified at once, however recent the last check.
    assert!(matches!(recheck(&st, "v2", at(1), None), Recheck::Verify(_)));
    assert!(matches!(recheck(&CustomerStatus::default(), "v1", at(1), None), Recheck::Verify(_)));
    // After an hour the cache expires, also for a token found invalid.
    assert_eq!(recheck(&st, "v1", at(3600), None), Recheck::Refresh);
    let bad = status("False", "Unknown", 0, None);
    assert_eq!(recheck(&bad, "v1", at(3599), None), Recheck::Cached);
    assert_eq!(recheck(&bad, "v1", at(3600), None), Recheck::Refresh);
    // An unfinished check (Unknown) is retried.
    let unknown = status("Unknown", "Unknown", 0, None);
    assert!(matches!(recheck(&unknown, "v1", at(1), None), Recheck::Verify(_)));
}

#[test]
fn a_rejection_seen_by_a_service_reverifies_at_most_every_min_interval() {
    let st = status("True", "True", 100, None);
    // Rejected before our last check: already accounted for.
    assert_eq!(recheck(&st, "v1", at(200), Some(at(99))), Recheck::Cached);
    // Rejected since: verify, but not more often than TOKEN_MIN_INTERVAL.
    assert_eq!(recheck(&st, "v1", at(103), Some(at(102))), Recheck::CachedFor(Duration::from_secs(7)));
    assert!(matches!(recheck(&st, "v1", at(110), Some(at(102))), Recheck::Verify(_)));
    // Same second as the check counts (timestamps have second precision).
    assert!(matches!(recheck(&st, "v1", at(111), Some(at(100))), Recheck::Verify(_)));
    // Once the customer itself says the token is invalid, services' rejections change nothing.
    let bad = status("False", "Unknown", 100, None);
    assert_eq!(recheck(&bad, "v1", at(200), Some(at(150))), Recheck::Cached);
}

#[test]
fn expiry_and_missing_zones_trigger_rechecks() {
    let st = status("True", "True", 0, Some("2025-06-15T15:06:50Z"));
    let exp: Timestamp = "2025-06-15T15:06:50Z".parse().unwrap();
    let before = exp.checked_sub(SignedDuration::from_secs(5)).unwrap();
    let st_before = CustomerStatus {
        token: st.token.clone().map(|t| TokenStatus {
            checked_at: Some(Time(before.checked_sub(SignedDuration::from_secs(60)).unwrap())),
            ..t
        }),
        ..st.clone()
    };
    assert_eq!(recheck(&st_before, "v1", before, None), Recheck::Cached);
    assert!(matches!(recheck(&st_before, "v1", exp, None), Recheck::Verify(_)));
    let zones = status("True", "False", 0, None);
    assert_eq!(recheck(&zones, "v1", at(60), None), Recheck::CachedFor(ZONE_RETRY - Duration::from_secs(60)));
    assert!(matches!(recheck(&zones, "v1", at(300), None), Recheck::Verify(_)));
}

fn verdict(active: bool, status: &str, expires_on: Option<&str>) -> Verification {
    Verification::from_result(Ok(TokenVerdict {
        active,
        status: status.into(),
        expires_on: expires_on.map(str::to_string),
    }))
}

#[test]
fn credentials_condition_reports_expiry_and_inactive_tokens() {
    let ok = verdict(true, "active", Some("2030-01-01T00:00:00Z")).condition("acct");
    assert_eq!((ok.status, ok.reason.as_str()), (Some(true), reason::TOKEN_VALID));
    assert_eq!(ok.message, "token is active, expires 2030-01-01T00:00:00Z");
    assert_eq!(verdict(true, "active", None).condition("acct").message, "token is active");
    let disabled = verdict(false, "disabled", None);
    assert!(!disabled.is_valid() && disabled.is_verdict());
    assert_eq!(disabled.recorded(), Some(("disabled".into(), None)));
    let cond = disabled.condition("acct");
    assert_eq!((cond.status, cond.reason.as_str()), (Some(false), reason::TOKEN_INVALID));
    assert!(cond.message.contains("disabled"), "{}", cond.message);
}

#[test]
fn rejected_and_unavailable_answers_have_their_reasons() {
    let api = |status: u16| CloudflareError::Api {
        status,
        errors: Vec::new(),
        method: reqwest::Method::GET,
        endpoint: "/accounts/{account_id}/tokens/verify",
    };
    let rejected = Verification::from_result(Err(api(401)));
    assert!(matches!(rejected, Verification::Rejected(_)));
    assert_eq!(rejected.recorded(), Some(("invalid".into(), None)));
    let cond = rejected.condition("acct-1");
    assert_eq!((cond.status, cond.reason.as_str()), (Some(false), reason::TOKEN_INVALID));
    assert!(cond.message.starts_with("Cloudflare rejected the token for account acct-1"), "{}", cond.message);

    let down = Verification::from_result(Err(api(503)));
    assert!(!down.is_verdict() && down.recorded().is_none());
    let cond = down.condition("acct-1");
    assert_eq!((cond.status, cond.reason.as_str()), (None, reason::CLOUDFLARE_ERROR));
    assert_eq!(reason_for(&api(429)), reason::RATE_LIMITED);
    assert_eq!(reason_for(&api(408)), reason::TIMEOUT);
    assert_eq!(reason_for(&api(403)), reason::TOKEN_INVALID);
}

#[test]
fn verified_tokens_expire_and_are_forgotten_on_rejection() {
    let pool = crate::cloudflare::ClientPool::new(crate::cloudflare::ClientConfig::default(), None);
    let client = pool.client_for(&crate::cloudflare::ApiToken::new("t1")).unwrap();
    let cache = VerifiedTokens::default();
    assert!(!cache.is_fresh(&client));
    cache.record(&client, true);
    assert!(cache.is_fresh(&client));
    cache.record(&client, false);
    assert!(!cache.is_fresh(&client));
    let expired = VerifiedTokens::new(Duration::ZERO);
    expired.record(&client, true);
    assert!(!expired.is_fresh(&client));
}
