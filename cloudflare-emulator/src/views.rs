//! JSON shapes of API objects (the wire format, separate from the stored model).

use serde_json::{Value, json};

use crate::ids::ts;
use crate::model::{Account, CustomDomain, D1Database, Deployment, DnsRecord, Route, Script, Version, Zone};

/// A binding as reported by the API: secret values removed.
pub(crate) fn binding(b: &Value) -> Value {
    let mut b = b.clone();
    if let Some(obj) = b.as_object_mut() {
        match obj.get("type").and_then(Value::as_str) {
            Some("secret_text") => {
                obj.remove("text");
            }
            Some("secret_key") => {
                obj.remove("key_base64");
                obj.remove("key_jwk");
            }
            _ => {}
        }
    }
    b
}

pub(crate) fn bindings(v: &Version) -> Vec<Value> {
    v.bindings.iter().map(binding).collect()
}

fn tags_value(script: &Script) -> Value {
    if script.tags.is_empty() { Value::Null } else { json!(script.tags) }
}

/// The script object (PUT script result, list items, `default_environment.script`).
pub(crate) fn script(script: &Script, routes: Option<Vec<Route>>) -> Value {
    let v = script.primary_version();
    let mut out = json!({
        "id": script.name,
        "tag": script.tag,
        "etag": v.map(|v| v.etag.clone()).unwrap_or_default(),
        "startup_time_ms": 0,
        "created_on": ts(&script.created_on),
        "modified_on": ts(&script.modified_on),
        "compatibility_date": v.map(|v| v.compatibility_date.clone()),
        "compatibility_flags": v.map(|v| v.compatibility_flags.clone()).unwrap_or_default(),
        "handlers": v.map(|v| v.handlers.clone()).unwrap_or_default(),
        "named_handlers": [],
        "has_modules": v.is_some_and(|v| v.main_module.is_some()),
        "has_assets": false,
        "usage_model": v.map(|v| v.usage_model.clone()).unwrap_or_else(|| "standard".into()),
        "tags": tags_value(script),
        "last_deployed_from": last_deployed_from(script),
        "migration_tag": script.migration_tag,
        "logpush": script.logpush,
        "observability": script.observability.clone().unwrap_or_else(|| json!({"enabled": false})),
        "placement": v.and_then(|v| v.placement.clone()).unwrap_or_else(|| json!({})),
        "tail_consumers": script.tail_consumers,
    });
    if let Some(routes) = routes {
        out["routes"] =
            if routes.is_empty() { Value::Null } else { json!(routes.iter().map(route).collect::<Vec<_>>()) };
    }
    out
}

/// What `last_deployed_from` reports. The emulator never reports `dash` (which would make
/// wrangler download and diff the remote config) nor `api` (which makes it ask for
/// confirmation): every deployment looks like a wrangler deployment.
fn last_deployed_from(_script: &Script) -> &'static str {
    "wrangler"
}

/// `GET workers/services/:name`.
pub(crate) fn service(script_obj: &Script) -> Value {
    let s = script(script_obj, None);
    json!({
        "id": script_obj.name,
        "default_environment": {
            "environment": "production",
            "created_on": ts(&script_obj.created_on),
            "modified_on": ts(&script_obj.modified_on),
            "script": s,
        },
        "created_on": ts(&script_obj.created_on),
        "modified_on": ts(&script_obj.modified_on),
    })
}

fn version_metadata(script: &Script, v: &Version, has_preview: bool) -> Value {
    json!({
        "author_email": v.author_email,
        "author_id": "emulator",
        "created_on": ts(&v.created_on),
        "modified_on": ts(&v.created_on),
        "source": v.source,
        "has_preview": has_preview,
        "hasPreview": has_preview,
        "script_name": script.name,
    })
}

/// A version with resources (`GET versions/:id`, `POST versions`).
pub(crate) fn version(script: &Script, v: &Version, has_preview: bool) -> Value {
    json!({
        "id": v.id,
        "number": v.number,
        "startup_time_ms": 0,
        "metadata": version_metadata(script, v, has_preview),
        "annotations": v.annotations,
        "resources": {
            "bindings": bindings(v),
            "script": {
                "etag": v.etag,
                "handlers": v.handlers,
                "named_handlers": [],
                "last_deployed_from": last_deployed_from(script),
            },
            "script_runtime": {
                "compatibility_date": v.compatibility_date,
                "compatibility_flags": v.compatibility_flags,
                "usage_model": v.usage_model,
                "limits": v.limits.clone().unwrap_or_else(|| json!({"cpu_ms": 30000})),
                "migration_tag": script.migration_tag,
            },
        },
    })
}

/// A versions list item.
pub(crate) fn version_item(script: &Script, v: &Version, has_preview: bool) -> Value {
    json!({
        "id": v.id,
        "number": v.number,
        "metadata": version_metadata(script, v, has_preview),
        "annotations": v.annotations,
    })
}

pub(crate) fn deployment(d: &Deployment) -> Value {
    json!({
        "id": d.id,
        "created_on": ts(&d.created_on),
        "source": d.source,
        "strategy": d.strategy,
        "author_email": d.author_email,
        "versions": d.versions.iter().map(|v| json!({
            "version_id": v.version_id,
            "percentage": v.percentage,
        })).collect::<Vec<_>>(),
        "annotations": d.annotations,
    })
}

/// `GET .../settings`: configuration of the latest version plus script-level fields.
pub(crate) fn settings(script: &Script) -> Value {
    let v = script.latest_version();
    json!({
        "bindings": v.map(bindings).unwrap_or_default(),
        "compatibility_date": v.map(|v| v.compatibility_date.clone()),
        "compatibility_flags": v.map(|v| v.compatibility_flags.clone()).unwrap_or_default(),
        "usage_model": v.map(|v| v.usage_model.clone()).unwrap_or_else(|| "standard".into()),
        "placement": v.and_then(|v| v.placement.clone()).unwrap_or_else(|| json!({})),
        "limits": v.and_then(|v| v.limits.clone()).unwrap_or_else(|| json!({"cpu_ms": 30000})),
        "annotations": v.map(|v| json!(v.annotations)).unwrap_or_else(|| json!({})),
        "logpush": script.logpush,
        "observability": script.observability.clone().unwrap_or_else(|| json!({"enabled": false})),
        "tags": tags_value(script),
        "tail_consumers": script.tail_consumers,
    })
}

/// `GET|PATCH .../script-settings`.
pub(crate) fn script_settings(script: &Script) -> Value {
    json!({
        "logpush": script.logpush,
        "observability": script.observability.clone().unwrap_or_else(|| json!({"enabled": false})),
        "tags": tags_value(script),
        "tail_consumers": script.tail_consumers,
    })
}

pub(crate) fn route(r: &Route) -> Value {
    match &r.script {
        Some(s) => json!({"id": r.id, "pattern": r.pattern, "script": s}),
        None => json!({"id": r.id, "pattern": r.pattern}),
    }
}

pub(crate) fn custom_domain(d: &CustomDomain) -> Value {
    json!({
        "id": d.id,
        "hostname": d.hostname,
        "service": d.service,
        "zone_id": d.zone_id,
        "zone_name": d.zone_name,
        "cert_id": d.cert_id,
        "environment": d.environment,
    })
}

pub(crate) fn zone(z: &Zone, account: Option<&Account>) -> Value {
    json!({
        "id": z.id,
        "name": z.name,
        "status": "active",
        "paused": false,
        "type": "full",
        "development_mode": 0,
        "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
        "original_name_servers": null,
        "original_registrar": null,
        "original_dnshost": null,
        "created_on": ts(&z.created_on),
        "modified_on": ts(&z.created_on),
        "activated_on": ts(&z.created_on),
        "account": {
            "id": z.account_id,
            "name": account.map(|a| a.name.clone()).unwrap_or_default(),
        },
        "owner": {"id": null, "type": "user", "email": null},
        "permissions": ["#zone:read", "#zone:edit", "#worker:read", "#worker:edit", "#dns_records:read", "#dns_records:edit"],
        "plan": {
            "id": "0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
            "name": "Free Website",
            "price": 0,
            "currency": "USD",
            "frequency": "",
            "is_subscribed": false,
            "can_subscribe": false,
            "legacy_id": "free",
            "legacy_discount": false,
            "externally_managed": false,
        },
        "meta": {
            "step": 2,
            "custom_certificate_quota": 0,
            "page_rule_quota": 3,
            "phishing_detected": false,
        },
        "vanity_name_servers": [],
    })
}

pub(crate) fn dns_record(r: &DnsRecord) -> Value {
    let proxiable = matches!(r.record_type.as_str(), "A" | "AAAA" | "CNAME");
    let mut out = json!({
        "id": r.id,
        "name": r.name,
        "type": r.record_type,
        "content": r.content,
        "ttl": r.ttl,
        "proxied": r.proxied,
        "proxiable": proxiable,
        "comment": r.comment,
        "tags": r.tags,
        "settings": r.settings,
        "meta": {},
        "created_on": ts(&r.created_on),
        "modified_on": ts(&r.modified_on),
    });
    if let Some(p) = r.priority {
        out["priority"] = json!(p);
    }
    if let Some(d) = &r.data {
        out["data"] = d.clone();
    }
    out
}

/// D1 database object; `file_size` and `num_tables` come from the live SQLite file.
pub(crate) fn d1_database(db: &D1Database, file_size: u64, num_tables: u64) -> Value {
    json!({
        "uuid": db.uuid,
        "name": db.name,
        "created_at": ts(&db.created_at),
        "version": "production",
        "file_size": file_size,
        "num_tables": num_tables,
        "jurisdiction": db.jurisdiction,
        "primary_location_hint": db.primary_location_hint,
        "running_in_region": region(db),
        "created_in_region": region(db),
        "read_replication": {"mode": db.read_replication_mode},
    })
}

fn region(db: &D1Database) -> String {
    db.primary_location_hint.as_deref().unwrap_or("weur").to_ascii_uppercase()
}

pub(crate) fn account(a: &Account) -> Value {
    json!({
        "id": a.id,
        "name": a.name,
        "type": "standard",
        "settings": {
            "enforce_twofactor": false,
            "api_access_enabled": null,
            "access_approval_expiry": null,
        },
        "created_on": ts(&a.created_on),
    })
}
