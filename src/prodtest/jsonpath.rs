//! The small JSON path subset production tests use: `$`, `.key`, `['key']`, `[index]`.

use serde_json::Value;

/// Parse error for a JSON path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON path {path:?}: {why}")]
pub struct PathError {
    pub path: String,
    pub why: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn parse(path: &str) -> Result<Vec<Seg>, PathError> {
    let err = |why| PathError { path: path.to_string(), why };
    let rest = path.strip_prefix('$').ok_or_else(|| err("must start with $"))?;
    let mut segs = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                let mut key = String::new();
                while let Some(&n) = chars.peek() {
                    if n == '.' || n == '[' {
                        break;
                    }
                    key.push(n);
                    chars.next();
                }
                if key.is_empty() {
                    return Err(err("empty key after ."));
                }
                segs.push(Seg::Key(key));
            }
            '[' => {
                let mut inner = String::new();
                for n in chars.by_ref() {
                    if n == ']' {
                        break;
                    }
                    inner.push(n);
                }
                let inner = inner.trim();
                if let Some(q) = inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                    segs.push(Seg::Key(q.to_string()));
                } else if let Some(q) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    segs.push(Seg::Key(q.to_string()));
                } else {
                    segs.push(Seg::Index(
                        inner.parse().map_err(|_| err("bracket must hold an index or a quoted key"))?,
                    ));
                }
            }
            _ => return Err(err("expected . or [")),
        }
    }
    Ok(segs)
}

/// Look a path up in a document. `Ok(None)` when the path is absent.
pub fn lookup<'a>(doc: &'a Value, path: &str) -> Result<Option<&'a Value>, PathError> {
    let mut cur = doc;
    for seg in parse(path)? {
        let next = match (&seg, cur) {
            (Seg::Key(k), Value::Object(m)) => m.get(k),
            (Seg::Index(i), Value::Array(a)) => a.get(*i),
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookups() {
        let doc = json!({"items": [{"id": 1}], "data": {"a b": true}, "n": null});
        assert_eq!(lookup(&doc, "$").unwrap(), Some(&doc));
        assert_eq!(lookup(&doc, "$.items[0].id").unwrap(), Some(&json!(1)));
        assert_eq!(lookup(&doc, "$.data['a b']").unwrap(), Some(&json!(true)));
        assert_eq!(lookup(&doc, "$.n").unwrap(), Some(&json!(null)));
        assert_eq!(lookup(&doc, "$.items[3]").unwrap(), None);
        assert_eq!(lookup(&doc, "$.missing.deeper").unwrap(), None);
        assert!(lookup(&doc, "items").is_err());
        assert!(lookup(&doc, "$.").is_err());
        assert!(lookup(&doc, "$[x]").is_err());
    }
}
