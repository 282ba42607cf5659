//! DELETE: finalizers, deletionTimestamp, preconditions and propagation policies.

use serde_json::{Value, json};

use crate::ops::{WriteCtx, meta_mut};
use crate::registry::{Builtin, ResourceDef};
use crate::status::ApiError;
use crate::store::{ObjKey, State, finalizers, is_deleting, meta_str, now_rfc3339, set_finalizers};

/// `propagationPolicy` of a delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// Parsed `DeleteOptions`.
#[derive(Clone, Debug, Default)]
pub(crate) struct DeleteOpts {
    pub propagation: Option<Propagation>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    /// `dryRun: ["All"]` in the body.
    pub dry_run: bool,
}

impl DeleteOpts {
    pub fn from_body(body: &Value) -> Result<Self, ApiError> {
        let propagation = match body.get("propagationPolicy").and_then(Value::as_str) {
            None => match body.get("orphanDependents").and_then(Value::as_bool) {
                Some(true) => Some(Propagation::Orphan),
                Some(false) => Some(Propagation::Background),
                None => None,
            },
            Some("Background") => Some(Propagation::Background),
            Some("Foreground") => Some(Propagation::Foreground),
            Some("Orphan") => Some(Propagation::Orphan),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Background\", \"Foreground\", \"Orphan\""
                )));
            }
        };
        let pre = body.get("preconditions");
        let s = |k: &str| pre.and_then(|p| p.get(k)).and_then(Value::as_str).map(str::to_string);
        Ok(Self {
            propagation,
            precondition_uid: s("uid"),
            precondition_rv: s("resourceVersion"),
            dry_run: body.get("dryRun").and_then(Value::as_array).is_some_and(|a| a.iter().any(|x| x == "All")),
        })
    }
}

/// What a delete did.
pub(crate) enum Deleted {
    /// Still present with `deletionTimestamp` (finalizers pending).
    Pending(Value),
    /// Removed from storage.
    Gone(Value),
}

pub(crate) const FOREGROUND: &str = "foregroundDeletion";

impl State {
    /// DELETE of one object.
    pub fn delete(&mut self, ctx: &WriteCtx, name: &str, opts: &DeleteOpts) -> Result<Deleted, ApiError> {
        let old = self.existing(ctx, name)?;
        if let Some(uid) = &opts.precondition_uid
            && Some(uid.as_str()) != meta_str(&old, "uid")
        {
            return Err(ApiError::conflict(
                &ctx.rd.qualified(),
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old, "uid").unwrap_or_default()
                ),
            ));
        }
        if let Some(rv) = &opts.precondition_rv
            && Some(rv.as_str()) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(
                &ctx.rd.qualified(),
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&old, "resourceVersion").unwrap_or_default()
                ),
            ));
        }
        let policy = opts.propagation.unwrap_or(Propagation::Background);
        if ctx.dry_run || opts.dry_run {
            return Ok(
                if finalizers(&old).is_empty()
                    && policy != Propagation::Foreground
                    && !self.blocked_by_spec_finalizers(&ctx.rd, &old)
                {
                    Deleted::Gone(old)
                } else {
                    let mut o = old;
                    mark_deleting(&mut o, policy);
                    Deleted::Pending(o)
                },
            );
        }
        let outcome = self.delete_object(&ctx.rd, &ctx.key(name), policy);
        self.collect_garbage();
        outcome.ok_or_else(|| ApiError::not_found(&ctx.rd.qualified(), name))
    }

    /// Delete by key with a propagation policy; shared by the API and garbage collection.
    pub(crate) fn delete_object(&mut self, rd: &ResourceDef, key: &ObjKey, policy: Propagation) -> Option<Deleted> {
        let res = rd.key();
        let old = self.get(&res, key)?.clone();
        if policy == Propagation::Orphan
            && let Some(uid) = meta_str(&old, "uid")
        {
            let uid = uid.to_string();
            self.orphan_dependents(&uid);
        }
        if is_deleting(&old) {
            if policy == Propagation::Foreground && !finalizers(&old).iter().any(|f| f == FOREGROUND) {
                let mut new = old.clone();
                let mut f = finalizers(&new);
                f.push(FOREGROUND.to_string());
                set_finalizers(&mut new, &f);
                return Some(Deleted::Pending(self.put(&res, key.clone(), new, Some(old))));
            }
            return Some(Deleted::Pending(old));
        }
        if finalizers(&old).is_empty()
            && policy != Propagation::Foreground
            && !self.blocked_by_spec_finalizers(rd, &old)
        {
            let gone = self.remove(&res, key)?;
            self.after_commit(rd, &gone);
            return Some(Deleted::Gone(gone));
        }
        let mut new = old.clone();
        mark_deleting(&mut new, policy);
        if rd.builtin == Some(Builtin::Namespace) {
            new["status"] = json!({"phase": "Terminating"});
        }
        Some(Deleted::Pending(self.put(&res, key.clone(), new, Some(old))))
    }

    /// Namespaces are held by `spec.finalizers` until their content is gone.
    pub(crate) fn blocked_by_spec_finalizers(&self, rd: &ResourceDef, obj: &Value) -> bool {
        rd.builtin == Some(Builtin::Namespace)
            && obj.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|a| !a.is_empty())
    }
}

fn mark_deleting(obj: &mut Value, policy: Propagation) {
    if policy == Propagation::Foreground {
        let mut f = finalizers(obj);
        if !f.iter().any(|x| x == FOREGROUND) {
            f.push(FOREGROUND.to_string());
        }
        set_finalizers(obj, &f);
    }
    let meta = meta_mut(obj);
    meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
    meta.insert("deletionGracePeriodSeconds".into(), json!(0));
}
