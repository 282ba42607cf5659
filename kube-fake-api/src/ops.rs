//! The verbs: create, update (PUT), patch, delete, with the real API server's
//! metadata, subresource, generation, finalizer and concurrency rules.

use serde_json::{Map, Value, json};

use crate::admission::{FieldValidation, admit};
use crate::crd::{CRD_CLEANUP, set_crd_status};
use crate::managed::{self, Part, Writer};
use crate::patch::{PatchKind, apply_patch};
use crate::registry::{Builtin, ResourceDef};
use crate::status::{ApiError, FieldError};
use crate::store::{ObjKey, State, crd_key, finalizers, is_deleting, meta_str, now_rfc3339, ns_key, set_finalizers};

/// Request-level settings shared by every write.
#[derive(Clone)]
pub(crate) struct WriteCtx {
    pub rd: ResourceDef,
    pub version: String,
    pub namespace: Option<String>,
    pub dry_run: bool,
    pub manager: String,
    pub validation: FieldValidation,
}

impl WriteCtx {
    fn api_version(&self) -> String {
        self.rd.api_version(&self.version)
    }

    pub(crate) fn key(&self, name: &str) -> ObjKey {
        (self.namespace.clone().unwrap_or_default(), name.to_string())
    }

    fn part(&self, status: bool) -> Part {
        if status { Part::Status } else { Part::Main { exclude_status: self.rd.status_subresource } }
    }
}

/// A successful write.
pub(crate) struct Written {
    pub object: Value,
    pub created: bool,
    pub warnings: Vec<String>,
}

pub(crate) fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

/// Server-owned metadata fields copied from the stored object on every update.
const SYSTEM_META: [&str; 8] = [
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "managedFields",
    "namespace",
    "name",
];

fn restore_system_meta(new: &mut Value, old: &Value) {
    let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
    let meta = meta_mut(new);
    for k in SYSTEM_META {
        match old_meta.get(k) {
            Some(v) => {
                meta.insert(k.into(), v.clone());
            }
            None => {
                meta.remove(k);
            }
        }
    }
    meta.remove("selfLink");
}

/// The content that bumps `metadata.generation` when it changes.
fn generation_content(rd: &ResourceDef, obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
        if rd.status_subresource {
            m.remove("status");
        }
    }
    v
}

/// Objects equal apart from managedFields timestamps: the write is a no-op.
fn same_object(a: &Value, b: &Value) -> bool {
    fn strip(v: &Value) -> Value {
        let mut v = v.clone();
        if let Some(list) = v.pointer_mut("/metadata/managedFields").and_then(Value::as_array_mut) {
            for e in list {
                if let Some(m) = e.as_object_mut() {
                    m.remove("time");
                }
            }
        }
        v
    }
    strip(a) == strip(b)
}

fn check_type(ctx: &WriteCtx, body: &Value) -> Result<(), ApiError> {
    if let Some(kind) = body.get("kind").and_then(Value::as_str)
        && kind != ctx.rd.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind of the object ({kind}) does not match the resource ({})",
            ctx.rd.kind
        )));
    }
    if let Some(av) = body.get("apiVersion").and_then(Value::as_str)
        && av != ctx.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            ctx.api_version()
        )));
    }
    Ok(())
}

fn check_identity(ctx: &WriteCtx, body: &Value, name: &str) -> Result<(), ApiError> {
    if let Some(n) = meta_str(body, "name")
        && !n.is_empty()
        && n != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    check_namespace(ctx, body)
}

fn check_namespace(ctx: &WriteCtx, body: &Value) -> Result<(), ApiError> {
    if let (Some(ns), Some(want)) = (meta_str(body, "namespace"), ctx.namespace.as_deref())
        && !ns.is_empty()
        && ns != want
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4().as_bytes().iter().take(5).map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

fn conflict_error(ctx: &WriteCtx, name: &str, conflicts: &[managed::Conflict]) -> ApiError {
    let n = conflicts.len();
    let list: Vec<String> = conflicts.iter().map(|c| format!("conflict with \"{}\": {}", c.manager, c.path)).collect();
    let plural = if n == 1 { "" } else { "s" };
    let mut e = ApiError::new(409, "Conflict", format!("Apply failed with {n} conflict{plural}: {}", list.join(", ")));
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| {
            json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\"", c.manager), "field": c.path})
        })
        .collect();
    e.details = Some(json!({"name": name, "group": ctx.rd.group, "kind": ctx.rd.plural, "causes": causes}));
    e
}

impl State {
    fn writer<'a>(
        &self,
        ctx: &'a WriteCtx,
        api_version: &'a str,
        time: &'a str,
        part: Part,
        nav: &'a Value,
    ) -> Writer<'a> {
        Writer { manager: &ctx.manager, api_version, time, part, nav }
    }

    /// Namespace checks for a create: exists and is not terminating. Returns the
    /// namespace to create on commit when it is missing and namespaces are not strict.
    fn check_namespace_for_create(&self, ctx: &WriteCtx, name: &str) -> Result<Option<String>, ApiError> {
        let Some(ns) = ctx.namespace.as_deref() else {
            return Ok(None);
        };
        match self.get(&ns_key(), &(String::new(), ns.to_string())) {
            Some(n) if is_deleting(n) => Err(ApiError::forbidden(format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                ctx.rd.plural,
            ))),
            Some(_) => Ok(None),
            None if self.opts.strict_namespaces => Err(ApiError::not_found(
                &crate::status::Qualified {
                    group: String::new(),
                    plural: "namespaces".into(),
                    kind: "Namespace".into(),
                },
                ns,
            )),
            None => Ok(Some(ns.to_string())),
        }
    }

    fn crd_terminating(&self, rd: &ResourceDef) -> bool {
        rd.is_custom()
            && self.get(&crd_key(), &(String::new(), format!("{}.{}", rd.plural, rd.group))).is_some_and(is_deleting)
    }

    /// POST to a collection (or server-side apply of a missing object).
    pub fn create(&mut self, ctx: &WriteCtx, mut obj: Value, applied: bool) -> Result<Written, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body of the request must be a JSON object"));
        }
        check_type(ctx, &obj)?;
        check_namespace(ctx, &obj)?;
        obj["apiVersion"] = json!(ctx.api_version());
        obj["kind"] = json!(ctx.rd.kind);
        let mut name = meta_str(&obj, "name").unwrap_or_default().to_string();
        if name.is_empty() {
            match meta_str(&obj, "generateName").filter(|g| !g.is_empty()) {
                Some(g) => name = format!("{g}{}", random_suffix()),
                None => {
                    return Err(ApiError::invalid(
                        &ctx.rd.qualified(),
                        "",
                        &[FieldError::required_because("metadata.name", "name or generateName is required")],
                    ));
                }
            }
        }
        if self.crd_terminating(&ctx.rd) {
            return Err(ApiError::method_not_allowed(format!(
                "create not allowed while custom resource definition is terminating: {}.{}",
                ctx.rd.plural, ctx.rd.group
            )));
        }
        let missing_namespace = self.check_namespace_for_create(ctx, &name)?;
        let key = ctx.key(&name);
        if self.get(&ctx.rd.key(), &key).is_some() {
            return Err(ApiError::already_exists(&ctx.rd.qualified(), &name));
        }
        let time = now_rfc3339();
        {
            let meta = meta_mut(&mut obj);
            meta.insert("name".into(), json!(name));
            match &ctx.namespace {
                Some(ns) => meta.insert("namespace".into(), json!(ns)),
                None => meta.remove("namespace"),
            };
            meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            meta.insert("creationTimestamp".into(), json!(time));
            for k in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
                meta.remove(k);
            }
            if !applied {
                meta.remove("managedFields");
            }
            if ctx.rd.has_generation {
                meta.insert("generation".into(), json!(1));
            } else {
                meta.remove("generation");
            }
        }
        if ctx.rd.status_subresource
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        if ctx.rd.builtin == Some(Builtin::Crd) {
            let mut f = finalizers(&obj);
            if !f.iter().any(|x| x == CRD_CLEANUP) {
                f.push(CRD_CLEANUP.to_string());
            }
            set_finalizers(&mut obj, &f);
        }
        let warnings = admit(&ctx.rd, &ctx.version, &mut obj, None, ctx.validation)?;
        if !applied {
            let nav = self.nav_schema(&ctx.rd, &ctx.version);
            let av = ctx.api_version();
            let w = self.writer(ctx, &av, &time, ctx.part(false), &nav);
            managed::record_update(None, &mut obj, &w);
        }
        if ctx.rd.builtin == Some(Builtin::Crd) {
            set_crd_status(&mut obj);
        }
        if ctx.dry_run {
            return Ok(Written { object: obj, created: true, warnings });
        }
        if let Some(ns) = missing_namespace {
            self.insert_namespace(&ns);
        }
        let stored = self.put(&ctx.rd.key(), key, obj, None);
        self.after_commit(&ctx.rd, &stored);
        self.collect_garbage();
        Ok(Written { object: stored, created: true, warnings })
    }

    pub(crate) fn nav_schema(&self, rd: &ResourceDef, version: &str) -> Value {
        match rd.schemas.get(version) {
            Some(s) => managed::navigation_schema(Some(&s.schema)),
            None => managed::builtin_navigation_schema().clone(),
        }
    }

    pub(crate) fn existing(&self, ctx: &WriteCtx, name: &str) -> Result<Value, ApiError> {
        self.get(&ctx.rd.key(), &ctx.key(name)).cloned().ok_or_else(|| ApiError::not_found(&ctx.rd.qualified(), name))
    }

    /// PUT of the main resource or `/status`.
    pub fn update(&mut self, ctx: &WriteCtx, name: &str, body: Value, status: bool) -> Result<Written, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request("the body of the request must be a JSON object"));
        }
        let old = self.existing(ctx, name)?;
        check_type(ctx, &body)?;
        check_identity(ctx, &body, name)?;
        let current_rv = meta_str(&old, "resourceVersion").unwrap_or_default();
        match meta_str(&body, "resourceVersion").filter(|r| !r.is_empty()) {
            Some(rv) if rv != current_rv => {
                return Err(ApiError::stale(&ctx.rd.qualified(), name));
            }
            Some(_) => {}
            None if !ctx.rd.unconditional_update => {
                return Err(ApiError::invalid(
                    &ctx.rd.qualified(),
                    name,
                    &[FieldError::invalid(
                        "metadata.resourceVersion",
                        &json!("0x0"),
                        "must be specified for an update",
                    )],
                ));
            }
            None => {}
        }
        if let (Some(uid), Some(cur)) = (meta_str(&body, "uid"), meta_str(&old, "uid"))
            && !uid.is_empty()
            && uid != cur
        {
            return Err(ApiError::conflict(
                &ctx.rd.qualified(),
                name,
                &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {cur}"),
            ));
        }
        let new = self.shape_update(ctx, &old, body, status);
        self.finish_update(ctx, name, old, new, status, true)
    }

    /// Build the candidate object of an update from the request's view of it.
    fn shape_update(&self, ctx: &WriteCtx, old: &Value, body: Value, status: bool) -> Value {
        if status {
            let mut new = old.clone();
            match body.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            return new;
        }
        let mut new = body;
        new["apiVersion"] = json!(ctx.api_version());
        new["kind"] = json!(ctx.rd.kind);
        restore_system_meta(&mut new, old);
        if ctx.rd.status_subresource
            && let Some(m) = new.as_object_mut()
        {
            match old.get("status") {
                Some(s) => {
                    m.insert("status".into(), s.clone());
                }
                None => {
                    m.remove("status");
                }
            }
        }
        new
    }

    /// Common tail of PUT and PATCH: validate, bump generation, record ownership,
    /// detect no-ops, finalize deletion when the last finalizer is gone.
    fn finish_update(
        &mut self,
        ctx: &WriteCtx,
        name: &str,
        old: Value,
        mut new: Value,
        status: bool,
        record_ownership: bool,
    ) -> Result<Written, ApiError> {
        if is_deleting(&old) {
            let before = finalizers(&old);
            let added: Vec<String> = finalizers(&new).into_iter().filter(|f| !before.contains(f)).collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    &ctx.rd.qualified(),
                    name,
                    &[FieldError::forbidden(
                        "metadata.finalizers",
                        &format!(
                            "no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                        ),
                    )],
                ));
            }
        }
        if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert(
                "resourceVersion".into(),
                old.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null),
            );
        }
        let warnings = admit(&ctx.rd, &ctx.version, &mut new, Some(&old), ctx.validation)?;
        if ctx.rd.has_generation && generation_content(&ctx.rd, &old) != generation_content(&ctx.rd, &new) {
            let g = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
            meta_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        if record_ownership {
            let time = now_rfc3339();
            let nav = self.nav_schema(&ctx.rd, &ctx.version);
            let av = ctx.api_version();
            let w = self.writer(ctx, &av, &time, ctx.part(status), &nav);
            managed::record_update(Some(&old), &mut new, &w);
        }
        if ctx.rd.builtin == Some(Builtin::Crd) {
            set_crd_status(&mut new);
        }
        if same_object(&old, &new) {
            return Ok(Written { object: old, created: false, warnings });
        }
        if ctx.dry_run {
            return Ok(Written { object: new, created: false, warnings });
        }
        let key = ctx.key(name);
        let res = ctx.rd.key();
        let stored =
            if is_deleting(&new) && finalizers(&new).is_empty() && !self.blocked_by_spec_finalizers(&ctx.rd, &new) {
                self.replace_silently(&res, &key, new);
                self.remove(&res, &key).unwrap_or_default()
            } else {
                self.put(&res, key, new, Some(old))
            };
        self.after_commit(&ctx.rd, &stored);
        self.collect_garbage();
        Ok(Written { object: stored, created: false, warnings })
    }

    /// PATCH of the main resource or `/status`.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        ctx: &WriteCtx,
        name: &str,
        kind: PatchKind,
        body: &[u8],
        status: bool,
        force: bool,
    ) -> Result<Written, ApiError> {
        if kind == PatchKind::Strategic && ctx.rd.is_custom() {
            return Err(ApiError::unsupported_media_type(kind.content_type()));
        }
        if kind == PatchKind::Apply {
            return self.server_side_apply(ctx, name, body, status, force);
        }
        if force {
            return Err(ApiError::invalid(
                &crate::status::Qualified {
                    group: "meta.k8s.io".into(),
                    plural: "patchoptions".into(),
                    kind: "PatchOptions".into(),
                },
                "",
                &[FieldError::forbidden("force", "may not be specified for non-apply patch")],
            ));
        }
        let old = self.existing(ctx, name)?;
        let mut patched = old.clone();
        apply_patch(kind, &mut patched, body).map_err(|e| {
            if e.code == 422 {
                ApiError::invalid(
                    &ctx.rd.qualified(),
                    name,
                    &[FieldError::new("", "FieldValueInvalid", e.message.clone())],
                )
            } else {
                e
            }
        })?;
        if meta_str(&patched, "resourceVersion") != meta_str(&old, "resourceVersion") {
            return Err(ApiError::stale(&ctx.rd.qualified(), name));
        }
        if meta_str(&patched, "uid") != meta_str(&old, "uid") {
            return Err(ApiError::conflict(
                &ctx.rd.qualified(),
                name,
                "Precondition failed: UID in precondition does not match the UID of the object",
            ));
        }
        check_identity(ctx, &patched, name)?;
        check_type(ctx, &patched)?;
        let new = self.shape_update(ctx, &old, patched, status);
        self.finish_update(ctx, name, old, new, status, true)
    }

    fn server_side_apply(
        &mut self,
        ctx: &WriteCtx,
        name: &str,
        body: &[u8],
        status: bool,
        force: bool,
    ) -> Result<Written, ApiError> {
        if ctx.manager.is_empty() {
            return Err(ApiError::invalid(
                &crate::status::Qualified {
                    group: "meta.k8s.io".into(),
                    plural: "patchoptions".into(),
                    kind: "PatchOptions".into(),
                },
                "",
                &[FieldError::required_because("fieldManager", "is required for apply patch")],
            ));
        }
        let applied: Value =
            serde_norway::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        if !applied.is_object() {
            return Err(ApiError::bad_request("the applied configuration must be an object"));
        }
        if applied.get("apiVersion").and_then(Value::as_str).is_none_or(str::is_empty)
            || applied.get("kind").and_then(Value::as_str).is_none_or(str::is_empty)
        {
            return Err(ApiError::bad_request(
                "invalid object type: apiVersion and kind must be set in an apply request",
            ));
        }
        check_type(ctx, &applied)?;
        check_identity(ctx, &applied, name)?;
        if applied.pointer("/metadata/managedFields").is_some_and(|m| !m.is_null()) {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        let time = now_rfc3339();
        let nav = self.nav_schema(&ctx.rd, &ctx.version);
        let av = ctx.api_version();
        let existing = self.get(&ctx.rd.key(), &ctx.key(name)).cloned();
        let applied_rv = meta_str(&applied, "resourceVersion").filter(|r| !r.is_empty());
        let Some(old) = existing else {
            if status {
                return Err(ApiError::not_found(&ctx.rd.qualified(), name));
            }
            if applied_rv.is_some() {
                return Err(ApiError::stale(&ctx.rd.qualified(), name));
            }
            let w = self.writer(ctx, &av, &time, ctx.part(false), &nav);
            let mut obj = managed::apply(None, &applied, &w, force).map_err(|c| conflict_error(ctx, name, &c))?;
            meta_mut(&mut obj).insert("name".into(), json!(name));
            return self.create(ctx, obj, true);
        };
        if let Some(rv) = applied_rv
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::stale(&ctx.rd.qualified(), name));
        }
        let w = self.writer(ctx, &av, &time, ctx.part(status), &nav);
        let mut new = managed::apply(Some(&old), &applied, &w, force).map_err(|c| conflict_error(ctx, name, &c))?;
        new["apiVersion"] = json!(av);
        self.finish_update(ctx, name, old, std::mem::take(&mut new), status, false)
    }
}
