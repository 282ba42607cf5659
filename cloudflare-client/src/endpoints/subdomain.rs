//! workers.dev: the account subdomain and each script's workers.dev switch.

use serde::{Deserialize, Serialize};

use crate::client::{CloudflareClient, Request, enc};
use crate::de;
use crate::error::CloudflareError;

pub const EP_ACCOUNT_SUBDOMAIN: &str = "/accounts/:account/workers/subdomain";
pub const EP_SCRIPT_SUBDOMAIN: &str = "/accounts/:account/workers/scripts/:script/subdomain";

/// Behaviour-version pin wrangler sends on the script subdomain POST.
const SCRIPT_API_DATE_HEADER: &str = "Cloudflare-Workers-Script-Api-Date";
const SCRIPT_API_DATE: &str = "2025-08-01";

/// Code the account subdomain GET answers when none was ever registered.
const CODE_NO_SUBDOMAIN: u32 = 10007;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSubdomain {
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub subdomain: String,
}

/// Whether a script is reachable on `https://{script}.{subdomain}.workers.dev`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptSubdomain {
    #[serde(default, deserialize_with = "de::null_default")]
    pub enabled: bool,
    #[serde(default, deserialize_with = "de::null_default")]
    pub previews_enabled: bool,
}

/// The workers.dev URL of a script.
pub fn workers_dev_url(script: &str, subdomain: &str) -> String {
    format!("https://{script}.{subdomain}.workers.dev")
}

fn script_subdomain_path(account: &str, script: &str) -> String {
    format!("/accounts/{}/workers/scripts/{}/subdomain", enc(account), enc(script))
}

impl CloudflareClient {
    /// The account's workers.dev subdomain; `None` when the account never registered one
    /// (code 10007).
    pub async fn get_account_subdomain(&self, account_id: &str) -> Result<Option<String>, CloudflareError> {
        let req = Request::get(EP_ACCOUNT_SUBDOMAIN, format!("/accounts/{}/workers/subdomain", enc(account_id)));
        match self.call::<Option<AccountSubdomain>>(req).await {
            Ok(s) => Ok(s.map(|s| s.subdomain).filter(|s| !s.is_empty())),
            Err(e) if e.has_code(CODE_NO_SUBDOMAIN) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PUT .../workers/subdomain`: register or rename the account subdomain.
    pub async fn put_account_subdomain(&self, account_id: &str, subdomain: &str) -> Result<String, CloudflareError> {
        let req = Request::put(EP_ACCOUNT_SUBDOMAIN, format!("/accounts/{}/workers/subdomain", enc(account_id)))
            .json(&serde_json::json!({ "subdomain": subdomain }))?;
        let r: AccountSubdomain = self.call(req).await?;
        Ok(r.subdomain)
    }

    pub async fn get_script_subdomain(
        &self,
        account_id: &str,
        script: &str,
    ) -> Result<ScriptSubdomain, CloudflareError> {
        let r: Option<ScriptSubdomain> =
            self.call(Request::get(EP_SCRIPT_SUBDOMAIN, script_subdomain_path(account_id, script))).await?;
        Ok(r.unwrap_or_default())
    }

    /// `POST .../subdomain` (idempotent): enable or disable workers.dev for the script.
    /// `previews_enabled` is always sent explicitly.
    pub async fn set_script_subdomain(
        &self,
        account_id: &str,
        script: &str,
        enabled: bool,
        previews_enabled: bool,
    ) -> Result<ScriptSubdomain, CloudflareError> {
        let req = Request::post(EP_SCRIPT_SUBDOMAIN, script_subdomain_path(account_id, script))
            .header(SCRIPT_API_DATE_HEADER, SCRIPT_API_DATE)
            .json(&ScriptSubdomain { enabled, previews_enabled })?;
        let r: Option<ScriptSubdomain> = self.call(req).await?;
        Ok(r.unwrap_or(ScriptSubdomain { enabled, previews_enabled }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_and_body() {
        assert_eq!(workers_dev_url("api", "acme"), "https://api.acme.workers.dev");
        let body = serde_json::to_value(ScriptSubdomain { enabled: true, previews_enabled: false }).unwrap();
        assert_eq!(body, serde_json::json!({"enabled": true, "previews_enabled": false}));
        let s: ScriptSubdomain = serde_json::from_value(serde_json::json!({"enabled": true})).unwrap();
        assert!(s.enabled && !s.previews_enabled);
    }
}
