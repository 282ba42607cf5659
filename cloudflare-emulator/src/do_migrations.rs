//! Durable Object class migrations from upload metadata (`migrations`): tag precondition,
//! then steps creating, renaming, transferring and deleting namespaces.

use serde_json::Value;

use crate::envelope::ApiError;
use crate::ids;
use crate::model::{Account, DoNamespace};

/// `old_tag` does not match the script's migration tag.
pub(crate) const CODE_TAG_PRECONDITION: u32 = 10079;
/// A step cannot be applied (class exists already, unknown class, ...).
pub(crate) const CODE_BAD_STEP: u32 = 10074;

const STEP_KEYS: &[&str] =
    &["new_classes", "new_sqlite_classes", "renamed_classes", "deleted_classes", "transferred_classes"];

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(CODE_BAD_STEP, msg)
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(10021, msg)
}

fn tag(v: &Value, key: &str) -> Result<Option<String>, ApiError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("migrations.{key} must be a string"))),
    }
}

fn names(step: &Value, key: &str) -> Result<Vec<String>, ApiError> {
    match step.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid(format!("migrations: {key} must list class names")))
            })
            .collect(),
        Some(_) => Err(invalid(format!("migrations: {key} must be a list"))),
    }
}

fn pairs(step: &Value, key: &str) -> Result<Vec<(String, String, Option<String>)>, ApiError> {
    let Some(items) = step.get(key).filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let items = items.as_array().ok_or_else(|| invalid(format!("migrations: {key} must be a list")))?;
    items
        .iter()
        .map(|x| {
            let from = x.get("from").and_then(Value::as_str);
            let to = x.get("to").and_then(Value::as_str);
            match (from, to) {
                (Some(f), Some(t)) => {
                    Ok((f.to_string(), t.to_string(), x.get("from_script").and_then(Value::as_str).map(str::to_string)))
                }
                _ => Err(invalid(format!("migrations: every {key} entry needs `from` and `to`"))),
            }
        })
        .collect()
}

fn find(list: &[DoNamespace], script: &str, class: &str) -> Option<usize> {
    list.iter().position(|n| n.script == script && n.class == class)
}

fn apply_step(list: &mut Vec<DoNamespace>, script: &str, step: &Value) -> Result<(), ApiError> {
    for (key, sqlite) in [("new_classes", false), ("new_sqlite_classes", true)] {
        let what = if sqlite { "new-sqlite-class" } else { "new-class" };
        for class in names(step, key)? {
            if find(list, script, &class).is_some() {
                return Err(bad(format!(
                    "Cannot apply {what} migration to class '{class}' that is already depended on by existing Durable Objects"
                )));
            }
            list.push(DoNamespace {
                id: ids::hex32(),
                name: format!("{script}_{class}"),
                script: script.to_string(),
                class,
                use_sqlite: sqlite,
            });
        }
    }
    for (from, to, _) in pairs(step, "renamed_classes")? {
        let Some(i) = find(list, script, &from) else {
            return Err(bad(format!(
                "Cannot apply rename-class migration to class '{from}' which was not exported in the previous version of the script"
            )));
        };
        if find(list, script, &to).is_some() {
            return Err(bad(format!("Cannot apply rename-class migration: class '{to}' already exists")));
        }
        list[i].class = to.clone();
        list[i].name = format!("{script}_{to}");
    }
    for (from, to, from_script) in pairs(step, "transferred_classes")? {
        let source =
            from_script.ok_or_else(|| invalid("migrations: transferred_classes entries need `from_script`"))?;
        let Some(i) = find(list, &source, &from) else {
            return Err(bad(format!(
                "Cannot apply transfer-class migration: class '{from}' is not a Durable Object class of script '{source}'"
            )));
        };
        if find(list, script, &to).is_some() {
            return Err(bad(format!("Cannot apply transfer-class migration: class '{to}' already exists")));
        }
        list[i].script = script.to_string();
        list[i].class = to.clone();
        list[i].name = format!("{script}_{to}");
    }
    for class in names(step, "deleted_classes")? {
        let Some(i) = find(list, script, &class) else {
            return Err(bad(format!(
                "Cannot apply delete-class migration to class '{class}' which was not exported in the previous version of the script"
            )));
        };
        list.remove(i);
    }
    Ok(())
}

/// Apply `migrations` for `script` whose current tag is `current`. Returns the namespaces
/// after the migration and the script's new tag. Nothing changes on error.
pub(crate) fn apply(
    namespaces: &[DoNamespace],
    script: &str,
    current: Option<&str>,
    migrations: &Value,
) -> Result<(Vec<DoNamespace>, Option<String>), ApiError> {
    if !migrations.is_object() {
        return Err(invalid("migrations must be an object"));
    }
    let old_tag = tag(migrations, "old_tag")?;
    if old_tag.as_deref() != current {
        return Err(ApiError::bad_request(
            CODE_TAG_PRECONDITION,
            format!(
                "Migration tag precondition failed; current tag is {}, old_tag was {}",
                current.unwrap_or("''"),
                old_tag.as_deref().unwrap_or("''")
            ),
        ));
    }
    let mut list = namespaces.to_vec();
    if STEP_KEYS.iter().any(|k| migrations.get(*k).is_some_and(|v| !v.is_null())) {
        apply_step(&mut list, script, migrations)?;
    }
    match migrations.get("steps") {
        None | Some(Value::Null) => {}
        Some(Value::Array(steps)) => {
            for step in steps {
                apply_step(&mut list, script, step)?;
            }
        }
        Some(_) => return Err(invalid("migrations.steps must be a list")),
    }
    let new_tag = tag(migrations, "new_tag")?.or_else(|| current.map(str::to_string));
    Ok((list, new_tag))
}

/// Apply the metadata's `migrations` (if any) to the account's namespaces, then build the
/// version with `f` against the migrated account. Everything is restored when either fails.
/// Returns `f`'s value and, when migrations were given, the script's new tag.
pub(crate) fn with_migrations<T>(
    account: &mut Account,
    script: &str,
    current: Option<&str>,
    meta: &Value,
    f: impl FnOnce(&Account) -> Result<T, ApiError>,
) -> Result<(T, Option<Option<String>>), ApiError> {
    let Some(m) = meta.get("migrations").filter(|m| !m.is_null()) else {
        return f(account).map(|t| (t, None));
    };
    let (list, tag) = apply(&account.do_namespaces, script, current, m)?;
    let saved = std::mem::replace(&mut account.do_namespaces, list);
    match f(account) {
        Ok(t) => Ok((t, Some(tag))),
        Err(e) => {
            account.do_namespaces = saved;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn steps_apply_in_order_and_tags_are_checked() {
        let m = json!({"new_tag": "v1", "steps": [{"new_sqlite_classes": ["Counter"]}, {"new_classes": ["Old"]}]});
        let (list, t) = apply(&[], "w", None, &m).unwrap();
        assert_eq!(t.as_deref(), Some("v1"));
        assert_eq!(list.len(), 2);
        assert!(list[0].use_sqlite && !list[1].use_sqlite);

        let replay = apply(&list, "w", Some("v1"), &json!({"old_tag": "v1", "new_tag": "v2", "new_classes": ["Old"]}));
        assert_eq!(replay.unwrap_err().errors[0].code, CODE_BAD_STEP);
        let stale = apply(&list, "w", Some("v1"), &json!({"new_tag": "v2", "deleted_classes": ["Old"]}));
        let e = stale.unwrap_err();
        assert_eq!(e.errors[0].code, CODE_TAG_PRECONDITION);
        assert!(e.errors[0].message.starts_with("Migration tag precondition failed; current tag is v1"));

        let m2 = json!({"old_tag": "v1", "new_tag": "v2", "steps": [
            {"renamed_classes": [{"from": "Counter", "to": "Tally"}]}, {"deleted_classes": ["Old"]}]});
        let (after, t2) = apply(&list, "w", Some("v1"), &m2).unwrap();
        assert_eq!(t2.as_deref(), Some("v2"));
        assert_eq!(after.len(), 1);
        assert_eq!((after[0].class.as_str(), after[0].id.as_str()), ("Tally", list[0].id.as_str()));
        let missing = apply(&list, "w", Some("v1"), &json!({"old_tag": "v1", "deleted_classes": ["Nope"]}));
        assert_eq!(missing.unwrap_err().errors[0].code, CODE_BAD_STEP);
    }

    #[test]
    fn transfer_moves_a_namespace_between_scripts() {
        let (list, _) = apply(&[], "a", None, &json!({"new_tag": "v1", "new_classes": ["X"]})).unwrap();
        let m = json!({"new_tag": "t1", "transferred_classes": [{"from": "X", "from_script": "a", "to": "Y"}]});
        let (moved, _) = apply(&list, "b", None, &m).unwrap();
        assert_eq!((moved[0].script.as_str(), moved[0].class.as_str()), ("b", "Y"));
    }
}
