//! Tolerant serde helpers: Cloudflare responses omit keys, send `null` for empty arrays, and
//! occasionally send numbers as strings.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// `null` or a missing key become `T::default()`.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A list that may be `null`, absent, or (defensively) not a list at all: anything that is not an
/// array of `T` becomes empty.
pub(crate) fn lenient_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let v = Value::deserialize(d)?;
    Ok(match v {
        Value::Array(_) => serde_json::from_value(v).unwrap_or_default(),
        _ => Vec::new(),
    })
}

/// An error/message code given as an integer or as a string (`"7000"`). Unparseable codes become 0.
pub(crate) fn lenient_code<'de, D>(d: D) -> Result<u32, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(code_from_value(&Value::deserialize(d)?))
}

pub(crate) fn code_from_value(v: &Value) -> u32 {
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64))
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// A string that may be `null`, absent, a number or a bool; other shapes become empty.
pub(crate) fn lenient_string<'de, D>(d: D) -> Result<String, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    })
}

/// An optional string; `null`, absent or non-string values become `None` (numbers are kept as text).
pub(crate) fn lenient_opt_string<'de, D>(d: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// An optional non-negative integer given as a number or numeric string.
pub(crate) fn lenient_opt_u64<'de, D>(d: D) -> Result<Option<u64>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => {
            n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0).map(|f| f as u64))
        }
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// An RFC 3339 timestamp; absent, `null` or unparseable values become `None`.
pub(crate) fn lenient_datetime<'de, D>(d: D) -> Result<Option<DateTime<Utc>>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Value::deserialize(d)? {
        Value::String(s) => parse_datetime(&s),
        _ => None,
    })
}

pub(crate) fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize, Debug)]
    struct T {
        #[serde(default, deserialize_with = "null_default")]
        a: Vec<u32>,
        #[serde(default, deserialize_with = "lenient_vec")]
        b: Vec<u32>,
        #[serde(default, deserialize_with = "lenient_code")]
        c: u32,
        #[serde(default, deserialize_with = "lenient_datetime")]
        d: Option<DateTime<Utc>>,
        #[serde(default, deserialize_with = "lenient_string")]
        e: String,
    }

    #[test]
    fn tolerant_shapes() {
        let t: T =
            serde_json::from_value(json!({"a": null, "b": {"x": 1}, "c": "7000", "d": "garbage", "e": null})).unwrap();
        assert!(t.a.is_empty() && t.b.is_empty());
        assert_eq!(t.c, 7000);
        assert!(t.d.is_none());
        assert_eq!(t.e, "");
        let t: T = serde_json::from_value(json!({})).unwrap();
        assert_eq!(t.c, 0);
        let t: T =
            serde_json::from_value(json!({"a": [1], "b": [2], "c": 10021, "d": "2025-01-02T03:04:05.123456Z", "e": 5}))
                .unwrap();
        assert_eq!((t.a, t.b, t.c, t.e.as_str()), (vec![1], vec![2], 10021, "5"));
        assert_eq!(t.d.map(|d| d.timestamp()), Some(1735787045));
    }

    #[test]
    fn code_edge_cases() {
        assert_eq!(code_from_value(&json!(-1)), 0);
        assert_eq!(code_from_value(&json!(1e12)), 0);
        assert_eq!(code_from_value(&json!(971.0)), 971);
        assert_eq!(code_from_value(&json!(" 1000 ")), 1000);
        assert_eq!(code_from_value(&json!("abc")), 0);
        assert_eq!(code_from_value(&json!(null)), 0);
    }
}
