//! Security policy per environment (DESIGN §4). Findings name the key, never the value.

use crate::crd::PolicyLevel;

/// Minimum secret length under the strict policy.
pub const MIN_SECRET_LEN: usize = 32;
/// Minimum Shannon entropy (bits per character) for secrets under the strict policy.
pub const MIN_SECRET_ENTROPY: f64 = 3.0;

const DUMMY_WORDS: [&str; 10] =
    ["test", "dummy", "changeme", "change-me", "change_me", "example", "placeholder", "password", "secret", "default"];

/// How serious a finding is under the active policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Blocks the deploy.
    Block,
    /// Reported as a warning Event only.
    Warn,
}

/// One policy finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Field path, e.g. `worker.secrets.JWT_SECRET` or `worker.vars.API_URL`.
    pub field: String,
    pub rule: Rule,
    pub severity: Severity,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.rule.describe())
    }
}

/// Which rule a value broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    SecretTooShort,
    SecretLowEntropy,
    DummyValue,
    InsecureUrl,
    LocalUrl,
    UnresolvedPlaceholder,
    MissingToken,
}

impl Rule {
    pub fn describe(self) -> String {
        match self {
            Rule::SecretTooShort => format!("secret is shorter than {MIN_SECRET_LEN} characters"),
            Rule::SecretLowEntropy => "secret has low entropy".to_string(),
            Rule::DummyValue => "value is a known dummy or default value".to_string(),
            Rule::InsecureUrl => "URL uses http:// instead of https://".to_string(),
            Rule::LocalUrl => "URL points to localhost or a private address".to_string(),
            Rule::UnresolvedPlaceholder => "value contains an unresolved {{…}} placeholder".to_string(),
            Rule::MissingToken => "Cloudflare API token Secret is missing or empty".to_string(),
        }
    }

    /// Severity of this rule under a policy level.
    pub fn severity(self, level: PolicyLevel) -> Severity {
        match level {
            PolicyLevel::Strict => Severity::Block,
            PolicyLevel::Relaxed => Severity::Warn,
            PolicyLevel::Standard => match self {
                Rule::DummyValue | Rule::UnresolvedPlaceholder | Rule::MissingToken => Severity::Block,
                Rule::SecretTooShort | Rule::SecretLowEntropy | Rule::InsecureUrl | Rule::LocalUrl => Severity::Warn,
            },
        }
    }
}

/// What the policy looks at.
pub struct PolicyInput<'a> {
    pub level: PolicyLevel,
    /// (field path, rendered value)
    pub vars: Vec<(String, &'a str)>,
    /// (field path, secret value)
    pub secrets: Vec<(String, &'a str)>,
    pub token_present: bool,
}

/// Evaluate the policy. An empty result means the service passes.
pub fn evaluate(input: &PolicyInput<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut push = |field: &str, rule: Rule| {
        findings.push(Finding { field: field.to_string(), rule, severity: rule.severity(input.level) });
    };
    if !input.token_present {
        push("customer.apiTokenSecretRef", Rule::MissingToken);
    }
    for (field, value) in &input.secrets {
        if is_dummy(value) {
            push(field, Rule::DummyValue);
        } else if value.chars().count() < MIN_SECRET_LEN {
            push(field, Rule::SecretTooShort);
        } else if entropy(value) < MIN_SECRET_ENTROPY {
            push(field, Rule::SecretLowEntropy);
        }
        if value.contains("{{") {
            push(field, Rule::UnresolvedPlaceholder);
        }
    }
    for (field, value) in &input.vars {
        if value.contains("{{") && value.contains("}}") {
            push(field, Rule::UnresolvedPlaceholder);
        }
        for url in urls(value) {
            if url.starts_with("http://") {
                push(field, Rule::InsecureUrl);
            }
            if is_local_url(url) {
                push(field, Rule::LocalUrl);
            }
        }
    }
    findings
}

/// Known dummy values: dummy words, runs of one character (xxx…), ascending digit runs (1234…).
pub fn is_dummy(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    if v.is_empty() {
        return true;
    }
    let stripped: String = v.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    if DUMMY_WORDS.iter().any(|w| stripped == w.replace(['-', '_'], "")) {
        return true;
    }
    if DUMMY_WORDS.iter().any(|w| stripped.starts_with(&w.replace(['-', '_'], "")) && stripped.len() <= w.len() + 4) {
        return true;
    }
    let chars: Vec<char> = v.chars().collect();
    if chars.len() >= 3 && chars.iter().all(|c| *c == chars[0]) {
        return true;
    }
    if chars.len() >= 4 && v.starts_with("1234") && chars.iter().all(|c| c.is_ascii_digit()) {
        return true;
    }
    false
}

/// Shannon entropy in bits per character.
pub fn entropy(value: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    let mut total = 0usize;
    for c in value.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
        total += 1;
    }
    if total == 0 {
        return 0.0;
    }
    counts
        .values()
        .map(|&n| {
            let p = n as f64 / total as f64;
            -p * p.log2()
        })
        .sum()
}

fn urls(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| c.is_whitespace() || c == ',' || c == '"' || c == '\'')
        .filter(|s| s.starts_with("http://") || s.starts_with("https://"))
}

/// Whether a URL points at this machine or a private network. Parsed as browsers and Workers
/// parse URLs (the `url` crate, WHATWG rules), so every spelling of an address counts: decimal,
/// octal and hex IPv4 (`http://2130706433/`, `http://0x7f.1/`), IPv4-mapped and -compatible IPv6
/// (`http://[::ffff:10.0.0.1]/`), trailing dots and percent-encoded hosts. Text that does not
/// parse as a URL is no address a Worker could fetch, so it is not reported here.
pub fn is_local_url(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    match parsed.host() {
        None => true,
        Some(url::Host::Domain(d)) => {
            let host = d.trim_end_matches('.').to_ascii_lowercase();
            host == "localhost"
                || host.ends_with(".localhost")
                || host.ends_with(".local")
                || host.ends_with(".internal")
                || host.ends_with(".home.arpa")
        }
        Some(url::Host::Ipv4(ip)) => is_private_v4(ip),
        Some(url::Host::Ipv6(ip)) => is_private_v6(ip),
    }
}

fn is_private_v4(ip: std::net::Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier-grade NAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
}

fn is_private_v6(ip: std::net::Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_private_v4(v4);
    }
    let seg = ip.segments();
    // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 (64:ff9b::/96) embed an IPv4 address.
    let embedded = std::net::Ipv4Addr::new((seg[6] >> 8) as u8, seg[6] as u8, (seg[7] >> 8) as u8, seg[7] as u8);
    if (seg[..6].iter().all(|s| *s == 0) && !ip.is_loopback() && !ip.is_unspecified())
        || (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6].iter().all(|s| *s == 0))
    {
        return is_private_v4(embedded);
    }
    ip.is_loopback() || ip.is_unspecified() || (seg[0] & 0xfe00) == 0xfc00 || (seg[0] & 0xffc0) == 0xfe80
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRONG: &str = "kq3R9vXw2LmZ8tYp4NcB7sDf1GhJ6aEu";

    fn eval(level: PolicyLevel, vars: &[(&str, &str)], secrets: &[(&str, &str)]) -> Vec<Finding> {
        evaluate(&PolicyInput {
            level,
            vars: vars.iter().map(|(k, v)| (format!("worker.vars.{k}"), *v)).collect(),
            secrets: secrets.iter().map(|(k, v)| (format!("worker.secrets.{k}"), *v)).collect(),
            token_present: true,
        })
    }

    #[test]
    fn dummy_values() {
        for v in [
            "test",
            "dummy",
            "changeme",
            "CHANGE_ME",
            "example",
            "placeholder",
            "password",
            "xxx",
            "xxxxxxxx",
            "1234",
            "123456789",
            "password123",
            "",
        ] {
            assert!(is_dummy(v), "{v:?} should be dummy");
        }
        for v in [STRONG, "info", "https://api.acme.com", "testing-environment-banner"] {
            assert!(!is_dummy(v), "{v:?} should not be dummy");
        }
    }

    #[test]
    fn strict_blocks_weak_secrets_and_names_the_key_only() {
        let f = eval(PolicyLevel::Strict, &[], &[("JWT_SECRET", "short-but-not-dummy"), ("OK", STRONG)]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule, Rule::SecretTooShort);
        assert_eq!(f[0].severity, Severity::Block);
        let text = f[0].to_string();
        assert!(text.contains("worker.secrets.JWT_SECRET"));
        assert!(!text.contains("short-but-not-dummy"));
    }

    #[test]
    fn low_entropy_long_secret_is_caught() {
        let f = eval(PolicyLevel::Strict, &[], &[("K", "abababababababababababababababab")]);
        assert_eq!(f[0].rule, Rule::SecretLowEntropy);
    }

    #[test]
    fn urls_in_vars() {
        let cases = [
            ("http://api.acme.com", vec![Rule::InsecureUrl]),
            ("https://localhost:8443/x", vec![Rule::LocalUrl]),
            ("http://10.0.0.3/", vec![Rule::InsecureUrl, Rule::LocalUrl]),
            ("https://192.168.1.1", vec![Rule::LocalUrl]),
            ("https://[::1]:80/", vec![Rule::LocalUrl]),
            ("https://api.acme.com/v1", vec![]),
            ("see https://user@127.0.0.1/x", vec![Rule::LocalUrl]),
        ];
        for (value, want) in cases {
            let got: Vec<Rule> = eval(PolicyLevel::Strict, &[("U", value)], &[]).iter().map(|f| f.rule).collect();
            assert_eq!(got, want, "{value}");
        }
    }

    #[test]
    fn levels_change_severity() {
        let secrets = [("S", "short-value-abc")];
        assert_eq!(eval(PolicyLevel::Standard, &[], &secrets)[0].severity, Severity::Warn);
        assert_eq!(eval(PolicyLevel::Relaxed, &[], &[("S", "changeme")])[0].severity, Severity::Warn);
        assert_eq!(eval(PolicyLevel::Standard, &[], &[("S", "changeme")])[0].severity, Severity::Block);
    }

    #[test]
    fn missing_token_and_placeholders() {
        let f = evaluate(&PolicyInput {
            level: PolicyLevel::Strict,
            vars: vec![("worker.vars.A".into(), "{{NOPE}}")],
            secrets: vec![],
            token_present: false,
        });
        let rules: Vec<Rule> = f.iter().map(|x| x.rule).collect();
        assert_eq!(rules, vec![Rule::MissingToken, Rule::UnresolvedPlaceholder]);
    }

    #[test]
    fn local_urls_in_every_spelling() {
        for local in [
            "http://localhost/x",
            "https://LOCALHOST./",
            "http://127.0.0.1:8080",
            "http://2130706433/",
            "http://0x7f.0.0.1/",
            "http://0177.0.0.1/",
            "http://0x7f000001/",
            "http://10.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:a00:1]/",
            "http://[::10.0.0.1]/",
            "http://[64:ff9b::c0a8:1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "https://user:pw@192.168.1.10:8443/",
            "http://%31%32%37.0.0.1/",
            "http://db.internal/",
        ] {
            assert!(is_local_url(local), "{local}");
        }
        for public in
            ["https://api.acme.com/", "http://8.8.8.8/", "http://[2606:4700::1111]/", "http://[::ffff:8.8.8.8]/"]
        {
            assert!(!is_local_url(public), "{public}");
        }
    }

    #[test]
    fn entropy_bounds() {
        assert_eq!(entropy(""), 0.0);
        assert_eq!(entropy("aaaa"), 0.0);
        assert!((entropy("ab") - 1.0).abs() < 1e-9);
        assert!(entropy(STRONG) > 4.0);
    }
}
