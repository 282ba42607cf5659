//! Cron triggers of a script: `GET|PUT .../scripts/:script/schedules`. The PUT replaces the
//! whole set (`[]` removes every trigger).

use serde::{Deserialize, Serialize};

use crate::client::{CloudflareClient, Request, enc};
use crate::de;
use crate::error::CloudflareError;

pub const EP_SCHEDULES: &str = "/accounts/:account/workers/scripts/:script/schedules";

/// One cron trigger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronTrigger {
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub cron: String,
    #[serde(default, deserialize_with = "de::lenient_opt_string", skip_serializing)]
    pub created_on: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string", skip_serializing)]
    pub modified_on: Option<String>,
}

impl CronTrigger {
    pub fn new(cron: impl Into<String>) -> Self {
        Self { cron: cron.into(), created_on: None, modified_on: None }
    }
}

#[derive(Deserialize)]
struct Schedules {
    #[serde(default, deserialize_with = "de::lenient_vec")]
    schedules: Vec<CronTrigger>,
}

/// Shape check of a cron expression: five fields (six with seconds/years tolerated) of
/// `0-9 * , - / ? L W #` and month/day names, or an `@` shortcut.
pub fn validate_cron(cron: &str) -> Result<(), CloudflareError> {
    let c = cron.trim();
    let shortcut = matches!(c, "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight" | "@hourly");
    let fields: Vec<&str> = c.split_whitespace().collect();
    let chars_ok = fields.iter().all(|f| f.chars().all(|ch| ch.is_ascii_alphanumeric() || "*,-/?#".contains(ch)));
    if shortcut || ((5..=6).contains(&fields.len()) && chars_ok) {
        Ok(())
    } else {
        Err(CloudflareError::InvalidInput(format!("cron expression {cron:?} is not a valid 5-field cron")))
    }
}

fn path(account: &str, script: &str) -> String {
    format!("/accounts/{}/workers/scripts/{}/schedules", enc(account), enc(script))
}

impl CloudflareClient {
    /// `GET .../schedules`.
    pub async fn get_cron_triggers(&self, account_id: &str, script: &str) -> Result<Vec<CronTrigger>, CloudflareError> {
        let r: Option<Schedules> = self.call(Request::get(EP_SCHEDULES, path(account_id, script))).await?;
        Ok(r.map(|s| s.schedules).unwrap_or_default())
    }

    /// `PUT .../schedules` with exactly `crons` (replaces the set; empty removes all).
    pub async fn put_cron_triggers(
        &self,
        account_id: &str,
        script: &str,
        crons: &[String],
    ) -> Result<Vec<CronTrigger>, CloudflareError> {
        for c in crons {
            validate_cron(c)?;
        }
        let body: Vec<CronTrigger> = crons.iter().map(CronTrigger::new).collect();
        let req = Request::put(EP_SCHEDULES, path(account_id, script)).json(&body)?;
        let r: Option<Schedules> = self.call(req).await?;
        Ok(r.map(|s| s.schedules).unwrap_or(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_shapes() {
        for ok in ["*/5 * * * *", "0 0 * * MON", "@daily", "0 12 L * ?"] {
            assert!(validate_cron(ok).is_ok(), "{ok}");
        }
        for bad in ["", "* * *", "rm -rf /", "* * * * * * * *"] {
            assert!(validate_cron(bad).is_err(), "{bad}");
        }
        let body = serde_json::to_value(vec![CronTrigger::new("* * * * *")]).unwrap();
        assert_eq!(body, serde_json::json!([{"cron": "* * * * *"}]));
    }
}
