//! Queues and their consumers.
//!
//! Create is not idempotent (11009, `is_conflict()`): find by name first
//! ([`CloudflareClient::find_queue`], which uses the exact-name filter wrangler uses).
//! A consumer is not part of the script upload: it is added to the queue after the Worker
//! exists, updated in place (PUT) when the Worker already consumes the queue.

use serde::{Deserialize, Serialize};

use crate::client::{CloudflareClient, Request, enc};
use crate::de;
use crate::error::CloudflareError;
use crate::pagination::{Page, collect_pages};

pub const EP_QUEUES: &str = "/accounts/:account/queues";
pub const EP_QUEUE: &str = "/accounts/:account/queues/:queue";
pub const EP_QUEUE_CONSUMERS: &str = "/accounts/:account/queues/:queue/consumers";
pub const EP_QUEUE_CONSUMER: &str = "/accounts/:account/queues/:queue/consumers/:consumer";

const QUEUES_PER_PAGE: u32 = 100;

/// Queue settings; `None` fields are left to the platform.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSettings {
    /// Seconds, 0..=86400.
    #[serde(default, deserialize_with = "de::lenient_opt_u64", skip_serializing_if = "Option::is_none")]
    pub delivery_delay: Option<u64>,
    #[serde(default, deserialize_with = "de::null_default", skip_serializing_if = "Option::is_none")]
    pub delivery_paused: Option<bool>,
    /// Seconds, 60..=1209600.
    #[serde(default, deserialize_with = "de::lenient_opt_u64", skip_serializing_if = "Option::is_none")]
    pub message_retention_period: Option<u64>,
}

/// A producer of a queue (a Worker binding it, or an R2 bucket's event notifications).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueProducer {
    #[serde(rename = "type", default, deserialize_with = "de::lenient_opt_string")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub script: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub bucket_name: Option<String>,
}

/// Consumer settings. `max_wait_time_ms` is milliseconds; `retry_delay` seconds;
/// `max_concurrency: None` = platform maximum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerSettings {
    #[serde(default, deserialize_with = "de::lenient_opt_u64", skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u64>,
    #[serde(default, deserialize_with = "de::lenient_opt_u64", skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u64>,
    #[serde(default, deserialize_with = "de::lenient_opt_u64", skip_serializing_if = "Option::is_none")]
    pub max_wait_time_ms: Option<u64>,
    #[serde(default, deserialize_with = "de::lenient_opt_u64")]
    pub max_concurrency: Option<u64>,
    #[serde(default, deserialize_with = "de::lenient_opt_u64", skip_serializing_if = "Option::is_none")]
    pub retry_delay: Option<u64>,
    /// HTTP pull consumers only.
    #[serde(default, deserialize_with = "de::lenient_opt_u64", skip_serializing_if = "Option::is_none")]
    pub visibility_timeout_ms: Option<u64>,
}

/// A consumer as returned by the API. The Worker is read from `script_name`, or from `script`
/// (the form embedded in queue objects).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueConsumer {
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub consumer_id: String,
    #[serde(rename = "type", default, deserialize_with = "de::lenient_opt_string")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub script_name: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub script: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub service: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub queue_name: Option<String>,
    /// `""` when none.
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub dead_letter_queue: Option<String>,
    #[serde(default, deserialize_with = "de::null_default")]
    pub settings: ConsumerSettings,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub created_on: Option<String>,
}

impl QueueConsumer {
    /// The consuming Worker, whichever field carried it.
    pub fn worker(&self) -> Option<&str> {
        [&self.script_name, &self.script, &self.service]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .find(|s| !s.is_empty())
    }

    /// The dead letter queue, `None` when unset or empty.
    pub fn dead_letter(&self) -> Option<&str> {
        self.dead_letter_queue.as_deref().filter(|d| !d.is_empty())
    }
}

/// A queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queue {
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub queue_id: String,
    #[serde(default, deserialize_with = "de::lenient_string")]
    pub queue_name: String,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub created_on: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_opt_string")]
    pub modified_on: Option<String>,
    #[serde(default, deserialize_with = "de::lenient_vec")]
    pub producers: Vec<QueueProducer>,
    #[serde(default, deserialize_with = "de::lenient_vec")]
    pub consumers: Vec<QueueConsumer>,
    #[serde(default, deserialize_with = "de::null_default")]
    pub settings: QueueSettings,
}

impl Queue {
    /// The embedded consumer of `worker`, if any.
    pub fn consumer_of(&self, worker: &str) -> Option<&QueueConsumer> {
        self.consumers.iter().find(|c| c.worker() == Some(worker))
    }
}

/// `POST .../queues` and `PUT .../queues/:id` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CreateQueue {
    pub queue_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<QueueSettings>,
}

impl CreateQueue {
    pub fn new(name: impl Into<String>) -> Self {
        Self { queue_name: name.into(), settings: None }
    }

    pub fn validate(&self) -> Result<(), CloudflareError> {
        check_queue_name("queue_name", &self.queue_name)?;
        if let Some(s) = &self.settings {
            if s.delivery_delay.is_some_and(|d| d > 86_400) {
                return Err(CloudflareError::InvalidInput("settings.delivery_delay must be 0..=86400 seconds".into()));
            }
            if s.message_retention_period.is_some_and(|r| !(60..=1_209_600).contains(&r)) {
                return Err(CloudflareError::InvalidInput(
                    "settings.message_retention_period must be 60..=1209600 seconds".into(),
                ));
            }
        }
        Ok(())
    }
}

/// `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`
pub fn valid_queue_name(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn check_queue_name(field: &str, name: &str) -> Result<(), CloudflareError> {
    if valid_queue_name(name) {
        Ok(())
    } else {
        Err(CloudflareError::InvalidInput(format!(
            "{field} {name:?} is invalid: 1-63 lowercase letters, digits and '-', not starting or ending with '-'"
        )))
    }
}

/// A Worker consumer (`POST|PUT .../consumers` body).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkerConsumer {
    #[serde(rename = "type")]
    kind: &'static str,
    pub script_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_queue: Option<String>,
    pub settings: ConsumerSettings,
}

impl WorkerConsumer {
    pub fn new(script_name: impl Into<String>, settings: ConsumerSettings) -> Self {
        Self { kind: "worker", script_name: script_name.into(), dead_letter_queue: None, settings }
    }

    pub fn with_dead_letter_queue(mut self, dlq: impl Into<String>) -> Self {
        self.dead_letter_queue = Some(dlq.into());
        self
    }

    pub fn validate(&self) -> Result<(), CloudflareError> {
        if let Some(d) = &self.dead_letter_queue {
            check_queue_name("dead_letter_queue", d)?;
        }
        let s = &self.settings;
        let bad = |m: &str| Err(CloudflareError::InvalidInput(m.to_string()));
        if s.batch_size.is_some_and(|b| !(1..=100).contains(&b)) {
            return bad("settings.batch_size must be 1..=100");
        }
        if s.max_retries.is_some_and(|r| r > 100) {
            return bad("settings.max_retries must be 0..=100");
        }
        if s.max_wait_time_ms.is_some_and(|w| w > 60_000) {
            return bad("settings.max_wait_time_ms must be 0..=60000");
        }
        if s.retry_delay.is_some_and(|d| d > 43_200) {
            return bad("settings.retry_delay must be 0..=43200 seconds");
        }
        Ok(())
    }
}

fn queue_path(account: &str, queue: &str) -> String {
    format!("/accounts/{}/queues/{}", enc(account), enc(queue))
}

impl CloudflareClient {
    /// `POST .../queues`. Name taken: 11009 (`is_conflict()`).
    pub async fn create_queue(&self, account_id: &str, body: &CreateQueue) -> Result<Queue, CloudflareError> {
        body.validate()?;
        let req = Request::post(EP_QUEUES, format!("/accounts/{}/queues", enc(account_id))).json(body)?;
        self.call(req).await
    }

    /// One page of `GET .../queues`, optionally only the queues with these exact names.
    pub async fn list_queues_page(
        &self,
        account_id: &str,
        names: &[&str],
        page: u32,
        per_page: u32,
    ) -> Result<Page<Queue>, CloudflareError> {
        let mut req = Request::get(EP_QUEUES, format!("/accounts/{}/queues", enc(account_id)))
            .query("page", page)
            .query("per_page", per_page);
        for n in names {
            req = req.query("name", n);
        }
        self.page_array(req).await
    }

    /// Every queue of the account.
    pub async fn list_queues(&self, account_id: &str) -> Result<Vec<Queue>, CloudflareError> {
        collect_pages(QUEUES_PER_PAGE, |page| self.list_queues_page(account_id, &[], page, QUEUES_PER_PAGE)).await
    }

    /// The queue named exactly `name`, with its consumers.
    pub async fn find_queue(&self, account_id: &str, name: &str) -> Result<Option<Queue>, CloudflareError> {
        let page = self.list_queues_page(account_id, &[name], 1, QUEUES_PER_PAGE).await?;
        Ok(page.items.into_iter().find(|q| q.queue_name == name))
    }

    /// `GET .../queues/:id`. Missing: `is_not_found()`.
    pub async fn get_queue(&self, account_id: &str, queue_id: &str) -> Result<Queue, CloudflareError> {
        self.call(Request::get(EP_QUEUE, queue_path(account_id, queue_id))).await
    }

    /// `PUT .../queues/:id`: full replacement of name and settings.
    pub async fn update_queue(
        &self,
        account_id: &str,
        queue_id: &str,
        body: &CreateQueue,
    ) -> Result<Queue, CloudflareError> {
        body.validate()?;
        let req = Request::put(EP_QUEUE, queue_path(account_id, queue_id)).json(body)?;
        self.call(req).await
    }

    /// `DELETE .../queues/:id`.
    pub async fn delete_queue(&self, account_id: &str, queue_id: &str) -> Result<(), CloudflareError> {
        self.call_unit(Request::delete(EP_QUEUE, queue_path(account_id, queue_id))).await
    }

    /// `POST .../queues/:id/consumers`.
    pub async fn add_queue_consumer(
        &self,
        account_id: &str,
        queue_id: &str,
        body: &WorkerConsumer,
    ) -> Result<QueueConsumer, CloudflareError> {
        body.validate()?;
        let req =
            Request::post(EP_QUEUE_CONSUMERS, format!("{}/consumers", queue_path(account_id, queue_id))).json(body)?;
        self.call(req).await
    }

    /// `GET .../queues/:id/consumers`.
    pub async fn list_queue_consumers(
        &self,
        account_id: &str,
        queue_id: &str,
    ) -> Result<Vec<QueueConsumer>, CloudflareError> {
        let req = Request::get(EP_QUEUE_CONSUMERS, format!("{}/consumers", queue_path(account_id, queue_id)));
        let r: Option<Vec<QueueConsumer>> = self.call(req).await?;
        Ok(r.unwrap_or_default())
    }

    /// `PUT .../queues/:id/consumers/:consumer`.
    pub async fn update_queue_consumer(
        &self,
        account_id: &str,
        queue_id: &str,
        consumer_id: &str,
        body: &WorkerConsumer,
    ) -> Result<QueueConsumer, CloudflareError> {
        body.validate()?;
        let path = format!("{}/consumers/{}", queue_path(account_id, queue_id), enc(consumer_id));
        self.call(Request::put(EP_QUEUE_CONSUMER, path).json(body)?).await
    }

    /// `DELETE .../queues/:id/consumers/:consumer`.
    pub async fn delete_queue_consumer(
        &self,
        account_id: &str,
        queue_id: &str,
        consumer_id: &str,
    ) -> Result<(), CloudflareError> {
        let path = format!("{}/consumers/{}", queue_path(account_id, queue_id), enc(consumer_id));
        self.call_unit(Request::delete(EP_QUEUE_CONSUMER, path)).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn consumer_body_and_parsing() {
        let c = WorkerConsumer::new(
            "w",
            ConsumerSettings { batch_size: Some(10), max_wait_time_ms: Some(5000), ..Default::default() },
        )
        .with_dead_letter_queue("dlq");
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"type": "worker", "script_name": "w", "dead_letter_queue": "dlq",
                   "settings": {"batch_size": 10, "max_wait_time_ms": 5000, "max_concurrency": null}})
        );
        assert!(c.validate().is_ok());
        let bad = WorkerConsumer::new("w", ConsumerSettings { batch_size: Some(0), ..Default::default() });
        assert!(bad.validate().unwrap_err().to_string().contains("batch_size"));
        let q: Queue = serde_json::from_value(json!({
            "queue_id": "q", "queue_name": "jobs", "consumers": [{"consumer_id": "c", "script": "w", "dead_letter_queue": ""}],
            "settings": null, "producers": null
        }))
        .unwrap();
        let found = q.consumer_of("w").unwrap();
        assert_eq!((found.consumer_id.as_str(), found.dead_letter()), ("c", None));
        assert!(CreateQueue::new("Bad Name").validate().is_err());
    }
}
