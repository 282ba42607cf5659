//! What a Customer pass starts from: the token Secret and the services naming the Customer.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::CustomerError;
use crate::crd::conditions::{self as c, reason};
use crate::crd::{CloudflareService, Customer};
use crate::engine::hash::digest_strings;
use crate::engine::resolve::{ObjectSource, ResolveError, read_secret_key};
use crate::engine::secret::SecretValue;

/// The token, as read from its Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenInput {
    Present {
        token: SecretValue,
        /// Digest of the Secret's version and the account: a verdict is cached for this.
        checked_for: String,
    },
    /// The Secret or key is missing or empty; the message names them.
    Missing(String),
}

/// Everything the planner reads besides the Customer and its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// CloudflareServices naming this Customer.
    pub services: usize,
    /// Newest time one of them saw Cloudflare reject the token.
    pub rejected_at: Option<Timestamp>,
    pub token: TokenInput,
}

/// When a service last saw Cloudflare reject its token (`CredentialsValid=False, TokenInvalid`).
pub fn token_rejected_at(s: &CloudflareService) -> Option<Timestamp> {
    let st = s.status.as_ref()?;
    c::find(&st.conditions, c::CREDENTIALS_VALID)
        .filter(|x| x.status == "False" && x.reason == reason::TOKEN_INVALID)
        .map(|x| x.last_transition_time.0)
}

/// Read the token Secret; count `services` naming the Customer and their rejected calls.
pub async fn observe(
    src: &dyn ObjectSource,
    customer: &Customer,
    services: &[CloudflareService],
) -> Result<Observed, CustomerError> {
    let name = customer.name_any();
    let ns = customer.namespace().unwrap_or_else(|| "default".into());
    let mine: Vec<&CloudflareService> = services.iter().filter(|s| s.spec.customer_ref.name == name).collect();
    let r = &customer.spec.api_token_secret_ref;
    let token = match read_secret_key(src, &ns, "spec.apiTokenSecretRef", r).await {
        Ok((token, _)) if token.is_empty() => {
            TokenInput::Missing(format!("spec.apiTokenSecretRef: key {:?} of Secret {:?} is empty", r.key, r.name))
        }
        Ok((token, version)) => {
            TokenInput::Present { token, checked_for: digest_strings(&[version, customer.spec.account_id.clone()]) }
        }
        Err(ResolveError::Config(e)) => TokenInput::Missing(e.to_string()),
        Err(ResolveError::Source(source)) => return Err(CustomerError::ReadToken { source }),
    };
    Ok(Observed { services: mine.len(), rejected_at: mine.iter().filter_map(|s| token_rejected_at(s)).max(), token })
}
