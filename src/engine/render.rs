//! `{{VAR}}` template rendering.

use std::collections::BTreeMap;

/// A placeholder that no variable resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    /// Field path where the placeholder appears, e.g. `worker.vars.PUBLIC_URL`.
    pub field: String,
    /// The placeholder name without braces.
    pub placeholder: String,
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: unresolved placeholder {{{{{}}}}}", self.field, self.placeholder)
    }
}

/// Replace every `{{NAME}}` (optional spaces inside the braces) with its value. Unknown names are
/// left in place and reported. Values are not re-expanded.
pub fn render(field: &str, input: &str, vars: &BTreeMap<String, String>) -> Result<String, Unresolved> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = after[..end].trim();
        match vars.get(name) {
            Some(v) if is_name(name) => out.push_str(v),
            _ => {
                return Err(Unresolved { field: field.to_string(), placeholder: name.to_string() });
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Names of all `{{…}}` placeholders in a string.
pub fn placeholders(input: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = input;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        names.push(after[..end].trim().to_string());
        rest = &after[end + 2..];
    }
    names
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [("DOMAIN", "api.acme.com"), ("ENVIRONMENT", "production"), ("X", "{{DOMAIN}}")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn renders_known_vars() {
        let cases = [
            ("https://{{DOMAIN}}", "https://api.acme.com"),
            ("{{ DOMAIN }}/{{ENVIRONMENT}}", "api.acme.com/production"),
            ("no templates", "no templates"),
            ("dangling {{ brace", "dangling {{ brace"),
            ("{{X}}", "{{DOMAIN}}"),
        ];
        for (input, want) in cases {
            assert_eq!(render("f", input, &vars()).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn reports_field_and_placeholder() {
        let err = render("worker.vars.URL", "https://{{MISSING}}/x", &vars()).unwrap_err();
        assert_eq!(err.placeholder, "MISSING");
        assert_eq!(err.to_string(), "worker.vars.URL: unresolved placeholder {{MISSING}}");
        assert!(render("f", "{{}}", &vars()).is_err());
        assert!(render("f", "{{a-b}}", &vars()).is_err());
    }

    #[test]
    fn lists_placeholders() {
        assert_eq!(placeholders("a {{B}} c {{ D }}"), vec!["B", "D"]);
    }
}
