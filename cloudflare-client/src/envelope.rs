//! Decoding of Cloudflare's response envelope:
//! `{success, errors[], messages[], result, result_info}`. Missing keys count as empty; non-JSON
//! or non-envelope bodies are handled by status.

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::de;
use crate::error::{ApiErrorItem, CloudflareError};

/// Paging metadata of list responses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultInfo {
    #[serde(default, deserialize_with = "de::lenient_opt_u64")]
    pub page: Option<u64>,
    #[serde(default, deserialize_with = "de::lenient_opt_u64")]
    pub per_page: Option<u64>,
    #[serde(default, deserialize_with = "de::lenient_opt_u64")]
    pub count: Option<u64>,
    #[serde(default, deserialize_with = "de::lenient_opt_u64")]
    pub total_count: Option<u64>,
    #[serde(default, deserialize_with = "de::lenient_opt_u64")]
    pub total_pages: Option<u64>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub cursor: Option<String>,
}

/// A successful envelope.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Envelope {
    /// `result`, `Value::Null` when absent.
    pub result: Value,
    pub result_info: Option<ResultInfo>,
    pub messages: Vec<ApiErrorItem>,
}

const ENVELOPE_KEYS: &[&str] = &["success", "errors", "messages", "result", "result_info"];

fn items(obj: &Map<String, Value>, key: &str) -> Vec<ApiErrorItem> {
    match obj.get(key) {
        Some(v @ Value::Array(_)) => serde_json::from_value(v.clone()).unwrap_or_default(),
        // A single object or string where a list was expected.
        Some(v @ (Value::Object(_) | Value::String(_))) => {
            serde_json::from_value::<ApiErrorItem>(v.clone()).map(|i| vec![i]).unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

/// Decode a response body given its HTTP status.
///
/// - 2xx with an empty body: success with a null result (DELETE may answer 200/204 empty).
/// - JSON object carrying envelope keys: `success` decides (when absent: 2xx and no `errors`).
/// - Anything else: success bodies are a decode error, failure bodies an API error without items.
pub(crate) fn decode(
    status: u16,
    body: &[u8],
    method: &Method,
    endpoint: &'static str,
) -> Result<Envelope, CloudflareError> {
    let ok_status = (200..300).contains(&status);
    let api_err = |errors: Vec<ApiErrorItem>| CloudflareError::Api { status, errors, method: method.clone(), endpoint };
    if body.iter().all(u8::is_ascii_whitespace) {
        return if ok_status { Ok(Envelope::default()) } else { Err(api_err(Vec::new())) };
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) if ok_status => {
            return Err(CloudflareError::Decode {
                method: method.clone(),
                endpoint,
                detail: format!("response is not JSON ({})", e.classify_name()),
            });
        }
        Err(_) => return Err(api_err(Vec::new())),
    };
    let Value::Object(mut obj) = value else {
        return if ok_status {
            Err(CloudflareError::Decode {
                method: method.clone(),
                endpoint,
                detail: "response is not an envelope object".into(),
            })
        } else {
            Err(api_err(Vec::new()))
        };
    };
    if !ENVELOPE_KEYS.iter().any(|k| obj.contains_key(*k)) {
        return if ok_status {
            Err(CloudflareError::Decode {
                method: method.clone(),
                endpoint,
                detail: "response has no envelope keys".into(),
            })
        } else {
            Err(api_err(Vec::new()))
        };
    }
    let errors = items(&obj, "errors");
    let success = match obj.get("success") {
        Some(Value::Bool(b)) => *b,
        _ => ok_status && errors.is_empty(),
    };
    if !success || !ok_status {
        return Err(api_err(errors));
    }
    let messages = items(&obj, "messages");
    let result_info =
        obj.remove("result_info").filter(|v| v.is_object()).and_then(|v| serde_json::from_value::<ResultInfo>(v).ok());
    let result = obj.remove("result").unwrap_or(Value::Null);
    Ok(Envelope { result, result_info, messages })
}

/// The error for a non-2xx answer.
pub(crate) fn failure(status: u16, body: &[u8], method: &Method, endpoint: &'static str) -> CloudflareError {
    match decode(status, body, method, endpoint) {
        Err(e) => e,
        Ok(_) => CloudflareError::Api { status, errors: Vec::new(), method: method.clone(), endpoint },
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

/// Deserialize a `result` into the endpoint's type.
pub(crate) fn decode_result<T: DeserializeOwned>(
    result: Value,
    method: &Method,
    endpoint: &'static str,
) -> Result<T, CloudflareError> {
    serde_json::from_value(result).map_err(|e| CloudflareError::Decode {
        method: method.clone(),
        endpoint,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EP: &str = "/zones";

    fn dec(status: u16, body: &str) -> Result<Envelope, CloudflareError> {
        decode(status, body.as_bytes(), &Method::GET, EP)
    }

    #[test]
    fn success_envelope_with_paging() {
        let env = dec(
            200,
            r#"{"success":true,"errors":[],"messages":[{"code":10000,"message":"ok"}],"result":[{"id":"a"}],
               "result_info":{"page":1,"per_page":20,"count":1,"total_count":"1","total_pages":1}}"#,
        )
        .unwrap();
        assert_eq!(env.result, json!([{"id": "a"}]));
        assert_eq!(env.messages[0].code, 10000);
        let info = env.result_info.unwrap();
        assert_eq!(
            (info.page, info.per_page, info.total_count, info.total_pages),
            (Some(1), Some(20), Some(1), Some(1))
        );
    }

    #[test]
    fn missing_keys_are_empty() {
        let env = dec(200, r#"{"success":true}"#).unwrap();
        assert_eq!(env.result, Value::Null);
        assert!(env.messages.is_empty() && env.result_info.is_none());
        // success absent but 2xx with a result
        let env = dec(200, r#"{"result":{"id":"x"}}"#).unwrap();
        assert_eq!(env.result, json!({"id":"x"}));
        // null lists
        let env =
            dec(200, r#"{"success":true,"errors":null,"messages":null,"result":null,"result_info":null}"#).unwrap();
        assert_eq!(env, Envelope::default());
    }

    #[test]
    fn empty_body() {
        assert_eq!(dec(200, "").unwrap(), Envelope::default());
        assert_eq!(dec(204, "  \n").unwrap(), Envelope::default());
        let e = dec(502, "").unwrap_err();
        assert_eq!(e.status(), Some(502));
        assert!(e.api_errors().is_empty());
    }

    #[test]
    fn failure_envelope() {
        let e = dec(404, r#"{"success":false,"errors":[{"code":"7003","message":"Could not route"},{"code":7000,"message":"No route"}],"result":null}"#)
            .unwrap_err();
        assert_eq!(e.status(), Some(404));
        assert!(e.has_code(7003) && e.has_code(7000));
        // failure without result/messages keys
        let e =
            dec(400, r#"{"success":false,"errors":[{"code":10021,"message":"Uncaught SyntaxError"}]}"#).unwrap_err();
        assert!(e.has_code(10021));
        assert!(e.to_string().contains("[10021] Uncaught SyntaxError"), "{e}");
        // success:false with 200 is still a failure
        let e = dec(200, r#"{"success":false,"errors":[{"code":1000,"message":"Invalid API Token"}]}"#).unwrap_err();
        assert!(e.is_auth_error());
        // success absent, errors present
        let e = dec(200, r#"{"errors":[{"code":1,"message":"x"}]}"#).unwrap_err();
        assert!(e.has_code(1));
        // success:true but a 5xx status is not trusted
        assert!(dec(500, r#"{"success":true,"result":null}"#).is_err());
    }

    #[test]
    fn non_envelope_bodies() {
        let e = dec(502, "<html>Bad gateway</html>").unwrap_err();
        assert_eq!((e.status(), e.is_retryable()), (Some(502), true));
        let e = dec(200, "<html>hi</html>").unwrap_err();
        assert_eq!(e.reason(), "DecodeError");
        let e = dec(200, r#"[1,2]"#).unwrap_err();
        assert_eq!(e.reason(), "DecodeError");
        let e = dec(200, r#"{"foo":1}"#).unwrap_err();
        assert_eq!(e.reason(), "DecodeError");
        let e = dec(403, r#"{"foo":1}"#).unwrap_err();
        assert_eq!(e.status(), Some(403));
    }

    #[test]
    fn decode_result_error_names_endpoint() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Z {
            id: String,
        }
        let e = decode_result::<Z>(json!({"id": 5}), &Method::GET, "/zones/:zone").unwrap_err();
        assert!(e.to_string().starts_with("GET /zones/:zone: could not decode the response"), "{e}");
        assert!(decode_result::<Option<Z>>(Value::Null, &Method::GET, EP).unwrap().is_none());
    }
}
