//! The Cloudflare calls of a Customer pass: token verification and zone lookups, as planned.

use tracing::{Instrument, info_span};

use super::observe::{Observed, TokenInput};
use super::plan::{Plan, TokenStep, ZoneStep};
use crate::cloudflare::Priority;
use crate::crd::Customer;
use crate::engine::Engine;
use crate::engine::credentials::{self, Verification};
use crate::engine::zones::{self, Resolved, ZoneError};

/// What the calls returned.
#[derive(Debug, Default)]
pub struct Executed {
    /// The verification made this pass (also: the token cannot be used by a client at all).
    pub verification: Option<Verification>,
    /// The zone lookup made this pass.
    pub zones: Option<Result<Resolved, ZoneError>>,
}

/// Run the plan: verify the token when planned, then look zones up when planned and the token
/// is valid (a failed verification leaves the zones alone).
pub async fn execute(engine: &Engine, customer: &Customer, observed: &Observed, plan: &Plan) -> Executed {
    let mut done = Executed::default();
    let TokenInput::Present { token, .. } = &observed.token else {
        return done;
    };
    let verify = matches!(plan.token, TokenStep::Verify { .. });
    if !verify && plan.zones != ZoneStep::Resolve {
        return done;
    }
    let account = customer.spec.account_id.as_str();
    let client = match engine.client_for(token.expose()) {
        // The hourly re-verification is upkeep: it never delays a change on the same token.
        Ok(client) if matches!(plan.token, TokenStep::Verify { routine: true, .. }) => {
            client.with_priority(Priority::Resync)
        }
        Ok(client) => client,
        Err(e) => {
            // A token no client can send (control characters) is rejected like a revoked one.
            done.verification = Some(Verification::from_result(Err(e)));
            return done;
        }
    };
    if verify {
        let v = credentials::verify(&client, account).instrument(info_span!("step", step = "verify_token")).await;
        let valid = v.is_valid();
        done.verification = Some(v);
        if !valid {
            return done;
        }
    }
    if plan.zones == ZoneStep::Resolve {
        let zones = zones::resolve(&client, account, &customer.spec.zones);
        done.zones = Some(zones.instrument(info_span!("step", step = "resolve_zones")).await);
    }
    done
}
