//! DNS records: create, list with filters, get, replace, patch, delete.

use std::net::{Ipv4Addr, Ipv6Addr};

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::{JsonBody, Params};
use crate::app::SharedApp;
use crate::envelope::{ApiError, ApiResult, ok, ok_paged, paginate};
use crate::ids;
use crate::model::{DnsRecord, Zone};
use crate::routes::zones::zone;
use crate::views;

pub(crate) fn router() -> Router<SharedApp> {
    Router::new().route("/zones/{zone_id}/dns_records", get(list_records).post(create_record)).route(
        "/zones/{zone_id}/dns_records/{record_id}",
        get(get_record).put(replace_record).patch(patch_record).delete(delete_record),
    )
}

const TYPES: &[&str] = &[
    "A", "AAAA", "CAA", "CERT", "CNAME", "DNSKEY", "DS", "HTTPS", "LOC", "MX", "NAPTR", "NS", "PTR", "SMIMEA", "SRV",
    "SSHFP", "SVCB", "TLSA", "TXT", "URI",
];

/// Types whose value lives in `data` rather than `content`.
const DATA_TYPES: &[&str] =
    &["CAA", "CERT", "DNSKEY", "DS", "HTTPS", "LOC", "NAPTR", "SMIMEA", "SRV", "SSHFP", "SVCB", "TLSA", "URI"];

fn bad(code: u32, msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, msg)
}

fn record_not_found(id: &str) -> ApiError {
    ApiError::not_found(81044, format!("Record {id} does not exist."))
}

/// Expand a record name to the FQDN in `zone` (`@` = apex; relative names get the zone).
fn fqdn(name: &str, zone: &str) -> String {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    let zone = zone.to_ascii_lowercase();
    if name == "@" || name.is_empty() {
        zone
    } else if name == zone || name.ends_with(&format!(".{zone}")) {
        name
    } else {
        format!("{name}.{zone}")
    }
}

/// Build a validated record from a full JSON object (POST/PUT, or PATCH after merging).
fn record_from(body: &Value, zone: &Zone, id: String, created: Option<&DnsRecord>) -> Result<DnsRecord, ApiError> {
    let obj = body.as_object().ok_or_else(|| ApiError::invalid_body("expected a JSON object"))?;
    let record_type = obj
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase)
        .ok_or_else(|| bad(9000, "DNS record type is required"))?;
    if !TYPES.contains(&record_type.as_str()) {
        return Err(bad(9000, format!("Invalid DNS record type {record_type}")));
    }
    let name = obj.get("name").and_then(Value::as_str).ok_or_else(|| bad(9000, "DNS record name is required"))?;
    let name = fqdn(name, &zone.name);
    let data = obj.get("data").filter(|d| !d.is_null()).cloned();
    let content = obj.get("content").and_then(Value::as_str).unwrap_or_default().to_string();
    if content.is_empty() && !(DATA_TYPES.contains(&record_type.as_str()) && data.is_some()) {
        return Err(bad(9000, "DNS record content is required"));
    }
    match record_type.as_str() {
        "A" if content.parse::<Ipv4Addr>().is_err() => {
            return Err(bad(9005, "Content for A record must be a valid IPv4 address."));
        }
        "AAAA" if content.parse::<Ipv6Addr>().is_err() => {
            return Err(bad(9006, "Content for AAAA record must be a valid IPv6 address."));
        }
        "CNAME" if content.contains(char::is_whitespace) => {
            return Err(bad(9007, "Content for CNAME record is invalid."));
        }
        _ => {}
    }
    let proxied = match obj.get("proxied") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad(9003, "proxied must be a boolean")),
    };
    if proxied && !matches!(record_type.as_str(), "A" | "AAAA" | "CNAME") {
        return Err(bad(9004, "This record type cannot be proxied."));
    }
    let ttl = match obj.get("ttl") {
        None | Some(Value::Null) => 1,
        Some(v) => v
            .as_u64()
            .filter(|t| *t == 1 || (60..=86400).contains(t))
            .ok_or_else(|| bad(9021, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic."))?
            as u32,
    };
    let ttl = if proxied { 1 } else { ttl };
    let priority = match obj.get("priority") {
        None | Some(Value::Null) => None,
        Some(v) => {
            Some(v.as_u64().filter(|p| *p <= 65535).ok_or_else(|| bad(9000, "priority must be an integer 0..65535"))?)
        }
    };
    if record_type == "MX" && priority.is_none() {
        return Err(bad(9100, "MX records need a priority"));
    }
    let tags = match obj.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| t.as_str().map(str::to_string).ok_or_else(|| bad(9000, "tags must be strings")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad(9000, "tags must be a list of strings")),
    };
    let comment = obj.get("comment").and_then(Value::as_str).filter(|c| !c.is_empty()).map(str::to_string);
    let settings = obj.get("settings").filter(|s| s.is_object()).cloned().unwrap_or_else(|| json!({}));
    let now = ids::now();
    Ok(DnsRecord {
        id,
        name,
        record_type,
        content,
        ttl,
        proxied,
        comment,
        tags,
        settings,
        priority,
        data,
        created_on: created.map(|c| c.created_on).unwrap_or(now),
        modified_on: now,
    })
}

/// Conflicts with the zone's other records (81057 identical, 81053/81054 CNAME rules).
fn check_conflicts(zone: &Zone, rec: &DnsRecord) -> Result<(), ApiError> {
    let others: Vec<&DnsRecord> = zone.dns_records.iter().filter(|r| r.id != rec.id && r.name == rec.name).collect();
    if others.iter().any(|r| {
        r.record_type == rec.record_type
            && r.content.eq_ignore_ascii_case(&rec.content)
            && r.data == rec.data
            && r.priority == rec.priority
    }) {
        return Err(bad(81057, "Record already exists."));
    }
    if rec.record_type == "CNAME" && others.iter().any(|r| matches!(r.record_type.as_str(), "A" | "AAAA" | "CNAME")) {
        return Err(bad(81053, "An A, AAAA, or CNAME record with that host already exists."));
    }
    if rec.record_type != "CNAME" && others.iter().any(|r| r.record_type == "CNAME") {
        return Err(bad(81054, "A CNAME record with that host already exists."));
    }
    Ok(())
}

async fn create_record(
    State(app): State<SharedApp>,
    Path(zone_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let rec = app.write(|s| {
        let z = s.zones.get_mut(&zone_id).ok_or_else(|| ApiError::no_route(&format!("/zones/{zone_id}")))?;
        let rec = record_from(&body, z, ids::hex32(), None)?;
        check_conflicts(z, &rec)?;
        z.dns_records.push(rec.clone());
        Ok(rec)
    })?;
    ok(views::dns_record(&rec))
}

async fn get_record(State(app): State<SharedApp>, Path((zone_id, record_id)): Path<(String, String)>) -> ApiResult {
    let r = app.read(|s| {
        zone(s, &zone_id)?
            .dns_records
            .iter()
            .find(|r| r.id == record_id)
            .map(views::dns_record)
            .ok_or_else(|| record_not_found(&record_id))
    })?;
    ok(r)
}

fn update(
    app: &SharedApp,
    zone_id: &str,
    record_id: &str,
    build: impl FnOnce(&Zone, &DnsRecord) -> Result<DnsRecord, ApiError>,
) -> ApiResult {
    let rec = app.write(|s| {
        let z = s.zones.get_mut(zone_id).ok_or_else(|| ApiError::no_route(&format!("/zones/{zone_id}")))?;
        let pos = z.dns_records.iter().position(|r| r.id == record_id).ok_or_else(|| record_not_found(record_id))?;
        let rec = build(z, &z.dns_records[pos])?;
        check_conflicts(z, &rec)?;
        z.dns_records[pos] = rec.clone();
        Ok(rec)
    })?;
    ok(views::dns_record(&rec))
}

async fn replace_record(
    State(app): State<SharedApp>,
    Path((zone_id, record_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    update(&app, &zone_id, &record_id, |z, old| record_from(&body, z, old.id.clone(), Some(old)))
}

async fn patch_record(
    State(app): State<SharedApp>,
    Path((zone_id, record_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult {
    let patch = body.as_object().cloned().ok_or_else(|| ApiError::invalid_body("expected a JSON object"))?;
    update(&app, &zone_id, &record_id, |z, old| {
        let mut merged: Map<String, Value> = match serde_json::to_value(old) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for (k, v) in patch {
            merged.insert(k, v);
        }
        record_from(&Value::Object(merged), z, old.id.clone(), Some(old))
    })
}

async fn delete_record(State(app): State<SharedApp>, Path((zone_id, record_id)): Path<(String, String)>) -> ApiResult {
    app.write(|s| {
        let z = s.zones.get_mut(&zone_id).ok_or_else(|| ApiError::no_route(&format!("/zones/{zone_id}")))?;
        let before = z.dns_records.len();
        z.dns_records.retain(|r| r.id != record_id);
        if z.dns_records.len() == before {
            return Err(record_not_found(&record_id));
        }
        Ok(())
    })?;
    ok(json!({"id": record_id}))
}

/// One string filter: `field=` / `field.exact=` / `.contains` / `.startswith` / `.endswith`
/// (case-insensitive). `None` when the request has no such filter.
fn string_filter(params: &Params, field: &str, value: Option<&str>) -> Option<bool> {
    let v = value.unwrap_or_default().to_lowercase();
    let mut result = None;
    let mut and = |ok: bool| result = Some(result.unwrap_or(true) && ok);
    for (suffix, test) in [("", 0u8), (".exact", 0), (".contains", 1), (".startswith", 2), (".endswith", 3)] {
        if let Some(arg) = params.get(&format!("{field}{suffix}")) {
            let arg = arg.to_lowercase();
            and(match test {
                0 => v == arg,
                1 => v.contains(&arg),
                2 => v.starts_with(&arg),
                _ => v.ends_with(&arg),
            });
        }
    }
    if params.get(&format!("{field}.present")).is_some() {
        and(value.is_some());
    }
    if params.get(&format!("{field}.absent")).is_some() {
        and(value.is_none());
    }
    result
}

fn record_matches(params: &Params, zone: &Zone, r: &DnsRecord) -> bool {
    let mut checks: Vec<bool> = Vec::new();
    let types = params.all("type");
    if !types.is_empty() {
        checks.push(types.iter().any(|t| t.eq_ignore_ascii_case(&r.record_type)));
    }
    let name_filters: Vec<(String, String)> =
        ["name", "name.exact", "name.contains", "name.startswith", "name.endswith"]
            .iter()
            .filter_map(|k| params.get(k).map(|v| (k.to_string(), v.to_string())))
            .collect();
    if !name_filters.is_empty() {
        // exact name filters accept relative names too
        let expanded: Vec<(String, String)> = name_filters
            .into_iter()
            .map(|(k, v)| if k == "name" || k == "name.exact" { (k, fqdn(&v, &zone.name)) } else { (k, v) })
            .collect();
        let p = Params(expanded);
        if let Some(ok) = string_filter(&p, "name", Some(&r.name)) {
            checks.push(ok);
        }
    }
    if let Some(ok) = string_filter(params, "content", Some(&r.content)) {
        checks.push(ok);
    }
    if let Some(ok) = string_filter(params, "comment", r.comment.as_deref()) {
        checks.push(ok);
    }
    if let Some(p) = params.get("proxied") {
        checks.push((p == "true") == r.proxied);
    }
    for tag in params.all("tag").into_iter().chain(params.all("tag.exact")) {
        checks.push(r.tags.iter().any(|t| t.eq_ignore_ascii_case(tag)));
    }
    for tag in params.all("tag.present") {
        checks.push(r.tags.iter().any(|t| t.split(':').next() == Some(tag)));
    }
    for tag in params.all("tag.absent") {
        checks.push(!r.tags.iter().any(|t| t.split(':').next() == Some(tag)));
    }
    if let Some(q) = params.get("search") {
        let q = q.to_lowercase();
        checks.push(
            r.name.contains(&q)
                || r.content.to_lowercase().contains(&q)
                || r.comment.as_deref().is_some_and(|c| c.to_lowercase().contains(&q)),
        );
    }
    if checks.is_empty() {
        return true;
    }
    if params.get("match") == Some("any") { checks.into_iter().any(|c| c) } else { checks.into_iter().all(|c| c) }
}

async fn list_records(State(app): State<SharedApp>, Path(zone_id): Path<String>, params: Params) -> ApiResult {
    let (page, per_page) = params.paging(100, 5_000_000)?;
    let mut records: Vec<DnsRecord> = app.read(|s| {
        let z = zone(s, &zone_id)?;
        Ok::<_, ApiError>(z.dns_records.iter().filter(|r| record_matches(&params, z, r)).cloned().collect())
    })?;
    match params.get("order") {
        Some("type") => records.sort_by(|a, b| a.record_type.cmp(&b.record_type)),
        Some("name") => records.sort_by(|a, b| a.name.cmp(&b.name)),
        Some("content") => records.sort_by(|a, b| a.content.cmp(&b.content)),
        Some("ttl") => records.sort_by_key(|r| r.ttl),
        Some("proxied") => records.sort_by_key(|r| r.proxied),
        _ => {}
    }
    if params.get("direction") == Some("desc") {
        records.reverse();
    }
    let values: Vec<Value> = records.iter().map(views::dns_record).collect();
    let (slice, info) = paginate(&values, page, per_page);
    ok_paged(slice, info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_expand_to_fqdn() {
        assert_eq!(fqdn("@", "example.com"), "example.com");
        assert_eq!(fqdn("www", "example.com"), "www.example.com");
        assert_eq!(fqdn("WWW.example.com.", "example.com"), "www.example.com");
    }
}
