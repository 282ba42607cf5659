//! D1 export: `POST .../d1/database/:db/export` with `output_format: "polling"`, repeated with
//! `current_bookmark` while the task is `active`, until it is `complete` with a signed URL
//! (valid 1 hour) to the SQL dump. An export not polled continually is cancelled, so
//! [`CloudflareClient::export_d1`] polls without sleeping between calls (as wrangler does).

use serde::{Deserialize, Serialize};

use crate::client::{CloudflareClient, Request, enc};
use crate::de;
use crate::error::CloudflareError;

pub const EP_D1_EXPORT: &str = "/accounts/:account/d1/database/:database/export";

/// Polls before giving up on an export that never completes.
pub const MAX_EXPORT_POLLS: u32 = 600;

/// `dump_options`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct D1DumpOptions {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_data: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_schema: bool,
    /// Empty = every table.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
}

#[derive(Serialize)]
struct ExportBody<'a> {
    output_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dump_options: Option<&'a D1DumpOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_bookmark: Option<&'a str>,
}

/// The finished dump.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct D1ExportFile {
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub filename: String,
    /// Download URL of the SQL text, valid 1 hour.
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub signed_url: String,
}

/// One polling answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct D1ExportStatus {
    #[serde(default, deserialize_with = "de::null_default")]
    pub success: Option<bool>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub at_bookmark: Option<String>,
    /// `active`, `complete` or `error`.
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_vec")]
    pub messages: Vec<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub error: Option<String>,
    #[serde(default)]
    pub result: Option<D1ExportFile>,
}

impl CloudflareClient {
    /// One export call (start, or poll with `current_bookmark`).
    pub async fn export_d1_step(
        &self,
        account_id: &str,
        database_id: &str,
        options: Option<&D1DumpOptions>,
        current_bookmark: Option<&str>,
    ) -> Result<D1ExportStatus, CloudflareError> {
        let path = format!("/accounts/{}/d1/database/{}/export", enc(account_id), enc(database_id));
        let body = ExportBody { output_format: "polling", dump_options: options, current_bookmark };
        let r: Option<D1ExportStatus> = self.call(Request::post(EP_D1_EXPORT, path).json(&body)?).await?;
        Ok(r.unwrap_or_default())
    }

    /// Start an export and poll it to completion: the bookmark it was taken at and the file.
    pub async fn export_d1(
        &self,
        account_id: &str,
        database_id: &str,
        options: Option<&D1DumpOptions>,
    ) -> Result<(String, D1ExportFile), CloudflareError> {
        let mut bookmark: Option<String> = None;
        for _ in 0..MAX_EXPORT_POLLS {
            let s = self.export_d1_step(account_id, database_id, options, bookmark.as_deref()).await?;
            let failed = s.success == Some(false) || s.status.as_deref() == Some("error");
            if failed {
                return Err(CloudflareError::InvalidInput(format!(
                    "D1 export of {database_id} failed: {}",
                    s.error.as_deref().unwrap_or("no reason given")
                )));
            }
            if let Some(b) = s.at_bookmark.clone() {
                bookmark = Some(b);
            }
            if s.status.as_deref() == Some("complete")
                && let Some(file) = s.result.filter(|f| !f.signed_url.is_empty())
            {
                return Ok((bookmark.unwrap_or_default(), file));
            }
            if bookmark.is_none() {
                return Err(CloudflareError::InvalidInput(format!(
                    "D1 export of {database_id}: the answer carried neither a result nor at_bookmark"
                )));
            }
        }
        Err(CloudflareError::InvalidInput(format!(
            "D1 export of {database_id} did not complete after {MAX_EXPORT_POLLS} polls"
        )))
    }
}
